/**
 * The demo's live view. On a terminal it redraws a small panel in place a few times a second:
 * where the run is in its traffic profile, the traffic per kind, the failures and the incidents
 * (faults, partitions, breakers, scaling). Elsewhere (a pipe, a CI log) it prints one line a
 * second. Incidents are printed above the panel as they happen, so they stay in the scrollback.
 */

/** What the view shows; the demo updates it as the run goes. */
export interface ProgressState {
  elapsedMs: number;
  durationMs: number;
  /** Whether the Black-Friday spike is on now. */
  spike: boolean;
  browse: { calls: number; errors: number; rate: number };
  checkouts: { placed: number; ok: number; failed: number };
  carts: Record<string, number>;
  records: number;
  replicas: number;
  breakersOpen: number;
  partitioned: boolean;
  fault: string | null;
}

export interface ProgressView {
  readonly state: ProgressState;
  /** Records an incident: printed at once, above the panel. */
  incident(text: string): void;
  /** Redraws (on a terminal) or prints a line when a second has passed (elsewhere). */
  render(): void;
  /** Leaves the last frame on screen. */
  close(): void;
}

const BAR = 30;

export function createProgressView(options: {
  readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  readonly durationMs: number;
  /** Print nothing at all (JSON output). */
  readonly quiet?: boolean;
}): ProgressView {
  const { stream } = options;
  const tty = stream.isTTY === true;
  const state: ProgressState = {
    elapsedMs: 0,
    durationMs: options.durationMs,
    spike: false,
    browse: { calls: 0, errors: 0, rate: 0 },
    checkouts: { placed: 0, ok: 0, failed: 0 },
    carts: {},
    records: 0,
    replicas: 0,
    breakersOpen: 0,
    partitioned: false,
    fault: null,
  };
  let drawn = 0;
  let lastLine = -1;
  const clear = (): void => {
    if (drawn > 0) stream.write(`\x1b[${drawn}F\x1b[J`);
    drawn = 0;
  };
  const frame = (): string[] => {
    const s = state;
    const done = Math.min(1, s.elapsedMs / Math.max(1, s.durationMs));
    const filled = Math.round(done * BAR);
    const bar = `${"█".repeat(filled)}${"░".repeat(BAR - filled)}`;
    const carts = Object.entries(s.carts)
      .map(([region, n]) => `${region} ${n}`)
      .join(", ");
    const incidents = [
      s.spike ? "BLACK-FRIDAY SPIKE" : "",
      s.partitioned ? "regions partitioned" : "",
      s.fault ?? "",
      s.breakersOpen > 0 ? `${s.breakersOpen} breaker(s) open` : "",
    ].filter((x) => x !== "");
    return [
      `  ${bar} ${(s.elapsedMs / 1_000).toFixed(1)}s / ${(s.durationMs / 1_000).toFixed(0)}s  ${incidents.join(" | ")}`,
      `  browse     ${s.browse.calls} calls, ${Math.round(s.browse.rate)}/s, ${s.browse.errors} errors`,
      `  checkouts  ${s.checkouts.placed} placed, ${s.checkouts.ok} answered, ${s.checkouts.failed} failed`,
      `  carts      ${carts || "none"} edits; records ${s.records} requests; availability replicas ${s.replicas}`,
    ];
  };
  return {
    state,
    incident(text) {
      if (options.quiet === true) return;
      const line = `  ! ${(state.elapsedMs / 1_000).toFixed(1)}s ${text}`;
      if (tty) {
        clear();
        stream.write(`${line}\n`);
        const lines = frame();
        stream.write(`${lines.join("\n")}\n`);
        drawn = lines.length;
      } else stream.write(`${line}\n`);
    },
    render() {
      if (options.quiet === true) return;
      if (tty) {
        clear();
        const lines = frame();
        stream.write(`${lines.join("\n")}\n`);
        drawn = lines.length;
        return;
      }
      const second = Math.floor(state.elapsedMs / 1_000);
      if (second === lastLine) return;
      lastLine = second;
      const s = state;
      stream.write(
        `  ${(s.elapsedMs / 1_000).toFixed(1)}s${s.spike ? " [spike]" : ""}  browse ${s.browse.calls} (${Math.round(s.browse.rate)}/s, ${s.browse.errors} errors)  checkouts ${s.checkouts.placed}/${s.checkouts.ok} ok  replicas ${s.replicas}\n`,
      );
    },
    close() {
      drawn = 0;
    },
  };
}

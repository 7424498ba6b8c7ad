import { createHistogram } from "node:perf_hooks";
import { isStrataError } from "../errors/index.js";
import { systemClock, type Clock } from "../ports/index.js";
import type { LatencySummary } from "./run-load.js";

/** Options for {@link runOpenLoad}. */
export interface OpenLoadOptions {
  /**
   * Calls started per second, whether or not earlier ones finished (an open system); or the
   * rate at each moment of the run (ms since its start), for a traffic profile with a spike.
   */
  readonly rate: number | ((elapsedMs: number) => number);
  readonly durationMs: number;
  readonly call: (index: number) => Promise<unknown>;
  readonly signal?: AbortSignal;
  readonly clock?: Clock;
  /** How often arrivals are released (ms); default 5. */
  readonly tickMs?: number;
}

/** What an open-loop run measured. */
export interface OpenLoadReport {
  readonly started: number;
  readonly ok: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly durationMs: number;
  /** Successful calls per second ("goodput"). */
  readonly goodput: number;
  /** Latency of successful calls, in milliseconds. */
  readonly latency: LatencySummary;
  /** Latency of failed calls (how fast failures came back), in milliseconds. */
  readonly failureLatency: LatencySummary;
}

function summary(h: ReturnType<typeof createHistogram>, count: number): LatencySummary {
  const ms = (v: number): number => Math.round(v) / 1000;
  if (count === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  return {
    p50: ms(h.percentile(50)),
    p90: ms(h.percentile(90)),
    p99: ms(h.percentile(99)),
    max: ms(h.max),
    mean: ms(h.mean),
  };
}

/**
 * Starts calls at a fixed rate for a while, independent of how fast they complete, as real users
 * do; this is what exposes overload (a closed loop slows its own arrivals down and hides it).
 * Waits for the calls still in flight at the end.
 *
 * @example
 * const report = await runOpenLoad({ rate: 3_000, durationMs: 5_000, call: () => client.get(q) });
 */
export async function runOpenLoad(options: OpenLoadOptions): Promise<OpenLoadReport> {
  const rateAt = typeof options.rate === "function" ? options.rate : undefined;
  if ((rateAt === undefined && !((options.rate as number) > 0)) || !(options.durationMs > 0)) {
    throw new RangeError("runOpenLoad needs a positive rate and duration");
  }
  const clock = options.clock ?? systemClock();
  const tick = options.tickMs ?? 5;
  const okLatency = createHistogram();
  const failLatency = createHistogram();
  const errors: Record<string, number> = {};
  let started = 0;
  let ok = 0;
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  // Clock timers never hold the process open; a load run is a job in its own right, so keep the
  // event loop alive until it ends.
  const keepAlive = setInterval(() => undefined, 60_000);
  const t0 = clock.monotonic();
  let owed = 0;
  let last = 0;
  const launch = (): void => {
    const index = started++;
    const at = clock.monotonic();
    const p: Promise<void> = options.call(index).then(
      () => {
        ok++;
        okLatency.record(Math.max(1, Math.round((clock.monotonic() - at) * 1000)));
      },
      (error: unknown) => {
        failed++;
        failLatency.record(Math.max(1, Math.round((clock.monotonic() - at) * 1000)));
        const code = isStrataError(error) ? error.code : "UNKNOWN";
        errors[code] = (errors[code] ?? 0) + 1;
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  await new Promise<void>((resolve) => {
    const step = (): void => {
      const elapsed = clock.monotonic() - t0;
      if (elapsed >= options.durationMs || options.signal?.aborted === true) {
        resolve();
        return;
      }
      if (rateAt === undefined) {
        const due = Math.floor((elapsed * (options.rate as number)) / 1000);
        while (started < due) launch();
      } else {
        // Calls owed accumulate with the rate of the moment.
        const rate = rateAt(elapsed);
        owed += ((Number.isFinite(rate) && rate > 0 ? rate : 0) * (elapsed - last)) / 1000;
        last = elapsed;
        for (; owed >= 1; owed--) launch();
      }
      clock.setTimer(step, tick);
    };
    step();
  });
  const durationMs = clock.monotonic() - t0;
  await Promise.all(inFlight);
  clearInterval(keepAlive);
  return {
    started,
    ok,
    errors,
    durationMs,
    goodput: (ok * 1000) / durationMs,
    latency: summary(okLatency, ok),
    failureLatency: summary(failLatency, failed),
  };
}

import { setTimeout as delay } from "node:timers/promises";
import {
  ADMIN_SERVICE,
  isAdminService,
  isStrataError,
  type StrataNode,
  type SloStatus,
  type TelemetrySnapshot as CoreTelemetrySnapshot,
} from "@strata/core";
import { natsUrl, parse, positiveInt } from "../args.js";
import { clientNode, settle } from "../cluster.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const TOP_HELP = `usage: strata top [--nats <url>] [--cluster <name>] [--interval <ms>] [--once]
                  [--iterations <n>] [--json]

A live view of a cluster, refreshed like top: nodes, services, requests/s, p99 latency, errors,
open circuit breakers and SLO status, read from each node's built-in strata-admin service.

The SERVICES table adds up requests/s and errors of each action over the nodes that serve it;
its p99 is the highest of the nodes' p99s (an upper bound: percentiles cannot be added up).
The strata-admin service itself is left out of the totals and the tables. A node that does not
answer shows as "unreachable" with its error code; one whose answer is malformed, as "bad answer".

When stdout is not a terminal, one frame is printed and the command exits, unless --iterations
is given. Ctrl-C stops the live view.

  --nats <url>        NATS server(s) (default: $STRATA_NATS_URL)
  --cluster <name>    Strata cluster name (default "default")
  --interval <ms>     time between frames (default 1000, at least 200)
  --once              print one frame and exit
  --iterations <n>    print n frames and exit
  --json              print each frame as one JSON object on its own line
  -h, --help          this text`;

/** One action's traffic on one node, over the node's telemetry window. */
export interface ActionSnapshot {
  readonly service: string;
  readonly action: string;
  readonly count: number;
  readonly requestsPerSecond: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly errorsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** One service level objective as a node evaluates it (the core's shape). */
export type { SloStatus };

/**
 * What `strata-admin.telemetry` answers (one node's health, traffic, breakers and SLOs), as this
 * view reads it off the wire: the core's snapshot with enumerations widened to strings, since an
 * answer from another build may name states this one does not know.
 */
export interface TelemetrySnapshot {
  readonly node: string;
  readonly region: string;
  readonly status: string;
  readonly inFlight: number;
  readonly windowSeconds: number;
  readonly actions: readonly ActionSnapshot[];
  readonly breakers: ReadonlyArray<{
    readonly scope: "node" | "action";
    readonly target: string;
    readonly state: { readonly type: string };
  }>;
  readonly slos: readonly SloStatus[];
  readonly heapUsedBytes: number;
  readonly eventLoopDelayP99Ms: number;
}

/** Every snapshot the core makes is one this view reads (checked when this file compiles). */
export const readsCoreSnapshots: (snapshot: CoreTelemetrySnapshot) => TelemetrySnapshot = (s) => s;

/** One node in a frame: its snapshot, or why there is none ("unreachable CODE", "bad answer"). */
export interface TopNode {
  readonly id: string;
  readonly snapshot?: TelemetrySnapshot;
  readonly error?: string;
}

/** What one refresh of `strata top` saw. */
export interface TopFrame {
  readonly at: Date;
  readonly nodes: readonly TopNode[];
}

/** One service action added up over the nodes that serve it. */
export interface ServiceTotals {
  readonly service: string;
  readonly action: string;
  readonly nodes: number;
  /** Sum over nodes. */
  readonly requestsPerSecond: number;
  /** Sum over nodes. */
  readonly errorsPerSecond: number;
  /** Highest node p99: an upper bound on the cluster's p99. */
  readonly p99Ms: number;
  /** Errors by code over the nodes' windows, summed. */
  readonly errors: Readonly<Record<string, number>>;
}

/** A frame's cluster-wide figures. */
export interface ClusterTotals {
  readonly nodes: number;
  readonly answered: number;
  readonly requestsPerSecond: number;
  readonly errorsPerSecond: number;
  readonly services: readonly ServiceTotals[];
}

// --- validation: a snapshot crosses the wire, so nothing in it is trusted -----------------------

const MAX_STRING = 256;
const MAX_ITEMS = 10_000;
const MAX_KEYS = 256;

/** Thrown inside the validator only; never escapes `parseSnapshot`. */
class Malformed extends Error {}

function record(value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Malformed();
  return value as Record<string, unknown>;
}

function str(value: unknown): string {
  if (typeof value !== "string" || value.length > MAX_STRING) throw new Malformed();
  return value;
}

function num(value: unknown, min = 0): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) throw new Malformed();
  return value;
}

function fraction(value: unknown): number {
  const n = num(value);
  if (n > 1) throw new Malformed();
  return n;
}

function list<T>(value: unknown, item: (v: unknown) => T): T[] {
  if (!Array.isArray(value) || value.length > MAX_ITEMS) throw new Malformed();
  return value.map(item);
}

function numbers(value: unknown): Record<string, number> {
  const entries = Object.entries(record(value));
  if (entries.length > MAX_KEYS) throw new Malformed();
  // fromEntries defines own properties, so a "__proto__" key cannot reach the prototype.
  return Object.fromEntries(entries.map(([k, v]) => [str(k), num(v)]));
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new Malformed();
  return value as T;
}

function action(value: unknown): ActionSnapshot {
  const v = record(value);
  return {
    service: str(v["service"]),
    action: str(v["action"]),
    count: num(v["count"]),
    requestsPerSecond: num(v["requestsPerSecond"]),
    errors: numbers(v["errors"]),
    errorsPerSecond: num(v["errorsPerSecond"]),
    p50Ms: num(v["p50Ms"]),
    p99Ms: num(v["p99Ms"]),
    maxMs: num(v["maxMs"]),
  };
}

function slo(value: unknown): SloStatus {
  const v = record(value);
  const sloAction = v["action"];
  return {
    name: str(v["name"]),
    service: str(v["service"]),
    // `undefined` does not survive every codec: a missing or null action means "every action".
    action: sloAction === undefined || sloAction === null ? undefined : str(sloAction),
    kind: oneOf(v["kind"], ["availability", "latency"] as const),
    objective: fraction(v["objective"]),
    total: num(v["total"]),
    good: num(v["good"]),
    attainment: fraction(v["attainment"]),
    errorBudgetRemaining: num(v["errorBudgetRemaining"], Number.NEGATIVE_INFINITY),
    burnRates: numbers(v["burnRates"]),
    alerts: list(v["alerts"], (a) => {
      const alert = record(a);
      const firing = alert["firing"];
      if (typeof firing !== "boolean") throw new Malformed();
      return { severity: oneOf(alert["severity"], ["page", "ticket"] as const), firing };
    }),
  };
}

function breaker(value: unknown): TelemetrySnapshot["breakers"][number] {
  const v = record(value);
  return {
    scope: oneOf(v["scope"], ["node", "action"] as const),
    target: str(v["target"]),
    state: { type: str(record(v["state"])["type"]) },
  };
}

/**
 * Checks an answer of `strata-admin.telemetry` and copies out the fields `strata top` uses;
 * `undefined` when it is not a well-formed {@link TelemetrySnapshot} (wrong types, non-finite or
 * negative numbers, strings over 256 characters, more than 10,000 items in a list).
 *
 * @example
 * const snapshot = parseSnapshot(await node.call("strata-admin", "telemetry", {}, { node: id }));
 * if (snapshot === undefined) show(id, "bad answer");
 */
export function parseSnapshot(value: unknown): TelemetrySnapshot | undefined {
  try {
    const v = record(value);
    return {
      node: str(v["node"]),
      region: str(v["region"]),
      status: str(v["status"]),
      inFlight: num(v["inFlight"]),
      windowSeconds: num(v["windowSeconds"]),
      actions: list(v["actions"], action),
      breakers: list(v["breakers"], breaker),
      slos: list(v["slos"], slo),
      heapUsedBytes: num(v["heapUsedBytes"]),
      eventLoopDelayP99Ms: num(v["eventLoopDelayP99Ms"]),
    };
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}

// --- collecting a frame ------------------------------------------------------------------------

/** The part of a node `collectFrame` uses (a fake in tests). */
export type TopSource = Pick<StrataNode, "id" | "nodes" | "call">;

/**
 * Asks every other node of the cluster for its telemetry, in parallel. Never rejects: a node that
 * does not answer is `unreachable CODE`, a malformed or mismatched answer is `bad answer`.
 */
export async function collectFrame(source: TopSource, signal?: AbortSignal): Promise<TopFrame> {
  const ids = source
    .nodes()
    .map((n) => n.id)
    .filter((id) => id !== source.id)
    .sort();
  const nodes = await Promise.all(
    ids.map(async (id): Promise<TopNode> => {
      let answer: unknown;
      try {
        answer = await source.call(
          ADMIN_SERVICE,
          "telemetry",
          {},
          { node: id, timeoutMs: 1_000, ...(signal === undefined ? {} : { signal }) },
        );
      } catch (error) {
        return { id, error: `unreachable ${isStrataError(error) ? error.code : "INTERNAL"}` };
      }
      const snapshot = parseSnapshot(answer);
      // An answer about another node is as useless as garbage, and would be shown under a lie.
      if (snapshot === undefined || snapshot.node !== id) return { id, error: "bad answer" };
      return { id, snapshot };
    }),
  );
  return { at: new Date(), nodes };
}

// --- rendering ---------------------------------------------------------------------------------

const userActions = (s: TelemetrySnapshot): ActionSnapshot[] =>
  s.actions.filter((a) => !isAdminService(a.service));

/** Cluster-wide figures of a frame; services sorted by requests/s, busiest first. */
export function clusterTotals(frame: TopFrame): ClusterTotals {
  const services = new Map<
    string,
    {
      service: string;
      action: string;
      nodes: number;
      rps: number;
      eps: number;
      p99: number;
      errors: Map<string, number>;
    }
  >();
  let answered = 0;
  for (const node of frame.nodes) {
    if (node.snapshot === undefined) continue;
    answered++;
    for (const a of userActions(node.snapshot)) {
      const key = `${a.service}\u0000${a.action}`;
      const s = services.get(key) ?? {
        service: a.service,
        action: a.action,
        nodes: 0,
        rps: 0,
        eps: 0,
        p99: 0,
        errors: new Map<string, number>(),
      };
      s.nodes++;
      s.rps += a.requestsPerSecond;
      s.eps += a.errorsPerSecond;
      s.p99 = Math.max(s.p99, a.p99Ms);
      for (const [code, n] of Object.entries(a.errors))
        s.errors.set(code, (s.errors.get(code) ?? 0) + n);
      services.set(key, s);
    }
  }
  const rows: ServiceTotals[] = [...services.values()]
    .map((s) => ({
      service: s.service,
      action: s.action,
      nodes: s.nodes,
      requestsPerSecond: s.rps,
      errorsPerSecond: s.eps,
      p99Ms: s.p99,
      errors: Object.fromEntries([...s.errors].filter(([, n]) => n > 0)),
    }))
    .sort(
      (a, b) =>
        b.requestsPerSecond - a.requestsPerSecond ||
        `${a.service}.${a.action}`.localeCompare(`${b.service}.${b.action}`),
    );
  return {
    nodes: frame.nodes.length,
    answered,
    requestsPerSecond: rows.reduce((sum, s) => sum + s.requestsPerSecond, 0),
    errorsPerSecond: rows.reduce((sum, s) => sum + s.errorsPerSecond, 0),
    services: rows,
  };
}

/** Control characters from the wire could move the cursor or recolour the terminal. */
function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

function rate(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function ms(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

/** A percentage that is never rounded up to 100% unless it is 100%. */
function percent(fractionValue: number): string {
  for (const digits of [2, 3, 4]) {
    const text = (fractionValue * 100).toFixed(digits);
    if (fractionValue >= 1 || !text.startsWith("100.")) return `${text}%`;
  }
  return `${(fractionValue * 100).toFixed(5)}%`;
}

function errorCodes(errors: Readonly<Record<string, number>>): string {
  const entries = Object.entries(errors).filter(([, n]) => n > 0);
  if (entries.length === 0) return "-";
  return entries
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([code, n]) => `${code}:${n}`)
    .join(" ");
}

function table(
  header: readonly string[],
  rows: readonly string[][],
  right: ReadonlySet<number>,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows].map((row) =>
    row
      .map((cell, i) =>
        right.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0),
      )
      .join("  ")
      .trimEnd(),
  );
}

function truncate(line: string, width: number): string {
  if (line.length <= width) return line;
  return width <= 1 ? line.slice(0, Math.max(0, width)) : `${line.slice(0, width - 1)}…`;
}

/**
 * Renders one frame as text no wider than `width` columns (pass `Infinity` for no limit): a
 * header with cluster totals, then NODES, SERVICES, BREAKERS and SLOS sections. Pure: the same
 * frame gives the same text.
 *
 * @example
 * io.out.write(renderTop(await collectFrame(node), process.stdout.columns));
 */
export function renderTop(frame: TopFrame, width: number): string {
  const totals = clusterTotals(frame);
  const lines: string[] = [];
  const down = totals.nodes - totals.answered;
  lines.push(
    `strata top  ${frame.at.toISOString().slice(11, 19)}Z  nodes ${totals.nodes}${down > 0 ? ` (${down} not answering)` : ""}  req/s ${rate(totals.requestsPerSecond)}  err/s ${rate(totals.errorsPerSecond)}`,
  );

  lines.push("", "NODES");
  if (frame.nodes.length === 0) lines.push("  no nodes answered");
  else {
    const rows = frame.nodes.map((node) => {
      const s = node.snapshot;
      if (s === undefined) {
        return [
          clean(node.id),
          "-",
          clean(node.error ?? "no answer"),
          "-",
          "-",
          "-",
          "-",
          "-",
          "-",
          "-",
        ];
      }
      const actions = userActions(s);
      const open = s.breakers.filter((b) => b.state.type !== "closed").length;
      return [
        clean(node.id),
        clean(s.region),
        clean(s.status),
        String(s.inFlight),
        rate(actions.reduce((sum, a) => sum + a.requestsPerSecond, 0)),
        ms(Math.max(0, ...actions.map((a) => a.p99Ms))),
        rate(actions.reduce((sum, a) => sum + a.errorsPerSecond, 0)),
        (s.heapUsedBytes / 1_048_576).toFixed(1),
        ms(s.eventLoopDelayP99Ms),
        String(open),
      ];
    });
    lines.push(
      ...table(
        [
          "NODE",
          "REGION",
          "STATUS",
          "IN-FLIGHT",
          "REQ/S",
          "P99 MS",
          "ERR/S",
          "HEAP MB",
          "LOOP P99 MS",
          "OPEN BREAKERS",
        ],
        rows,
        new Set([3, 4, 5, 6, 7, 8, 9]),
      ),
    );
  }

  lines.push("", "SERVICES (req/s and errors summed over nodes, p99 = highest node p99)");
  if (totals.services.length === 0) lines.push("  no traffic");
  else {
    lines.push(
      ...table(
        ["ACTION", "NODES", "REQ/S", "P99 MS", "ERR/S", "ERRORS"],
        totals.services.map((s) => [
          clean(`${s.service}.${s.action}`),
          String(s.nodes),
          rate(s.requestsPerSecond),
          ms(s.p99Ms),
          rate(s.errorsPerSecond),
          clean(errorCodes(s.errors)),
        ]),
        new Set([1, 2, 3, 4]),
      ),
    );
  }

  const breakers = frame.nodes.flatMap((node) =>
    (node.snapshot?.breakers ?? [])
      .filter((b) => b.state.type !== "closed")
      .map((b) => [clean(node.id), b.scope, clean(b.target), clean(b.state.type)]),
  );
  lines.push("", "BREAKERS (not closed)");
  if (breakers.length === 0) lines.push("  all closed");
  else lines.push(...table(["NODE", "SCOPE", "TARGET", "STATE"], breakers, new Set()));

  const slos = frame.nodes.flatMap((node) =>
    (node.snapshot?.slos ?? []).map((s) => {
      const firing = s.alerts.filter((a) => a.firing).map((a) => a.severity);
      const burn = (window: string): string => {
        const value = s.burnRates[window];
        return value === undefined ? "-" : `${value.toFixed(1)}x`;
      };
      return [
        clean(node.id),
        clean(s.name),
        clean(`${s.service}${s.action === undefined ? "" : `.${s.action}`}`),
        s.kind,
        percent(s.objective),
        percent(s.attainment),
        percent(s.errorBudgetRemaining),
        burn("5m"),
        burn("1h"),
        firing.length === 0 ? "ok" : `FIRING ${[...new Set(firing)].sort().join(",")}`,
      ];
    }),
  );
  lines.push("", "SLOS");
  if (slos.length === 0) lines.push("  none defined");
  else
    lines.push(
      ...table(
        [
          "NODE",
          "SLO",
          "TARGET",
          "KIND",
          "OBJECTIVE",
          "ATTAINED",
          "BUDGET LEFT",
          "BURN 5M",
          "BURN 1H",
          "ALERTS",
        ],
        slos,
        new Set([4, 5, 6, 7, 8]),
      ),
    );

  return `${lines.map((line) => truncate(line, width)).join("\n")}\n`;
}

/** A frame as one JSON line: what was seen plus the cluster totals. */
function frameJson(frame: TopFrame): string {
  return JSON.stringify({
    at: frame.at.toISOString(),
    totals: clusterTotals(frame),
    nodes: frame.nodes,
  });
}

// --- the command -------------------------------------------------------------------------------

const CLEAR = "\x1b[H\x1b[2J";

function interval(value: string | undefined): number {
  if (value === undefined) return 1_000;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 200 || n > 3_600_000) {
    throw new UsageError(
      `--interval must be a whole number of milliseconds from 200 to 3600000, got "${value}"`,
    );
  }
  return n;
}

/** `strata top`: a live view of a cluster's nodes, services, breakers and SLOs. */
export async function topCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    cluster: { type: "string" },
    interval: { type: "string" },
    once: { type: "boolean" },
    iterations: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${TOP_HELP}\n`);
    return EXIT.ok;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument "${positionals[0] as string}"`);
  const intervalMs = interval(values.interval);
  if (values.once === true && values.iterations !== undefined)
    throw new UsageError("give --once or --iterations, not both");
  const iterations = positiveInt("iterations", values.iterations, 1);
  const tty = io.out.isTTY === true;
  const frames =
    values.once === true ? 1 : values.iterations !== undefined ? iterations : tty ? Infinity : 1;
  const live = frames > 1;

  const node = await clientNode(
    { nats: natsUrl(values.nats, io.env), cluster: values.cluster },
    "strata top",
  );
  // A function, not a property read: TypeScript would keep a narrowing across the awaits.
  const stopped = (): boolean => io.signal?.aborted === true;
  try {
    await settle(node, 1_500, stopped);
    for (let i = 0; i < frames && !stopped(); i++) {
      if (i > 0) {
        try {
          await delay(intervalMs, undefined, io.signal === undefined ? {} : { signal: io.signal });
        } catch {
          break; // aborted: Ctrl-C
        }
      }
      const frame = await collectFrame(node, io.signal);
      if (stopped()) break;
      if (values.json === true) {
        io.out.write(`${frameJson(frame)}\n`);
        continue;
      }
      const columns = (io.out as { columns?: unknown }).columns;
      const width = tty && typeof columns === "number" && columns > 0 ? columns : Infinity;
      const text = renderTop(frame, width);
      if (live && tty) io.out.write(`${CLEAR}${text}`);
      else io.out.write(i > 0 ? `\n${text}` : text);
    }
    return EXIT.ok;
  } finally {
    await node.stop({ drainTimeoutMs: 500 });
  }
}

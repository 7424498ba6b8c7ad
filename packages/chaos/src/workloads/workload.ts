import { isStrataError } from "@strata/core";
import { createRecorder, type HistoryEvent } from "@strata/verify";
import type { ChaosCluster } from "../cluster.js";
import type { Metrics, OpOutcome } from "../metrics.js";
import type { WorkloadName } from "../services.js";

/** What a workload runs with. */
export interface WorkloadContext {
  readonly cluster: ChaosCluster;
  readonly metrics: Metrics;
  /** Aborted when the workload must stop generating operations. */
  readonly signal: AbortSignal;
  readonly random: () => number;
  readonly clients: number;
  readonly log: (line: string) => void;
}

/** A workload's checker verdict, as the report shows it. */
export interface WorkloadVerdict {
  readonly workload: WorkloadName;
  readonly valid: boolean;
  /** One line: what was checked and what was found. */
  readonly summary: string;
  readonly operations: { readonly ok: number; readonly fail: number; readonly info: number };
  /** Errors the clients saw, by code (and reason, when the error gave one). */
  readonly errors: Readonly<Record<string, number>>;
  /** The first message seen of each kind in `errors`, to tell where they came from. */
  readonly errorExamples: Readonly<Record<string, string>>;
  /** The checker's whole verdict. */
  readonly details: unknown;
}

/**
 * A workload: client processes that call the cluster and record a history (invoke, then ok, fail
 * or info), final reads once the faults are healed, and the checker that judges the history.
 */
export interface Workload {
  readonly name: WorkloadName;
  /** Prepares the data (accounts, keys) before the clock starts. */
  setup(ctx: WorkloadContext): Promise<void>;
  /** Runs the clients until `ctx.signal` aborts. */
  run(ctx: WorkloadContext): Promise<void>;
  /** Final reads, after the rollback. */
  finish(ctx: WorkloadContext): Promise<void>;
  check(): WorkloadVerdict;
  /** The recorded history (the JSON history format `strata check` reads). */
  history(): readonly HistoryEvent[];
  historyJson(): string;
}

/** Call options of every workload call: bounded, so an unanswered call becomes `info`. */
export const CALL = { timeoutMs: 3_000 } as const;

/** A recorder plus the metrics: one place that times and classifies every operation. */
export function createTracker(name: WorkloadName) {
  const recorder = createRecorder();
  const counts = { ok: 0, fail: 0, info: 0 };
  const errors: Record<string, number> = {};
  const errorExamples: Record<string, string> = {};
  const noteError = (error: unknown): void => {
    const reason = isStrataError(error) ? error.details["reason"] : undefined;
    const code = isStrataError(error)
      ? `${error.code}${typeof reason === "string" ? ` (${reason})` : ""}`
      : error instanceof Error
        ? error.name
        : "unknown";
    errors[code] = (errors[code] ?? 0) + 1;
    errorExamples[code] ??= (error instanceof Error ? error.message : String(error)).slice(0, 300);
  };
  return {
    recorder,
    counts,
    errors,
    errorExamples,
    /**
     * Runs one operation of `process`, records how it ended (`classify` decides between fail and
     * info for an error), and returns its value or undefined.
     */
    async op<T>(
      metrics: Metrics,
      process: number | string,
      f: string,
      value: unknown,
      call: () => Promise<T>,
      options: {
        readonly key?: string;
        readonly output?: (result: T) => unknown;
        /**
         * `fail`: it did not happen; `refused`: it did not happen because the system rightly
         * said no (a compare that did not hold, insufficient funds) — a fail in the history, a
         * success for the steady state; `info`: it may have happened.
         */
        readonly classify: (error: unknown) => "fail" | "refused" | "info";
        /**
         * Whether the error says the operation never reached the system (refused by the
         * caller's breaker, say): it is then taken out of the history. Default: never.
         */
        readonly notSent?: (error: unknown) => boolean;
      },
    ): Promise<{ outcome: OpOutcome; result?: T }> {
      const started = performance.now();
      const handle = recorder.invoke(process, f, value, options.key);
      try {
        const result = await call();
        handle.ok(options.output === undefined ? result : options.output(result));
        counts.ok++;
        metrics.record(started, "ok");
        return { outcome: "ok", result };
      } catch (error) {
        noteError(error);
        if (options.notSent?.(error) === true) {
          handle.discard();
          counts.fail++;
          metrics.record(started, "fail");
          return { outcome: "fail" };
        }
        const kind = options.classify(error);
        const outcome: OpOutcome = kind === "info" ? "info" : "fail";
        if (outcome === "fail") handle.fail();
        else handle.info();
        counts[outcome]++;
        metrics.record(started, kind === "refused" ? "ok" : outcome);
        return { outcome };
      }
    },
    name,
  };
}

/**
 * Refusals made before the call reached a handler: the operation did not happen (unless the
 * error says attempts were sent before it, on a retry).
 */
const NOT_SENT = new Set([
  "no-instance",
  "unknown-node",
  "circuit-open",
  "bulkhead",
  "retry-budget",
  "shed",
  "rate-limit",
  "policy",
]);

/** Whether an error is a refusal made before the call reached a handler (see NOT_SENT). */
export function refusedBeforeSending(error: unknown): boolean {
  if (!isStrataError(error) || error.details["attempts"] !== undefined) return false;
  const reason = error.details["reason"];
  return typeof reason === "string" && NOT_SENT.has(reason);
}

/**
 * An error that says the operation did not happen: refused input, a refusal by the caller's or
 * callee's resilience layer before the handler ran, or one of `codes`.
 */
export function definitelyNot(error: unknown, ...codes: string[]): boolean {
  if (!isStrataError(error)) return false;
  if (["INVALID_ARGUMENT", ...codes].includes(error.code)) return true;
  return refusedBeforeSending(error);
}

/**
 * Runs `ctx.clients` client loops until `ctx.signal` aborts. Each step is one operation of the
 * client's current process; after an `info` the client carries on as a new process (its old
 * operation may still be in flight), as Jepsen's clients do. A short random pause between
 * steps keeps the clients from running in lockstep.
 */
export async function clientLoops(
  ctx: WorkloadContext,
  step: (client: number, i: number, process: number) => Promise<OpOutcome>,
): Promise<void> {
  await Promise.all(
    Array.from({ length: ctx.clients }, async (_, client) => {
      let process = client;
      for (let i = 0; !ctx.signal.aborted; i++) {
        if ((await step(client, i, process)) === "info") process += ctx.clients;
        await pauseFor(2 + ctx.random() * 8, ctx.signal);
      }
    }),
  );
}

/**
 * The final reads of a replicated workload: every node syncs (anti-entropy) and is read until
 * all reads agree or `convergeMs` pass (the checker then reports the divergence); then one
 * final read per node is recorded, its key naming the replica. Returns the replica names.
 */
export async function convergeAndRead<T>(
  ctx: WorkloadContext,
  tracker: ReturnType<typeof createTracker>,
  options: {
    readonly sync: (node: string) => Promise<unknown>;
    readonly read: (node: string) => Promise<T>;
    readonly value: (read: T) => unknown;
    readonly convergeMs: number;
  },
): Promise<string[]> {
  const nodes = ctx.cluster.nodes.map((n) => n.name);
  const deadline = performance.now() + options.convergeMs;
  for (;;) {
    await Promise.allSettled(nodes.map((node) => options.sync(node)));
    const reads = await Promise.allSettled(nodes.map((node) => options.read(node)));
    const views = reads.map((r) =>
      r.status === "fulfilled" ? JSON.stringify(options.value(r.value)) : undefined,
    );
    if (views.every((v) => v !== undefined && v === views[0])) break;
    if (performance.now() > deadline) break;
    await pauseFor(500);
  }
  for (const node of nodes) {
    await tracker.op(ctx.metrics, `final-${node}`, "read", null, () => options.read(node), {
      key: node,
      output: options.value,
      classify: () => "fail",
    });
  }
  return nodes;
}

/** Waits `ms`, or less if the signal aborts. */
export function pauseFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Runs `fn` until it succeeds or `ms` pass; returns the last error on timeout. */
export async function untilOk<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (performance.now() >= deadline) throw error;
      await pauseFor(250);
    }
  }
}

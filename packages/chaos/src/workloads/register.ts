import { isStrataError } from "@strata/core";
import { checkLinearizable } from "@strata/verify";
import type { OpOutcome } from "../metrics.js";
import {
  pgRegisterService,
  registerService,
  shardedRegisterService,
  shardsService,
} from "../services.js";
import {
  CALL,
  clientLoops,
  createTracker,
  definitelyNot,
  refusedBeforeSending,
  type Workload,
  type WorkloadContext,
  type WorkloadVerdict,
} from "./workload.js";

/**
 * Polls the shard map (through any node) until `group` is in it and no rebalance is under way,
 * for 20 s at most.
 */
async function waitForGroup(
  shards: {
    status(input: Record<string, never>): Promise<{ groups: string[]; rebalancing: boolean }>;
  },
  group: string,
): Promise<boolean> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    const s = await shards.status({}).catch(() => undefined);
    if (s?.groups.includes(group) === true && !s.rebalancing) return true;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return false;
}

/** Options of {@link registerWorkload}. */
export interface RegisterWorkloadOptions {
  /**
   * The store: the NATS JetStream KV (default), PostgreSQL (`pg-register`), or a store sharded
   * over PostgreSQL groups whose map every node routes by (`sharded-register`): there the
   * workload also adds a shard group at `rebalanceAtMs` and another one at twice that.
   */
  readonly store?: "nats" | "postgres" | "sharded";
  /** When (ms after the start) the sharded store gets its first new group; default 2 000. */
  readonly rebalanceAtMs?: number;
  /** Registers (keys) the clients share at a time; default 5. */
  readonly keys?: number;
  /** Values written are 0..values-1; default 5. */
  readonly values?: number;
  /**
   * Operations per key before the clients move on to fresh keys (default 80). Short per-key
   * histories keep the check fast however long the run: a key's unknown-outcome writes stay
   * open to the end of its history, and the search grows with them (Jepsen's independent keys).
   */
  readonly opsPerKey?: number;
  /** Checker time limit (ms); default 60 000. */
  readonly checkTimeoutMs?: number;
}

/**
 * Per-key registers on the strong KV: clients read, write and compare-and-set random keys. A
 * read that errs is `fail` (reads change nothing); a write that errs is `info` (it may have taken
 * effect) unless it was refused before it ran; a CAS is `fail` only when its compare did not
 * hold, and `info` on any other error. Checked for
 * linearizability per key (Wing-Gong-Lowe with P-compositionality).
 */
export function registerWorkload(options: RegisterWorkloadOptions = {}): Workload {
  const name =
    options.store === "postgres"
      ? "pg-register"
      : options.store === "sharded"
        ? "sharded-register"
        : "register";
  const service =
    options.store === "postgres"
      ? pgRegisterService
      : options.store === "sharded"
        ? shardedRegisterService
        : registerService;
  const rebalances: Array<{ group: string; ok: boolean; keys?: number; error?: string }> = [];
  const tracker = createTracker(name);
  const keys = options.keys ?? 5;
  const values = options.values ?? 5;
  const opsPerKey = options.opsPerKey ?? 80;
  let issued = 0;
  /** Adds shard groups c and d while the clients run (one after the other). */
  const rebalance = async (ctx: WorkloadContext): Promise<void> => {
    const shards = ctx.cluster.client.client(shardsService, { timeoutMs: 30_000 });
    const at = options.rebalanceAtMs ?? 2_000;
    for (const group of ["c", "d"]) {
      await new Promise((resolve) => setTimeout(resolve, at));
      if (ctx.signal.aborted) return;
      try {
        const r = await shards.addGroup({ id: group });
        rebalances.push({ group, ok: true, keys: r.keys });
        ctx.log(
          `sharded-register: group ${group} added, ${r.keys} keys moved, map epoch ${r.epoch}`,
        );
      } catch (error) {
        // The node that ran it may have been paused or cut off mid-way: it finishes once it
        // runs again. Wait for the group to own its slots, as any node sees the map.
        ctx.log(
          `sharded-register: adding group ${group}: ${(error as Error).message}; waiting for it`,
        );
        const done = await waitForGroup(shards, group);
        rebalances.push(
          done ? { group, ok: true } : { group, ok: false, error: (error as Error).message },
        );
        if (!done) return;
      }
    }
  };
  const run = async (ctx: WorkloadContext): Promise<void> => {
    const moving = options.store === "sharded" ? rebalance(ctx) : Promise.resolve();
    const client = ctx.cluster.client.client(service, CALL);
    await clientLoops(ctx, async (_c, _i, process) => {
      const generation = Math.floor(issued++ / (keys * opsPerKey));
      const key = `r${generation}-${Math.floor(ctx.random() * keys)}`;
      const dice = ctx.random();
      const value = Math.floor(ctx.random() * values);
      let outcome: OpOutcome;
      if (dice < 0.5) {
        ({ outcome } = await tracker.op(
          ctx.metrics,
          process,
          "read",
          null,
          () => client.read({ key }),
          { key, output: (r) => r.value, classify: () => "fail" },
        ));
      } else if (dice < 0.8) {
        ({ outcome } = await tracker.op(
          ctx.metrics,
          process,
          "write",
          value,
          () => client.write({ key, value }),
          { key, output: () => value, classify: (e) => (definitelyNot(e) ? "fail" : "info") },
        ));
      } else {
        const from = Math.floor(ctx.random() * values);
        ({ outcome } = await tracker.op(
          ctx.metrics,
          process,
          "cas",
          [from, value],
          () => client.cas({ key, from, to: value }),
          {
            key,
            output: () => [from, value],
            // A failed CAS tells the checker the compare ran and did not hold; a CAS that
            // never ran (refused before it was sent) observed nothing, so it is
            // taken out of the history, and any other error is info, which claims nothing.
            classify: (e) =>
              isStrataError(e, "FAILED_PRECONDITION") && e.details["reason"] === "mismatch"
                ? "refused"
                : "info",
            notSent: refusedBeforeSending,
          },
        ));
      }
      return outcome;
    });
    await moving;
  };
  return {
    name,
    setup: () => Promise.resolve(),
    run,
    finish: () => Promise.resolve(),
    check(): WorkloadVerdict {
      const verdict = checkLinearizable(tracker.recorder.events(), {
        timeoutMs: options.checkTimeoutMs ?? 60_000,
      });
      // The sharded store must also have taken both groups: a history without a move proves less.
      const moved = options.store !== "sharded" || rebalances.filter((r) => r.ok).length === 2;
      const valid = verdict.result === "linearizable" && moved;
      return {
        workload: name,
        valid,
        summary:
          verdict.result === "linearizable"
            ? `linearizable: ${tracker.counts.ok + tracker.counts.info} operations, ${keys} keys at a time${
                options.store === "sharded"
                  ? `; shard groups added: ${rebalances.map((r) => (!r.ok ? `${r.group} FAILED` : r.keys === undefined ? `${r.group} (finished by a node that was paused)` : `${r.group} (${r.keys} keys)`)).join(", ")}`
                  : ""
              }`
            : verdict.result === "not-linearizable"
              ? `NOT linearizable (key ${String(verdict.counterexample?.key ?? "?")})`
              : `inconclusive: the checker gave up (${verdict.reason}) after ${verdict.ms.toFixed(0)} ms`,
        operations: { ...tracker.counts },
        errors: { ...tracker.errors },
        errorExamples: { ...tracker.errorExamples },
        details: options.store === "sharded" ? { ...verdict, rebalances } : verdict,
      };
    },
    history: () => tracker.recorder.events(),
    historyJson: () => tracker.recorder.toJson(),
  };
}

import { isStrataError } from "@strata/core";
import { checkLinearizable } from "@strata/verify";
import type { OpOutcome } from "../metrics.js";
import { pgRegisterService, registerService } from "../services.js";
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

/** Options of {@link registerWorkload}. */
export interface RegisterWorkloadOptions {
  /** The store: the NATS JetStream KV (default) or PostgreSQL (`pg-register`). */
  readonly store?: "nats" | "postgres";
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
  const name = options.store === "postgres" ? "pg-register" : "register";
  const service = options.store === "postgres" ? pgRegisterService : registerService;
  const tracker = createTracker(name);
  const keys = options.keys ?? 5;
  const values = options.values ?? 5;
  const opsPerKey = options.opsPerKey ?? 80;
  let issued = 0;
  const run = async (ctx: WorkloadContext): Promise<void> => {
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
      const valid = verdict.result === "linearizable";
      return {
        workload: name,
        valid,
        summary:
          verdict.result === "linearizable"
            ? `linearizable: ${tracker.counts.ok + tracker.counts.info} operations, ${keys} keys at a time`
            : verdict.result === "not-linearizable"
              ? `NOT linearizable (key ${String(verdict.counterexample?.key ?? "?")})`
              : `inconclusive: the checker gave up (${verdict.reason}) after ${verdict.ms.toFixed(0)} ms`,
        operations: { ...tracker.counts },
        errors: { ...tracker.errors },
        details: verdict,
      };
    },
    history: () => tracker.recorder.events(),
    historyJson: () => tracker.recorder.toJson(),
  };
}

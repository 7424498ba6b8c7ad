import { checkCounter } from "@strata/verify";
import { crdtService } from "../services.js";
import {
  CALL,
  clientLoops,
  convergeAndRead,
  createTracker,
  definitelyNot,
  type Workload,
  type WorkloadContext,
  type WorkloadVerdict,
} from "./workload.js";

/** Options of {@link counterWorkload}. */
export interface CounterWorkloadOptions {
  /** How long the replicas may take to converge after the heal (ms); default 30 000. */
  readonly convergeMs?: number;
}

/**
 * A grow-only counter replicated between the nodes (delta-state CRDT): each client increments
 * through one node by 1 to 5. After the heal every node syncs and is read. Checked: all replicas
 * equal, and the value between the sum of acknowledged increments and that plus the unknown ones.
 */
export function counterWorkload(options: CounterWorkloadOptions = {}): Workload {
  const tracker = createTracker("counter");
  let replicas: string[] = [];
  const run = async (ctx: WorkloadContext): Promise<void> => {
    const client = ctx.cluster.client.client(crdtService, CALL);
    const nodes = ctx.cluster.nodes.map((n) => n.name);
    await clientLoops(ctx, async (c, _i, process) => {
      const by = 1 + Math.floor(ctx.random() * 5);
      const { outcome } = await tracker.op(
        ctx.metrics,
        process,
        "increment",
        by,
        () => client.increment({ by }, { node: nodes[c % nodes.length] as string }),
        { output: () => by, classify: (e) => (definitelyNot(e) ? "fail" : "info") },
      );
      return outcome;
    });
  };
  return {
    name: "counter",
    setup: () => Promise.resolve(),
    run,
    async finish(ctx) {
      const client = ctx.cluster.client.client(crdtService, CALL);
      replicas = await convergeAndRead(ctx, tracker, {
        sync: (node) => client.sync({}, { node }),
        read: (node) => client.count({}, { node }),
        value: (r) => r.value,
        convergeMs: options.convergeMs ?? 30_000,
      });
    },
    check(): WorkloadVerdict {
      const verdict = checkCounter(tracker.recorder.events(), { replicas });
      return {
        workload: "counter",
        valid: verdict.valid,
        summary: verdict.valid
          ? `${replicas.length} replicas converged on a value every acknowledged increment accounts for`
          : `${verdict.anomalies.length} anomalies: ${[...new Set(verdict.anomalies.map((a) => a.type))].join(", ")}`,
        operations: { ...tracker.counts },
        errors: { ...tracker.errors },
        errorExamples: { ...tracker.errorExamples },
        details: verdict,
      };
    },
    history: () => tracker.recorder.events(),
    historyJson: () => tracker.recorder.toJson(),
  };
}

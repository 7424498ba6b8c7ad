import { checkCrdtSet } from "@strata/verify";
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

/** Options of {@link crdtWorkload}. */
export interface CrdtWorkloadOptions {
  /** How long the replicas may take to converge after the heal (ms); default 30 000. */
  readonly convergeMs?: number;
}

/**
 * An add-wins set replicated between the nodes (delta-state CRDT): each client adds unique
 * elements through one node, so replicas diverge under partitions. After the heal every node is
 * asked to sync and read. Checked: all replicas equal, holding every acknowledged add and
 * nothing never added.
 */
export function crdtWorkload(options: CrdtWorkloadOptions = {}): Workload {
  const tracker = createTracker("crdt");
  let replicas: string[] = [];
  const run = async (ctx: WorkloadContext): Promise<void> => {
    const client = ctx.cluster.client.client(crdtService, CALL);
    const nodes = ctx.cluster.nodes.map((n) => n.name);
    await clientLoops(ctx, async (c, i, process) => {
      const element = c * 1_000_000 + i;
      const { outcome } = await tracker.op(
        ctx.metrics,
        process,
        "add",
        element,
        () => client.add({ element }, { node: nodes[c % nodes.length] as string }),
        { output: () => element, classify: (e) => (definitelyNot(e) ? "fail" : "info") },
      );
      return outcome;
    });
  };
  return {
    name: "crdt",
    setup: () => Promise.resolve(),
    run,
    async finish(ctx) {
      const client = ctx.cluster.client.client(crdtService, CALL);
      replicas = await convergeAndRead(ctx, tracker, {
        sync: (node) => client.sync({}, { node }),
        read: (node) => client.read({}, { node }),
        value: (r) => r.elements,
        convergeMs: options.convergeMs ?? 30_000,
      });
    },
    check(): WorkloadVerdict {
      const verdict = checkCrdtSet(tracker.recorder.events(), { replicas });
      return {
        workload: "crdt",
        valid: verdict.valid,
        summary: verdict.valid
          ? `${replicas.length} replicas converged on the same set, holding every acknowledged add`
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

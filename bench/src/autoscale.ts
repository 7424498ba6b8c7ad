import { cpus } from "node:os";
import {
  BUILTIN_TRACES,
  DEFAULT_MODEL,
  compare,
  loadTrace,
  type PolicyConfigInput,
  type ServiceModel,
} from "@strata/autoscale";

/** One policy on one trace. */
export interface AutoscaleRow {
  readonly trace: string;
  readonly policy: string;
  readonly violationMinutes: number;
  readonly replicaMinutes: number;
  readonly maxReplicas: number;
  readonly latePercent: number;
  readonly changes: number;
}

/** Predictive against target tracking (HPA-style) on one trace, or on all together. */
export interface AutoscaleComparison {
  readonly trace: string;
  readonly hpaViolationMinutes: number;
  readonly predictiveViolationMinutes: number;
  /** Predictive replica-minutes over target tracking's, minus one, in percent. */
  readonly extraReplicaMinutesPercent: number;
  /** Strictly fewer violation minutes at no more than 10% more replica-minutes. */
  readonly met: boolean;
}

/** What `npm run bench -- autoscale` writes to bench/results/autoscale.json. */
export interface AutoscaleResults {
  readonly when: string;
  readonly machine: { readonly cpus: number; readonly node: string };
  readonly model: ServiceModel;
  readonly policies: readonly PolicyConfigInput[];
  readonly rows: readonly AutoscaleRow[];
  readonly comparisons: readonly AutoscaleComparison[];
  readonly targets: ReadonlyArray<{
    readonly name: string;
    readonly value: number;
    readonly target: string;
    readonly met: boolean;
  }>;
}

const MAX_EXTRA_PERCENT = 10;

function comparison(trace: string, rows: readonly AutoscaleRow[]): AutoscaleComparison {
  const sum = (policy: string, key: "violationMinutes" | "replicaMinutes"): number =>
    rows.filter((r) => r.policy === policy).reduce((total, r) => total + r[key], 0);
  const hpaViolationMinutes = sum("target-tracking", "violationMinutes");
  const predictiveViolationMinutes = sum("predictive", "violationMinutes");
  const extra =
    (sum("predictive", "replicaMinutes") / sum("target-tracking", "replicaMinutes") - 1) * 100;
  const extraReplicaMinutesPercent = Math.round(extra * 10) / 10;
  return {
    trace,
    hpaViolationMinutes,
    predictiveViolationMinutes,
    extraReplicaMinutesPercent,
    met:
      predictiveViolationMinutes < hpaViolationMinutes &&
      extraReplicaMinutesPercent <= MAX_EXTRA_PERCENT,
  };
}

/**
 * The three policies (threshold rules as the baseline, target tracking as the HPA does it,
 * predictive) replayed over the three shipped traces under one service model, with every policy
 * at its defaults apart from the replica bound and the predictive policy's start-up time (the
 * model's). A simulation: no processes are started. `quick` replays only the first two days.
 */
export async function runAutoscaleBench(options: {
  readonly quick: boolean;
  readonly log: (line: string) => void;
}): Promise<AutoscaleResults> {
  const model = DEFAULT_MODEL;
  const bounds = { minReplicas: 1, maxReplicas: 500 };
  const policies: PolicyConfigInput[] = [
    { type: "threshold", bounds },
    { type: "target-tracking", bounds },
    { type: "predictive", bounds, startupMs: model.startupMs },
  ];
  const rows: AutoscaleRow[] = [];
  const comparisons: AutoscaleComparison[] = [];
  for (const name of BUILTIN_TRACES) {
    const full = await loadTrace(name);
    const trace = options.quick ? full.filter((p) => p.second <= 2 * 86_400) : full;
    const started = performance.now();
    const results = compare({ trace, model, policies });
    const traceRows = results.map((r): AutoscaleRow => ({
      trace: name,
      policy: r.policy,
      violationMinutes: r.violationMinutes,
      replicaMinutes: r.replicaMinutes,
      maxReplicas: r.maxReplicas,
      latePercent: Math.round(r.lateFraction * 100_000) / 1000,
      changes: r.decisions.length,
    }));
    rows.push(...traceRows);
    comparisons.push(comparison(name, traceRows));
    options.log(
      `${name}: ${traceRows.map((r) => `${r.policy} ${r.violationMinutes} min / ${r.replicaMinutes} replica-min`).join(", ")} (${Math.round(performance.now() - started)} ms)`,
    );
  }
  const all = comparison("all traces", rows);
  comparisons.push(all);
  return {
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version },
    model,
    policies,
    rows,
    comparisons,
    targets: [
      {
        name: "predictive vs target tracking, all traces: SLO-violation minutes",
        value: all.predictiveViolationMinutes,
        target: `< ${all.hpaViolationMinutes}`,
        met: all.predictiveViolationMinutes < all.hpaViolationMinutes,
      },
      {
        name: "predictive vs target tracking, all traces: extra replica-minutes",
        value: all.extraReplicaMinutesPercent,
        target: `<= ${MAX_EXTRA_PERCENT}%`,
        met: all.extraReplicaMinutesPercent <= MAX_EXTRA_PERCENT,
      },
    ],
  };
}

export function renderAutoscaleMarkdown(r: AutoscaleResults, command: string): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  const m = r.model;
  return [
    `Simulated ${r.when.slice(0, 10)} with \`${command}\` (Node ${r.machine.node}; a deterministic replay, so the machine does not matter): the shipped traces (\`packages/autoscale/traces\`, made by \`scripts/make-traces.mjs\`) replayed one second at a time through a service whose replicas serve ${m.capacityPerReplica} rps each at p99 ${m.sloMs} ms (M/M/1 per replica), start serving ${m.startupMs / 1000} s after they are asked for and cost from that moment, and queue for at most ${m.maxQueueMs / 1000} s. Each policy is asked every 15 s with its defaults (threshold: +2 above 0.80, −1 below 0.30, cooldowns 60 s out and 300 s in; target tracking: target 0.60, tolerance 0.1, 300 s scale-down stabilisation; predictive: the same plus Holt-Winters over one-minute buckets with a daily season and a 120 s local trend, looking ${m.startupMs / 1000} s ahead), bounded to 1..500 replicas. A minute violates the SLO when more than 1% of its requests were late or dropped.`,
    "",
    "| trace | policy | SLO-violation minutes | replica-minutes | max replicas | late or dropped % | changes |",
    "|---|---|---:|---:|---:|---:|---:|",
    ...r.rows.map(
      (row) =>
        `| ${row.trace} | ${row.policy} | ${row.violationMinutes} | ${n(row.replicaMinutes)} | ${row.maxReplicas} | ${row.latePercent} | ${row.changes} |`,
    ),
    "",
    "Predictive against target tracking (goal: fewer SLO-violation minutes at no more than 10% more replica-minutes):",
    "",
    "| trace | target tracking violation min | predictive violation min | extra replica-minutes | goal |",
    "|---|---:|---:|---:|---|",
    ...r.comparisons.map(
      (c) =>
        `| ${c.trace} | ${c.hpaViolationMinutes} | ${c.predictiveViolationMinutes} | ${c.extraReplicaMinutesPercent}% | ${c.met ? "met" : c.hpaViolationMinutes === 0 && c.predictiveViolationMinutes === 0 ? "tie (both 0)" : "MISSED"} |`,
    ),
    "",
    ...r.targets.map(
      (t) => `- ${t.met ? "met" : "MISSED"}: ${t.name}: ${t.value} (goal ${t.target})`,
    ),
  ].join("\n");
}

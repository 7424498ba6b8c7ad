import { mkdir, writeFile } from "node:fs/promises";
import { setMaxListeners } from "node:events";
import { join } from "node:path";
import { seededRandom } from "@strata/core";
import { startChaosCluster, type ChaosCluster } from "./cluster.js";
import type { Experiment } from "./experiment.js";
import type { Undo } from "./faults.js";
import { Metrics, type TimelinePoint, type WindowStats } from "./metrics.js";
import { renderHtmlReport } from "./report.js";
import { DEFAULT_WORKLOADS, type WorkloadName } from "./services.js";
import { bankWorkload } from "./workloads/bank.js";
import { counterWorkload } from "./workloads/counter.js";
import { crdtWorkload } from "./workloads/crdt.js";
import { registerWorkload } from "./workloads/register.js";
import { setWorkload } from "./workloads/set.js";
import {
  pauseFor,
  type Workload,
  type WorkloadContext,
  type WorkloadVerdict,
} from "./workloads/workload.js";

/** Options of {@link runExperiment}. */
export interface RunOptions {
  /** Folder for report.json, report.html, the histories and the nodes' logs; none written when absent. */
  readonly out?: string;
  /** Progress lines. */
  readonly log?: (line: string) => void;
  /** Seed of the workloads' and the nemesis' random choices; default 1. */
  readonly seed?: number;
  /** Multiplies the method's duration and step times (0.5: twice as fast); default 1. */
  readonly timeScale?: number;
  /** Stops the experiment early, with a rollback. */
  readonly signal?: AbortSignal;
}

/** One fault as it happened. */
export interface FaultRecord {
  readonly name: string;
  readonly detail: string;
  /** ms since the start of the run. */
  readonly start: number;
  end?: number;
  error?: string;
}

/** A hypothesis condition as judged. */
export interface HypothesisResult {
  readonly name: string;
  readonly holds: boolean;
  readonly stats: WindowStats;
}

/** Everything an experiment run produced. */
export interface ExperimentReport {
  readonly experiment: string;
  readonly description: string;
  readonly startedAt: string;
  readonly seed: number;
  readonly cluster: {
    readonly servers: readonly string[];
    readonly nodes: ReadonlyArray<{ readonly name: string; readonly region: string }>;
    readonly breakage?: string;
  };
  /** Phase boundaries, ms since the start. */
  readonly phases: {
    readonly methodStart: number;
    readonly methodEnd: number;
    readonly rollbackEnd: number;
    readonly recoveredAt?: number;
    readonly end: number;
  };
  readonly faults: readonly FaultRecord[];
  readonly hypothesis: {
    readonly before: readonly HypothesisResult[];
    readonly after: readonly HypothesisResult[];
  };
  readonly aborted?: { readonly reason: string; readonly at: number };
  readonly timeline: readonly TimelinePoint[];
  readonly verdicts: readonly WorkloadVerdict[];
  /**
   * `passed`: the steady state held before and came back after, and every checker found its
   * history valid. `anomaly`: a checker found a violation. `steady-state-not-met`: the system was
   * not in its steady state before the faults, so none was injected. `not-recovered`: the
   * steady state did not come back within the recovery time.
   */
  readonly outcome: "passed" | "anomaly" | "steady-state-not-met" | "not-recovered";
  readonly valid: boolean;
}

/** The workloads by name, with their default options. */
export function workloadByName(name: WorkloadName): Workload {
  switch (name) {
    case "register":
      return registerWorkload();
    case "bank":
      return bankWorkload();
    case "set":
      return setWorkload();
    case "crdt":
      return crdtWorkload();
    case "counter":
      return counterWorkload();
    case "pg-register":
      return registerWorkload({ store: "postgres" });
    case "sharded-register":
      return registerWorkload({ store: "sharded" });
  }
}

const judge = (
  experiment: Experiment,
  stats: (windowMs: number) => WindowStats,
): HypothesisResult[] =>
  experiment.hypothesis.map((h) => {
    const s = stats(h.windowMs ?? 3_000);
    return { name: h.name, holds: h.holds(s), stats: s };
  });

/** Undoes every fault still active, heals, and brings every process back. */
async function rollBack(
  cluster: ChaosCluster,
  active: Array<{ record: FaultRecord; undo: Undo }>,
  elapsed: () => number,
  log: (line: string) => void,
): Promise<void> {
  for (const { record, undo } of active.reverse()) {
    try {
      await undo();
    } catch (error) {
      record.error = `rollback failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    record.end = elapsed();
    log(`  rollback: undid ${record.detail}`);
  }
  active.length = 0;
  cluster.heal();
  for (const p of [...cluster.servers, ...cluster.nodes]) {
    p.resume();
    if (!p.running) {
      log(`  rollback: ${p.name} is down; starting it`);
      await p.restart();
    }
  }
  for (const node of cluster.nodes) node.skew(0);
  for (const link of cluster.links()) link.clear();
}

/**
 * Runs an experiment: starts the cluster, runs the workloads, checks the steady state, injects
 * the method's faults on schedule (watching the abort conditions), rolls every fault back,
 * waits for the steady state to return, takes the final reads and runs the checkers. Always
 * stops the cluster. Writes report.json, report.html and one history file per workload to
 * `options.out` when given.
 */
export async function runExperiment(
  experiment: Experiment,
  options: RunOptions = {},
): Promise<ExperimentReport> {
  const log = options.log ?? (() => undefined);
  const seed = options.seed ?? 1;
  const random = seededRandom(seed);
  const scale = options.timeScale ?? 1;
  const names = experiment.workloads ?? DEFAULT_WORKLOADS;
  const workloads = names.map((n) => workloadByName(n));
  const startedAt = new Date().toISOString();
  log(`experiment ${experiment.name}: ${experiment.description}`);
  const cluster = await startChaosCluster({
    ...experiment.cluster,
    workloads: names,
    log: (line) => log(`  ${line}`),
    ...(options.out === undefined ? {} : { logsTo: options.out }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const metrics = new Metrics();
  const faults: FaultRecord[] = [];
  const active: Array<{ record: FaultRecord; undo: Undo; until?: number }> = [];
  const undoing: Array<Promise<void>> = [];
  let aborted: { reason: string; at: number } | undefined;
  let before: HypothesisResult[] = [];
  let after: HypothesisResult[] = [];
  let methodStart = 0;
  let methodEnd = 0;
  let rollbackEnd = 0;
  let recoveredAt: number | undefined;
  const verdicts: WorkloadVerdict[] = [];
  const failures: string[] = [];
  try {
    const generating = new AbortController();
    // Every client loop waits on this signal.
    setMaxListeners(1_000, generating.signal);
    const ctx = (signal: AbortSignal): WorkloadContext => ({
      cluster,
      metrics,
      signal,
      random,
      clients: experiment.clients ?? 4,
      log: (line) => log(`  ${line}`),
    });
    for (const w of workloads) await w.setup(ctx(generating.signal));
    log(`  workloads: ${names.join(", ")} (${experiment.clients ?? 4} clients each)`);
    const running = workloads.map((w) =>
      w.run(ctx(generating.signal)).catch((error: unknown) => {
        failures.push(`${w.name}: ${error instanceof Error ? error.message : String(error)}`);
      }),
    );
    await pauseFor(experiment.warmupMs ?? 3_000, options.signal);
    before = judge(experiment, (ms) => metrics.window(ms));
    for (const h of before)
      log(
        `  steady state before: ${h.holds ? "holds" : "DOES NOT HOLD"}: ${h.name} (${describe(h.stats)})`,
      );
    methodStart = metrics.elapsed();
    if (before.every((h) => h.holds)) {
      const steps = [...experiment.method].sort((a, b) => a.at - b.at);
      let next = 0;
      let lastProgress = 0;
      const duration = experiment.durationMs * scale;
      while (metrics.elapsed() - methodStart < duration) {
        if (options.signal?.aborted === true) {
          aborted = { reason: "stopped by the user", at: metrics.elapsed() };
          break;
        }
        const t = metrics.elapsed() - methodStart;
        for (; next < steps.length && (steps[next]?.at ?? 0) * scale <= t; next++) {
          const step = steps[next];
          if (step === undefined) continue;
          const record: FaultRecord = {
            name: step.fault.name,
            detail: step.fault.name,
            start: metrics.elapsed(),
          };
          faults.push(record);
          try {
            const { undo, detail } = await step.fault.inject(cluster, random);
            (record as { detail: string }).detail = detail;
            // A fault lasts its `for` from when it took effect, however long injecting took.
            active.push({
              record,
              undo,
              ...(step.for === undefined ? {} : { until: metrics.elapsed() + step.for * scale }),
            });
            log(`  t=${(t / 1_000).toFixed(1)}s fault: ${detail}`);
          } catch (error) {
            record.end = metrics.elapsed();
            record.error = error instanceof Error ? error.message : String(error);
            log(
              `  t=${(t / 1_000).toFixed(1)}s fault ${step.fault.name} could not be injected: ${record.error}`,
            );
          }
        }
        for (const entry of [...active]) {
          if (entry.until !== undefined && metrics.elapsed() >= entry.until) {
            active.splice(active.indexOf(entry), 1);
            entry.record.end = metrics.elapsed();
            log(
              `  t=${((metrics.elapsed() - methodStart) / 1_000).toFixed(1)}s undoing: ${entry.record.detail}`,
            );
            // Undoing can be slow (a restart): the schedule goes on meanwhile.
            undoing.push(
              entry.undo().catch((error: unknown) => {
                entry.record.error = `undo failed: ${error instanceof Error ? error.message : String(error)}`;
              }),
            );
          }
        }
        for (const condition of experiment.abort ?? []) {
          const stats = metrics.window(condition.windowMs ?? 5_000);
          if (condition.when(stats)) {
            aborted = { reason: condition.name, at: metrics.elapsed() };
            break;
          }
        }
        if (aborted !== undefined) {
          log(`  ABORT: ${aborted.reason}`);
          break;
        }
        if (metrics.elapsed() - lastProgress >= 1_000) {
          lastProgress = metrics.elapsed();
          log(
            `  t=${(t / 1_000).toFixed(1)}s ${describe(metrics.window(1_000))}${active.length > 0 ? ` | active: ${active.map((a) => a.record.detail).join("; ")}` : ""}`,
          );
        }
        await pauseFor(100);
      }
    } else {
      log("  the steady state does not hold: no fault injected");
    }
    methodEnd = metrics.elapsed();
    await Promise.all(undoing);
    await rollBack(cluster, active, () => metrics.elapsed(), log);
    await experiment.rollback?.(cluster);
    rollbackEnd = metrics.elapsed();
    // The steady state must come back, judged on what happened after the rollback.
    const recoveryMs = experiment.recoveryMs ?? 15_000;
    const since = (ms: number): WindowStats =>
      metrics.between(Math.max(rollbackEnd, metrics.elapsed() - ms), metrics.elapsed());
    for (;;) {
      await pauseFor(500);
      after = judge(experiment, since);
      const enough = metrics.elapsed() - rollbackEnd >= Math.min(3_000, recoveryMs);
      if (enough && after.every((h) => h.holds)) {
        recoveredAt = metrics.elapsed();
        break;
      }
      if (metrics.elapsed() - rollbackEnd >= recoveryMs) break;
    }
    for (const h of after)
      log(
        `  steady state after: ${h.holds ? "holds" : "DOES NOT HOLD"}: ${h.name} (${describe(h.stats)})`,
      );
    generating.abort();
    await Promise.all(running);
    log("  final reads");
    for (const w of workloads) await w.finish(ctx(generating.signal));
    log("  checking");
    for (const w of workloads) {
      const verdict = w.check();
      verdicts.push(verdict);
      log(`  ${verdict.valid ? "ok  " : "FAIL"} ${w.name}: ${verdict.summary}`);
      const errors = Object.entries(verdict.errors).sort((a, b) => b[1] - a[1]);
      if (errors.length > 0) {
        log(
          `       errors seen: ${errors
            .slice(0, 5)
            .map(([code, n]) => `${code} ${n}`)
            .join(", ")}`,
        );
        for (const [code] of errors.slice(0, 3)) {
          const example = verdict.errorExamples[code];
          if (example !== undefined) log(`         e.g. ${code}: ${example}`);
        }
      }
    }
    for (const failure of failures) log(`  workload error: ${failure}`);
  } finally {
    await rollBack(
      cluster,
      active,
      () => metrics.elapsed(),
      () => undefined,
    ).catch(() => undefined);
    await cluster.stop();
  }
  const anomaly = verdicts.some((v) => !v.valid) || failures.length > 0;
  const outcome: ExperimentReport["outcome"] = anomaly
    ? "anomaly"
    : !before.every((h) => h.holds)
      ? "steady-state-not-met"
      : recoveredAt === undefined
        ? "not-recovered"
        : "passed";
  const report: ExperimentReport = {
    experiment: experiment.name,
    description: experiment.description,
    startedAt,
    seed,
    cluster: {
      servers: cluster.servers.map((s) => s.name),
      nodes: cluster.nodes.map((n) => ({ name: n.name, region: n.region })),
      ...(experiment.cluster?.breakage === undefined
        ? {}
        : { breakage: experiment.cluster.breakage }),
    },
    phases: {
      methodStart,
      methodEnd,
      rollbackEnd,
      ...(recoveredAt === undefined ? {} : { recoveredAt }),
      end: metrics.elapsed(),
    },
    faults,
    hypothesis: { before, after },
    ...(aborted === undefined ? {} : { aborted }),
    timeline: metrics.timeline(),
    verdicts,
    outcome,
    valid: outcome === "passed",
  };
  log(`  outcome: ${outcome}`);
  if (options.out !== undefined) {
    await mkdir(options.out, { recursive: true });
    await writeFile(join(options.out, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(join(options.out, "report.html"), renderHtmlReport(report));
    for (const w of workloads) {
      await writeFile(join(options.out, `history-${w.name}.json`), w.historyJson());
    }
    log(`  report: ${join(options.out, "report.html")}`);
  }
  return report;
}

function describe(s: WindowStats): string {
  return `${s.throughput.toFixed(0)} ops/s, ${(s.errorRate * 100).toFixed(1)}% errors, p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms`;
}

import type { ChaosCluster, ChaosClusterOptions } from "./cluster.js";
import type { Fault } from "./faults.js";
import type { WindowStats } from "./metrics.js";
import { WORKLOADS, type WorkloadName } from "./services.js";

/** One step of the method: a fault injected at `at` ms, undone after `for` ms (or at the end). */
export interface Step {
  readonly at: number;
  readonly fault: Fault;
  readonly for?: number;
}

/**
 * The steady state: what "working" means, as a condition on the workloads' throughput, errors
 * and latency over a trailing window. It must hold before the faults (else the experiment is
 * not run) and again after the rollback (within `recoveryMs`).
 */
export interface Hypothesis {
  readonly name: string;
  /** The window it is judged on (ms); default 3 000. */
  readonly windowMs?: number;
  holds(stats: WindowStats): boolean;
}

/** Stops the method early (and rolls back) when it holds, for example a total outage. */
export interface AbortCondition {
  readonly name: string;
  readonly windowMs?: number;
  when(stats: WindowStats): boolean;
}

/** An experiment as code: the system, the steady state, the method, the rollback, the checks. */
export interface Experiment {
  readonly name: string;
  readonly description: string;
  /** The cluster under test (processes, regions, a deliberate bug). */
  readonly cluster?: Omit<ChaosClusterOptions, "workloads" | "log" | "signal">;
  /** Workloads run during the whole experiment; each ends in a checker verdict. Default all. */
  readonly workloads?: readonly WorkloadName[];
  /** Concurrent clients per workload; default 4. */
  readonly clients?: number;
  /** Traffic before the first fault, to establish the steady state (ms); default 3 000. */
  readonly warmupMs?: number;
  /** How long the method runs (ms). */
  readonly durationMs: number;
  /** How long the steady state may take to come back after the rollback (ms); default 15 000. */
  readonly recoveryMs?: number;
  readonly hypothesis: readonly Hypothesis[];
  readonly method: readonly Step[];
  readonly abort?: readonly AbortCondition[];
  /** Runs after every active fault was undone (which the runner always does). */
  readonly rollback?: (cluster: ChaosCluster) => Promise<void>;
}

/** The usual steady state: the system serves, with few errors. */
export function serves(
  options: { minThroughput?: number; maxErrorRate?: number } = {},
): Hypothesis {
  const min = options.minThroughput ?? 5;
  const max = options.maxErrorRate ?? 0.05;
  return {
    name: `at least ${min} ops/s with under ${Math.round(max * 100)}% errors`,
    holds: (s) => s.throughput >= min && s.errorRate <= max,
  };
}

/** Aborts when nothing at all has succeeded for `windowMs`. */
export function totalOutage(windowMs = 10_000): AbortCondition {
  return {
    name: `no operation succeeded for ${windowMs / 1_000} s`,
    windowMs,
    when: (s) => s.ops > 0 && s.errorRate === 1,
  };
}

/** Checks an experiment's shape and fills in its defaults; throws a clear error when wrong. */
export function defineExperiment(experiment: Experiment): Experiment {
  const problems: string[] = [];
  if (typeof experiment.name !== "string" || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(experiment.name)) {
    problems.push("name must match ^[a-z0-9][a-z0-9-]{0,62}$");
  }
  if (!(Number.isFinite(experiment.durationMs) && experiment.durationMs > 0)) {
    problems.push("durationMs must be a positive number");
  }
  const method: unknown = experiment.method;
  if (!Array.isArray(method)) problems.push("method must be a list of steps");
  else {
    experiment.method.forEach((step: Step, i) => {
      if (!(Number.isFinite(step.at) && step.at >= 0 && step.at <= experiment.durationMs)) {
        problems.push(`method[${i}].at must be within 0..durationMs`);
      }
      if (step.for !== undefined && !(Number.isFinite(step.for) && step.for > 0)) {
        problems.push(`method[${i}].for must be a positive number`);
      }
      if (typeof step.fault?.inject !== "function")
        problems.push(`method[${i}].fault is not a fault`);
    });
  }
  if (!Array.isArray(experiment.hypothesis) || experiment.hypothesis.length === 0) {
    problems.push("hypothesis must name at least one condition");
  }
  for (const w of experiment.workloads ?? []) {
    if (!(WORKLOADS as readonly string[]).includes(w)) {
      problems.push(`unknown workload "${String(w)}" (known: ${WORKLOADS.join(", ")})`);
    }
  }
  if (
    experiment.clients !== undefined &&
    !(Number.isInteger(experiment.clients) && experiment.clients > 0 && experiment.clients <= 64)
  ) {
    problems.push("clients must be an integer in 1..64");
  }
  if (problems.length > 0) {
    throw new TypeError(`experiment ${String(experiment.name)}: ${problems.join("; ")}`);
  }
  return experiment;
}

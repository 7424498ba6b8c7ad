import { StrataError, manualClock, type Clock } from "@strata/core";
import { createPolicy } from "../policies/create-policy.js";
import type { PolicyConfig, PolicyConfigInput } from "../policies/config.js";
import type { ScalingDecision, ScalingPolicy, ServiceSignals } from "../types.js";
import { DEFAULT_MODEL, ServiceState, type SecondStats, type ServiceModel } from "./model.js";
import type { Trace } from "./trace.js";

/** A policy to replay: a configuration, or a factory given the simulation's clock. */
export type SimulatedPolicy = PolicyConfigInput | PolicyConfig | ((clock: Clock) => ScalingPolicy);

/** Options of {@link simulate}. */
export interface SimulateOptions {
  readonly trace: Trace;
  readonly policy: SimulatedPolicy;
  /** The service; {@link DEFAULT_MODEL} when absent. */
  readonly model?: ServiceModel;
  /** How often the policy is asked (ms); default 15 000, as the HPA's sync period. */
  readonly evaluationPeriodMs?: number;
  /** Replicas at the start, all ready; default what the first load needs at utilisation 0.6. */
  readonly initialReplicas?: number;
  /** Service name in the signals; default "simulated". */
  readonly service?: string;
}

/** What a replay measured. */
export interface SimulationResult {
  /** The policy's name (`threshold`, `target-tracking`, `predictive`, or the factory's). */
  readonly policy: string;
  /** Whole minutes simulated. */
  readonly minutes: number;
  /** Minutes whose p99 latency exceeded the SLO (more than 1% of requests late or dropped). */
  readonly violationMinutes: number;
  /** Replicas paid for (ready or starting) integrated over time, in replica-minutes. */
  readonly replicaMinutes: number;
  readonly maxReplicas: number;
  /** Fraction of all requests late or dropped. */
  readonly lateFraction: number;
  readonly droppedRequests: number;
  /** The decisions that asked for a change, in order. */
  readonly decisions: readonly ScalingDecision[];
  /** All decisions taken, holds included. */
  readonly evaluations: number;
}

/** The fraction of a minute's requests that may be late before its p99 breaks the SLO. */
const LATE_BUDGET = 0.01;

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", message);
}

function checkModel(model: ServiceModel): void {
  const problems: string[] = [];
  const positive = (name: keyof ServiceModel, max: number, zero = false): void => {
    const value = model[name];
    if (!Number.isFinite(value) || (zero ? value < 0 : value <= 0) || value > max) {
      problems.push(
        `model.${name} must be ${zero ? "from 0" : "above 0 and"} up to ${max}, got ${value}`,
      );
    }
  };
  positive("capacityPerReplica", 1e9);
  positive("startupMs", 86_400_000, true);
  positive("sloMs", 3_600_000);
  positive("maxQueueMs", 3_600_000, true);
  if (problems.length > 0) throw invalid(`invalid service model: ${problems.join("; ")}`);
}

/**
 * Replays a load trace through a model of the service, one second at a time, asking the policy
 * for a decision every evaluation period and carrying out every decision that changes the
 * count. The signals the policy sees are averages over the period just ended, with `replicas`
 * the count asked for (ready or starting, as an actuator reports it) and utilisation and CPU
 * the means over the replicas serving. Deterministic: the same inputs
 * give the same result.
 *
 * @example
 * const trace = await loadTrace("diurnal");
 * const result = simulate({ trace, policy: { type: "target-tracking" } });
 * result.violationMinutes; result.replicaMinutes;
 */
export function simulate(options: SimulateOptions): SimulationResult {
  const { trace } = options;
  const model = options.model ?? DEFAULT_MODEL;
  checkModel(model);
  const period = options.evaluationPeriodMs ?? 15_000;
  if (!Number.isInteger(period) || period < 1_000 || period > 3_600_000 || period % 1_000 !== 0) {
    throw invalid(`evaluationPeriodMs must be whole seconds from 1000 to 3600000, got ${period}`);
  }
  const first = trace[0];
  const last = trace.at(-1);
  if (first === undefined || last === undefined || trace.length < 2) {
    throw invalid("a trace needs at least two points");
  }
  const start = Math.floor(first.second);
  const end = Math.ceil(last.second);
  const clock = manualClock({ start: start * 1000, seed: 1 });
  const policy =
    typeof options.policy === "function"
      ? options.policy(clock)
      : createPolicy(options.policy, { clock });
  const initial =
    options.initialReplicas ?? Math.max(1, Math.ceil(first.rps / (model.capacityPerReplica * 0.6)));
  const state = new ServiceState(model, initial);
  const service = options.service ?? "simulated";
  const periodSeconds = period / 1000;

  const decisions: ScalingDecision[] = [];
  let evaluations = 0;
  let replicaSeconds = 0;
  let maxReplicas = state.requested;
  let totalArrived = 0;
  let totalLate = 0;
  let totalDropped = 0;
  let violationMinutes = 0;
  let minute = { arrived: 0, late: 0, seconds: 0 };
  let window: SecondStats[] = [];
  let point = 0;

  const closeMinute = (): void => {
    if (minute.arrived > 0 && minute.late / minute.arrived > LATE_BUDGET) violationMinutes++;
    minute = { arrived: 0, late: 0, seconds: 0 };
  };

  for (let second = start; second < end; second++) {
    while (point + 1 < trace.length && (trace[point + 1]?.second ?? Infinity) <= second) point++;
    const a = trace[point] ?? first;
    const b = trace[point + 1] ?? a;
    const arrivals =
      b.second > a.second
        ? a.rps + ((b.rps - a.rps) * (second - a.second)) / (b.second - a.second)
        : a.rps;
    const stats = state.step(second * 1000, Math.max(0, arrivals));
    replicaSeconds += stats.requested;
    totalArrived += stats.arrived;
    totalLate += stats.late;
    totalDropped += stats.dropped;
    minute.arrived += stats.arrived;
    minute.late += stats.late;
    if (++minute.seconds === 60) closeMinute();
    window.push(stats);
    clock.advance(1000);
    if (window.length === periodSeconds) {
      const decision = policy.decide(signalsOf(service, clock.now(), window, state.requested));
      evaluations++;
      if (decision.desired !== decision.current) {
        state.scale(decision.desired, clock.now());
        decisions.push(decision);
      }
      maxReplicas = Math.max(maxReplicas, state.requested);
      window = [];
    }
  }
  if (minute.seconds > 0) closeMinute();
  return {
    policy: policy.name,
    minutes: Math.floor((end - start) / 60),
    violationMinutes,
    replicaMinutes: Math.round(replicaSeconds / 60),
    maxReplicas,
    lateFraction: totalArrived === 0 ? 0 : totalLate / totalArrived,
    droppedRequests: Math.round(totalDropped),
    decisions,
    evaluations,
  };
}

function signalsOf(
  service: string,
  at: number,
  window: readonly SecondStats[],
  replicas: number,
): ServiceSignals {
  const n = window.length;
  let served = 0;
  let utilisation = 0;
  let cpu = 0;
  let p99 = 0;
  let arrived = 0;
  let late = 0;
  for (const s of window) {
    served += s.served;
    utilisation += s.utilisation;
    cpu += s.cpu;
    p99 = Math.max(p99, s.p99Ms);
    arrived += s.arrived;
    late += s.late;
  }
  const queued = window.at(-1)?.queued ?? 0;
  return {
    service,
    at,
    replicas,
    requestsPerSecond: served / n,
    utilisation: utilisation / n,
    cpu: cpu / n,
    eventLoopDelayMs: 0,
    backlog: Math.round(queued),
    lagMs: served > 0 ? (queued / (served / n)) * 1000 : 0,
    sloBurn: arrived > 0 ? late / arrived / LATE_BUDGET : 0,
    p99Ms: p99,
  };
}

/**
 * Replays one trace through several policies under the same model, for a side-by-side table.
 *
 * @example
 * compare({ trace, policies: [{ type: "threshold" }, { type: "target-tracking" }, { type: "predictive" }] });
 */
export function compare(
  options: Omit<SimulateOptions, "policy"> & { readonly policies: readonly SimulatedPolicy[] },
): SimulationResult[] {
  return options.policies.map((policy) => simulate({ ...options, policy }));
}

import type { ScalingDecision, ScalingPolicy, ServiceSignals } from "../types.js";
import {
  Pacing,
  Stabiliser,
  ceilTolerant,
  clampReplicas,
  f2,
  finish,
  readMetric,
  wakeReason,
  type PolicyOptions,
} from "./common.js";
import type { TargetTrackingConfig } from "./config.js";

/** The HPA's raw recommendation and the words for it. */
export function hpaRecommendation(
  signals: ServiceSignals,
  config: Pick<TargetTrackingConfig, "metric" | "targetUtilisation" | "tolerance">,
): { replicas: number; why: string } {
  const current = signals.replicas;
  const value = readMetric(signals, config.metric);
  const ratio = value / config.targetUtilisation;
  const shown = `${config.metric} ${f2(value)} against target ${f2(config.targetUtilisation)}`;
  if (Math.abs(ratio - 1) <= config.tolerance) {
    return {
      replicas: current,
      why: `${shown} is within the tolerance of ${f2(config.tolerance)}`,
    };
  }
  const replicas = ceilTolerant(current * ratio);
  return { replicas, why: `${shown}: ${current} × ${f2(ratio)} wants ${replicas}` };
}

/** The words for a recommendation the stabilisation windows changed; "" when they did not. */
export function stabilised(
  wanted: number,
  recommendation: number,
  config: Pick<TargetTrackingConfig, "scaleDownStabilisationMs" | "scaleUpStabilisationMs">,
): string {
  if (wanted > recommendation) {
    return `; the ${Math.round(config.scaleDownStabilisationMs / 1000)} s scale-down stabilisation window keeps ${wanted}`;
  }
  if (wanted < recommendation) {
    return `; the ${Math.round(config.scaleUpStabilisationMs / 1000)} s scale-up stabilisation window allows ${wanted}`;
  }
  return "";
}

/**
 * Target tracking with the Kubernetes HPA formula: `desired = ceil(current × metric / target)`,
 * no change while the ratio is within the tolerance, scale-downs to the highest recommendation of
 * the stabilisation window (default 300 s), scale-ups to the lowest of the up window (default 0).
 *
 * @example
 * const policy = createPolicy({ type: "target-tracking", targetUtilisation: 0.6 }, { clock });
 */
export function createTargetTrackingPolicy(
  config: TargetTrackingConfig,
  options: PolicyOptions,
): ScalingPolicy {
  const pacing = new Pacing(config.bounds);
  const stabiliser = new Stabiliser({
    downWindowMs: config.scaleDownStabilisationMs,
    upWindowMs: config.scaleUpStabilisationMs,
  });
  const name = "target-tracking";
  return {
    name,
    decide(signals: ServiceSignals): ScalingDecision {
      const now = options.clock.now();
      const common = { signals, policy: name, bounds: config.bounds, pacing, now };
      const wake = wakeReason(signals);
      if (wake !== undefined) return finish({ ...common, wanted: 1, why: wake });
      const { replicas, why } = hpaRecommendation(signals, config);
      const recommendation = clampReplicas(replicas, config.bounds);
      const wanted = stabiliser.stabilise(recommendation, signals.replicas, now);
      return finish({
        ...common,
        wanted,
        why: `${why}${stabilised(wanted, recommendation, config)}`,
      });
    },
  };
}

import type { ScalingDecision, ScalingPolicy, ServiceSignals } from "../types.js";
import {
  Pacing,
  clampReplicas,
  f2,
  finish,
  readMetric,
  wakeReason,
  type PolicyOptions,
} from "./common.js";
import type { ThresholdConfig } from "./config.js";

/**
 * Threshold rules: above `scaleOutAbove` add `scaleOutStep` replicas, below `scaleInBelow` remove
 * `scaleInStep`, each change followed by its cooldown. A scale-in that would push the metric of
 * the remaining replicas above `scaleOutAbove` is not made, so load between the thresholds can
 * never make the rules alternate.
 *
 * @example
 * const policy = createThresholdPolicy(parsePolicyConfig({ type: "threshold" }) as ThresholdConfig, { clock });
 */
export function createThresholdPolicy(
  config: ThresholdConfig,
  options: PolicyOptions,
): ScalingPolicy {
  const pacing = new Pacing(config.bounds);
  const name = "threshold";
  return {
    name,
    decide(signals: ServiceSignals): ScalingDecision {
      const now = options.clock.now();
      const current = signals.replicas;
      const common = { signals, policy: name, bounds: config.bounds, pacing, now };
      const wake = wakeReason(signals);
      if (wake !== undefined) {
        return finish({ ...common, wanted: config.scaleOutStep, why: wake });
      }
      const value = readMetric(signals, config.metric);
      const shown = `${config.metric} ${f2(value)}`;
      if (value > config.scaleOutAbove) {
        return finish({
          ...common,
          wanted: current + config.scaleOutStep,
          why: `${shown} is above ${f2(config.scaleOutAbove)}, add ${config.scaleOutStep}`,
        });
      }
      if (value < config.scaleInBelow && current > 0) {
        const target = clampReplicas(current - config.scaleInStep, config.bounds);
        const projected = target === 0 ? 0 : (value * current) / target;
        if (target < current && projected > config.scaleOutAbove) {
          return finish({
            ...common,
            wanted: current,
            why: `${shown} is below ${f2(config.scaleInBelow)}, but ${target} replicas would run at ${f2(projected)}, above ${f2(config.scaleOutAbove)}`,
          });
        }
        return finish({
          ...common,
          wanted: current - config.scaleInStep,
          why: `${shown} is below ${f2(config.scaleInBelow)}, remove ${config.scaleInStep}`,
        });
      }
      return finish({
        ...common,
        wanted: current,
        why: `${shown} is within ${f2(config.scaleInBelow)}..${f2(config.scaleOutAbove)}`,
      });
    },
  };
}

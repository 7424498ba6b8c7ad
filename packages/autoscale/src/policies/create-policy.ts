import type { ScalingPolicy } from "../types.js";
import type { PolicyOptions } from "./common.js";
import { parsePolicyConfig, type PolicyConfig, type PolicyConfigInput } from "./config.js";
import { createPredictivePolicy } from "./predictive.js";
import { createTargetTrackingPolicy } from "./target-tracking.js";
import { createThresholdPolicy } from "./threshold.js";

/**
 * Validates `config` (see {@link parsePolicyConfig}) and builds the policy it describes; an
 * invalid configuration throws `INVALID_ARGUMENT` listing every problem, before any decision.
 *
 * @example
 * const policy = createPolicy({ type: "threshold" }, { clock: systemClock() });
 * policy.decide(signals).reason; // "utilisation 0.91 is above 0.80, add 2: 4 → 6."
 */
export function createPolicy(
  config: PolicyConfigInput | PolicyConfig,
  options: PolicyOptions,
): ScalingPolicy {
  const parsed = parsePolicyConfig(config);
  switch (parsed.type) {
    case "threshold":
      return createThresholdPolicy(parsed, options);
    case "target-tracking":
      return createTargetTrackingPolicy(parsed, options);
    case "predictive":
      return createPredictivePolicy(parsed, options);
  }
}

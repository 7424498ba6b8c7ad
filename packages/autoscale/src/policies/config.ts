import { StrataError } from "@strata/core";
import type { ScalingBounds } from "../types.js";

/** The signal a reactive rule reads: in-flight utilisation or CPU, both 0..1 per replica. */
export type ScalingMetric = "utilisation" | "cpu";

/**
 * Threshold rules: add `scaleOutStep` replicas when the metric is above `scaleOutAbove`, remove
 * `scaleInStep` when it is below `scaleInBelow`.
 */
export interface ThresholdConfig {
  readonly type: "threshold";
  readonly bounds: ScalingBounds;
  readonly metric: ScalingMetric;
  readonly scaleOutAbove: number;
  readonly scaleInBelow: number;
  readonly scaleOutStep: number;
  readonly scaleInStep: number;
}

/**
 * Target tracking, as the Kubernetes HPA computes it: `desired = ceil(current × metric / target)`,
 * held while `|metric / target − 1| <= tolerance`, scale-downs stabilised over a window.
 */
export interface TargetTrackingConfig {
  readonly type: "target-tracking";
  readonly bounds: ScalingBounds;
  readonly metric: ScalingMetric;
  readonly targetUtilisation: number;
  readonly tolerance: number;
  /** Scale down only to the highest recommendation of this window (ms). */
  readonly scaleDownStabilisationMs: number;
  /** Scale up only to the lowest recommendation of this window (ms); 0 reacts at once. */
  readonly scaleUpStabilisationMs: number;
}

/**
 * Predictive: a Holt-Winters (additive) forecast of requests per second, fitted online, asked for
 * the peak load between now and now + start-up time; never below what target tracking wants.
 */
export interface PredictiveConfig extends Omit<TargetTrackingConfig, "type"> {
  readonly type: "predictive";
  /** Length of one season (ms), e.g. a day. */
  readonly seasonLengthMs: number;
  /** Width of one forecast step (ms); observations within it are averaged. */
  readonly bucketMs: number;
  /** Start-up time of a new replica (ms), as measured: how far ahead the forecast looks. */
  readonly startupMs: number;
  /** Window of the local trend (ms) extrapolated over the start-up time; 0 turns it off. */
  readonly trendWindowMs: number;
  /** Holt-Winters smoothing of the level, trend and season, each in [0, 1]. */
  readonly alpha: number;
  readonly beta: number;
  readonly gamma: number;
  /**
   * Requests per second one replica serves at utilisation 1; when absent it is estimated from
   * the signals (requests per second / (replicas × utilisation)).
   */
  readonly capacityPerReplica?: number;
}

/** A validated policy configuration, every default filled in. */
export type PolicyConfig = ThresholdConfig | TargetTrackingConfig | PredictiveConfig;

/** The policy types {@link createPolicy} knows. */
export const POLICY_TYPES = ["threshold", "target-tracking", "predictive"] as const;

/** What a person writes: the `type` and any settings to change; the rest take their defaults. */
export type PolicyConfigInput =
  | PartialConfig<ThresholdConfig>
  | PartialConfig<TargetTrackingConfig>
  | PartialConfig<PredictiveConfig>;

type PartialConfig<C extends { type: string; bounds: ScalingBounds }> = {
  readonly type: C["type"];
} & {
  readonly [K in Exclude<keyof C, "type" | "bounds">]?: C[K];
} & { readonly bounds?: Partial<ScalingBounds> };

/** Largest replica count accepted; beyond it a typo is likelier than a real fleet. */
const MAX_REPLICAS = 100_000;
/** Longest duration accepted in any `...Ms` setting: 30 days. */
const MAX_DURATION_MS = 30 * 86_400_000;
/** Most forecast steps per season: bounds the predictive policy's memory. */
const MAX_SEASON_BUCKETS = 100_000;

const DEFAULT_BOUNDS = { minReplicas: 1, maxReplicas: 100 } as const;

/** Cooldowns per policy type: threshold rules rely on them; HPA-style ones on stabilisation. */
const DEFAULT_COOLDOWNS: Record<
  PolicyConfig["type"],
  Pick<ScalingBounds, "scaleOutCooldownMs" | "scaleInCooldownMs">
> = {
  threshold: { scaleOutCooldownMs: 60_000, scaleInCooldownMs: 300_000 },
  "target-tracking": { scaleOutCooldownMs: 0, scaleInCooldownMs: 0 },
  predictive: { scaleOutCooldownMs: 0, scaleInCooldownMs: 0 },
};

const TARGET_DEFAULTS = {
  metric: "utilisation",
  targetUtilisation: 0.6,
  tolerance: 0.1,
  scaleDownStabilisationMs: 300_000,
  scaleUpStabilisationMs: 0,
} as const;

class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path} ${message}`);
  }
}

function show(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "number" || typeof value === "boolean" || value === null)
    return String(value);
  if (value === undefined) return "nothing";
  return Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : typeof value;
}

interface NumberRule {
  readonly min: number;
  readonly max: number;
  /** Whether the bounds themselves are allowed. */
  readonly minOpen?: boolean;
  readonly maxOpen?: boolean;
  readonly integer?: boolean;
}

function range(rule: NumberRule): string {
  if (rule.integer === true) return `an integer from ${rule.min} to ${rule.max}`;
  return `in ${rule.minOpen === true ? "(" : "["}${rule.min}, ${rule.max}${rule.maxOpen === true ? ")" : "]"}`;
}

/** Reads one numeric setting: the default when absent, NaN (reported) when invalid. */
function num(
  source: Record<string, unknown>,
  key: string,
  path: string,
  rule: NumberRule,
  fallback: number,
  problems: Problems,
): number {
  const value = source[key];
  if (value === undefined) return fallback;
  const ok =
    typeof value === "number" &&
    Number.isFinite(value) &&
    (rule.integer !== true || Number.isInteger(value)) &&
    (rule.minOpen === true ? value > rule.min : value >= rule.min) &&
    (rule.maxOpen === true ? value < rule.max : value <= rule.max);
  if (!ok) {
    problems.add(`${path}.${key}`, `must be ${range(rule)}, got ${show(value)}`);
    return Number.NaN;
  }
  return value;
}

function record(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function unknownKeys(
  source: Record<string, unknown>,
  known: readonly string[],
  path: string,
  problems: Problems,
): void {
  for (const key of Object.keys(source)) {
    if (!known.includes(key)) {
      problems.add(`${path}.${key}`, `is not a setting (known: ${known.join(", ")})`);
    }
  }
}

const BOUND_KEYS = ["minReplicas", "maxReplicas", "scaleOutCooldownMs", "scaleInCooldownMs"];
const DURATION: NumberRule = { min: 0, max: MAX_DURATION_MS };

function parseBounds(
  value: unknown,
  type: PolicyConfig["type"],
  path: string,
  problems: Problems,
): ScalingBounds {
  const defaults = { ...DEFAULT_BOUNDS, ...DEFAULT_COOLDOWNS[type] };
  if (value === undefined) return defaults;
  if (!record(value)) {
    problems.add(path, `must be an object with ${BOUND_KEYS.join(", ")}, got ${show(value)}`);
    return defaults;
  }
  unknownKeys(value, BOUND_KEYS, path, problems);
  const minReplicas = num(
    value,
    "minReplicas",
    path,
    { min: 0, max: MAX_REPLICAS, integer: true },
    defaults.minReplicas,
    problems,
  );
  const maxReplicas = num(
    value,
    "maxReplicas",
    path,
    { min: 1, max: MAX_REPLICAS, integer: true },
    defaults.maxReplicas,
    problems,
  );
  if (minReplicas > maxReplicas) {
    problems.add(
      `${path}.minReplicas`,
      `must not exceed ${path}.maxReplicas (${maxReplicas}), got ${minReplicas}`,
    );
  }
  return {
    minReplicas,
    maxReplicas,
    scaleOutCooldownMs: num(
      value,
      "scaleOutCooldownMs",
      path,
      DURATION,
      defaults.scaleOutCooldownMs,
      problems,
    ),
    scaleInCooldownMs: num(
      value,
      "scaleInCooldownMs",
      path,
      DURATION,
      defaults.scaleInCooldownMs,
      problems,
    ),
  };
}

function parseMetric(
  source: Record<string, unknown>,
  path: string,
  problems: Problems,
): ScalingMetric {
  const value = source["metric"];
  if (value === undefined) return "utilisation";
  if (value === "utilisation" || value === "cpu") return value;
  problems.add(`${path}.metric`, `must be "utilisation" or "cpu", got ${show(value)}`);
  return "utilisation";
}

const TARGET_KEYS = [
  "metric",
  "targetUtilisation",
  "tolerance",
  "scaleDownStabilisationMs",
  "scaleUpStabilisationMs",
];

function parseTarget(
  source: Record<string, unknown>,
  path: string,
  problems: Problems,
): Omit<TargetTrackingConfig, "type" | "bounds"> {
  return {
    metric: parseMetric(source, path, problems),
    targetUtilisation: num(
      source,
      "targetUtilisation",
      path,
      { min: 0, max: 1, minOpen: true },
      TARGET_DEFAULTS.targetUtilisation,
      problems,
    ),
    tolerance: num(
      source,
      "tolerance",
      path,
      { min: 0, max: 1, maxOpen: true },
      TARGET_DEFAULTS.tolerance,
      problems,
    ),
    scaleDownStabilisationMs: num(
      source,
      "scaleDownStabilisationMs",
      path,
      DURATION,
      TARGET_DEFAULTS.scaleDownStabilisationMs,
      problems,
    ),
    scaleUpStabilisationMs: num(
      source,
      "scaleUpStabilisationMs",
      path,
      DURATION,
      TARGET_DEFAULTS.scaleUpStabilisationMs,
      problems,
    ),
  };
}

/**
 * Validates a policy configuration (parsed JSON or YAML, or an object literal), fills in the
 * defaults, and returns it; throws a `StrataError` `INVALID_ARGUMENT` naming every problem with
 * its path, so a misconfigured autoscaler stops at start-up rather than scaling wrongly.
 *
 * @example
 * parsePolicyConfig({ type: "target-tracking", targetUtilisation: 0.7, bounds: { maxReplicas: 12 } });
 * parsePolicyConfig({ type: "target-tracking", targetUtilisation: 1.5 });
 * // throws: policy.targetUtilisation must be in (0, 1], got 1.5
 */
export function parsePolicyConfig(input: unknown, path = "policy"): PolicyConfig {
  const problems = new Problems();
  const config = parseInto(input, path, problems);
  if (config === undefined || problems.list.length > 0) {
    const count = problems.list.length;
    throw new StrataError(
      "INVALID_ARGUMENT",
      `invalid scaling policy configuration (${count} problem${count === 1 ? "" : "s"}):\n  ${problems.list.join("\n  ")}`,
      { details: { problems: problems.list } },
    );
  }
  return config;
}

function parseInto(input: unknown, path: string, problems: Problems): PolicyConfig | undefined {
  if (!record(input)) {
    problems.add(
      path,
      `must be an object with a "type" (${POLICY_TYPES.join(", ")}), got ${show(input)}`,
    );
    return undefined;
  }
  const type = input["type"];
  switch (type) {
    case "threshold": {
      unknownKeys(
        input,
        [
          "type",
          "bounds",
          "metric",
          "scaleOutAbove",
          "scaleInBelow",
          "scaleOutStep",
          "scaleInStep",
        ],
        path,
        problems,
      );
      const scaleOutAbove = num(
        input,
        "scaleOutAbove",
        path,
        { min: 0, max: 1, minOpen: true },
        0.8,
        problems,
      );
      const scaleInBelow = num(
        input,
        "scaleInBelow",
        path,
        { min: 0, max: 1, maxOpen: true },
        0.3,
        problems,
      );
      if (scaleInBelow >= scaleOutAbove) {
        problems.add(
          `${path}.scaleInBelow`,
          `must be below ${path}.scaleOutAbove (${scaleOutAbove}), got ${scaleInBelow}`,
        );
      }
      return {
        type,
        bounds: parseBounds(input["bounds"], type, `${path}.bounds`, problems),
        metric: parseMetric(input, path, problems),
        scaleOutAbove,
        scaleInBelow,
        scaleOutStep: num(
          input,
          "scaleOutStep",
          path,
          { min: 1, max: MAX_REPLICAS, integer: true },
          2,
          problems,
        ),
        scaleInStep: num(
          input,
          "scaleInStep",
          path,
          { min: 1, max: MAX_REPLICAS, integer: true },
          1,
          problems,
        ),
      };
    }
    case "target-tracking": {
      unknownKeys(input, ["type", "bounds", ...TARGET_KEYS], path, problems);
      return {
        type,
        bounds: parseBounds(input["bounds"], type, `${path}.bounds`, problems),
        ...parseTarget(input, path, problems),
      };
    }
    case "predictive": {
      unknownKeys(
        input,
        [
          "type",
          "bounds",
          ...TARGET_KEYS,
          "seasonLengthMs",
          "bucketMs",
          "startupMs",
          "trendWindowMs",
          "alpha",
          "beta",
          "gamma",
          "capacityPerReplica",
        ],
        path,
        problems,
      );
      const bucketMs = num(
        input,
        "bucketMs",
        path,
        { min: 1_000, max: 86_400_000, integer: true },
        60_000,
        problems,
      );
      const seasonLengthMs = num(
        input,
        "seasonLengthMs",
        path,
        { min: 2_000, max: MAX_DURATION_MS, integer: true },
        86_400_000,
        problems,
      );
      if (Number.isFinite(bucketMs) && Number.isFinite(seasonLengthMs)) {
        const buckets = seasonLengthMs / bucketMs;
        if (!Number.isInteger(buckets) || buckets < 2 || buckets > MAX_SEASON_BUCKETS) {
          problems.add(
            `${path}.seasonLengthMs`,
            `must be a whole multiple of ${path}.bucketMs (${bucketMs}) from 2 to ${MAX_SEASON_BUCKETS} buckets, got ${seasonLengthMs}`,
          );
        }
      }
      const capacity = input["capacityPerReplica"];
      return {
        type,
        bounds: parseBounds(input["bounds"], type, `${path}.bounds`, problems),
        ...parseTarget(input, path, problems),
        seasonLengthMs,
        bucketMs,
        startupMs: num(input, "startupMs", path, DURATION, 60_000, problems),
        trendWindowMs: num(input, "trendWindowMs", path, DURATION, 120_000, problems),
        alpha: num(input, "alpha", path, { min: 0, max: 1, minOpen: true }, 0.3, problems),
        beta: num(input, "beta", path, { min: 0, max: 1 }, 0.01, problems),
        gamma: num(input, "gamma", path, { min: 0, max: 1 }, 0.3, problems),
        ...(capacity === undefined
          ? {}
          : {
              capacityPerReplica: num(
                input,
                "capacityPerReplica",
                path,
                { min: 0, max: 1e9, minOpen: true },
                0,
                problems,
              ),
            }),
      };
    }
    default:
      problems.add(
        `${path}.type`,
        `must be one of ${POLICY_TYPES.map((t) => `"${t}"`).join(", ")}, got ${show(type)}`,
      );
      return undefined;
  }
}

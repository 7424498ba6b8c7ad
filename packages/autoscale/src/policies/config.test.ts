import { isStrataError, manualClock } from "@strata/core";
import { describe, expect, it } from "vitest";
import { parsePolicyConfig } from "./config.js";
import { createPolicy } from "./create-policy.js";

function problems(input: unknown): string[] {
  try {
    parsePolicyConfig(input);
  } catch (error) {
    expect(isStrataError(error, "INVALID_ARGUMENT")).toBe(true);
    return (error as { details: { problems: string[] } }).details.problems;
  }
  throw new Error("expected the configuration to be rejected");
}

describe("parsePolicyConfig", () => {
  it("fills in the defaults: the seed's threshold rule", () => {
    expect(parsePolicyConfig({ type: "threshold" })).toEqual({
      type: "threshold",
      bounds: {
        minReplicas: 1,
        maxReplicas: 100,
        scaleOutCooldownMs: 60_000,
        scaleInCooldownMs: 300_000,
      },
      metric: "utilisation",
      scaleOutAbove: 0.8,
      scaleInBelow: 0.3,
      scaleOutStep: 2,
      scaleInStep: 1,
    });
  });

  it("fills in the HPA's defaults for target tracking and is idempotent", () => {
    const parsed = parsePolicyConfig({ type: "target-tracking", bounds: { maxReplicas: 12 } });
    expect(parsed).toMatchObject({
      targetUtilisation: 0.6,
      tolerance: 0.1,
      scaleDownStabilisationMs: 300_000,
      scaleUpStabilisationMs: 0,
      bounds: { minReplicas: 1, maxReplicas: 12 },
    });
    expect(parsePolicyConfig(parsed)).toEqual(parsed);
    const predictive = parsePolicyConfig({ type: "predictive", capacityPerReplica: 50 });
    expect(parsePolicyConfig(predictive)).toEqual(predictive);
  });

  it("names the path, the rule and the value", () => {
    expect(problems({ type: "target-tracking", targetUtilisation: 1.5 })).toEqual([
      "policy.targetUtilisation must be in (0, 1], got 1.5",
    ]);
  });

  it("lists every problem at once", () => {
    const list = problems({
      type: "threshold",
      scaleOutAbove: 0.2,
      scaleInBelow: 0.5,
      scaleOutStep: 1.5,
      bounds: { minReplicas: 10, maxReplicas: 3, scaleInCooldownMs: -1 },
      sacleInStep: 2,
    });
    expect(list).toEqual(
      expect.arrayContaining([
        "policy.scaleInBelow must be below policy.scaleOutAbove (0.2), got 0.5",
        "policy.scaleOutStep must be an integer from 1 to 100000, got 1.5",
        "policy.bounds.minReplicas must not exceed policy.bounds.maxReplicas (3), got 10",
        "policy.bounds.scaleInCooldownMs must be in [0, 2592000000], got -1",
        expect.stringMatching(/^policy\.sacleInStep is not a setting \(known: .*scaleInStep/),
      ]),
    );
    expect(list).toHaveLength(5);
  });

  it.each([
    [
      null,
      'policy must be an object with a "type" (threshold, target-tracking, predictive), got null',
    ],
    [
      [],
      'policy must be an object with a "type" (threshold, target-tracking, predictive), got an array',
    ],
    [{}, 'policy.type must be one of "threshold", "target-tracking", "predictive", got nothing'],
    [
      { type: "magic" },
      'policy.type must be one of "threshold", "target-tracking", "predictive", got "magic"',
    ],
    [
      { type: "threshold", metric: "memory" },
      'policy.metric must be "utilisation" or "cpu", got "memory"',
    ],
    [
      { type: "threshold", bounds: 5 },
      "policy.bounds must be an object with minReplicas, maxReplicas, scaleOutCooldownMs, scaleInCooldownMs, got 5",
    ],
    [
      { type: "target-tracking", tolerance: Number.NaN },
      "policy.tolerance must be in [0, 1), got NaN",
    ],
    [
      { type: "target-tracking", targetUtilisation: "0.5" },
      'policy.targetUtilisation must be in (0, 1], got "0.5"',
    ],
    [
      { type: "predictive", bucketMs: 60_000, seasonLengthMs: 90_000 },
      "policy.seasonLengthMs must be a whole multiple of policy.bucketMs (60000) from 2 to 100000 buckets, got 90000",
    ],
    [{ type: "predictive", alpha: 0 }, "policy.alpha must be in (0, 1], got 0"],
    [
      { type: "predictive", capacityPerReplica: -3 },
      "policy.capacityPerReplica must be in (0, 1000000000], got -3",
    ],
  ])("rejects %j", (input, message) => {
    expect(problems(input)).toEqual([message]);
  });

  it("says it all in the error message, so a start-up log shows it", () => {
    expect(() =>
      parsePolicyConfig({ type: "target-tracking", targetUtilisation: 0, tolerance: 2 }),
    ).toThrow(
      "invalid scaling policy configuration (2 problems):\n  policy.targetUtilisation must be in (0, 1], got 0\n  policy.tolerance must be in [0, 1), got 2",
    );
  });

  it("is checked when a policy is created", () => {
    const clock = manualClock();
    expect(() =>
      createPolicy({ type: "threshold", bounds: { maxReplicas: 0 } }, { clock }),
    ).toThrow("policy.bounds.maxReplicas must be an integer from 1 to 100000, got 0");
    expect(createPolicy({ type: "predictive" }, { clock }).name).toBe("predictive");
  });
});

import { manualClock, type ManualClock } from "@strata/core";
import { describe, expect, it } from "vitest";
import type { ScalingPolicy, ServiceSignals } from "../types.js";
import type { PolicyConfigInput } from "./config.js";
import { createPolicy } from "./create-policy.js";

function signals(over: Partial<ServiceSignals> & { replicas: number }): ServiceSignals {
  const utilisation = over.utilisation ?? 0.5;
  return {
    service: "orders",
    at: 0,
    requestsPerSecond: over.replicas * utilisation * 100,
    utilisation,
    cpu: utilisation,
    eventLoopDelayMs: 0,
    backlog: 0,
    lagMs: 0,
    sloBurn: 0,
    p99Ms: 10,
    ...over,
  };
}

function setup(config: PolicyConfigInput): { clock: ManualClock; policy: ScalingPolicy } {
  const clock = manualClock({ start: 0 });
  return { clock, policy: createPolicy(config, { clock }) };
}

/** Runs `steps` decisions 15 s apart, applying each, with utilisation from `load(replicas, i)`. */
function drive(
  setupResult: { clock: ManualClock; policy: ScalingPolicy },
  start: number,
  steps: number,
  utilisation: (replicas: number, i: number) => number,
): number[] {
  let replicas = start;
  const history: number[] = [];
  for (let i = 0; i < steps; i++) {
    setupResult.clock.advance(15_000);
    const decision = setupResult.policy.decide(
      signals({ replicas, utilisation: utilisation(replicas, i) }),
    );
    replicas = decision.desired;
    history.push(replicas);
  }
  return history;
}

/** Times the replica count changes direction (out then in, or in then out). */
function reversals(history: readonly number[]): number {
  let last = 0;
  let count = 0;
  for (let i = 1; i < history.length; i++) {
    const d = Math.sign((history[i] ?? 0) - (history[i - 1] ?? 0));
    if (d !== 0 && last !== 0 && d !== last) count++;
    if (d !== 0) last = d;
  }
  return count;
}

describe("threshold policy", () => {
  it("adds two replicas above 80% and explains why", () => {
    const { policy } = setup({ type: "threshold" });
    const d = policy.decide(signals({ replicas: 4, utilisation: 0.91 }));
    expect(d).toMatchObject({ current: 4, desired: 6, policy: "threshold", service: "orders" });
    expect(d.reason).toBe("utilisation 0.91 is above 0.80, add 2: 4 → 6.");
  });

  it("removes one replica below 30%", () => {
    const { policy } = setup({ type: "threshold" });
    const d = policy.decide(signals({ replicas: 4, utilisation: 0.1 }));
    expect(d.desired).toBe(3);
    expect(d.reason).toContain("below 0.30, remove 1");
  });

  it("holds between the thresholds", () => {
    const { policy } = setup({ type: "threshold" });
    const d = policy.decide(signals({ replicas: 4, utilisation: 0.5 }));
    expect(d.desired).toBe(4);
    expect(d.reason).toContain("holding at 4");
  });

  it("waits out the cooldown after a change", () => {
    const { clock, policy } = setup({
      type: "threshold",
      bounds: { scaleOutCooldownMs: 60_000, scaleInCooldownMs: 300_000 },
    });
    expect(policy.decide(signals({ replicas: 4, utilisation: 0.9 })).desired).toBe(6);
    clock.advance(30_000);
    const held = policy.decide(signals({ replicas: 6, utilisation: 0.95 }));
    expect(held.desired).toBe(6);
    expect(held.reason).toContain("scale-out cooldown has 30 s left");
    clock.advance(30_000);
    expect(policy.decide(signals({ replicas: 6, utilisation: 0.95 })).desired).toBe(8);
    clock.advance(60_000);
    expect(policy.decide(signals({ replicas: 8, utilisation: 0.1 })).desired).toBe(8);
    clock.advance(240_000);
    expect(policy.decide(signals({ replicas: 8, utilisation: 0.1 })).desired).toBe(7);
  });

  it("keeps the bounds, whatever the load and cooldowns", () => {
    const { policy } = setup({ type: "threshold", bounds: { minReplicas: 2, maxReplicas: 5 } });
    const capped = policy.decide(signals({ replicas: 4, utilisation: 0.99 }));
    expect(capped.desired).toBe(5);
    const atMax = policy.decide(signals({ replicas: 5, utilisation: 0.99 }));
    expect(atMax.desired).toBe(5);
    expect(atMax.reason).toContain("capped at the maximum of 5");
    expect(policy.decide(signals({ replicas: 2, utilisation: 0 })).desired).toBe(2);
    expect(policy.decide(signals({ replicas: 9, utilisation: 0.5 })).desired).toBe(5);
    expect(policy.decide(signals({ replicas: 1, utilisation: 0.5 })).desired).toBe(2);
  });

  it("does not scale in when the remaining replicas would cross the upper threshold", () => {
    const { policy } = setup({ type: "threshold", scaleInBelow: 0.45, scaleOutAbove: 0.8 });
    const d = policy.decide(signals({ replicas: 2, utilisation: 0.44 }));
    expect(d.desired).toBe(2);
    expect(d.reason).toContain("1 replicas would run at 0.88");
  });

  it("does not flap under a load that oscillates around the band", () => {
    // Total load fixed at 2.2 replicas' worth, plus a swing: per-replica utilisation follows.
    const history = drive(setup({ type: "threshold" }), 2, 400, (n, i) =>
      Math.min(1, (220 + (i % 2 === 0 ? 60 : -60)) / (n * 100)),
    );
    expect(reversals(history)).toBeLessThanOrEqual(1);
  });

  it("wakes a service at zero replicas when traffic arrives", () => {
    const { policy } = setup({ type: "threshold", bounds: { minReplicas: 0 } });
    const d = policy.decide(signals({ replicas: 0, utilisation: 0, requestsPerSecond: 5 }));
    expect(d.desired).toBe(2);
    expect(
      policy.decide(signals({ replicas: 0, utilisation: 0, requestsPerSecond: 0 })).desired,
    ).toBe(0);
  });
});

describe("target-tracking policy", () => {
  it("uses the HPA formula ceil(current × metric / target)", () => {
    const { policy } = setup({ type: "target-tracking", targetUtilisation: 0.5 });
    const d = policy.decide(signals({ replicas: 4, utilisation: 0.9 }));
    expect(d.desired).toBe(8);
    expect(d.reason).toBe("utilisation 0.90 against target 0.50: 4 × 1.80 wants 8: 4 → 8.");
  });

  it("reads CPU when configured to", () => {
    const { policy } = setup({ type: "target-tracking", metric: "cpu", targetUtilisation: 0.5 });
    expect(policy.decide(signals({ replicas: 4, utilisation: 0.1, cpu: 0.75 })).desired).toBe(6);
  });

  it("holds within the tolerance", () => {
    const { policy } = setup({ type: "target-tracking", targetUtilisation: 0.6, tolerance: 0.1 });
    const d = policy.decide(signals({ replicas: 10, utilisation: 0.65 }));
    expect(d.desired).toBe(10);
    expect(d.reason).toContain("within the tolerance of 0.10");
    expect(policy.decide(signals({ replicas: 10, utilisation: 0.67 })).desired).toBe(12);
  });

  it("scales down only to the highest recommendation of the stabilisation window", () => {
    const { clock, policy } = setup({ type: "target-tracking", targetUtilisation: 0.5 });
    expect(policy.decide(signals({ replicas: 10, utilisation: 0.5 })).desired).toBe(10);
    clock.advance(60_000);
    const held = policy.decide(signals({ replicas: 10, utilisation: 0.1 }));
    expect(held.desired).toBe(10);
    expect(held.reason).toContain("300 s scale-down stabilisation window keeps 10");
    clock.advance(239_999);
    expect(policy.decide(signals({ replicas: 10, utilisation: 0.1 })).desired).toBe(10);
    clock.advance(1);
    expect(policy.decide(signals({ replicas: 10, utilisation: 0.1 })).desired).toBe(2);
  });

  it("scales up at once by default", () => {
    const { clock, policy } = setup({ type: "target-tracking", targetUtilisation: 0.5 });
    policy.decide(signals({ replicas: 2, utilisation: 0.1 }));
    clock.advance(15_000);
    expect(policy.decide(signals({ replicas: 2, utilisation: 1 })).desired).toBe(4);
  });

  it("keeps the bounds", () => {
    const { clock, policy } = setup({
      type: "target-tracking",
      bounds: { minReplicas: 3, maxReplicas: 6 },
      scaleDownStabilisationMs: 0,
    });
    expect(policy.decide(signals({ replicas: 4, utilisation: 1 })).desired).toBe(6);
    clock.advance(15_000);
    expect(policy.decide(signals({ replicas: 4, utilisation: 0.01 })).desired).toBe(3);
  });

  it("honours cooldowns on top of the window", () => {
    const { clock, policy } = setup({
      type: "target-tracking",
      targetUtilisation: 0.5,
      bounds: { scaleOutCooldownMs: 60_000 },
    });
    expect(policy.decide(signals({ replicas: 2, utilisation: 1 })).desired).toBe(4);
    clock.advance(15_000);
    expect(policy.decide(signals({ replicas: 4, utilisation: 1 })).desired).toBe(4);
    clock.advance(45_000);
    expect(policy.decide(signals({ replicas: 4, utilisation: 1 })).desired).toBe(8);
  });

  it("does not flap under oscillating load", () => {
    const history = drive(
      setup({ type: "target-tracking", targetUtilisation: 0.6 }),
      5,
      400,
      (n, i) => Math.min(1, (i % 4 < 2 ? 500 : 150) / (n * 100)),
    );
    expect(reversals(history)).toBe(0);
  });
});

describe("predictive policy", () => {
  const day = 96; // a short "season" of 96 fifteen-second steps keeps the test fast
  const config = {
    type: "predictive",
    seasonLengthMs: day * 15_000,
    bucketMs: 15_000,
    startupMs: 120_000,
    capacityPerReplica: 100,
    targetUtilisation: 0.5,
    trendWindowMs: 0,
  } as const;
  // Quiet, then a step to 8x for a quarter of the season.
  const load = (i: number): number => (i % day >= 48 && i % day < 72 ? 800 : 100);

  /** Replays `seasons` seasons; new replicas serve 8 steps (120 s) after they are asked for. */
  function run(policyConfig: PolicyConfigInput, seasons: number): { before: number[] } {
    const s = setup(policyConfig);
    let ready = 2;
    let requested = 2;
    const starting: number[] = [];
    const seen: number[] = [];
    for (let i = 0; i < seasons * day; i++) {
      s.clock.advance(15_000);
      while (starting.length > 0 && (starting[0] ?? Infinity) <= i) {
        starting.shift();
        ready++;
      }
      const rps = load(i);
      const utilisation = Math.min(1, rps / (ready * 100));
      const d = s.policy.decide(
        signals({
          replicas: requested,
          utilisation,
          requestsPerSecond: Math.min(rps, ready * 100),
        }),
      );
      if (d.desired !== d.current) {
        while (requested < d.desired) {
          starting.push(i + 8);
          requested++;
        }
        while (requested > d.desired) {
          if (starting.length > 0) starting.pop();
          else ready--;
          requested--;
        }
      }
      seen.push(requested);
    }
    const lastSeason = (seasons - 1) * day;
    return { before: seen.slice(lastSeason + 36, lastSeason + 48) };
  }

  it("scales ahead of a rise it has seen in earlier seasons", () => {
    const { before } = run(config, 8);
    // The plateau needs 16 (800 rps at 0.5 of 100 rps per replica). The model learns from what
    // was served, which saturated replicas cap, so it approaches the plateau over seasons; it
    // asks for most of it before the rise, where target tracking cannot see it coming.
    expect(Math.max(...before)).toBeGreaterThanOrEqual(10);
    const reactive = run({ type: "target-tracking", targetUtilisation: 0.5 }, 8);
    expect(Math.max(...reactive.before)).toBe(2);
  });

  it("never asks for fewer replicas than target tracking would", () => {
    const { clock, policy } = setup(config);
    const d = policy.decide(signals({ replicas: 4, utilisation: 0.9 }));
    expect(d.desired).toBeGreaterThanOrEqual(8);
    clock.advance(15_000);
    expect(policy.decide(signals({ replicas: 8, utilisation: 1 })).desired).toBeGreaterThanOrEqual(
      16,
    );
  });

  it("extrapolates a local rise by the start-up time", () => {
    const { clock, policy } = setup({ ...config, trendWindowMs: 60_000 });
    let d;
    for (const rps of [100, 150, 200, 250, 300]) {
      clock.advance(15_000);
      d = policy.decide(signals({ replicas: 10, utilisation: rps / 1000, requestsPerSecond: rps }));
    }
    // 300 rps rising 200 rps a minute: about 700 rps once new replicas serve, 14 at 0.5.
    expect(d?.desired).toBeGreaterThanOrEqual(14);
    expect(d?.reason).toContain("trend forecast");
  });

  it("keeps the scale-down stabilisation window", () => {
    const { clock, policy } = setup(config);
    expect(policy.decide(signals({ replicas: 10, utilisation: 0.5 })).desired).toBe(10);
    clock.advance(60_000);
    expect(policy.decide(signals({ replicas: 10, utilisation: 0.05 })).desired).toBe(10);
  });
});

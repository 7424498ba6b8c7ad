import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PolicyConfigInput } from "../policies/config.js";
import { DEFAULT_MODEL, ServiceState } from "./model.js";
import { compare, simulate } from "./simulate.js";
import type { Trace } from "./trace.js";

const minutes = (n: number, rps: (minute: number) => number): Trace =>
  Array.from({ length: n + 1 }, (_, m) => ({ second: m * 60, rps: rps(m) }));

const fixed = (replicas: number) =>
  ({
    type: "threshold",
    bounds: { minReplicas: replicas, maxReplicas: replicas },
  }) as const;

describe("ServiceState", () => {
  it("meets the SLO exactly up to capacity per replica", () => {
    const state = new ServiceState(DEFAULT_MODEL, 2);
    const at = state.step(0, 2 * DEFAULT_MODEL.capacityPerReplica);
    expect(at.late / at.arrived).toBeCloseTo(0.01, 6);
    expect(at.p99Ms).toBeCloseTo(DEFAULT_MODEL.sloMs, 6);
    const below = state.step(1000, 1.8 * DEFAULT_MODEL.capacityPerReplica);
    expect(below.late / below.arrived).toBeLessThan(0.01);
  });

  it("serves new replicas only after the start-up delay, but counts them at once", () => {
    const state = new ServiceState({ ...DEFAULT_MODEL, startupMs: 5_000 }, 1);
    state.scale(3, 0);
    expect(state.requested).toBe(3);
    expect(state.step(4_000, 10).ready).toBe(1);
    expect(state.step(5_000, 10).ready).toBe(3);
    state.scale(1, 6_000);
    expect(state.requested).toBe(1);
  });

  it("queues beyond the service rate and drops what would wait too long", () => {
    const state = new ServiceState({ ...DEFAULT_MODEL, maxQueueMs: 100 }, 1);
    const first = state.step(0, 1_000);
    expect(first.queued).toBeGreaterThan(0);
    expect(first.dropped).toBeGreaterThan(0);
    expect(first.late).toBe(first.arrived);
  });
});

describe("simulate", () => {
  it("counts violation minutes, replica-minutes and decisions", () => {
    // Ten quiet minutes, ten at 5x, ten quiet again.
    const trace = minutes(30, (m) => (m >= 10 && m < 20 ? 1000 : 200));
    const [threshold, target] = compare({
      trace,
      policies: [{ type: "threshold" }, { type: "target-tracking" }],
    });
    expect(threshold?.minutes).toBe(30);
    expect(threshold?.violationMinutes).toBeGreaterThan(0);
    expect(target?.decisions.length).toBeGreaterThan(0);
    expect(target?.decisions[0]?.reason).toMatch(/utilisation .* against target 0\.60/);
    expect(target?.maxReplicas).toBeGreaterThanOrEqual(10);
    expect(target?.replicaMinutes).toBeGreaterThan(30 * 4);
  });

  it("with enough fixed replicas, never violates", () => {
    const result = simulate({
      trace: minutes(60, () => 900),
      policy: fixed(10),
      initialReplicas: 10,
    });
    expect(result.violationMinutes).toBe(0);
    expect(result.replicaMinutes).toBe(600);
    expect(result.decisions).toHaveLength(0);
  });

  it("is deterministic", () => {
    const trace = minutes(120, (m) => 300 + 200 * Math.sin(m / 7));
    const a = simulate({ trace, policy: { type: "predictive", seasonLengthMs: 1_200_000 } });
    const b = simulate({ trace, policy: { type: "predictive", seasonLengthMs: 1_200_000 } });
    expect(a).toEqual(b);
  });

  it("rejects an unusable model", () => {
    expect(() =>
      simulate({
        trace: minutes(2, () => 1),
        policy: { type: "threshold" },
        model: { ...DEFAULT_MODEL, capacityPerReplica: 0 },
      }),
    ).toThrow("model.capacityPerReplica must be above 0 and up to 1000000000, got 0");
  });

  const traces = fc
    .array(fc.integer({ min: 0, max: 3_000 }), { minLength: 3, maxLength: 40 })
    .map((rps) => rps.map((r, i) => ({ second: i * 60, rps: r })));

  it("more capacity per replica never adds violation minutes (fixed replicas)", () => {
    fc.assert(
      fc.property(
        traces,
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 10, max: 400 }),
        (trace, n, c) => {
          const run = (capacity: number) =>
            simulate({
              trace,
              policy: fixed(n),
              initialReplicas: n,
              model: { ...DEFAULT_MODEL, capacityPerReplica: capacity },
            }).violationMinutes;
          expect(run(c * 1.5)).toBeLessThanOrEqual(run(c));
        },
      ),
      { numRuns: 40 },
    );
  });

  it("more replicas never add violation minutes", () => {
    fc.assert(
      fc.property(traces, fc.integer({ min: 1, max: 30 }), (trace, n) => {
        const run = (replicas: number) =>
          simulate({ trace, policy: fixed(replicas), initialReplicas: replicas }).violationMinutes;
        expect(run(n + 3)).toBeLessThanOrEqual(run(n));
      }),
      { numRuns: 40 },
    );
  });

  it("every policy keeps its bounds throughout", () => {
    fc.assert(
      fc.property(
        traces,
        fc.constantFrom("threshold", "target-tracking", "predictive"),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 20 }),
        (trace, type, min, extra) => {
          const bounds = { minReplicas: min, maxReplicas: min + extra };
          const result = simulate({
            trace,
            policy: (type === "predictive"
              ? { type, bounds, seasonLengthMs: 600_000 }
              : { type, bounds }) as PolicyConfigInput,
            initialReplicas: min,
          });
          for (const d of result.decisions) {
            expect(d.desired).toBeGreaterThanOrEqual(min);
            expect(d.desired).toBeLessThanOrEqual(min + extra);
          }
          expect(result.maxReplicas).toBeLessThanOrEqual(min + extra);
          expect(result.violationMinutes).toBeLessThanOrEqual(result.minutes);
          expect(result.replicaMinutes).toBeGreaterThanOrEqual(min * result.minutes);
        },
      ),
      { numRuns: 60 },
    );
  });
});

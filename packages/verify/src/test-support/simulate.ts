import * as fc from "fast-check";
import type { HistoryEvent } from "../history.js";

/** One operation a simulated client will issue, with the randomness that decides its fate. */
export interface PlannedOp {
  readonly f: "read" | "write" | "cas";
  readonly key: number;
  /** write: the value; cas: the new value. */
  readonly value: number;
  /** cas: the expected value (often one written before, so that some succeed). */
  readonly expected: number;
  /** How long the call takes, and the pause before the client's next call. */
  readonly duration: number;
  readonly gap: number;
  /** Where inside its interval the operation takes effect, as a fraction. */
  readonly at: number;
  /** The client never learns the outcome (`info`); `applies` says whether it took effect. */
  readonly crash: boolean;
  readonly applies: boolean;
  /**
   * A read or write that came back `fail` without taking effect (the store refused it). A `cas`
   * fails only when its compare does not match.
   */
  readonly refused: boolean;
}

export interface SimulationOptions {
  readonly clients: number;
  /** Registers; operations pick one. */
  readonly keys: number;
  /** Written values are drawn from 0..values-1: few values make the search work harder. */
  readonly values: number;
}

/**
 * Runs clients against one correct, sequential store of registers: every operation takes effect
 * at an instant inside its own interval, in the order of those instants, so the history is
 * linearizable by construction. Intervals of different clients overlap freely. A crashed
 * operation never returns (`info`), took effect or not, perhaps much later; the client carries
 * on under a new process id, as a Jepsen client does.
 */
export function simulate(
  plans: readonly (readonly PlannedOp[])[],
  options: SimulationOptions,
): HistoryEvent[] {
  interface Timed {
    readonly process: number;
    readonly plan: PlannedOp;
    readonly call: number;
    readonly ret: number;
    readonly effect: number;
  }
  const timed: Timed[] = [];
  plans.forEach((ops, client) => {
    let t = 0;
    let process = client;
    for (const plan of ops) {
      const call = t + plan.gap;
      const ret = call + plan.duration;
      // A crashed operation may take effect long after the client gave up on it.
      const effect = call + plan.at * (plan.crash ? plan.duration * 4 : plan.duration);
      timed.push({ process, plan, call, ret, effect });
      t = ret;
      if (plan.crash) process += options.clients;
    }
  });
  const registers = new Map<number, number | null>();
  const results = new Map<Timed, { type: "ok" | "fail"; value: unknown }>();
  for (const op of [...timed].sort((a, b) => a.effect - b.effect)) {
    const { plan } = op;
    if (refused(plan) || (plan.crash && !plan.applies)) continue;
    const current = registers.get(plan.key) ?? null;
    switch (plan.f) {
      case "read":
        results.set(op, { type: "ok", value: current });
        break;
      case "write":
        registers.set(plan.key, plan.value);
        results.set(op, { type: "ok", value: plan.value });
        break;
      case "cas": {
        const matches = current === plan.expected;
        if (matches) registers.set(plan.key, plan.value);
        results.set(op, { type: matches ? "ok" : "fail", value: [plan.expected, plan.value] });
        break;
      }
    }
  }
  const events: Array<HistoryEvent & { readonly time: number }> = [];
  for (const op of timed) {
    const { plan, process } = op;
    const key = `k${plan.key}`;
    const input =
      plan.f === "read" ? null : plan.f === "write" ? plan.value : [plan.expected, plan.value];
    events.push({ process, type: "invoke", f: plan.f, value: input, key, time: op.call });
    if (plan.crash) continue;
    const result = refused(plan) ? { type: "fail" as const, value: input } : results.get(op);
    if (result === undefined)
      throw new Error("simulation: an operation that applies has no result");
    events.push({ process, type: result.type, f: plan.f, value: result.value, key, time: op.ret });
  }
  return events.sort((a, b) => a.time - b.time);
}

const refused = (plan: PlannedOp): boolean => plan.refused && !plan.crash && plan.f !== "cas";

/** fast-check plans for `simulate`: per client, a list of operations. */
export function plansArbitrary(
  options: SimulationOptions & {
    readonly opsPerClient: { readonly min: number; readonly max: number };
    readonly crash: number;
  },
): fc.Arbitrary<PlannedOp[][]> {
  // Integers scaled down, not fc.double, whose values crowd at the ends of the range.
  const fraction = fc.integer({ min: 0, max: 1_000 }).map((x) => x / 1_000);
  const op: fc.Arbitrary<PlannedOp> = fc.record({
    f: fc.constantFrom<PlannedOp["f"]>("read", "read", "write", "cas"),
    key: fc.nat({ max: options.keys - 1 }),
    value: fc.nat({ max: options.values - 1 }),
    expected: fc.nat({ max: options.values - 1 }),
    duration: fc.integer({ min: 1, max: 200 }).map((x) => x / 10),
    gap: fc.integer({ min: 0, max: 50 }).map((x) => x / 10),
    at: fraction,
    crash: fraction.map((x) => x < options.crash),
    applies: fc.boolean(),
    refused: fraction.map((x) => x < 0.02),
  });
  return fc.array(
    fc.array(op, { minLength: options.opsPerClient.min, maxLength: options.opsPerClient.max }),
    {
      minLength: options.clients,
      maxLength: options.clients,
    },
  );
}

/** A fast seeded generator for large plans (fast-check is for the property tests). */
export function seededPlans(
  seed: number,
  options: SimulationOptions & { readonly opsPerClient: number; readonly crash: number },
): PlannedOp[][] {
  let s = seed >>> 0 || 1;
  const random = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  return Array.from({ length: options.clients }, () =>
    Array.from({ length: options.opsPerClient }, (): PlannedOp => {
      const r = random();
      return {
        f: r < 0.5 ? "read" : r < 0.8 ? "write" : "cas",
        key: Math.floor(random() * options.keys),
        value: Math.floor(random() * options.values),
        expected: Math.floor(random() * options.values),
        duration: 0.1 + random() * 20,
        gap: random() * 5,
        at: random(),
        crash: random() < options.crash,
        applies: random() < 0.5,
        refused: random() < 0.01,
      };
    }),
  );
}

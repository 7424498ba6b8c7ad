import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pairOperations, type HistoryEvent, type Outcome } from "./history.js";
import { checkLinearizable, type Verdict } from "./linearizable.js";
import { registerModel } from "./register-model.js";
import { asOfCut, history, linearizableByExhaustion, op } from "./test-support/histories.js";
import { plansArbitrary, seededPlans, simulate } from "./test-support/simulate.js";

const small = { clients: 6, keys: 2, values: 3, opsPerClient: { min: 0, max: 20 }, crash: 0.05 };

const counterexampleOf = (verdict: Verdict) => {
  if (verdict.result !== "not-linearizable")
    throw new Error(`expected a violation, got ${verdict.result}`);
  return verdict.counterexample;
};

describe("histories of a correct register, run concurrently", () => {
  it("are always accepted (overlapping calls, crashes as info, refused writes)", () => {
    fc.assert(
      fc.property(plansArbitrary(small), (plans) => {
        const verdict = checkLinearizable(simulate(plans, small), { timeoutMs: 10_000 });
        expect(verdict.result).toBe("linearizable");
      }),
      { numRuns: 300 },
    );
  });

  it("are rejected once one read result is corrupted, with that read in the counterexample", () => {
    fc.assert(
      fc.property(plansArbitrary(small), fc.nat(), (plans, pick) => {
        const events = simulate(plans, small);
        const reads = events.flatMap((e, i) => (e.type === "ok" && e.f === "read" ? [i] : []));
        fc.pre(reads.length > 0);
        const target = reads[pick % reads.length] as number;
        // A value no client ever writes: no order of the operations can explain it.
        const corrupted = events.map((e, i) => (i === target ? { ...e, value: -1 } : e));
        const c = counterexampleOf(checkLinearizable(corrupted, { timeoutMs: 10_000 }));
        expect(c.key).toBe(events[target]?.key);
        expect(c.operations.some((o) => o.f === "read" && o.output === -1)).toBe(true);
        // The counterexample stands on its own: the sub-history it reports is not linearizable.
        const witness = asOfCut(c.operations, c.cut);
        expect(checkLinearizable(witness, { timeoutMs: 10_000 }).result).toBe("not-linearizable");
      }),
      { numRuns: 200 },
    );
  });
});

// Small random histories, linearizable or not, of one register. Times are small integers so that
// many operations touch or overlap.
const smallOp = fc.record({
  f: fc.constantFrom("read", "write", "cas"),
  a: fc.constantFrom(null, 0, 1, 2),
  b: fc.constantFrom(0, 1, 2),
  outcome: fc.constantFrom<Outcome>("ok", "ok", "ok", "fail", "info"),
  call: fc.integer({ min: 0, max: 12 }),
  duration: fc.integer({ min: 0, max: 6 }),
});
type SmallOp = typeof smallOp extends fc.Arbitrary<infer T> ? T : never;
const toEvents = (ops: readonly SmallOp[]): HistoryEvent[] =>
  history(
    ...ops.map((o, p) => {
      const input = o.f === "read" ? null : o.f === "write" ? o.a : [o.a, o.b];
      const output = o.f === "read" ? o.a : input;
      return op(p, o.f, input, output, o.call, o.call + o.duration, { outcome: o.outcome });
    }),
  );

describe("the search agrees with the definition", () => {
  // The checker's verdict must be the one found by trying every order.
  it("on reads, writes, compare-and-sets, failures and unknown outcomes", () => {
    const seen = { linearizable: 0, "not-linearizable": 0, unknown: 0 };
    fc.assert(
      fc.property(
        fc.array(smallOp, { minLength: 1, maxLength: 7 }),
        fc.constantFrom(null, 0),
        (ops, initial) => {
          const operations = pairOperations(toEvents(ops));
          const model = registerModel(initial);
          const expected = linearizableByExhaustion(operations, model);
          const verdict = checkLinearizable(operations, model);
          expect(verdict.result).toBe(expected ? "linearizable" : "not-linearizable");
          seen[verdict.result]++;
          if (verdict.result === "not-linearizable") {
            const c = verdict.counterexample;
            expect(linearizableByExhaustion(asOfCut(c.operations, c.cut), model)).toBe(false);
          }
        },
      ),
      { numRuns: 1_000 },
    );
    // Both answers come up often, so the agreement means something.
    expect(seen.linearizable).toBeGreaterThan(200);
    expect(seen["not-linearizable"]).toBeGreaterThan(200);
  });
});

describe("shrinking counterexamples is sound", () => {
  // A counterexample proves the original history wrong only if what the shrinker drops could
  // not have made a linearizable history non-linearizable. Check the model's rule for that on
  // linearizable histories: dropping what it allows must leave them linearizable.
  it("dropping what the register model calls removable keeps a linearizable history linearizable", () => {
    let tried = 0;
    fc.assert(
      fc.property(
        fc.array(smallOp, { minLength: 2, maxLength: 7 }),
        fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }),
        fc.constantFrom(null, 0),
        (ops, keep, initial) => {
          const model = registerModel(initial);
          const operations = pairOperations(toEvents(ops)).filter(
            (o) => model.irrelevant?.(o) !== true,
          );
          fc.pre(linearizableByExhaustion(operations, model));
          const kept = operations.filter((_, i) => keep[i] === true);
          const removable = model.removable?.(kept) ?? (() => false);
          fc.pre(operations.every((o) => kept.includes(o) || removable(o)));
          tried++;
          expect(linearizableByExhaustion(kept, model)).toBe(true);
        },
      ),
      { numRuns: 1_000 },
    );
    expect(tried).toBeGreaterThan(300);
  });
});

describe("performance", () => {
  const measure = (total: number, clients: number, keys: number) => {
    const options = { clients, keys, values: 5, opsPerClient: total / clients, crash: 0.002 };
    const operations = pairOperations(simulate(seededPlans(total + keys, options), options));
    const started = performance.now();
    const verdict = checkLinearizable(operations, registerModel(null), { timeoutMs: 60_000 });
    return { operations: operations.length, verdict, ms: performance.now() - started };
  };

  it("checks a 10,000-operation history of 10 clients within seconds, partitioned by key", () => {
    const { operations, verdict, ms } = measure(10_000, 10, 20);
    console.log(
      `linearizability: ${operations} operations, 10 clients, 20 keys: ${verdict.result} in ${Math.round(ms)} ms (${verdict.steps} steps)`,
    );
    expect(operations).toBe(10_000);
    expect(verdict.result).toBe("linearizable");
    expect(ms).toBeLessThan(20_000); // generous, for a loaded 2-core machine
  });

  it("reports checker time against history length (10 clients)", () => {
    for (const keys of [20, 1])
      for (const total of [1_000, 10_000, 50_000]) {
        const { operations, verdict, ms } = measure(total, 10, keys);
        console.log(
          `linearizability: ${String(operations).padStart(6)} operations, 10 clients, ${String(keys).padStart(2)} ${keys === 1 ? "key " : "keys"}: ${Math.round(ms)} ms (${verdict.steps} steps)`,
        );
        expect(verdict.result).toBe("linearizable");
      }
  });
});

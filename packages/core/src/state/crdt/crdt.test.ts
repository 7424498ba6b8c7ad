import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  awSet,
  ewFlag,
  gCounter,
  join,
  lwwRegister,
  mvRegister,
  orMap,
  pnCounter,
  type AWSet,
  type Causal,
  type DotStore,
  type ORMap,
} from "./index.js";

/** JSON with sorted keys, for comparing states structurally. */
function canon(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

const REPLICAS = ["a", "b", "c"];

/** An operation some replica applies locally. */
type Op =
  | { replica: number; kind: "add" | "remove"; element: string }
  | { replica: number; kind: "sync"; from: number; full: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    replica: fc.integer({ min: 0, max: 2 }),
    kind: fc.constantFrom("add" as const, "remove" as const),
    element: fc.constantFrom("apple", "juice", "milk"),
  }),
  fc.record({
    replica: fc.integer({ min: 0, max: 2 }),
    kind: fc.constant("sync" as const),
    from: fc.integer({ min: 0, max: 2 }),
    full: fc.boolean(),
  }),
);

/**
 * Replays operations on three replicas of an add-wins set: local mutations produce deltas, kept in
 * each replica's outbox; a sync ships either the sender's deltas (possibly duplicated, in any
 * order, some lost) or its full state. Returns every state reached (reachable states only).
 */
function replay(ops: readonly Op[]): { states: AWSet[]; replicas: AWSet[]; deltas: AWSet[][] } {
  const replicas = REPLICAS.map(() => awSet.empty());
  const outbox: AWSet[][] = REPLICAS.map(() => []);
  const states: AWSet[] = [];
  for (const op of ops) {
    const state = replicas[op.replica] as AWSet;
    if (op.kind === "sync") {
      const from = replicas[op.from] as AWSet;
      replicas[op.replica] = op.full
        ? join(state, from)
        : (outbox[op.from] as AWSet[]).reduce((s, d) => join(s, d), state);
    } else {
      const delta =
        op.kind === "add"
          ? awSet.add(state, REPLICAS[op.replica] as string, op.element)
          : awSet.remove(state, op.element);
      replicas[op.replica] = join(state, delta);
      (outbox[op.replica] as AWSet[]).push(delta);
    }
    states.push(replicas[op.replica] as AWSet);
  }
  return { states, replicas, deltas: outbox };
}

describe("causal CRDTs: laws on reachable states", () => {
  it("join is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (ops, i, j, k) => {
          const { states } = replay(ops);
          const x = states[i % states.length] as AWSet;
          const y = states[j % states.length] as AWSet;
          const z = states[k % states.length] as AWSet;
          expect(canon(join(x, y))).toBe(canon(join(y, x)));
          expect(canon(join(join(x, y), z))).toBe(canon(join(x, join(y, z))));
          expect(canon(join(x, x))).toBe(canon(x));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("joining deltas equals joining full states, in any order and with duplicates", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 80 }),
        (ops, picks) => {
          const { replicas, deltas } = replay(ops);
          for (let r = 0; r < REPLICAS.length; r++) {
            const own = deltas[r] as AWSet[];
            if (own.length === 0) continue;
            // Every delta once in its own order, then a random sequence of them again (duplicates,
            // any order): the result is the same as the deltas joined once, in order.
            const inOrder = own.reduce((s, d) => join(s, d), awSet.empty());
            const scrambled = picks.map((n) => own[n % own.length] as AWSet);
            const anyOrder = [...[...own].reverse(), ...scrambled].reduce(
              (s, d) => join(s, d),
              awSet.empty(),
            );
            expect(canon(anyOrder)).toBe(canon(inOrder));
            // The replica's full state already holds everything its deltas carry.
            expect(canon(join(replicas[r] as AWSet, inOrder))).toBe(canon(replicas[r]));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("replicas converge after anti-entropy whatever the delivery order, duplication and loss", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
        const { replicas } = replay(ops);
        // Anti-entropy: a full-state exchange round.
        const everything = replicas.reduce((s, r) => join(s, r), awSet.empty());
        const healed = replicas.map((r) => join(r, everything));
        const values = healed.map((r) => awSet.values(r).join(","));
        expect(new Set(values).size).toBe(1);
        expect(new Set(healed.map(canon)).size).toBe(1);
      }),
      { numRuns: 200 },
    );
  });
});

describe("bounded metadata", () => {
  it("keeps no tombstones: after a full exchange the causal context is one counter per replica", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 80 }), (ops) => {
        const { replicas } = replay(ops);
        const everything = replicas.reduce((s, r) => join(s, r), awSet.empty());
        // Every dot is in the version vector (no cloud), and removed elements leave nothing behind.
        expect(everything.ctx.cloud).toEqual([]);
        expect(Object.keys(everything.ctx.vv).length).toBeLessThanOrEqual(REPLICAS.length);
        expect(Object.keys(everything.store.entries).length).toBeLessThanOrEqual(3);
      }),
      { numRuns: 200 },
    );
  });
});

describe("delta size", () => {
  it("ships at most 5% of a 10,000-entry OR-Map's state when 1% of entries change", async () => {
    const { pack } = await import("msgpackr");
    // The state 10,000 updates by replica a leave (built directly: joining them one by one is slow).
    const entries: Record<string, DotStore> = {};
    for (let i = 0; i < 10_000; i++)
      entries[`sku-${i}`] = { t: "fun", entries: { [`a:${i + 1}`]: i % 7 } };
    let map: ORMap = { store: { t: "map", entries }, ctx: { vv: { a: 10_000 }, cloud: [] } };
    let group = orMap.empty();
    for (let i = 0; i < 100; i++) {
      const delta = orMap.update(map, "b", `sku-${i * 100}`, (q, r) =>
        mvRegister.write(q as never, r, 99),
      );
      map = join(map, delta);
      group = join(group, delta);
    }
    const full = pack(map).length;
    const delta = pack(group).length;
    console.log(
      `OR-Map of 10,000 entries: full state ${full} bytes, delta of 100 changes ${delta} bytes (${((delta / full) * 100).toFixed(2)}%)`,
    );
    expect(delta / full).toBeLessThanOrEqual(0.05);
    expect(orMap.keys(join(orMap.empty(), map))).toHaveLength(10_000);
  });
});

describe("known answers and semantics", () => {
  it("add-wins set, from the delta-CRDT paper: x adds then removes apple, y adds juice and apple", () => {
    let x = awSet.empty();
    let y = awSet.empty();
    x = join(x, awSet.add(x, "x", "apple"));
    x = join(x, awSet.remove(x, "apple"));
    y = join(y, awSet.add(y, "y", "juice"));
    y = join(y, awSet.add(y, "y", "apple"));
    expect(awSet.values(join(x, y))).toEqual(["apple", "juice"]);
    expect(awSet.values(join(y, x))).toEqual(["apple", "juice"]);
  });

  it("a remove of an observed add removes it; a concurrent add wins", () => {
    let x = awSet.empty();
    x = join(x, awSet.add(x, "x", "milk"));
    let y = join(awSet.empty(), x);
    y = join(y, awSet.remove(y, "milk"));
    expect(awSet.values(join(x, y))).toEqual([]);
    x = join(x, awSet.add(x, "x", "milk")); // concurrent with nothing now, re-add
    expect(awSet.values(join(x, y))).toEqual(["milk"]);
  });

  it("enable-wins flag: concurrent enable and disable leave it enabled", () => {
    let a = ewFlag.empty();
    a = join(a, ewFlag.enable(a, "a"));
    let b = join(ewFlag.empty(), a);
    b = join(b, ewFlag.disable(b));
    a = join(a, ewFlag.enable(a, "a"));
    expect(ewFlag.value(join(a, b))).toBe(true);
    expect(ewFlag.value(join(b, b))).toBe(false);
  });

  it("multi-value register keeps concurrent writes, and a later write replaces them", () => {
    let a = mvRegister.empty<number>();
    let b = mvRegister.empty<number>();
    a = join(a, mvRegister.write(a, "a", 1));
    b = join(b, mvRegister.write(b, "b", 2));
    const both = join(a, b);
    expect(mvRegister.values(both).sort()).toEqual([1, 2]);
    const resolved = join(both, mvRegister.write(both, "a", 3));
    expect(mvRegister.values(resolved)).toEqual([3]);
    expect(mvRegister.values(join(resolved, b))).toEqual([3]);
  });

  it("OR-Map of registers (a cart): concurrent updates merge, an update concurrent with a remove survives", () => {
    const qty = (m: ORMap, key: string): number[] =>
      mvRegister.values<number>(
        orMap.get(m, key, { t: "fun", entries: {} }) as Causal<DotStore> as never,
      );
    let eu = orMap.empty();
    let us = orMap.empty();
    eu = join(
      eu,
      orMap.update(eu, "eu", "sku-1", (q, r) => mvRegister.write(q as never, r, 1)),
    );
    us = join(
      us,
      orMap.update(us, "us", "sku-2", (q, r) => mvRegister.write(q as never, r, 5)),
    );
    let cart = join(eu, us);
    expect(orMap.keys(cart)).toEqual(["sku-1", "sku-2"]);
    // eu removes sku-2 while us (which has not seen the remove) raises its quantity.
    const euView = join(eu, us);
    const removal = orMap.remove(euView, "sku-2");
    const raise = orMap.update(us, "us", "sku-2", (q, r) => mvRegister.write(q as never, r, 6));
    cart = join(join(euView, removal), join(us, raise));
    expect(orMap.keys(cart)).toEqual(["sku-1", "sku-2"]);
    expect(qty(cart, "sku-2")).toEqual([6]);
    // An observed remove removes.
    const gone = join(cart, orMap.remove(cart, "sku-1"));
    expect(orMap.keys(gone)).toEqual(["sku-2"]);
  });

  it("counters and the LWW register", () => {
    let a = gCounter.empty();
    let b = gCounter.empty();
    a = gCounter.join(a, gCounter.increment(a, "a", 3));
    b = gCounter.join(b, gCounter.increment(b, "b", 4));
    expect(gCounter.value(gCounter.join(gCounter.join(a, b), a))).toBe(7);
    expect(() => gCounter.increment(a, "a", -1)).toThrow(RangeError);
    let p = pnCounter.empty();
    p = pnCounter.join(p, pnCounter.add(p, "a", 10));
    p = pnCounter.join(p, pnCounter.add(p, "a", -3));
    expect(pnCounter.value(p)).toBe(7);
    const older = lwwRegister.write("old", { wall: 1, logical: 0, node: "b" });
    const newer = lwwRegister.write("new", { wall: 1, logical: 1, node: "a" });
    const tie = lwwRegister.write("tie", { wall: 1, logical: 1, node: "z" });
    expect(lwwRegister.join(older, newer).value).toBe("new");
    expect(lwwRegister.join(newer, older).value).toBe("new");
    expect(lwwRegister.join(newer, tie).value).toBe("tie"); // equal clocks: the larger node id wins
  });
});

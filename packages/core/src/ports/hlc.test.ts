import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { manualClock } from "./clock.js";
import {
  compareHlc,
  createHlc,
  decodeHlc,
  encodeHlc,
  hlcFromBytes,
  hlcToBytes,
  type Hlc,
} from "./hlc.js";

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++)
    if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

const sign = (n: number): number => Math.sign(n);

const hlcArb: fc.Arbitrary<Hlc> = fc.record({
  wall: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 2 ** 48 - 1 })),
  logical: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
  node: fc.oneof(
    fc.constantFrom("a", "b", "ab", "a.b", "eu-1"),
    fc.string({ minLength: 1, maxLength: 6 }),
  ),
});

describe("hybrid logical clock", () => {
  it("is monotonic even when the wall clock stands still or the peer is ahead", () => {
    const clock = manualClock({ start: 1_000_000 });
    const a = createHlc(clock, "a");
    const t1 = a.now();
    const t2 = a.now();
    expect(compareHlc(t2, t1)).toBeGreaterThan(0);
    expect(t2).toEqual({ wall: 1_000_000, logical: 1, node: "a" });
    const remote = { wall: t2.wall + 500, logical: 7, node: "b" };
    const t3 = a.receive(remote);
    expect(t3).toEqual({ wall: remote.wall, logical: 8, node: "a" });
    const t4 = a.now();
    expect(t4).toEqual({ wall: remote.wall, logical: 9, node: "a" });
    clock.advance(1_000);
    expect(a.now()).toEqual({ wall: 1_001_000, logical: 0, node: "a" });
  });

  it("keeps going forward when the wall clock steps back", () => {
    let wall = 5_000;
    const clock = { ...manualClock(), now: () => wall };
    const a = createHlc(clock, "a");
    const before = a.now();
    wall = 4_000;
    const after = a.now();
    expect(compareHlc(after, before)).toBeGreaterThan(0);
    expect(after).toEqual({ wall: 5_000, logical: 1, node: "a" });
  });

  it("carries a logical overflow into the wall time", () => {
    const clock = manualClock({ start: 10 });
    const a = createHlc(clock, "a");
    a.receive({ wall: 10, logical: 2 ** 32 - 2, node: "b" });
    const t = a.now();
    expect(t).toEqual({ wall: 11, logical: 0, node: "a" });
    expect(encodeHlc(t) > encodeHlc({ wall: 10, logical: 2 ** 32 - 1, node: "z" })).toBe(true);
  });

  it("refuses a timestamp too far in the future, and malformed ones", () => {
    const clock = manualClock({ start: 0 });
    const a = createHlc(clock, "a", { maxDriftMs: 1_000 });
    expect(a.receive({ wall: 1_000, logical: 0, node: "ok" })).toMatchObject({ wall: 1_000 });
    expect(() => a.receive({ wall: 5_000, logical: 0, node: "evil" })).toThrow(
      expect.objectContaining({
        code: "FAILED_PRECONDITION",
        message: expect.stringMatching(/5000 ms ahead of this node.s clock \(limit 1000 ms\)/),
        details: expect.objectContaining({ driftMs: 5_000 }),
      }),
    );
    // The refused timestamp did not move the clock.
    expect(a.now()).toEqual({ wall: 1_000, logical: 2, node: "a" });
    for (const bad of [
      { wall: -1, logical: 0, node: "x" },
      { wall: 1.5, logical: 0, node: "x" },
      { wall: 1, logical: NaN, node: "x" },
      { wall: 1, logical: 0, node: "" },
      null,
    ])
      expect(() => a.receive(bad as unknown as Hlc)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    expect(() => createHlc(clock, "")).toThrow(/non-empty node id/);
  });

  it("orders events the way causality does: a receipt is later than the send (property)", () => {
    // Three nodes with skewed clocks exchange messages; every send happens-before its receipt,
    // and every node's own timestamps strictly increase.
    const step = fc.oneof(
      fc.record({ kind: fc.constant("tick" as const), node: fc.nat(2), ms: fc.nat(50) }),
      fc.record({ kind: fc.constant("local" as const), node: fc.nat(2) }),
      fc.record({ kind: fc.constant("send" as const), from: fc.nat(2), to: fc.nat(2) }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.nat(200), { minLength: 3, maxLength: 3 }),
        fc.array(step),
        (skews, steps) => {
          const clocks = skews.map((skew) => manualClock({ start: 1_000_000 + skew }));
          const nodes = clocks.map((clock, i) => createHlc(clock, `n${i}`));
          const last: (Hlc | undefined)[] = [undefined, undefined, undefined];
          const stamp = (i: number, t: Hlc): void => {
            const previous = last[i];
            if (previous !== undefined) expect(compareHlc(t, previous)).toBeGreaterThan(0);
            last[i] = t;
            // Bounded divergence from physical time: never ahead of the fastest clock seen.
            expect(t.wall).toBeLessThanOrEqual(Math.max(...clocks.map((c) => c.now())));
          };
          for (const s of steps) {
            if (s.kind === "tick") (clocks[s.node] as ReturnType<typeof manualClock>).advance(s.ms);
            else if (s.kind === "local")
              stamp(s.node, (nodes[s.node] as ReturnType<typeof createHlc>).now());
            else {
              const sent = (nodes[s.from] as ReturnType<typeof createHlc>).now();
              stamp(s.from, sent);
              const received = (nodes[s.to] as ReturnType<typeof createHlc>).receive(sent);
              expect(compareHlc(received, sent)).toBeGreaterThan(0);
              stamp(s.to, received);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("encodes to strings and to bytes that sort like the timestamps (property)", () => {
    fc.assert(
      fc.property(hlcArb, hlcArb, (x, y) => {
        const order = sign(compareHlc(x, y));
        const sx = encodeHlc(x);
        const sy = encodeHlc(y);
        expect(sign(sx < sy ? -1 : sx > sy ? 1 : 0)).toBe(order);
        // Bytes follow code point order; the generated ids stay below U+D800, where it agrees.
        expect(sign(compareBytes(hlcToBytes(x), hlcToBytes(y)))).toBe(order);
        expect(decodeHlc(sx)).toEqual(x);
        expect(hlcFromBytes(hlcToBytes(x))).toEqual(x);
      }),
      { numRuns: 500 },
    );
  });

  it("gives readable strings and rejects malformed encodings", () => {
    expect(encodeHlc({ wall: 1_700_000_000_000, logical: 3, node: "eu-1" })).toBe(
      "018bcfe56800.00000003.eu-1",
    );
    for (const bad of [
      "nope",
      "018bcfe56800.3.eu-1",
      "018bcfe56800.00000003.",
      "018BCFE56800.00000003.a",
    ])
      expect(() => decodeHlc(bad)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => hlcFromBytes(new Uint8Array(5))).toThrow(/too short/);
    expect(() => hlcFromBytes(new Uint8Array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff]))).toThrow(
      /bad node id/,
    );
    expect(() => encodeHlc({ wall: 2 ** 48, logical: 0, node: "a" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});

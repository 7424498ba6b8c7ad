import { describe, expect, it } from "vitest";
import { history, op } from "../test-support/histories.js";
import { checkCounter } from "./counter.js";
import { checkCrdtSet } from "./crdt-set.js";

type Outcome = "ok" | "fail" | "info";
const inc = (p: number, n: number | null, call: number, ret: number, outcome: Outcome = "ok") =>
  op(p, "increment", n, n, call, ret, { outcome, key: "n1" });
const dec = (p: number, n: number, call: number, ret: number, outcome: Outcome = "ok") =>
  op(p, "decrement", n, n, call, ret, { outcome, key: "n2" });
const read = (p: number, replica: string, value: unknown, call: number, ret: number) =>
  op(p, "read", null, value, call, ret, { key: replica });

describe("checkCounter", () => {
  const updates = [
    inc(0, 5, 0, 1),
    inc(1, null, 0, 2),
    inc(2, 3, 0, 2, "info"),
    dec(3, 2, 1, 2, "info"),
    inc(4, 100, 1, 3, "fail"),
  ];

  it("accepts converged replicas within the bounds", () => {
    // ok: 5 + 1 = 6; info: +3 and -2 may or may not have happened: 4..9.
    for (const value of [4, 6, 9]) {
      const verdict = checkCounter(
        history(...updates, read(9, "n1", value, 10, 11), read(9, "n2", value, 12, 13)),
        { replicas: ["n1", "n2"] },
      );
      expect(verdict, String(value)).toMatchObject({
        valid: true,
        bounds: { lower: 4, upper: 9 },
        values: { n1: value, n2: value },
        counts: {
          increments: { ok: 2, info: 1, fail: 1 },
          decrements: { ok: 0, info: 1, fail: 0 },
          finalReads: 2,
        },
      });
    }
  });

  it("reports diverged replicas, a value out of bounds, and a replica never read", () => {
    const verdict = checkCounter(
      history(
        ...updates,
        read(8, "n1", 6, 1.5, 1.6),
        read(9, "n1", 10, 10, 11),
        read(9, "n2", 6, 12, 13),
      ),
      { replicas: ["n1", "n2", "n3"] },
    );
    expect(verdict.valid).toBe(false);
    expect(verdict.counts.reads).toBe(3);
    expect(verdict.anomalies).toEqual([
      { type: "no-final-read", replica: "n3" },
      {
        type: "diverged",
        values: { n1: 10, n2: 6 },
        reads: [expect.objectContaining({ key: "n1" }), expect.objectContaining({ key: "n2" })],
      },
      expect.objectContaining({
        type: "out-of-bounds",
        replica: "n1",
        value: 10,
        lower: 4,
        upper: 9,
        read: expect.objectContaining({ call: 10 }),
      }),
    ]);
  });

  it("refuses reads without a replica, unknown replicas, and non-numeric amounts", () => {
    expect(() => checkCounter(history(op(0, "read", null, 1, 0, 1)))).toThrow(/names the replica/);
    expect(() => checkCounter(history(read(0, "n9", 1, 0, 1)), { replicas: ["n1"] })).toThrow(
      /replica "n9", which is not among the replicas/,
    );
    expect(() => checkCounter(history(inc(0, "7" as unknown as number, 0, 1)))).toThrow(/a string/);
    expect(() => checkCounter(history(dec(0, -1, 0, 1)))).toThrow(/cannot be negative/);
    expect(() => checkCounter(history(read(0, "n1", "1", 0, 1)))).toThrow(
      /read's value must be a whole number/,
    );
    expect(() => checkCounter(history(inc(0, 1, 0, 1)))).toThrow(/no final read/);
  });
});

describe("checkCrdtSet", () => {
  type Outcome2 = Outcome;
  const add = (p: number, x: unknown, call: number, ret: number, outcome: Outcome2 = "ok") =>
    op(p, "add", x, x, call, ret, { outcome });
  const remove = (p: number, x: unknown, call: number, ret: number, outcome: Outcome2 = "ok") =>
    op(p, "remove", x, x, call, ret, { outcome });

  it("accepts converged replicas with every surviving add", () => {
    const updates = [
      add(0, "a", 0, 1),
      add(1, "b", 0, 1),
      remove(2, "b", 2, 3), // b removed after its add: may be gone
      add(3, "c", 0, 1, "info"), // may or may not be there
      remove(4, "d", 0, 1),
      add(4, "d", 2, 3), // added after every remove of it: must be there
    ];
    const verdict = checkCrdtSet(
      history(
        ...updates,
        read(9, "n1", ["d", "a", "c"], 10, 11),
        read(9, "n2", ["a", "c", "d"], 12, 13),
      ),
    );
    expect(verdict).toMatchObject({
      valid: true,
      counts: {
        adds: { ok: 3, info: 1, fail: 0 },
        removes: { ok: 2, info: 0, fail: 0 },
        finalReads: 2,
        required: 2,
      },
    });
    expect(
      checkCrdtSet(
        history(
          ...updates,
          read(9, "n1", ["a", "b", "d"], 10, 11),
          read(9, "n2", ["a", "b", "d"], 12, 13),
        ),
      ).valid,
    ).toBe(true);
  });

  it("reports divergence, lost and unexpected elements", () => {
    const verdict = checkCrdtSet(
      history(
        add(0, "a", 0, 1),
        add(1, "f", 0, 1, "fail"),
        remove(2, "a", 0.5, 0.8, "info"), // might have observed a: a is not required
        add(3, "b", 0, 1),
        read(9, "n1", ["b", "f"], 10, 11),
        read(9, "n2", ["x"], 12, 13),
      ),
    );
    expect(verdict.valid).toBe(false);
    expect(verdict.counts.required).toBe(1);
    expect(verdict.anomalies).toEqual([
      {
        type: "diverged",
        reads: [expect.objectContaining({ key: "n1" }), expect.objectContaining({ key: "n2" })],
        differences: [
          { element: "b", presentOn: ["n1"], absentOn: ["n2"] },
          { element: "f", presentOn: ["n1"], absentOn: ["n2"] },
          { element: "x", presentOn: ["n2"], absentOn: ["n1"] },
        ],
      },
      {
        type: "lost",
        element: "b",
        add: expect.objectContaining({ process: 3 }),
        missingOn: ["n2"],
      },
      { type: "unexpected", element: "f", reason: "failed", presentOn: ["n1"] },
      { type: "unexpected", element: "x", reason: "never-attempted", presentOn: ["n2"] },
    ]);
  });
});

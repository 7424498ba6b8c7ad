import { describe, expect, it } from "vitest";
import { HistoryError } from "../history.js";
import { history, op } from "../test-support/histories.js";
import { checkSet } from "./set.js";

const add = (
  p: number,
  x: unknown,
  call: number,
  ret: number,
  outcome: "ok" | "fail" | "info" = "ok",
) => op(p, "add", x, x, call, ret, { outcome });
const read = (p: number, xs: unknown, call: number, ret: number, key?: string) =>
  op(p, "read", null, xs, call, ret, key === undefined ? {} : { key });

describe("checkSet", () => {
  it("accepts a history whose final read has every acknowledged element", () => {
    const verdict = checkSet(
      history(
        add(0, 1, 0, 2),
        add(1, 2, 1, 3),
        add(2, 3, 1, 4, "info"),
        add(3, 4, 2, 5, "fail"),
        add(4, 5, 2, 6, "info"),
        read(0, [2, 1], 2.5, 3), // during the run: not final
        read(5, [3, 2, 1], 10, 11),
      ),
    );
    expect(verdict).toMatchObject({
      valid: true,
      counts: {
        adds: { ok: 2, info: 2, fail: 1 },
        reads: 2,
        finalReads: 1,
        lost: 0,
        duplicated: 0,
        unexpected: 0,
        recovered: 1,
      },
      anomalies: [],
      recovered: [
        { element: 3, add: { id: expect.any(Number), process: 2, outcome: "info", ret: null } },
      ],
    });
  });

  it("reports a lost, a duplicated and an unexpected element, with the operations", () => {
    const verdict = checkSet(
      history(
        add(0, "a", 0, 1),
        add(1, "b", 0, 2),
        add(2, "c", 1, 3, "fail"),
        read(3, ["a", "a", "c", "z"], 5, 6, "n1"),
        read(4, ["a", "b", "c", "z"], 5, 7, "n2"),
      ),
    );
    expect(verdict.valid).toBe(false);
    expect(verdict.counts).toMatchObject({ lost: 1, duplicated: 1, unexpected: 2, finalReads: 2 });
    expect(verdict.anomalies).toEqual(
      expect.arrayContaining([
        {
          type: "lost",
          element: "b",
          add: { id: expect.any(Number), process: 1, f: "add", outcome: "ok", call: 0, ret: 2 },
          missingFrom: [expect.objectContaining({ process: 3, key: "n1", call: 5, ret: 6 })],
        },
        {
          type: "duplicated",
          element: "a",
          read: expect.objectContaining({ process: 3 }),
          count: 2,
        },
        expect.objectContaining({ type: "unexpected", element: "c", reason: "failed", reads: 2 }),
        expect.objectContaining({
          type: "unexpected",
          element: "z",
          reason: "never-attempted",
          adds: [],
        }),
      ]),
    );
  });

  it("compares elements by value, whatever the order of their keys", () => {
    const verdict = checkSet(
      history(add(0, { id: 1, v: "x" }, 0, 1), read(1, [{ v: "x", id: 1 }], 2, 3)),
    );
    expect(verdict.valid).toBe(true);
  });

  it("does not count a read that began before an add completed as final", () => {
    const events = history(add(0, 1, 0, 5), read(1, [], 1, 2));
    expect(() => checkSet(events)).toThrow(/no final read/);
    expect(() => checkSet(history(add(0, 1, 0, 5)))).toThrow(/never read/);
  });

  it("refuses what is not a set history, naming the operation", () => {
    expect(() => checkSet(history(op(0, "write", 1, 1, 0, 1)))).toThrow(HistoryError);
    expect(() => checkSet(history(op(0, "write", 1, 1, 0, 1)))).toThrow(
      /unknown operation "write"/,
    );
    expect(() => checkSet(history(add(0, 1, 0, 1), read(1, { 1: true }, 2, 3)))).toThrow(
      /a read returns an array of elements/,
    );
  });

  it("caps the anomalies listed, not the counts", () => {
    const adds = Array.from({ length: 30 }, (_, i) => add(i, i, 0, 1));
    const verdict = checkSet(history(...adds, read(99, [], 2, 3)), { maxAnomalies: 10 });
    expect(verdict.counts.lost).toBe(30);
    expect(verdict.anomalies).toHaveLength(10);
    expect(verdict.omitted).toBe(20);
  });
});

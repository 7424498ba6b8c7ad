import { describe, expect, it } from "vitest";
import { pairOperations } from "../history.js";
import { history, op } from "../test-support/histories.js";
import { checkBank } from "./bank.js";

const transfer = (
  p: number,
  from: string,
  to: string,
  amount: unknown,
  call: number,
  ret: number,
  outcome: "ok" | "fail" | "info" = "ok",
) => op(p, "transfer", { from, to, amount }, { from, to, amount }, call, ret, { outcome });
const read = (p: number, balances: unknown, call: number, ret: number) =>
  op(p, "read", null, balances, call, ret);

const options = { total: 20, accounts: ["a", "b"] };

describe("checkBank", () => {
  it("accepts reads that conserve the total", () => {
    const verdict = checkBank(
      history(
        transfer(0, "a", "b", 3, 0, 2),
        read(1, { a: 10, b: 10 }, 0, 1),
        read(1, { a: 7, b: 13 }, 3, 4),
        transfer(2, "b", "a", 50, 3, 5, "fail"),
      ),
      options,
    );
    expect(verdict).toEqual({
      valid: true,
      counts: { transfers: { ok: 1, info: 0, fail: 1 }, reads: 2, badReads: 0 },
      final: { checked: false, reason: "no-initial-balances", detail: expect.any(String) },
      anomalies: [],
      omitted: 0,
    });
  });

  it("reports each bad read with its time: wrong total, wrong accounts, a negative balance", () => {
    const verdict = checkBank(
      history(
        read(0, { a: 10, b: 11 }, 0, 1),
        read(0, { a: 20 }, 2, 3),
        read(0, { a: 25, b: -5 }, 4, 5),
        read(0, { a: 10, b: 10, c: 0 }, 6, 7),
      ),
      options,
    );
    expect(verdict.valid).toBe(false);
    expect(verdict.counts.badReads).toBe(4);
    expect(verdict.anomalies).toEqual([
      {
        type: "wrong-total",
        read: expect.objectContaining({ call: 0, ret: 1 }),
        total: 21,
        expected: 20,
        balances: { a: 10, b: 11 },
      },
      {
        type: "wrong-accounts",
        read: expect.objectContaining({ call: 2 }),
        missing: ["b"],
        extra: [],
      },
      {
        type: "below-lower-bound",
        read: expect.objectContaining({ call: 4 }),
        account: "b",
        balance: -5,
        bound: 0,
      },
      {
        type: "wrong-accounts",
        read: expect.objectContaining({ call: 6 }),
        missing: [],
        extra: ["c"],
      },
    ]);
  });

  it("takes lower bounds per account or as a function", () => {
    const events = history(read(0, { a: 25, b: -5 }, 0, 1));
    expect(checkBank(events, { ...options, lowerBound: -Infinity }).valid).toBe(true);
    expect(checkBank(events, { ...options, lowerBound: { b: -10 } }).valid).toBe(true);
    expect(
      checkBank(events, { ...options, lowerBound: (acct) => (acct === "a" ? 30 : -5) }).anomalies,
    ).toEqual([
      expect.objectContaining({ type: "below-lower-bound", account: "a", balance: 25, bound: 30 }),
    ]);
  });

  it("checks the final read against the initial balances, the ok transfers and some info ones", () => {
    const initial = { a: 10, b: 10 };
    const events = (final: unknown) =>
      history(
        transfer(0, "a", "b", 3, 0, 2),
        transfer(1, "a", "b", 2, 0, 2, "info"),
        transfer(2, "b", "a", 1, 1, 3, "info"),
        transfer(3, "b", "a", 4, 1, 3, "fail"),
        read(4, final, 10, 11),
      );
    const good = checkBank(events({ a: 6, b: 14 }), { ...options, initial });
    expect(good.valid).toBe(true);
    const infoIds = pairOperations(events({}))
      .filter((o) => o.outcome === "info")
      .map((o) => o.id);
    expect(good.final).toMatchObject({ checked: true, infoApplied: infoIds });
    expect(checkBank(events({ a: 7, b: 13 }), { ...options, initial }).final).toMatchObject({
      infoApplied: [],
    });
    const bad = checkBank(events({ a: 9, b: 11 }), { ...options, initial });
    expect(bad.valid).toBe(false);
    expect(bad.final).toMatchObject({ checked: true, infoApplied: null });
    expect(bad.anomalies).toEqual([
      {
        type: "wrong-final-balances",
        read: expect.objectContaining({ call: 10 }),
        difference: { a: 2, b: -2 },
      },
    ]);
  });

  it("reports the final read unchecked rather than search too many subsets", () => {
    const infos = Array.from({ length: 12 }, (_, i) => transfer(i, "a", "b", i + 1, 0, 1, "info"));
    const events = history(...infos, read(99, { a: 11, b: 9 }, 5, 6));
    const verdict = checkBank(events, { ...options, initial: { a: 10, b: 10 }, maxSubsets: 1000 });
    expect(verdict.final).toMatchObject({ checked: false, reason: "too-many-info-transfers" });
    expect(verdict.valid).toBe(true);
    // Identical transfers are one choice of how many: 200 of them make 201 subsets.
    const same = Array.from({ length: 200 }, (_, i) => transfer(i, "a", "b", 1, 0, 1, "info"));
    const many = checkBank(history(...same, read(999, { a: 3, b: 17 }, 5, 6)), {
      ...options,
      initial: { a: 10, b: 10 },
      maxSubsets: 1000,
    });
    expect(many.final).toMatchObject({ checked: true });
    expect(many.final.checked && many.final.infoApplied).toHaveLength(7);
  });

  it("refuses malformed transfers, reads and amounts with a clear message", () => {
    const bad = (events: ReturnType<typeof history>) => () => checkBank(events, options);
    expect(bad(history(transfer(0, "a", "b", "5", 0, 1)))).toThrow(
      /amount must be a whole number, got "5" \(a string; record amounts as JSON numbers\)/,
    );
    expect(bad(history(transfer(0, "a", "b", 1e300, 0, 1)))).toThrow(/not a whole number within/);
    expect(bad(history(transfer(0, "a", "zz", 1, 0, 1)))).toThrow(/unknown account "zz"/);
    expect(bad(history(op(0, "transfer", 5, 5, 0, 1)))).toThrow(/a transfer's value is/);
    expect(bad(history(read(0, [10, 10], 0, 1)))).toThrow(/a read returns a map of balances/);
    expect(bad(history(read(0, { a: "10", b: 10 }, 0, 1)))).toThrow(/balance of "a"/);
    expect(bad(history(read(0, { a: 2 ** 53 - 1, b: 2 ** 53 - 1 }, 0, 1)))).toThrow(
      /beyond ±2\^53/,
    );
    expect(() => checkBank([], { total: 1.5, accounts: ["a"] })).toThrow(
      /total must be a whole number/,
    );
    expect(() => checkBank([], { total: 10, accounts: ["a"], initial: { a: 5 } })).toThrow(
      /add up to 5, not to the total 10/,
    );
  });
});

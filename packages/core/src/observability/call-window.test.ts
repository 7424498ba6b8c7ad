import { describe, expect, it } from "vitest";
import { isStrataError } from "../errors/index.js";
import { manualClock, type ManualClock } from "../ports/index.js";
import { CallWindow, type ActionSnapshot } from "./call-window.js";

/** A manual clock whose monotonic time starts at `start`. */
function clockAt(start: number): ManualClock {
  const clock = manualClock();
  clock.advance(start);
  return clock;
}

function only(window: CallWindow): ActionSnapshot {
  const rows = window.snapshot();
  expect(rows).toHaveLength(1);
  const [row] = rows;
  if (row === undefined) throw new Error("no row");
  return row;
}

describe("CallWindow", () => {
  it("estimates quantiles of a uniform 1..1000 ms distribution within 6%", () => {
    const clock = manualClock();
    const window = new CallWindow(clock);
    // Shuffled order, so the estimate cannot depend on arrival order.
    for (let i = 0; i < 1000; i++) window.record("orders", "place", "OK", ((i * 389) % 1000) + 1);
    const row = only(window);
    expect(row.count).toBe(1000);
    expect(Math.abs(row.p50Ms - 500) / 500).toBeLessThan(0.06);
    expect(Math.abs(row.p99Ms - 990) / 990).toBeLessThan(0.06);
    expect(row.maxMs).toBe(1000);
  });

  it("keeps relative error within 5% across the whole range, clamping outside it", () => {
    const clock = manualClock();
    for (const ms of [0.02, 0.7, 3, 42, 1234.5, 98_765, 599_000]) {
      const window = new CallWindow(clock);
      window.record("s", "a", "OK", ms);
      window.record("s", "a", "OK", ms);
      const row = only(window);
      expect(Math.abs(row.p50Ms - ms) / ms).toBeLessThanOrEqual(0.05 + 1e-9);
    }
    const window = new CallWindow(clock);
    window.record("s", "a", "OK", -5);
    window.record("s", "a", "OK", Number.NaN);
    window.record("s", "b", "OK", 3_600_000);
    const [a, b] = window.snapshot();
    expect(a?.maxMs).toBe(0);
    expect(a?.p99Ms).toBe(0);
    expect(b?.maxMs).toBe(3_600_000);
    expect(b?.p99Ms).toBeGreaterThan(570_000);
    expect(b?.p99Ms).toBeLessThan(630_000);
  });

  it("reports 0 quantiles, never NaN, and p99 never above max", () => {
    const clock = manualClock();
    const window = new CallWindow(clock);
    window.record("s", "a", "OK", 10);
    const row = only(window);
    expect(row.p50Ms).toBeLessThanOrEqual(10);
    expect(row.p99Ms).toBeLessThanOrEqual(row.maxMs);
    expect(Number.isFinite(row.requestsPerSecond)).toBe(true);
  });

  it("computes rates over the full window once it has existed that long", () => {
    const clock = clockAt(123_456);
    const window = new CallWindow(clock, { windowMs: 10_000, slotMs: 1_000 });
    // 50 calls a second for 30 s, 10% of them failing.
    for (let ms = 0; ms < 30_000; ms += 20) {
      const n = ms / 20;
      window.record("orders", "place", n % 10 === 0 ? "UNAVAILABLE" : "OK", 5);
      clock.advance(20);
    }
    const row = only(window);
    // The window holds 9 full slots and the current one: between 9 s and 10 s of calls.
    expect(row.requestsPerSecond).toBeCloseTo(50, 0);
    expect(row.errorsPerSecond).toBeCloseTo(5, 0);
    expect(Math.abs((row.errors.UNAVAILABLE ?? 0) - row.count / 10)).toBeLessThanOrEqual(1);
    expect(Object.keys(row.errors)).toEqual(["UNAVAILABLE"]);
    expect(row.count).toBeGreaterThanOrEqual(450);
    expect(row.count).toBeLessThanOrEqual(500);
  });

  it("divides by the time covered while the window is younger than windowMs", () => {
    const clock = clockAt(500);
    const window = new CallWindow(clock, { windowMs: 10_000, slotMs: 1_000 });
    for (let i = 0; i < 40; i++) {
      window.record("s", "a", "OK", 1);
      clock.advance(100);
    }
    // 40 calls over 4 s: 10 per second, not 40 / 10.
    expect(only(window).requestsPerSecond).toBeCloseTo(10, 5);
    // Never divides by less than one slot.
    const fresh = new CallWindow(clock, { windowMs: 10_000, slotMs: 1_000 });
    fresh.record("s", "a", "OK", 1);
    clock.advance(1);
    expect(only(fresh).requestsPerSecond).toBe(1);
  });

  it("forgets calls older than the window", () => {
    const clock = manualClock();
    const window = new CallWindow(clock, { windowMs: 5_000, slotMs: 1_000 });
    window.record("old", "a", "INTERNAL", 1);
    clock.advance(3_000);
    window.record("new", "a", "OK", 1);
    expect(window.snapshot().map((r) => r.service)).toEqual(["new", "old"]);
    clock.advance(2_000);
    // "old" is now exactly windowMs old: gone; "new" is 2 s old: still there.
    expect(window.snapshot().map((r) => r.service)).toEqual(["new"]);
    clock.advance(3_000);
    expect(window.snapshot()).toEqual([]);
  });

  it("reuses ring slots without leaking old counts", () => {
    const clock = manualClock();
    const window = new CallWindow(clock, { windowMs: 3_000, slotMs: 1_000 });
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 7; i++) window.record("s", "a", "NOT_FOUND", 100);
      clock.advance(1_000);
    }
    window.record("s", "a", "OK", 1);
    const row = only(window);
    // Current slot (1 call) and the two before it (7 each).
    expect(row.count).toBe(15);
    expect(row.errors).toEqual({ NOT_FOUND: 14 });
  });

  it("sorts by service, then action", () => {
    const clock = manualClock();
    const window = new CallWindow(clock);
    for (const [s, a] of [
      ["b", "x"],
      ["a", "z"],
      ["b", "a"],
      ["a", "b"],
    ] as const) {
      window.record(s, a, "OK", 1);
    }
    expect(window.snapshot().map((r) => `${r.service}.${r.action}`)).toEqual([
      "a.b",
      "a.z",
      "b.a",
      "b.x",
    ]);
  });

  it("folds series beyond maxSeries into _other", () => {
    const clock = manualClock();
    const window = new CallWindow(clock, { maxSeries: 3 });
    for (let i = 0; i < 10; i++) window.record("svc", `action-${i}`, "OK", 1);
    window.record("svc", "action-0", "OK", 1);
    const rows = window.snapshot();
    expect(rows.map((r) => `${r.service}/${r.action}:${r.count}`)).toEqual([
      "_other/_other:7",
      "svc/action-0:2",
      "svc/action-1:1",
      "svc/action-2:1",
    ]);
  });

  it("frees the place of a series that went quiet", () => {
    const clock = manualClock();
    const window = new CallWindow(clock, { maxSeries: 1, windowMs: 2_000, slotMs: 1_000 });
    window.record("s", "first", "OK", 1);
    clock.advance(5_000);
    window.record("s", "second", "OK", 1);
    expect(window.snapshot().map((r) => r.action)).toEqual(["second"]);
  });

  it("rejects invalid options with INVALID_ARGUMENT", () => {
    const clock = manualClock();
    const bad: unknown[] = [
      { windowMs: 0 },
      { windowMs: -1 },
      { windowMs: Number.NaN },
      { windowMs: Infinity },
      { slotMs: 0 },
      { slotMs: 20_000 },
      { windowMs: 1_000_000, slotMs: 1 },
      { maxSeries: 0 },
      { maxSeries: 2.5 },
      { maxSeries: "5" },
    ];
    for (const options of bad) {
      let thrown: unknown;
      try {
        new CallWindow(clock, options as never);
      } catch (error) {
        thrown = error;
      }
      expect(isStrataError(thrown, "INVALID_ARGUMENT"), JSON.stringify(options)).toBe(true);
    }
    // A window that is not a whole number of slots is rounded to the nearest.
    expect(new CallWindow(clock, { windowMs: 10_400, slotMs: 1_000 }).windowMs).toBe(10_000);
  });
});

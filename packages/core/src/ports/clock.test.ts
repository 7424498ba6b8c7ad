import { afterEach, describe, expect, it, vi } from "vitest";
import { manualClock, seededRandom, systemClock } from "./index.js";

describe("manualClock", () => {
  it("moves only when advanced and fires due timers in deadline order", () => {
    const clock = manualClock({ start: 1_000 });
    const fired: string[] = [];
    clock.setTimer(() => fired.push(`b@${clock.monotonic()}`), 20);
    clock.setTimer(() => fired.push(`a@${clock.monotonic()}`), 10);
    clock.setTimer(() => fired.push(`c@${clock.monotonic()}`), 30);
    expect(clock.now()).toBe(1_000);
    expect(clock.pending()).toBe(3);
    clock.advance(25);
    expect(fired).toEqual(["a@10", "b@20"]);
    expect(clock.monotonic()).toBe(25);
    expect(clock.now()).toBe(1_025);
    clock.advance(5);
    expect(fired).toEqual(["a@10", "b@20", "c@30"]);
    expect(clock.pending()).toBe(0);
  });

  it("fires timers set by timers within the same advance, and skips cleared ones", () => {
    const clock = manualClock();
    const fired: number[] = [];
    const cleared = clock.setTimer(() => fired.push(-1), 5);
    clock.setTimer(() => {
      fired.push(clock.monotonic());
      clock.setTimer(() => fired.push(clock.monotonic()), 10);
    }, 10);
    cleared.clear();
    clock.advance(100);
    expect(fired).toEqual([10, 20]);
    expect(clock.monotonic()).toBe(100);
  });

  it("draws the same numbers for the same seed", () => {
    const a = manualClock({ seed: 3 });
    const b = manualClock({ seed: 3 });
    const c = manualClock({ seed: 4 });
    const draw = (clock: { random(): number }) => Array.from({ length: 5 }, () => clock.random());
    const first = draw(a);
    expect(draw(b)).toEqual(first);
    expect(draw(c)).not.toEqual(first);
  });
});

describe("seededRandom", () => {
  it("stays in [0, 1) and spreads evenly", () => {
    const random = seededRandom(42);
    const buckets = new Array<number>(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = random();
      if (!(x >= 0 && x < 1)) outside++;
      const bucket = Math.floor(x * 10);
      buckets[bucket] = (buckets[bucket] ?? 0) + 1;
    }
    expect(outside).toBe(0);
    for (const count of buckets) expect(Math.abs(count - 10_000)).toBeLessThan(600);
  });
});

describe("systemClock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires timers after their delay and not before", () => {
    vi.useFakeTimers();
    const clock = systemClock(1);
    const fn = vi.fn();
    clock.setTimer(fn, 50);
    vi.advanceTimersByTime(49);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledOnce();
  });

  it("waits out delays longer than setTimeout's 2^31-1 ms limit instead of firing at once", () => {
    vi.useFakeTimers();
    const clock = systemClock(1);
    const fn = vi.fn();
    const days = 24 * 60 * 60 * 1000;
    clock.setTimer(fn, 40 * days);
    vi.advanceTimersByTime(1);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(30 * days);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(10 * days);
    expect(fn).toHaveBeenCalledOnce();
  });

  it("can clear a long timer at any step, and never fires an infinite one", () => {
    vi.useFakeTimers();
    const clock = systemClock(1);
    const fn = vi.fn();
    const timer = clock.setTimer(fn, 60 * 24 * 60 * 60 * 1000);
    vi.advanceTimersByTime(30 * 24 * 60 * 60 * 1000);
    timer.clear();
    const forever = vi.fn();
    clock.setTimer(forever, Infinity);
    vi.advanceTimersByTime(100 * 24 * 60 * 60 * 1000);
    expect(fn).not.toHaveBeenCalled();
    expect(forever).not.toHaveBeenCalled();
  });
});

/** A cancellable timer returned by {@link Clock.setTimer}. */
export interface Timer {
  clear(): void;
}

/**
 * Time, timers and randomness go through this port, never `Date.now()`, `setTimeout` or
 * `Math.random()` directly, so that embedded runs can be driven by a virtual clock.
 */
export interface Clock {
  /** Wall-clock time in milliseconds since the epoch. */
  now(): number;
  /** Monotonic time in milliseconds, for measuring durations and deadlines. */
  monotonic(): number;
  /** Runs `fn` once after `ms`; timers never keep the process alive on their own. */
  setTimer(fn: () => void, ms: number): Timer;
  /** A uniformly distributed number in [0, 1) from the clock's seeded source. */
  random(): number;
}

/**
 * A small, fast, seedable PRNG (sfc32). Not for cryptography.
 *
 * @example
 * const random = seededRandom(42); random(); // same sequence for the same seed
 */
export function seededRandom(seed: number): () => number {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ (seed * 31);
  let c = 0xb7e15162;
  let d = seed | 0;
  const next = (): number => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** Longest delay `setTimeout` takes; longer ones fire after 1 ms (with a warning). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The real clock: wall time, `performance.now()`, unref'd Node timers, a randomly seeded PRNG. */
export function systemClock(seed?: number): Clock {
  const random = seededRandom(seed ?? crypto.getRandomValues(new Uint32Array(1))[0] ?? 1);
  return {
    now: () => Date.now(),
    monotonic: () => performance.now(),
    setTimer(fn, ms) {
      // Delays beyond ~24.8 days (long budgets, hostile timeouts) are chained in steps rather
      // than handed to setTimeout, which would fire them at once and make deadline queues spin.
      let handle: ReturnType<typeof setTimeout>;
      const schedule = (left: number): void => {
        const step = Math.min(left, MAX_TIMEOUT_MS);
        handle = setTimeout(() => (left > step ? schedule(left - step) : fn()), step);
        handle.unref();
      };
      schedule(ms);
      return { clear: () => clearTimeout(handle) };
    },
    random,
  };
}

/** A virtual clock for tests: time moves only when {@link ManualClock.advance} is called. */
export interface ManualClock extends Clock {
  /** Moves time forward, firing due timers in deadline order. */
  advance(ms: number): void;
  /** Number of timers waiting. */
  pending(): number;
  /**
   * Moves time forward at once, then fires every timer that came due, late, with the clock
   * already at the end: what an event-loop stall of `ms` looks like to the program.
   */
  stall(ms: number): void;
}

/**
 * Creates a {@link ManualClock} starting at `start` (ms since the epoch).
 *
 * @example
 * const clock = manualClock({ seed: 1 }); clock.setTimer(fn, 100); clock.advance(100); // fn ran
 */
export function manualClock(options: { start?: number; seed?: number } = {}): ManualClock {
  let time = 0;
  const epoch = options.start ?? 1_700_000_000_000;
  let sequence = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const random = seededRandom(options.seed ?? 1);
  return {
    now: () => epoch + time,
    monotonic: () => time,
    random,
    setTimer(fn, ms) {
      const id = sequence++;
      timers.set(id, { at: time + Math.max(0, ms), fn });
      return { clear: () => timers.delete(id) };
    },
    advance(ms) {
      const target = time + ms;
      for (;;) {
        let nextId = -1;
        let nextAt = Infinity;
        for (const [id, timer] of timers) {
          if (timer.at <= target && timer.at < nextAt) {
            nextAt = timer.at;
            nextId = id;
          }
        }
        if (nextId < 0) break;
        const timer = timers.get(nextId);
        timers.delete(nextId);
        time = Math.max(time, nextAt);
        timer?.fn();
      }
      time = target;
    },
    stall(ms) {
      time += ms;
      this.advance(0);
    },
    pending: () => timers.size,
  };
}

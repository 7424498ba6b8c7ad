import type { Clock } from "../ports/index.js";

/** How the serving side finds its concurrency limit. */
export type ConcurrencyLimitOptions =
  /**
   * Additive increase, multiplicative decrease: +1 after a window of calls within the latency
   * target, times `backoff` when a call overruns it or fails from overload.
   */
  | {
      readonly type: "aimd";
      readonly initial?: number;
      readonly min?: number;
      readonly max?: number;
      /** Latency above which a call counts as a sign of overload (ms). */
      readonly latencyTargetMs: number;
      readonly backoff?: number;
    }
  /**
   * Gradient (as Netflix's concurrency-limits): limit follows minRTT / recentRTT, so queueing
   * delay shrinks it before calls time out. The floor is kept per action, so a node serving fast
   * reads beside slow durable writes compares each call with its own kind.
   */
  | {
      readonly type: "gradient";
      readonly initial?: number;
      readonly min?: number;
      readonly max?: number;
      /** Extra queue allowed on top of the gradient's estimate; default sqrt(limit). */
      readonly queueSize?: number;
      /** Recent latency may reach this multiple of the floor before the limit shrinks; default 2. */
      readonly tolerance?: number;
    }
  /** A fixed limit. */
  | { readonly type: "fixed"; readonly limit: number };

/**
 * An adaptive limit on calls in flight on the serving side. When full, the node sheds at once
 * (RESOURCE_EXHAUSTED) instead of queueing work that would only time out.
 */
export class ConcurrencyLimit {
  private readonly clock: Clock;
  private readonly options: ConcurrencyLimitOptions;
  private inFlight = 0;
  private value: number;
  private readonly min: number;
  private readonly max: number;
  // AIMD
  private goodInWindow = 0;
  // Gradient: the latency floor per action, and the smoothed ratio of latency to floor.
  private readonly minRtt = new Map<string, number>();
  private smoothedRatio = 0;
  private minRttResetAt = 0;

  constructor(clock: Clock, options: ConcurrencyLimitOptions) {
    this.clock = clock;
    this.options = options;
    if (options.type === "fixed") {
      this.value = options.limit;
      this.min = options.limit;
      this.max = options.limit;
    } else {
      this.min = options.min ?? 1;
      this.max = options.max ?? 1_000;
      this.value = Math.min(this.max, Math.max(this.min, options.initial ?? 20));
    }
  }

  /** The current limit. */
  get limit(): number {
    return Math.floor(this.value);
  }

  get active(): number {
    return this.inFlight;
  }

  tryAcquire(): boolean {
    if (this.inFlight >= Math.floor(this.value)) return false;
    this.inFlight++;
    return true;
  }

  /**
   * Ends a call admitted by {@link tryAcquire}; `overloaded` marks failures caused by load, `kind`
   * names the action (latency floors are kept per kind; at most 1 000 kinds). With `sample`
   * false the call frees its slot but its latency is not measured: a call that failed fast (a
   * declined card, a missing record) says nothing about queueing, and as an action's latency
   * floor it would make every successful call of that action look overloaded.
   */
  release(latencyMs: number, overloaded: boolean, kind = "", sample = true): void {
    this.inFlight--;
    if (!sample && !overloaded) return;
    const options = this.options;
    switch (options.type) {
      case "fixed":
        return;
      case "aimd": {
        if (overloaded || latencyMs > options.latencyTargetMs) {
          this.value = Math.max(this.min, this.value * (options.backoff ?? 0.9));
          this.goodInWindow = 0;
        } else if (++this.goodInWindow >= this.value) {
          this.goodInWindow = 0;
          this.value = Math.min(this.max, this.value + 1);
        }
        return;
      }
      case "gradient": {
        const now = this.clock.monotonic();
        if (now >= this.minRttResetAt) {
          // Forget the floors now and then, so a permanently slower service is re-learned.
          this.minRtt.clear();
          this.minRttResetAt = now + 30_000;
        }
        // Below a millisecond, differences are noise, not queueing.
        const rtt = Math.max(1, latencyMs);
        let floor = this.minRtt.get(kind);
        if (floor === undefined || rtt < floor) {
          floor = rtt;
          if (this.minRtt.size < 1_000 || this.minRtt.has(kind)) this.minRtt.set(kind, rtt);
        }
        const ratio = rtt / floor;
        this.smoothedRatio =
          this.smoothedRatio === 0 ? ratio : this.smoothedRatio * 0.9 + ratio * 0.1;
        const tolerance = options.tolerance ?? 2;
        const gradient = Math.max(0.5, Math.min(1, tolerance / this.smoothedRatio));
        const queue = options.queueSize ?? Math.sqrt(this.value);
        const next = overloaded ? this.value * 0.9 : this.value * gradient + queue;
        this.value = Math.min(this.max, Math.max(this.min, this.value * 0.8 + next * 0.2));
        return;
      }
    }
  }
}

import type { Clock } from "../ports/index.js";

/** Options for {@link RateLimiter}. */
export interface RateLimitOptions {
  /** Sustained rate per key (tokens added per second). */
  readonly perSecond: number;
  /** Bucket size: the burst a key may spend at once. Default: `perSecond`. */
  readonly burst?: number;
  /** Most keys tracked at once; the least recently used are forgotten (start full again). */
  readonly maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets per key (caller identity, action, …), refilled lazily from the Clock port. Memory
 * is bounded by `maxKeys` (least recently used keys are dropped).
 */
export class RateLimiter {
  private readonly clock: Clock;
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(clock: Clock, options: RateLimitOptions) {
    this.clock = clock;
    this.rate = options.perSecond / 1000;
    this.burst = options.burst ?? options.perSecond;
    this.maxKeys = options.maxKeys ?? 10_000;
  }

  /** Takes one token for `key`; false means the key is over its rate. */
  tryTake(key: string): boolean {
    const now = this.clock.monotonic();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next();
        if (oldest.done !== true) this.buckets.delete(oldest.value);
      }
    } else {
      this.buckets.delete(key); // re-insert below keeps the map in recency order
      bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.rate);
      bucket.at = now;
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Milliseconds until `key` has a token again (0 when it has one now). */
  retryAfterMs(key: string): number {
    const bucket = this.buckets.get(key);
    if (bucket === undefined || bucket.tokens >= 1) return 0;
    return Math.ceil((1 - bucket.tokens) / this.rate);
  }
}

import type { Clock } from "../ports/index.js";

/** Options for {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries allowed as a fraction of first attempts (0.1 = at most 10% extra load). */
  readonly ratio: number;
  /** Retries always allowed per second, so a quiet client can still retry. */
  readonly minPerSecond: number;
  /** How long a deposit counts (ms); default 10 000. */
  readonly ttlMs?: number;
}

/**
 * A retry budget in the style of Finagle's and gRPC's: every first attempt deposits `ratio`
 * tokens, every retry withdraws one, and deposits expire after `ttlMs`. Under a 100% failure
 * storm, retries stay near `ratio` of the load instead of multiplying it.
 */
export class RetryBudget {
  private readonly clock: Clock;
  private readonly ratio: number;
  private readonly minPerSecond: number;
  private readonly ttlMs: number;
  /** Deposits and withdrawals per one-second slot over the ttl, as a ring. */
  private readonly deposits: Float64Array;
  private readonly withdrawals: Float64Array;
  private slot = -1;

  constructor(clock: Clock, options: RetryBudgetOptions) {
    this.clock = clock;
    this.ratio = options.ratio;
    this.minPerSecond = options.minPerSecond;
    this.ttlMs = options.ttlMs ?? 10_000;
    const slots = Math.max(1, Math.ceil(this.ttlMs / 1000));
    this.deposits = new Float64Array(slots);
    this.withdrawals = new Float64Array(slots);
  }

  /** Records a first attempt; `now` is the clock's monotonic time when the caller has it. */
  deposit(now = this.clock.monotonic()): void {
    const index = this.advance(now);
    this.deposits[index] = (this.deposits[index] as number) + this.ratio;
  }

  /** Takes one retry token if the budget allows; false means "do not retry". */
  tryWithdraw(): boolean {
    const index = this.advance(this.clock.monotonic());
    let balance = this.minPerSecond * (this.ttlMs / 1000);
    for (let i = 0; i < this.deposits.length; i++) {
      balance += (this.deposits[i] as number) - (this.withdrawals[i] as number);
    }
    if (balance < 1) return false;
    this.withdrawals[index] = (this.withdrawals[index] as number) + 1;
    return true;
  }

  private advance(monotonic: number): number {
    const now = Math.floor(monotonic / 1000);
    const n = this.deposits.length;
    if (this.slot < 0) this.slot = now;
    if (now !== this.slot) {
      const steps = Math.min(n, now - this.slot);
      for (let i = 1; i <= steps; i++) {
        const index = (((this.slot + i) % n) + n) % n;
        this.deposits[index] = 0;
        this.withdrawals[index] = 0;
      }
      this.slot = now;
    }
    return ((now % n) + n) % n;
  }
}

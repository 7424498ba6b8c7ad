import { CircuitState, ConsecutiveBreaker, CountBreaker, type IBreaker } from "cockatiel";
import type { Clock } from "../ports/index.js";

/** When a breaker trips. */
export type BreakerStrategy =
  /** After `threshold` failures in a row. */
  | { readonly type: "consecutive"; readonly threshold: number }
  /** When more than `threshold` (0..1) of the last `window` calls failed (after `minimumCalls`). */
  | {
      readonly type: "failure-rate";
      readonly threshold: number;
      readonly window: number;
      readonly minimumCalls?: number;
    };

/** Options for {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  readonly strategy: BreakerStrategy;
  /** How long the breaker stays open before letting a probe through (ms). */
  readonly halfOpenAfterMs: number;
  /**
   * Longest open period after repeated failed probes (ms): each failed probe doubles the wait, up
   * to this. Default `halfOpenAfterMs`: a constant period.
   */
  readonly maxHalfOpenAfterMs?: number;
}

/** A breaker's state, as observers see it. */
export type BreakerState =
  | { readonly type: "closed" }
  | { readonly type: "open"; readonly until: number }
  | { readonly type: "half-open" };

/**
 * A circuit breaker driven by the Clock port. The trip decision comes from cockatiel's breaker
 * strategies (consecutive failures, failure rate over a count window); the state machine, timing
 * and half-open probing are ours, so a virtual clock drives them in tests and simulation.
 *
 * Use it without wrapping a promise: `allow()` before a call, then `success()` or `failure()`.
 */
export class CircuitBreaker {
  private readonly clock: Clock;
  private readonly strategy: IBreaker;
  private readonly halfOpenAfterMs: number;
  private readonly maxHalfOpenAfterMs: number;
  private readonly onChange: (state: BreakerState) => void;
  private current: BreakerState = { type: "closed" };
  private openedTimes = 0;
  private probing = false;

  constructor(
    clock: Clock,
    options: CircuitBreakerOptions,
    onChange: (state: BreakerState) => void = () => {},
  ) {
    this.clock = clock;
    this.strategy =
      options.strategy.type === "consecutive"
        ? new ConsecutiveBreaker(options.strategy.threshold)
        : new CountBreaker({
            threshold: options.strategy.threshold,
            size: options.strategy.window,
            minimumNumberOfCalls: options.strategy.minimumCalls ?? options.strategy.window,
          });
    this.halfOpenAfterMs = options.halfOpenAfterMs;
    this.maxHalfOpenAfterMs = Math.max(
      options.halfOpenAfterMs,
      options.maxHalfOpenAfterMs ?? options.halfOpenAfterMs,
    );
    this.onChange = onChange;
  }

  get state(): BreakerState {
    if (this.current.type === "open" && this.clock.monotonic() >= this.current.until) {
      this.transition({ type: "half-open" });
    }
    return this.current;
  }

  /** Whether {@link allow} would let a call through now, without claiming the probe. */
  admits(): boolean {
    const state = this.state;
    return state.type === "closed" || (state.type === "half-open" && !this.probing);
  }

  /** True when a call may go through now; in half-open, only one probe at a time may. */
  allow(): boolean {
    const state = this.state;
    switch (state.type) {
      case "closed":
        return true;
      case "open":
        return false;
      case "half-open":
        if (this.probing) return false;
        this.probing = true;
        return true;
    }
  }

  success(): void {
    const state = this.current;
    this.strategy.success(cockatielState(state));
    if (state.type === "half-open") {
      this.probing = false;
      this.openedTimes = 0;
      this.transition({ type: "closed" });
    }
  }

  failure(): void {
    const state = this.current;
    const trip = this.strategy.failure(cockatielState(state));
    if (state.type === "half-open" || (state.type === "closed" && trip)) {
      this.probing = false;
      const wait = Math.min(this.maxHalfOpenAfterMs, this.halfOpenAfterMs * 2 ** this.openedTimes);
      this.openedTimes++;
      this.transition({ type: "open", until: this.clock.monotonic() + wait });
    }
  }

  /** Releases a half-open probe slot that ended without a verdict (cancelled, say). */
  release(): void {
    this.probing = false;
  }

  private transition(next: BreakerState): void {
    this.current = next;
    this.onChange(next);
  }
}

function cockatielState(state: BreakerState): CircuitState {
  switch (state.type) {
    case "closed":
      return CircuitState.Closed;
    case "open":
      return CircuitState.Open;
    case "half-open":
      return CircuitState.HalfOpen;
  }
}

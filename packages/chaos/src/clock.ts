import type { Clock } from "@strata/core";

/** The node's clock port: the system clock with a wall-clock offset that can change at run time. */
export function skewedClock(base: Clock, skew: { ms: number }): Clock {
  return {
    now: () => base.now() + skew.ms,
    monotonic: () => base.monotonic(),
    setTimer: (fn, ms) => base.setTimer(fn, ms),
    random: () => base.random(),
  };
}

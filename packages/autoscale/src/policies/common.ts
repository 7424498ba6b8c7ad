import type { Clock } from "@strata/core";
import type { ScalingBounds, ScalingDecision, ServiceSignals } from "../types.js";
import type { ScalingMetric } from "./config.js";

/** What every policy is built with. */
export interface PolicyOptions {
  /** Time for cooldowns and windows: the clock's wall time when `decide` is called. */
  readonly clock: Clock;
}

/** Keeps `n` within the bounds. */
export function clampReplicas(n: number, bounds: ScalingBounds): number {
  return Math.min(bounds.maxReplicas, Math.max(bounds.minReplicas, n));
}

/** The metric a reactive rule reads, 0..1 (non-finite readings count as 0). */
export function readMetric(signals: ServiceSignals, metric: ScalingMetric): number {
  const value = metric === "cpu" ? signals.cpu : signals.utilisation;
  return Number.isFinite(value) ? Math.max(0, value) : 0;
}

/** `ceil`, forgiving the rounding error of a product that should have been an integer. */
export function ceilTolerant(x: number): number {
  return Math.ceil(x - 1e-9);
}

/** Two decimals, for reasons. */
export const f2 = (x: number): string => x.toFixed(2);

/** Remembers the last change and answers whether a cooldown still holds a change back. */
export class Pacing {
  #lastChange = Number.NEGATIVE_INFINITY;
  readonly #bounds: ScalingBounds;

  constructor(bounds: ScalingBounds) {
    this.#bounds = bounds;
  }

  /** Milliseconds the cooldown for a change in this direction still has to run; 0 when none. */
  wait(direction: "out" | "in", now: number): number {
    const cooldown =
      direction === "out" ? this.#bounds.scaleOutCooldownMs : this.#bounds.scaleInCooldownMs;
    return Math.max(0, this.#lastChange + cooldown - now);
  }

  changed(now: number): void {
    this.#lastChange = now;
  }
}

/**
 * The HPA's stabilisation: a scale-down goes only as low as the highest recommendation within
 * the down window, a scale-up only as high as the lowest within the up window, so a brief dip
 * or spike moves nothing and the replica count cannot oscillate faster than the windows.
 */
export class Stabiliser {
  readonly #down: number;
  readonly #up: number;
  readonly #history: Array<{ at: number; replicas: number }> = [];

  constructor(options: { downWindowMs: number; upWindowMs: number }) {
    this.#down = options.downWindowMs;
    this.#up = options.upWindowMs;
  }

  /** Records `recommendation` and returns what `current` may move to now. */
  stabilise(recommendation: number, current: number, now: number): number {
    const horizon = now - Math.max(this.#down, this.#up);
    while (this.#history.length > 0 && (this.#history[0]?.at ?? now) <= horizon) {
      this.#history.shift();
    }
    // A window covers (now − window, now]: a window of 0 is the current recommendation alone.
    let downRecommendation = recommendation;
    let upRecommendation = recommendation;
    for (const entry of this.#history) {
      if (entry.at > now - this.#down) {
        downRecommendation = Math.max(downRecommendation, entry.replicas);
      }
      if (entry.at > now - this.#up) upRecommendation = Math.min(upRecommendation, entry.replicas);
    }
    this.#history.push({ at: now, replicas: recommendation });
    let desired = current;
    if (desired < upRecommendation) desired = upRecommendation;
    if (desired > downRecommendation) desired = downRecommendation;
    return desired;
  }
}

/**
 * Applies the bounds and cooldowns to a policy's wish and builds the decision. A count outside
 * the bounds is corrected whatever the cooldowns say; otherwise a change inside its cooldown
 * becomes a hold that says how long the cooldown has left.
 */
export function finish(options: {
  readonly signals: ServiceSignals;
  readonly policy: string;
  readonly bounds: ScalingBounds;
  readonly pacing: Pacing;
  readonly now: number;
  readonly wanted: number;
  readonly why: string;
}): ScalingDecision {
  const { signals, bounds, pacing, now, why } = options;
  const current = signals.replicas;
  const decision = (desired: number, reason: string): ScalingDecision => {
    if (desired !== current) pacing.changed(now);
    return { service: signals.service, at: now, current, desired, reason, policy: options.policy };
  };
  if (current < bounds.minReplicas) {
    return decision(
      bounds.minReplicas,
      `${current} replicas is below the minimum of ${bounds.minReplicas}: scaling to ${bounds.minReplicas}.`,
    );
  }
  if (current > bounds.maxReplicas) {
    return decision(
      bounds.maxReplicas,
      `${current} replicas is above the maximum of ${bounds.maxReplicas}: scaling to ${bounds.maxReplicas}.`,
    );
  }
  const wanted = clampReplicas(options.wanted, bounds);
  if (wanted === current) {
    const capped =
      options.wanted > bounds.maxReplicas
        ? ` (capped at the maximum of ${bounds.maxReplicas})`
        : options.wanted < bounds.minReplicas
          ? ` (held at the minimum of ${bounds.minReplicas})`
          : "";
    return decision(current, `${why}: holding at ${current}${capped}.`);
  }
  const direction = wanted > current ? "out" : "in";
  const wait = pacing.wait(direction, now);
  if (wait > 0) {
    return decision(
      current,
      `${why}: ${current} → ${wanted} held back, scale-${direction} cooldown has ${Math.ceil(wait / 1000)} s left.`,
    );
  }
  return decision(wanted, `${why}: ${current} → ${wanted}.`);
}

/**
 * A service at zero replicas reports no utilisation; any traffic or backlog wakes it to
 * `replicas`. Returns the reason when it should wake, undefined otherwise.
 */
export function wakeReason(signals: ServiceSignals): string | undefined {
  if (signals.replicas > 0) return undefined;
  if (signals.requestsPerSecond > 0) {
    return `no replicas while ${f2(signals.requestsPerSecond)} requests per second arrive`;
  }
  if (signals.backlog > 0) return `no replicas while ${signals.backlog} events wait`;
  return undefined;
}

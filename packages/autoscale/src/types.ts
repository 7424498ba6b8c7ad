/**
 * The vocabulary every part of autoscaling shares: what a service looks like to a policy
 * (signals), what a policy answers (a decision), and what carries a decision out (an actuator).
 */

/** One service's load as the runtime measures it, aggregated across the nodes serving it. */
export interface ServiceSignals {
  readonly service: string;
  /** When the signals were taken (ms, the clock port's wall time). */
  readonly at: number;
  /** Replicas serving it now (nodes that announced the service and are ready). */
  readonly replicas: number;
  /** Calls per second it served over the window, all replicas together. */
  readonly requestsPerSecond: number;
  /**
   * In-flight calls against the replicas' concurrency limits (mean over replicas): 0..1 while
   * nothing is shed; above 1 when replicas shed calls, estimating the offered load.
   */
  readonly utilisation: number;
  /** Process CPU use, 0..1 of one core (mean over replicas). */
  readonly cpu: number;
  /** Event-loop delay p99 (ms, max over replicas). */
  readonly eventLoopDelayMs: number;
  /** Events waiting for its consumer groups (sum), when it consumes events. */
  readonly backlog: number;
  /** Age of the oldest waiting event (ms), when it consumes events. */
  readonly lagMs: number;
  /** Fastest SLO burn rate among its objectives (1 = burning exactly the budget). */
  readonly sloBurn: number;
  /** Latency p99 over the window (ms, max over replicas). */
  readonly p99Ms: number;
}

/** Bounds and pacing every policy keeps. */
export interface ScalingBounds {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** No scale-out sooner than this after the last change (ms). */
  readonly scaleOutCooldownMs: number;
  /** No scale-in sooner than this after the last change (ms). */
  readonly scaleInCooldownMs: number;
}

/** What a policy wants for a service now. */
export interface ScalingDecision {
  readonly service: string;
  readonly at: number;
  readonly current: number;
  /** Replicas wanted (already within bounds); equal to `current` to hold. */
  readonly desired: number;
  /** Why, in a sentence a person reads in a log ("utilisation 0.91 > 0.80: +2"). */
  readonly reason: string;
  /** The policy that decided (`threshold`, `target-tracking`, `predictive`). */
  readonly policy: string;
}

/**
 * A scaling policy: pure given its inputs and its own remembered history, so that the same
 * policy drives the live autoscaler and the simulator.
 */
export interface ScalingPolicy {
  readonly name: string;
  /** Called once per evaluation period with fresh signals; returns the decision. */
  decide(signals: ServiceSignals): ScalingDecision;
}

/** Carries decisions out: starts and stops replicas. */
export interface Actuator {
  readonly name: string;
  /** Replicas the actuator currently runs (or asked for) for the service. */
  replicas(service: string): Promise<number>;
  /** Asks for `replicas` replicas; resolves once the request is accepted (not when they serve). */
  scale(service: string, replicas: number): Promise<void>;
}

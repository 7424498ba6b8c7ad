import type { BreakerState } from "../resilience/circuit-breaker.js";
import type { ActionSnapshot } from "./call-window.js";
import type { SloStatus } from "./slo.js";

/**
 * What one node reports about itself to tools (`strata-admin.telemetry`, `strata top`): live call
 * statistics per action over a short window, breakers, SLO status and process health.
 */
export interface TelemetrySnapshot {
  readonly node: string;
  readonly region: string;
  readonly status: string;
  readonly inFlight: number;
  /** The serving-side concurrency limit now, when the node has one. */
  readonly concurrencyLimit?: number;
  /** CPU the node's process used lately, as a share of one core. */
  readonly cpu?: number;
  /** Length of the window `actions` cover. */
  readonly windowSeconds: number;
  readonly actions: readonly ActionSnapshot[];
  readonly breakers: ReadonlyArray<{
    readonly scope: "node" | "action";
    readonly target: string;
    readonly state: BreakerState;
  }>;
  readonly slos: readonly SloStatus[];
  readonly heapUsedBytes: number;
  readonly eventLoopDelayP99Ms: number;
}

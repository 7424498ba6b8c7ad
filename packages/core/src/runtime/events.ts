import type { ErrorCode } from "../errors/index.js";
import type { BreakerState } from "../resilience/circuit-breaker.js";
import type { SloAlertEvent } from "../observability/slo.js";
import type { MembershipEvent } from "./membership.js";

/** Lifecycle state of a node. */
export type NodeState = "created" | "starting" | "running" | "draining" | "stopped";

/** What the call path reports: every policy decision and state change. */
export type ResilienceEvent =
  | {
      readonly type: "breaker";
      /** `node` breakers guard one target node; `action` breakers guard one action everywhere. */
      readonly scope: "node" | "action";
      readonly target: string;
      readonly state: BreakerState;
    }
  | {
      readonly type: "retry";
      readonly service: string;
      readonly action: string;
      /** The attempt about to start (2 = first retry). */
      readonly attempt: number;
      readonly code: ErrorCode;
      readonly delayMs: number;
    }
  | {
      readonly type: "hedge";
      readonly service: string;
      readonly action: string;
      readonly attempt: number;
    }
  | {
      readonly type: "rejected";
      readonly service: string;
      readonly action: string;
      readonly reason: "bulkhead" | "circuit-open" | "retry-budget";
    }
  | {
      readonly type: "shed";
      readonly service: string;
      readonly action: string;
      readonly reason: "concurrency" | "rate-limit";
      readonly limit: number;
    }
  | {
      readonly type: "ejected";
      readonly node: string;
      readonly reason: "errors" | "latency";
      readonly forMs: number;
    }
  | { readonly type: "readmitted"; readonly node: string }
  | { readonly type: "health"; readonly ready: boolean; readonly failing: readonly string[] };

/** What a node reports to observers. */
export type NodeEvent =
  | MembershipEvent
  | ResilienceEvent
  | SloAlertEvent
  | { readonly type: "state"; readonly state: NodeState };

/** Counters a node keeps for its own activity; read them with `node.stats()`. */
export interface NodeStats {
  /** Logical calls this node made (attempts are counted separately). */
  calls: number;
  succeeded: number;
  failed: number;
  attempts: number;
  retries: number;
  hedges: number;
  fallbacks: number;
  /** Calls refused on the calling side by a bulkhead. */
  bulkheadRejected: number;
  /** Calls refused on the calling side because every candidate's breaker was open. */
  circuitRejected: number;
  /** Retries the retry budget refused. */
  budgetExhausted: number;
  breakerOpened: number;
  breakerHalfOpened: number;
  breakerClosed: number;
  ejections: number;
  /** Calls this node admitted as their server. */
  served: number;
  /** Calls this node shed as their server (concurrency limit). */
  shed: number;
  /** Calls this node refused as their server (rate limit). */
  rateLimited: number;
  /** Calls an injected fault touched. */
  faults: number;
  /** Calls the authorizer allowed, and denied. */
  authorized: number;
  denied: number;
}

/** Fresh, zeroed counters. */
export function emptyStats(): NodeStats {
  return {
    calls: 0,
    succeeded: 0,
    failed: 0,
    attempts: 0,
    retries: 0,
    hedges: 0,
    fallbacks: 0,
    bulkheadRejected: 0,
    circuitRejected: 0,
    budgetExhausted: 0,
    breakerOpened: 0,
    breakerHalfOpened: 0,
    breakerClosed: 0,
    ejections: 0,
    served: 0,
    shed: 0,
    rateLimited: 0,
    faults: 0,
    authorized: 0,
    denied: 0,
  };
}

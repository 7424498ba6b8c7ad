import type { Logger, TraceContext } from "../ports/index.js";
import type { CallPolicies } from "../resilience/policy.js";
import type { Client, ClientOptions } from "../service/client.js";
import type { ServiceContract, ServiceContractSpec } from "../service/define-service.js";

/**
 * Who is calling. The slot is filled only by the runtime from authenticated sources (the security
 * block: mTLS workload identity, verified tokens); it is never read from a field a client can set.
 */
export type Principal =
  | { readonly kind: "node"; readonly id: string }
  | { readonly kind: "workload"; readonly id: string }
  | {
      readonly kind: "user";
      readonly subject: string;
      readonly claims: Readonly<Record<string, unknown>>;
    };

/** How a router chooses among the nodes that serve a service. */
export type RoutingStrategy = "p2c" | "round-robin";

/** Options for one call. */
export interface CallOptions {
  /** Time budget for the call; capped by the parent call's remaining budget. */
  readonly timeoutMs?: number;
  /** Cancels the call; the callee's `context.signal` aborts too. */
  readonly signal?: AbortSignal;
  /** Makes a non-idempotent call safe to retry; reaches the callee as `context.idempotencyKey`. */
  readonly idempotencyKey?: string;
  /** String metadata for the callee (merged over the parent call's). */
  readonly meta?: Readonly<Record<string, string>>;
  /** Routes by consistent hashing on this key (overrides the action's declared shard key). */
  readonly shardKey?: string;
  /** Sends the call to this node, bypassing the router. */
  readonly node?: string;
  /** Sends the call to the service's queue group and lets the transport pick a member. */
  readonly via?: "router" | "group";
  /** Policies for this call only, merged over the client's, service's and node's. */
  readonly policies?: CallPolicies;
  /**
   * W3C trace context to carry (for example from an incoming HTTP request's `traceparent`);
   * nested calls inherit their parent's when this is absent.
   */
  readonly trace?: TraceContext;
}

/** What a handler knows about the call it serves. */
export interface CallContext {
  readonly service: string;
  readonly action: string;
  /** Id of the node serving the call. */
  readonly nodeId: string;
  /** Id of the calling node. */
  readonly callerNode: string;
  /** The authenticated principal, when the security block established one. */
  readonly principal: Principal | undefined;
  /** The calling workload (a SPIFFE ID), when a signed call envelope proved it. */
  readonly workload: string | undefined;
  /** Monotonic time (ms, this node's clock) by which the call must finish. */
  readonly deadline: number;
  /** Aborts when the deadline passes, the caller cancels, or the node stops. */
  readonly signal: AbortSignal;
  readonly trace: TraceContext | undefined;
  readonly meta: Readonly<Record<string, string>>;
  readonly idempotencyKey: string | undefined;
  readonly logger: Logger;
  /** Milliseconds left before the deadline (never negative). */
  remainingMs(): number;
  /** A client whose calls inherit this call's deadline, cancellation, trace, meta and principal. */
  client<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options?: ClientOptions,
  ): Client<S>;
}

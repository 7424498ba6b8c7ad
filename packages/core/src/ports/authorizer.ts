import type { Principal } from "../runtime/context.js";

/** What an authorizer is asked about one call, after its input was validated. */
export interface AuthorizationRequest {
  /**
   * Who calls, as the runtime authenticated them; undefined when nothing did (no mTLS, no token).
   * Never taken from a field a client can set.
   */
  readonly principal: Principal | undefined;
  readonly service: string;
  readonly action: string;
  /** The validated input (resources are derived from declared fields of it). */
  readonly input: unknown;
  /** The calling node's id as the transport reported it (not an authenticated identity). */
  readonly callerNode: string;
  /**
   * The calling workload (a SPIFFE ID) when a signed envelope proved it, also when the principal
   * is a user that workload vouches for; undefined otherwise.
   */
  readonly workload?: string | undefined;
}

/** An authorizer's answer. A denial's reason is logged and counted, not sent to the caller. */
export type AuthorizationDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/**
 * The authorization port: asked before every handler runs (the security block implements it
 * with Cedar policies). An authorizer that throws, or answers anything but a decision, denies.
 */
export interface Authorizer {
  authorize(request: AuthorizationRequest): AuthorizationDecision | Promise<AuthorizationDecision>;
}

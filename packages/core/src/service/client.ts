import type { CallOptions, RoutingStrategy } from "../runtime/context.js";
import type { ActionInput, ActionOutput, ServiceContractSpec } from "./define-service.js";

/** Options that apply to every call made through one client. */
export interface ClientOptions {
  /** Semver range of acceptable service versions; default `^<contract version>`. */
  readonly version?: string;
  readonly strategy?: RoutingStrategy;
  /** Call a node on this very node when it serves the service (default true). */
  readonly preferLocal?: boolean;
  /** Prefer nodes in the caller's region and fall back to others (default true). */
  readonly regionAffinity?: boolean;
  /** Default time budget per call. */
  readonly timeoutMs?: number;
}

/**
 * A typed client for a service: one method per action, with input and output types inferred from
 * the contract.
 */
export type Client<S extends ServiceContractSpec> = {
  readonly [K in keyof S["actions"]]: (
    input: ActionInput<S["actions"][K]>,
    options?: CallOptions,
  ) => Promise<ActionOutput<S["actions"][K]>>;
};

import type { StandardSchemaV1 } from "@standard-schema/spec";
import semver from "semver";
import { StrataError } from "../errors/index.js";
import type { CallContext } from "../runtime/context.js";

/** Any Standard Schema. */
export type Schema = StandardSchemaV1;

/** One action of a service contract. */
export interface ActionContract<I extends Schema = Schema, O extends Schema = Schema> {
  readonly input: I;
  readonly output: O;
  /**
   * True when running the action twice with the same input has the effect of running it once.
   * Only idempotent actions (or calls that carry an idempotency key) are ever retried or hedged.
   */
  readonly idempotent?: boolean;
  /**
   * Derives the shard key from the input. Calls with a shard key go to the node that owns the key
   * on the consistent-hash ring of the service's nodes.
   */
  shardKey?(input: StandardSchemaV1.InferOutput<I>): string;
  readonly description?: string;
}

/**
 * Declares one action with its schemas inferred, so that `shardKey` gets the parsed input's
 * type (inside `defineService` alone, TypeScript cannot type that parameter).
 *
 * @example
 * reserve: action({ input: Reserve, output: Reservation, shardKey: (input) => input.sku }),
 */
export function action<I extends Schema, O extends Schema>(
  spec: ActionContract<I, O>,
): ActionContract<I, O> {
  return spec;
}

/** The shape of a service contract as written by its author. */
export interface ServiceContractSpec {
  readonly name: string;
  /** Semantic version of the contract; callers select compatible versions with a range. */
  readonly version: string;
  readonly actions: Readonly<Record<string, ActionContract>>;
  /** Events the service publishes, by name, with their payload schemas. */
  readonly events?: Readonly<Record<string, Schema>>;
  readonly description?: string;
}

/** What a caller passes to an action. */
export type ActionInput<A extends ActionContract> = StandardSchemaV1.InferInput<A["input"]>;
/** What a caller gets back from an action. */
export type ActionOutput<A extends ActionContract> = StandardSchemaV1.InferOutput<A["output"]>;
/** What an action's handler receives (the input after parsing). */
export type HandlerInput<A extends ActionContract> = StandardSchemaV1.InferOutput<A["input"]>;
/** What an action's handler returns. */
export type HandlerOutput<A extends ActionContract> = StandardSchemaV1.InferInput<A["output"]>;

/**
 * One action's handler. Declared as a method and read back as a function type so that its
 * parameter is checked bivariantly: without that, the implementation of a specific contract is
 * not assignable to the general `ServiceImplementation` that nodes accept.
 */
type Handler<A extends ActionContract> = {
  handle(
    input: HandlerInput<A>,
    context: CallContext,
  ): Promise<HandlerOutput<A>> | HandlerOutput<A>;
}["handle"];

/** The handlers that implement a contract: one per action, typed from the contract. */
export type Handlers<S extends ServiceContractSpec> = {
  readonly [K in keyof S["actions"]]: Handler<S["actions"][K]>;
};

/** Lifecycle hooks of an implementation. */
export interface ServiceHooks {
  /** Runs when the node starts (before it announces the service). */
  readonly started?: (signal: AbortSignal) => Promise<void> | void;
  /** Runs after the node drained (no calls in flight). */
  readonly stopped?: () => Promise<void> | void;
}

/** What every contract has, whatever its types: what nodes and tools read. */
export interface ContractInfo {
  readonly name: string;
  readonly version: string;
  readonly actions: Readonly<Record<string, ActionContract>>;
  readonly events: Readonly<Record<string, Schema>>;
  readonly description: string | undefined;
}

/**
 * An implementation of any contract: what a node serves. Every `ServiceImplementation<S>` is one;
 * use this type for lists of implementations of different services.
 */
export interface AnyServiceImplementation {
  readonly contract: ContractInfo;
  readonly handlers: object;
  readonly hooks: ServiceHooks;
}

/** A contract with handlers bound to it, ready to be served by a node. */
export interface ServiceImplementation<
  S extends ServiceContractSpec = ServiceContractSpec,
> extends AnyServiceImplementation {
  readonly contract: ServiceContract<S>;
  readonly handlers: Handlers<S>;
}

/** A service contract: the single source of types for its callers and its implementation. */
export interface ServiceContract<
  S extends ServiceContractSpec = ServiceContractSpec,
> extends ContractInfo {
  readonly name: S["name"];
  readonly version: string;
  readonly actions: S["actions"];
  readonly events: NonNullable<S["events"]>;
  readonly description: string | undefined;
  /** Binds handlers to this contract; their input and output types come from the schemas. */
  implement(handlers: Handlers<S>, hooks?: ServiceHooks): ServiceImplementation<S>;
}

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const ACTION = /^[A-Za-z][A-Za-z0-9_]{0,62}$/;

function isSchema(value: unknown): value is Schema {
  return (
    typeof value === "object" &&
    value !== null &&
    "~standard" in value &&
    typeof (value as Schema)["~standard"].validate === "function"
  );
}

/**
 * Declares a service contract. Clients and handlers are typed from it with no generics written by
 * hand.
 *
 * @example
 * const catalog = defineService({
 *   name: "catalog",
 *   version: "1.0.0",
 *   actions: { get: { input: z.object({ id: z.string() }), output: Product, idempotent: true } },
 * });
 * const impl = catalog.implement({ get: async ({ id }) => products.get(id) });
 */
export function defineService<const S extends ServiceContractSpec>(spec: S): ServiceContract<S> {
  if (!NAME.test(spec.name)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `service name "${spec.name}" must match ${NAME.source} (lowercase letters, digits, dashes)`,
    );
  }
  if (semver.valid(spec.version) === null) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `service ${spec.name}: version "${spec.version}" is not a semantic version such as 1.0.0`,
    );
  }
  const names = Object.keys(spec.actions);
  if (names.length === 0) {
    throw new StrataError("INVALID_ARGUMENT", `service ${spec.name} declares no actions`);
  }
  for (const name of names) {
    const action = spec.actions[name];
    if (!ACTION.test(name)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `service ${spec.name}: action name "${name}" must match ${ACTION.source}`,
      );
    }
    if (action === undefined || !isSchema(action.input) || !isSchema(action.output)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `service ${spec.name}: action ${name} needs Standard Schema input and output schemas`,
      );
    }
  }
  for (const [name, schema] of Object.entries(spec.events ?? {})) {
    if (!isSchema(schema)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `service ${spec.name}: event ${name} needs a Standard Schema payload schema`,
      );
    }
  }
  const contract: ServiceContract<S> = {
    name: spec.name,
    version: spec.version,
    actions: spec.actions,
    events: spec.events ?? {},
    description: spec.description,
    implement(handlers, hooks = {}) {
      for (const name of names) {
        if (typeof (handlers as Record<string, unknown>)[name] !== "function") {
          throw new StrataError(
            "INVALID_ARGUMENT",
            `service ${spec.name}: no handler for action ${name}`,
          );
        }
      }
      for (const name of Object.keys(handlers)) {
        if (!names.includes(name)) {
          throw new StrataError(
            "INVALID_ARGUMENT",
            `service ${spec.name}: handler ${name} is not an action of the contract`,
          );
        }
      }
      return { contract, handlers, hooks };
    },
  };
  return contract;
}

import { anySchema, defineService } from "@strata/core";
import { PINNED_CONNECTION } from "@strata/nats";

/**
 * The services a chaos node serves, one per workload. Each is a thin layer over a Strata building
 * block as a user would call it, so that the workloads test the blocks, not a test double.
 */

const registerActions = {
  read: {
    input: anySchema<{ key: string }>(),
    output: anySchema<{ value: number | null }>(),
    idempotent: true,
  },
  write: {
    input: anySchema<{ key: string; value: number }>(),
    output: anySchema<{ revision: number }>(),
  },
  /** Fails with FAILED_PRECONDITION, `details.reason: "mismatch"`, when the compare does not hold. */
  cas: {
    input: anySchema<{ key: string; from: number | null; to: number }>(),
    output: anySchema<{ revision: number }>(),
  },
};

/** A register service under a name (one per store, same actions). */
const registerContract = (name: string) =>
  defineService({ name, version: "1.0.0", actions: registerActions });

/** Per-key registers on the strong KV (NATS JetStream KV, R3): read, write, compare-and-set. */
export const registerService = registerContract("chaos-register");

/** The same registers on the PostgreSQL StrongKV adapter (SERIALIZABLE compare-and-set). */
export const pgRegisterService = registerContract("chaos-register-pg");

/**
 * The same registers on a sharded store whose map every node routes by (PostgreSQL groups,
 * the map in PostgreSQL too), plus adding a shard group, which moves slots while clients run.
 */
export const shardedRegisterService = registerContract("chaos-register-sharded");

/** Adds a shard group to the sharded registers (any node may; one rebalance at a time). */
export const shardsService = defineService({
  name: "chaos-shards",
  version: "1.0.0",
  actions: {
    addGroup: {
      input: anySchema<{ id: string }>(),
      output: anySchema<{ keys: number; epoch: number }>(),
    },
    /** The groups in the map as this node routes by it, and whether a rebalance is under way. */
    status: {
      input: anySchema<Record<string, never>>(),
      output: anySchema<{ groups: string[]; epoch: number; rebalancing: boolean }>(),
      idempotent: true,
    },
  },
});

/** Transfers between accounts of one ledger (on a JetStream R3 log), and whole-bank reads. */
export const bankService = defineService({
  name: "chaos-bank",
  version: "1.0.0",
  actions: {
    /** Opens the accounts and funds each with `initial` from a mint; safe to call again. */
    setup: {
      input: anySchema<{ accounts: string[]; initial: number }>(),
      output: anySchema<{ root: string }>(),
      idempotent: true,
    },
    transfer: {
      input: anySchema<{ key: string; from: string; to: string; amount: number }>(),
      output: anySchema<{ duplicate: boolean }>(),
    },
    read: {
      input: anySchema<Record<string, never>>(),
      output: anySchema<{ balances: Record<string, number> }>(),
      idempotent: true,
    },
  },
});

/** Publishes elements as durable events; a consumer group on every node records what it consumed. */
export const setService = defineService({
  name: "chaos-set",
  version: "1.0.0",
  actions: {
    add: {
      input: anySchema<{ element: number }>(),
      output: anySchema<{ seq: number; duplicate: boolean }>(),
    },
  },
  events: {
    added: anySchema<{ element: number }>(),
  },
});

/**
 * An add-wins set and a grow-only counter (delta-state CRDTs) replicated between the nodes. The
 * counter is an OR-Map with one multi-value register per replica, written only by that replica
 * (its running total): the value is the sum of each replica's largest total.
 */
export const crdtService = defineService({
  name: "chaos-crdt",
  version: "1.0.0",
  actions: {
    add: {
      input: anySchema<{ element: number }>(),
      output: anySchema<{ size: number }>(),
    },
    read: {
      input: anySchema<Record<string, never>>(),
      output: anySchema<{ elements: number[] }>(),
      idempotent: true,
    },
    /** Adds `by` (>= 0) to the replicated counter. */
    increment: {
      input: anySchema<{ by: number }>(),
      output: anySchema<{ value: number }>(),
    },
    count: {
      input: anySchema<Record<string, never>>(),
      output: anySchema<{ value: number }>(),
      idempotent: true,
    },
    /** Sends every state to every peer now (anti-entropy after a heal). */
    sync: {
      input: anySchema<Record<string, never>>(),
      output: anySchema<{ peers: number }>(),
      idempotent: true,
    },
  },
});

/** The workloads a chaos node can serve. */
export const WORKLOADS = [
  "register",
  "bank",
  "set",
  "crdt",
  "counter",
  "pg-register",
  "sharded-register",
] as const;
export type WorkloadName = (typeof WORKLOADS)[number];
/** The workloads run when an experiment names none (the PostgreSQL one needs PostgreSQL). */
export const DEFAULT_WORKLOADS: readonly WorkloadName[] = [
  "register",
  "bank",
  "set",
  "crdt",
  "counter",
];

/** Deliberate bugs a node can run with, to show that the checkers catch them. */
export const BREAKAGES = ["ack-before-write", "lose-events", "skip-crdt-replication"] as const;
export type Breakage = (typeof BREAKAGES)[number];

/** What a node process is started with (JSON, as its one argument). */
export interface NodeConfig {
  readonly id: string;
  readonly region: string;
  /** NATS URLs this node connects through (its own proxies, so it can be partitioned). */
  readonly servers: readonly string[];
  readonly cluster: string;
  /** This node's folder: the CRDT store and the consumed-events file live here. */
  readonly dir: string;
  readonly workloads: readonly WorkloadName[];
  /** JetStream replicas for the KV bucket, the log and the ledger (1, 3 or 5). */
  readonly replicas: number;
  readonly breakage?: Breakage;
  /** PostgreSQL connection string (through the node's own proxy), for `pg-register` and `sharded-register`. */
  readonly postgresUrl?: string;
  /** Initial wall-clock skew (ms) of the node's clock port. */
  readonly skewMs?: number;
}

/** Name of the file (in a node's folder) where its consumer group appends consumed elements. */
export const CONSUMED_FILE = "consumed.log";

/**
 * NATS connection options of every chaos client (nodes and the workloads' client): stay on the
 * URLs given (their proxies) and notice a black-holed server in seconds.
 */
export const STAY_ON_PROXIES = PINNED_CONNECTION;

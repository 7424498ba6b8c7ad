import { StrataError } from "@strata/core";
import { PINNED_CONNECTION } from "@strata/nats";

/** The environment variable a node process finds its configuration in (JSON). */
export const NODE_CONFIG_ENV = "STRATA_COMMERCE_NODE_CONFIG";

/**
 * What a commerce node process is started with, as JSON in {@link NODE_CONFIG_ENV}: not an
 * argument, which `ps` shows every user of the machine (the PostgreSQL URL may hold a password).
 * The engines cluster writes it; `node-main` reads it.
 */
export interface EngineNodeConfig {
  readonly id: string;
  readonly region: string;
  /** NATS URLs of the servers in this node's region. */
  readonly servers: readonly string[];
  /** PostgreSQL connection string. */
  readonly postgresUrl: string;
  /**
   * Names the deployment on both engines: the PostgreSQL namespace, the Strata cluster on NATS,
   * and the prefix of the JetStream streams (see {@link enginesNames}).
   */
  readonly namespace: string;
  /** JetStream replicas of the event log and the ledger (1 or 3). */
  readonly replicas: number;
  /** This node's folder: its cart replica's store. */
  readonly dir: string;
  /** The folder of the ledger's tree-head keys (`sth-private.json`), written by the cluster. */
  readonly keysDir: string;
  /**
   * Load, say `{"loaded":true}`, and open nothing until told `{"serve":true}`: the node's start
   * (mostly loading code) then overlaps with its cluster's seeding of the stores.
   */
  readonly hold?: boolean;
}

/**
 * Commands a node process takes on stdin, one JSON object a line: `serve` (when started with
 * `hold`), and `stopConsuming` (its order consumers and projection leave their groups).
 */
export type NodeCommand = { readonly serve: true } | { readonly stopConsuming: true };

/** The payments ledger's stream (the same name as in the embedded demo). */
export const LEDGER_STREAM = "payments-ledger";

/** The names a namespace gives on each engine. */
export function enginesNames(namespace: string): {
  readonly cluster: string;
  readonly pgNamespace: string;
  readonly streamPrefix: string;
  readonly subjectPrefix: string;
} {
  // The stock store's namespaces add up to 11 characters (`_stock_eu_2`) within PostgreSQL's 41.
  if (!/^[a-z][a-z0-9_]{0,28}$/.test(namespace)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `namespace "${namespace}" must be 1-29 of a-z 0-9 _, starting with a letter`,
    );
  }
  return {
    cluster: namespace,
    pgNamespace: namespace,
    streamPrefix: `${namespace.toUpperCase()}_`,
    subjectPrefix: namespace,
  };
}

/**
 * NATS connection options of every commerce connection: keep reconnecting for as long as the
 * process lives, stay on the servers given (a node of one region must not wander onto another
 * region's servers), and notice a dead server within seconds.
 */
export const NATS_CONNECTION = PINNED_CONNECTION;

/** Parses and checks a node's configuration. */
export function parseNodeConfig(text: string | undefined): EngineNodeConfig {
  if (text === undefined) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `usage: ${NODE_CONFIG_ENV}=<config JSON> node node-main.js`,
    );
  }
  const config = JSON.parse(text) as Partial<EngineNodeConfig>;
  const strings = ["id", "region", "postgresUrl", "namespace", "dir", "keysDir"] as const;
  for (const field of strings) {
    if (typeof config[field] !== "string" || config[field] === "") {
      throw new StrataError("INVALID_ARGUMENT", `node config needs ${field} (a string)`);
    }
  }
  if (!Array.isArray(config.servers) || config.servers.length === 0) {
    throw new StrataError("INVALID_ARGUMENT", "node config needs servers (NATS URLs)");
  }
  if (config.hold !== undefined && typeof config.hold !== "boolean") {
    throw new StrataError("INVALID_ARGUMENT", "node config hold must be a boolean");
  }
  if (config.replicas !== 1 && config.replicas !== 3) {
    throw new StrataError("INVALID_ARGUMENT", "node config needs replicas (1 or 3)");
  }
  return config as EngineNodeConfig;
}

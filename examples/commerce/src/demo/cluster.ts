import type {
  BlobStore,
  EventLog,
  Events,
  ShardGroup,
  ShardedKv,
  StrataNode,
  StrongKV,
  Transport,
} from "@strata/core";
import type { Ledger, SthKeyPair } from "@strata/ledger";

/** The regions of the demo, each with its service nodes and a gateway node. */
export const DEMO_REGIONS = {
  eu: ["n1", "n2"],
  us: ["n3", "n4"],
} as const satisfies Record<string, readonly string[]>;

export type DemoRegion = keyof typeof DEMO_REGIONS;

/** Every service node of the demo, region by region. */
export const SERVICE_NODES: readonly string[] = Object.values(DEMO_REGIONS).flat();

/** How often the stock store's routers read the shared shard map and renew their leases (ms). */
export const STOCK_MAP_POLL_MS = 100;
/** How long a stock router may serve without renewing its lease (ms). */
export const STOCK_MAP_LEASE_MS = 5_000;

/** The node whose consumers leave mid-run (their partitions move to the others). */
export const HANDOVER_NODE = "n4";

/**
 * The commerce system the demo drives, on one engine profile. The driver (this process) holds a
 * gateway node per region, sends the traffic through them, injects faults through the admin
 * service, and at the end reads the stores the services wrote to check the invariants. The
 * service nodes live in this process (embedded) or in processes of their own (engines).
 */
export interface DemoCluster extends AsyncDisposable {
  readonly mode: "embedded" | "engines";
  /** One line for the start of the run: where the nodes and the stores are. */
  readonly description: string;
  /** Service node ids by region (see {@link DEMO_REGIONS}). */
  readonly regions: Readonly<Record<DemoRegion, readonly string[]>>;
  /** A started gateway node per region, in this process; traffic goes through them. */
  readonly gateways: Readonly<Record<DemoRegion, StrataNode>>;
  /** A new transport on the cluster's network, for nodes the driver adds (autoscaled replicas). */
  transport(): Transport;
  /** The strong state the services share: stock, orders, sagas, notifications, projections. */
  readonly kv: StrongKV;
  /**
   * Products, stock and reservations: a store sharded by key over a shard group per region. Its
   * map is shared by every process that routes to it (the driver and each node), fenced by
   * leases, so a shard group can be added while orders run.
   */
  readonly stockKv: ShardedKv;
  /** Opens (creating if needed) a shard group for the stock store, to add with `addGroup`. */
  openStockGroup(id: string, region: DemoRegion): Promise<ShardGroup>;
  /** The event log the services publish to (orders, the payments ledger). */
  readonly log: EventLog;
  /** Events over {@link kv} and {@link log}, with no subscriptions: for the checks. */
  readonly events: Events;
  /** Ledger replicas to audit (the driver's own view when the nodes are elsewhere). */
  readonly ledgers: readonly Ledger[];
  /** The keys the ledger's tree heads are signed with. */
  readonly sthKeys: SthKeyPair;
  /** The object store that order documents and invoices go to. */
  readonly blob: BlobStore;
  /** Whether {@link partitionRegions} can cut the regions apart (not for engines given by URL). */
  readonly canPartition: boolean;
  /** Cuts the regions apart (nodes and gateways of one region see only each other). */
  partitionRegions(): Promise<void>;
  heal(): Promise<void>;
  /**
   * Real nemeses on node processes (engines profile only): kill -9 a node, start it again, pause
   * it (SIGSTOP) and let it go on (SIGCONT).
   */
  readonly nemeses?: {
    kill(node: string): Promise<void>;
    restart(node: string): Promise<void>;
    pause(node: string, paused: boolean): void;
  };
  /** Makes a node's order consumers leave their groups, as when it is drained. */
  stopConsuming(node: string): Promise<void>;
  /** Every service node's carts, cart id to its items as JSON (`cartItems` lists SKUs in order). */
  cartReplicas(): Promise<ReadonlyArray<ReadonlyMap<string, string>>>;
  /** Stops every node and closes every store; removes what it created in temporary folders. */
  stop(): Promise<void>;
}

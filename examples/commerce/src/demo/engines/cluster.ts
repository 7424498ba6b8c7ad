/**
 * The commerce demo on real engines (`strata demo --engines nats,postgres`): every service node
 * is an operating-system process of its own, and the services share state through NATS and
 * PostgreSQL instead of this process's memory.
 *
 * What runs where:
 * - Four node processes (`node-main.ts`): n1 and n2 in region eu, n3 and n4 in region us. Each
 *   serves catalog, inventory, payments, orders (the checkout saga) and carts, and runs the order
 *   consumers (notifications, audit, the sales projection), as an embedded demo node does.
 * - This process (the driver): a gateway node per region (`gateway-eu`, `gateway-us`)
 *   that the traffic goes through, a replica of the payments ledger for the audit, the object
 *   store for order documents, and, unless URLs are given, the engines themselves.
 * - NATS (three servers, JetStream, `sync_interval: always`): n1 and n2 are the eu servers, n3
 *   the us one. Nodes and gateways connect to their region's servers only. The servers' routes
 *   run through proxies in this process, so that the regions can be cut apart.
 * - PostgreSQL (one primary): reached directly by every node and by the driver.
 *
 * What each engine holds:
 * - PostgreSQL, namespace `commerce` (by default): charges, order records, checkout saga
 *   journals, the outbox, consumer group positions and markers, notifications and the sales
 *   projection. Stock and reservations are sharded by key over a shard group per region, the
 *   namespaces `commerce_stock_eu` and `commerce_stock_us` (two groups on one server here).
 * - JetStream, streams `COMMERCE_*`: the order events and their dead letters (the outbox relays
 *   to them), and the payments ledger with its signed tree heads. Every node posts to its own
 *   replica of the ledger; conditional appends keep the replicas one history, and every replica
 *   signs heads with the same keys (`ledger-keys/` in the data folder).
 * - NATS core: every call between nodes, heartbeats, and cart replication (each node keeps its
 *   cart replica on its own disk and ships deltas to the others).
 *
 * What a partition cuts: the routes between the eu servers and the us server, refused in both
 * directions (as by a firewall that rejects), so both sides notice at once. Nodes and gateways
 * then see only their own region; carts keep taking writes on both sides and converge after the
 * heal. The us side is the JetStream minority (one server of three): its payments and its outbox
 * relay wait for the heal, while eu keeps checking out. PostgreSQL is not cut: it stays
 * reachable from both regions, as a database outside the partitioned network would be.
 * Partitions need engines started here; with engines given by URL they are refused.
 *
 * The data folder holds `nodes/<id>/` (each node's `node.log`, its stderr, and its cart
 * replica), `ledger-keys/` and `blob/`; the engines started here keep their data in temporary
 * folders of their own, removed when they stop.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  StrataError,
  createEvents,
  createNode,
  openEmbeddedBlob,
  type BlobStore,
  type Events,
  type StrataNode,
  type Transport,
} from "@strata/core";
import { loadOrWriteSthKeys, openLedger, type Ledger } from "@strata/ledger";
import { createNatsTransport, openNatsLog } from "@strata/nats";
import { openPostgresKv } from "@strata/postgres";
import {
  releaseDir,
  removeOnExit,
  startNatsCluster,
  startPostgres,
  waitFor,
  type NatsCluster,
  type PostgresCluster,
} from "@strata/test-harness/engines";
import { seedCatalog, seedStock } from "../../data/seed.js";
import { cart } from "../../services/cart.js";
import { seedInventory } from "../../services/inventory.js";
import { seedProducts } from "../../services/catalog.js";
import { orders } from "../../services/orders.js";
import { openPaymentAccounts } from "../../services/payments.js";
import { DEMO_REGIONS, SERVICE_NODES, type DemoCluster, type DemoRegion } from "../cluster.js";
import { CUSTOMER_FUNDS_MINOR, GATEWAY_RESILIENCE } from "../embedded-cluster.js";
import { LEDGER_STREAM, NATS_CONNECTION, enginesNames } from "./node-config.js";
import { NodeProcess } from "./node-process.js";
import { openStockGroup, openStockKv } from "./stock-kv.js";

/** Options of {@link startEnginesCluster}. */
export interface EnginesClusterOptions {
  /**
   * NATS servers to use (>= 2.10, JetStream on, `sync_interval: always`) instead of starting
   * three here; `replicas` of the streams, default 3 on a clustered server and 1 on a single one.
   */
  readonly nats?: { readonly urls?: readonly string[]; readonly replicas?: 1 | 3 };
  /** PostgreSQL (>= 15) to use instead of starting one here. */
  readonly postgres?: { readonly url?: string };
  /** Names the deployment on both engines (see `node-config.ts`); default `commerce`. */
  readonly namespace?: string;
  /** Where the nodes, keys and blobs are kept; default a temporary folder, removed on stop. */
  readonly dir?: string;
  /** Progress: one line per start step. */
  readonly log?: (line: string) => void;
  /** Aborts the start: whatever was started is stopped. */
  readonly signal?: AbortSignal;
}

/** A node process of the cluster. */
export interface EnginesNodeInfo {
  readonly id: string;
  readonly region: DemoRegion;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Its stderr. */
  readonly logFile: string;
}

/** The demo cluster on NATS and PostgreSQL, with its node processes. */
export interface EnginesCluster extends DemoCluster {
  readonly mode: "engines";
  /** The service node processes, in {@link SERVICE_NODES} order. */
  processes(): readonly EnginesNodeInfo[];
}

/** The services every gateway must see on every node before the cluster is ready. */
const SERVICES = ["cart", "inventory", "catalog", "orders", "payments"] as const;
/** The NATS servers of each region, when they are started here. */
const REGION_SERVERS: Record<DemoRegion, readonly string[]> = { eu: ["n1", "n2"], us: ["n3"] };
const GATEWAYS: Record<DemoRegion, string> = { eu: "gateway-eu", us: "gateway-us" };

const REGIONS = Object.keys(DEMO_REGIONS) as DemoRegion[];

/** The region of a service node; NOT_FOUND for a name that is not one. */
function regionOf(node: string): DemoRegion {
  const region = REGIONS.find((r) => (DEMO_REGIONS[r] as readonly string[]).includes(node));
  if (region === undefined) {
    throw new StrataError(
      "NOT_FOUND",
      `no service node ${node} (known: ${SERVICE_NODES.join(", ")})`,
    );
  }
  return region;
}

/**
 * Starts the commerce system on real engines: NATS and PostgreSQL (started here on free loopback
 * ports unless URLs are given), the stock and payment accounts seeded, the four service node
 * processes, and a gateway node per region in this process. Resolves once both gateways see
 * every service on every node.
 *
 * @example
 * await using cluster = await startEnginesCluster({ log: (line) => console.log(line) });
 * await cluster.gateways.eu.client(orders).place({ orderId: "o-1", sku: "sku-00001", qty: 1, priceMinor: 999 });
 */
export async function startEnginesCluster(
  options: EnginesClusterOptions = {},
): Promise<EnginesCluster> {
  const log = options.log ?? (() => undefined);
  const signal = options.signal;
  const began = performance.now();
  const elapsed = (): string => `${((performance.now() - began) / 1000).toFixed(1)} s`;
  const namespace = options.namespace ?? "commerce";
  const names = enginesNames(namespace);
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "strata-engines-")));
  if (ownDir) removeOnExit(dir);
  // Undone last first by stop(), or when the start fails.
  const undo: Array<() => Promise<unknown>> = [];
  let nats: NatsCluster | undefined;
  let postgres: PostgresCluster | undefined;
  const processes: NodeProcess[] = [];
  const gateways = new Map<DemoRegion, StrataNode>();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      nats?.heal();
      for (const step of undo.reverse()) await step().catch(() => undefined);
      if (ownDir) {
        await rm(dir, { recursive: true, force: true });
        releaseDir(dir);
      }
    })());

  try {
    const natsUrls = options.nats?.urls;
    const postgresUrl = options.postgres?.url;
    log(
      `engines: ${natsUrls === undefined ? "starting NATS (3 servers, JetStream)" : `NATS at ${natsUrls.map(redact).join(",")}`}; ${postgresUrl === undefined ? "starting PostgreSQL" : "PostgreSQL by URL"}`,
    );
    const [natsStart, postgresStart] = await Promise.allSettled([
      natsUrls === undefined
        ? startNatsCluster({
            nodes: 3,
            proxied: true,
            syncAlways: true,
            ...(signal === undefined ? {} : { signal }),
          })
        : undefined,
      postgresUrl === undefined ? startPostgres() : undefined,
    ]);
    if (natsStart.status === "fulfilled" && natsStart.value !== undefined) {
      const started = natsStart.value;
      nats = started;
      undo.push(() => started.stop());
    }
    if (postgresStart.status === "fulfilled" && postgresStart.value !== undefined) {
      const started = postgresStart.value;
      postgres = started;
      undo.push(() => started.stop());
    }
    if (natsStart.status === "rejected") throw natsStart.reason;
    if (postgresStart.status === "rejected") throw postgresStart.reason;
    signal?.throwIfAborted();
    const serversOf = (region: DemoRegion): string[] => {
      if (nats === undefined) return [...(natsUrls ?? [])];
      const wanted = REGION_SERVERS[region];
      return nats.servers.filter((s) => wanted.includes(s.name)).map((s) => s.url);
    };
    const pgUrl = postgres?.primary.url ?? postgresUrl;
    if (pgUrl === undefined) throw new StrataError("INTERNAL", "no PostgreSQL URL");
    if (nats !== undefined) {
      log(
        `engines: NATS ${nats.servers[0]?.version ?? "?"} ready (${elapsed()}): ${REGIONS.map((r) => `${REGION_SERVERS[r].join(", ")} ${r}`).join("; ")}; routes through proxies`,
      );
    }
    if (postgres !== undefined) {
      log(`engines: PostgreSQL ready on port ${postgres.primary.port} (${elapsed()})`);
    }

    const nc: NatsConnection = await connect({
      servers: serversOf("eu"),
      name: "demo-driver",
      ...NATS_CONNECTION,
    });
    undo.push(() => nc.close());
    const replicas =
      nats !== undefined ? 3 : (options.nats?.replicas ?? (nc.info?.cluster === undefined ? 1 : 3));

    // The service nodes load (most of their start) while this process seeds the stores; they
    // open nothing until told to serve, so they only ever open streams and tables made here.
    const keysDir = join(dir, "ledger-keys");
    for (const region of REGIONS) {
      for (const id of DEMO_REGIONS[region]) {
        processes.push(
          new NodeProcess({
            id,
            region,
            servers: serversOf(region),
            postgresUrl: pgUrl,
            namespace,
            replicas,
            dir: join(dir, "nodes", id),
            keysDir,
            hold: true,
          }),
        );
      }
    }
    undo.push(() => Promise.all(processes.map((p) => p.stop())));
    await Promise.all(processes.map((p) => p.spawn()));
    signal?.throwIfAborted();

    // This process's own stores, then the stock and the payment accounts.
    // Each is closed on stop (or on a failed start) once it is open.
    const closing = <T>(opening: Promise<T>, close: (opened: T) => PromiseLike<unknown>) =>
      opening.then((opened) => {
        undo.push(async () => await close(opened));
        return opened;
      });
    const openings = [
      closing(openPostgresKv({ url: pgUrl, namespace: names.pgNamespace, poolSize: 6 }), (o) =>
        o.close(),
      ),
      closing(
        openStockKv({
          url: pgUrl,
          namespace: names.pgNamespace,
          poolSize: 6,
          routerId: "driver",
        }),
        (o) => o[Symbol.asyncDispose](),
      ),
      closing(
        openNatsLog({
          connection: nc,
          replicas,
          serversSyncAlways: true,
          streamPrefix: names.streamPrefix,
          subjectPrefix: names.subjectPrefix,
        }),
        (o) => o[Symbol.asyncDispose](),
      ),
      loadOrWriteSthKeys(keysDir),
    ] as const;
    // Every opening settles (and what opened is registered for closing) before a failure counts.
    await Promise.allSettled(openings);
    const [kv, stockKv, eventLog, sthKeys] = await Promise.all(openings);
    signal?.throwIfAborted();
    const ledger: Ledger = await openLedger({ log: eventLog, stream: LEDGER_STREAM, replicas });
    undo.push(() => ledger.close());
    const events: Events = createEvents({
      log: eventLog,
      kv,
      source: "strata://demo-driver",
      critical: true,
      replicas,
    });
    undo.push(() => events.close());
    const blob: BlobStore = await openEmbeddedBlob({ dir: join(dir, "blob") });
    undo.push(async () => await blob[Symbol.asyncDispose]());
    const products = seedCatalog();
    await Promise.all([
      seedInventory(stockKv, seedStock(products)),
      seedProducts(stockKv, products),
      openPaymentAccounts(ledger, CUSTOMER_FUNDS_MINOR),
      events.declare(orders),
    ]);
    log(
      `engines: stores open, stock of ${products.length} SKUs seeded, payment accounts funded (${elapsed()})`,
    );
    signal?.throwIfAborted();

    await Promise.all(
      processes.map(async (p) => {
        await p.serve({ timeoutMs: 30_000, ...(signal === undefined ? {} : { signal }) });
        log(`engines: ${p.id} (${p.region}) serving, pid ${p.pid ?? "?"} (${elapsed()})`);
      }),
    );

    // A gateway per region, on that region's servers.
    for (const region of REGIONS) {
      const gateway = createNode({
        id: GATEWAYS[region],
        region,
        transport: createNatsTransport({
          servers: serversOf(region),
          cluster: names.cluster,
          name: GATEWAYS[region],
          connection: NATS_CONNECTION,
        }),
        heartbeatIntervalMs: 250,
        resilience: GATEWAY_RESILIENCE,
      });
      gateways.set(region, gateway);
      undo.push(() => gateway.stop({ drainTimeoutMs: 1_000 }));
      await gateway.start(signal);
    }
    await Promise.all(
      [...gateways.values()].map((gateway) =>
        waitFor(() => seesEveryService(gateway, SERVICE_NODES), {
          timeoutMs: 15_000,
          intervalMs: 25,
          message: `${gateway.id} does not see ${SERVICES.join(", ")} on ${SERVICE_NODES.join(", ")}`,
          ...(signal === undefined ? {} : { signal }),
        }),
      ),
    );
    log(`engines: gateways in eu and us see every service on every node (${elapsed()})`);

    const gatewayOf = (region: DemoRegion): StrataNode => gateways.get(region) as StrataNode;
    let transports = 0;
    const natsVersion = nats?.servers[0]?.version;
    const description =
      `engines: ${REGIONS.map((r) => `${DEMO_REGIONS[r].join(", ")} (${r})`).join(" and ")} as processes; ` +
      (nats === undefined
        ? `NATS at ${(natsUrls ?? []).map(redact).join(",")}`
        : `NATS ${natsVersion ?? ""} (3 servers: n1, n2 eu, n3 us)`) +
      `, JetStream R${replicas}; PostgreSQL ${postgres === undefined ? "by URL" : `on 127.0.0.1:${postgres.primary.port}`}`;
    const cluster: EnginesCluster = {
      mode: "engines",
      canPartition: nats !== undefined,
      description,
      regions: DEMO_REGIONS,
      gateways: { eu: gatewayOf("eu"), us: gatewayOf("us") },
      transport(): Transport {
        transports++;
        return createNatsTransport({
          servers: serversOf("eu"),
          cluster: names.cluster,
          name: `demo-node-${transports}`,
          connection: NATS_CONNECTION,
        });
      },
      kv,
      stockKv,
      openStockGroup: (id, region) =>
        openStockGroup({ url: pgUrl, namespace: names.pgNamespace, poolSize: 6 }, id, region),
      log: eventLog,
      events,
      ledgers: [ledger],
      sthKeys,
      blob,
      async partitionRegions() {
        const cut = locally(nats);
        cut.partition([REGION_SERVERS.eu, REGION_SERVERS.us], { mode: "reset" });
        // In force once no gateway sees a node of another region.
        await Promise.all(
          REGIONS.map((region) => {
            const others = new Set(
              REGIONS.filter((r) => r !== region).flatMap((r) => [...DEMO_REGIONS[r], GATEWAYS[r]]),
            );
            return waitFor(
              () =>
                !gatewayOf(region)
                  .nodes()
                  .some((n) => others.has(n.id)),
              { timeoutMs: 10_000, message: `${GATEWAYS[region]} still sees the other region` },
            );
          }),
        );
      },
      async heal() {
        const whole = locally(nats);
        whole.heal();
        // Healed once every server has its routes to the others back.
        await waitFor(() => routesWhole(whole), {
          timeoutMs: 15_000,
          intervalMs: 50,
          message: "the NATS routes did not come back after the heal",
        });
      },
      nemeses: {
        kill: async (node) => {
          regionOf(node);
          await processes.find((p) => p.id === node)?.kill();
        },
        restart: async (node) => {
          regionOf(node);
          await processes.find((p) => p.id === node)?.restart({ timeoutMs: 30_000 });
        },
        pause: (node, paused) => {
          regionOf(node);
          processes.find((p) => p.id === node)?.pause(paused);
        },
      },
      async stopConsuming(node) {
        regionOf(node);
        await processes.find((p) => p.id === node)?.stopConsuming();
      },
      async cartReplicas() {
        return Promise.all(
          SERVICE_NODES.map(async (id) => {
            const client = gatewayOf(regionOf(id)).client(cart);
            const replica = new Map<string, string>();
            let after: string | undefined;
            do {
              const page = await client.listCarts(
                after === undefined ? { limit: 1_000 } : { after, limit: 1_000 },
                // A read for the checks: not judged by (nor tripping) the node's breaker.
                { node: id, timeoutMs: 5_000, policies: { breaker: false } },
              );
              for (const c of page.carts) replica.set(c.cartId, JSON.stringify(c.items));
              after = page.next;
            } while (after !== undefined);
            return replica;
          }),
        );
      },
      processes: () =>
        processes.map((p) => ({
          id: p.id,
          region: p.region as DemoRegion,
          pid: p.pid,
          running: p.running,
          logFile: p.logFile,
        })),
      stop,
      [Symbol.asyncDispose]: stop,
    };
    log(`engines: ready in ${elapsed()}`);
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A URL without its credentials, for progress lines. */
function redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, "//***@");
}

/** The cluster started here, or why partitions cannot be made. */
function locally(nats: NatsCluster | undefined): NatsCluster {
  if (nats === undefined) {
    throw new StrataError(
      "FAILED_PRECONDITION",
      "partitions need locally started engines: NATS was given by URL, so its links cannot be cut from here",
    );
  }
  return nats;
}

/** Whether the gateway sees every service node ready, each serving every commerce service. */
function seesEveryService(gateway: StrataNode, nodes: readonly string[]): boolean {
  const seen = new Map(gateway.nodes().map((n) => [n.id, n]));
  return nodes.every((id) => {
    const n = seen.get(id);
    return (
      n !== undefined &&
      n.status === "ready" &&
      SERVICES.every((s) => n.services.some((served) => served.name === s))
    );
  });
}

/** Whether every server has a route to every other (from its monitoring endpoint). */
async function routesWhole(nats: NatsCluster): Promise<boolean> {
  const peers = nats.servers.length - 1;
  const counts = await Promise.all(
    nats.servers.map(async (server) => {
      const response = await fetch(`http://127.0.0.1:${server.monitorPort}/routez`, {
        signal: AbortSignal.timeout(1_000),
      });
      const body = (await response.json()) as { routes?: Array<{ remote_name?: string }> };
      return new Set((body.routes ?? []).map((r) => r.remote_name)).size;
    }),
  );
  return counts.every((n) => n >= peers);
}

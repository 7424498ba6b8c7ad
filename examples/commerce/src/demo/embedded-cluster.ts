/**
 * The commerce system on the embedded profile: every node in this process on an embedded
 * network, state in one embedded store and one embedded log in a data folder. Two regions (eu:
 * n1, n2; us: n3, n4) of service nodes, each serving catalog, inventory, payments, orders and
 * carts, and a gateway node per region. Partitions cut the embedded network between regions.
 */
import { join } from "node:path";
import {
  createCrdtSpace,
  createEmbeddedNetwork,
  createEvents,
  createNode,
  createSagaRunner,
  openEmbeddedBlob,
  openEmbeddedKv,
  openEmbeddedLog,
  ShardedKv,
  type CrdtSpace,
  type ShardGroup,
  type Events,
  type Projection,
  type SagaRunner,
  type StrataNode,
  type Subscription,
  type TelemetryOptions,
} from "@strata/core";
import { createSthSigner, loadOrWriteSthKeys, openLedger, type Ledger } from "@strata/ledger";
import { seedCatalog, seedStock, type Product } from "../data/seed.js";
import { cartItems, cartService } from "../services/cart.js";
import { catalogService, seedProducts, storeProducts } from "../services/catalog.js";
import { checkoutSaga, sagaCheckout } from "../services/checkout.js";
import { inventoryService, seedInventory } from "../services/inventory.js";
import { startOrderConsumers } from "../services/order-consumers.js";
import { ordersService } from "../services/orders.js";
import { openPaymentAccounts, paymentsService } from "../services/payments.js";
import {
  DEMO_REGIONS,
  STOCK_MAP_LEASE_MS,
  STOCK_MAP_POLL_MS,
  type DemoCluster,
  type DemoRegion,
} from "./cluster.js";

/** Every customer starts with EUR 6,000; orders beyond that are declined for lack of funds. */
export const CUSTOMER_FUNDS_MINOR = 600_000n;

/** The resilience options of the gateway nodes: breakers open after five failures in a row. */
export const GATEWAY_RESILIENCE = {
  defaults: {
    breaker: { strategy: { type: "consecutive", threshold: 5 }, halfOpenAfterMs: 1_000 },
  },
} as const;

/**
 * The serving options of every service node: an adaptive (gradient) concurrency limit. Its floor
 * of 32 calls keeps a stall of the shared event loop (a GC pause, a signature) from collapsing
 * the limit below what the node serves in normal operation; queueing beyond it is shed.
 */
export const SERVICE_RESILIENCE = {
  serving: { concurrency: { type: "gradient", initial: 64, min: 32, max: 1_000 } },
} as const;

export interface EmbeddedClusterOptions {
  readonly dataDir: string;
  readonly products?: readonly Product[];
  /** Telemetry options per service node (SLOs, a meter provider). */
  readonly telemetry?: (id: string, index: number) => TelemetryOptions;
  /** Called with each service node before it starts (to listen to its events). */
  readonly onServiceNode?: (node: StrataNode) => void;
}

/** The embedded cluster, with the in-process nodes the demo reads telemetry from directly. */
export interface EmbeddedCluster extends DemoCluster {
  readonly mode: "embedded";
  readonly serviceNodes: readonly StrataNode[];
}

/** Starts the embedded commerce cluster: seeds the stock and the accounts, starts every node. */
export async function startEmbeddedCluster(
  options: EmbeddedClusterOptions,
): Promise<EmbeddedCluster> {
  const { dataDir } = options;
  const products = options.products ?? seedCatalog();
  const kv = await openEmbeddedKv({ dir: dataDir });
  // Products, stock and reservations are sharded by key over a store per region; the shard map
  // lives in the main store, where a router in another process would find it too.
  const openStockGroup = async (id: string, region: string): Promise<ShardGroup> => ({
    id,
    region,
    kv: await openEmbeddedKv({ dir: join(dataDir, id) }),
  });
  const stockKv = await ShardedKv.open(
    await Promise.all(
      Object.keys(DEMO_REGIONS).map((region) => openStockGroup(`stock-${region}`, region)),
    ),
    {
      coordination: {
        kv,
        prefix: "stock-map",
        routerId: "demo",
        pollMs: STOCK_MAP_POLL_MS,
        leaseMs: STOCK_MAP_LEASE_MS,
        batchSlots: 32,
        resolveGroup: (g) => openStockGroup(g.id, g.region),
      },
    },
  );
  const log = await openEmbeddedLog({ dir: join(dataDir, "events") });
  const blob = await openEmbeddedBlob({ dir: join(dataDir, "objects") });
  // The ledger's tree heads are signed with the demo's keys (Ed25519 + ML-DSA-65), kept with
  // its data (strata ledger audit --public-keys <data>/ledger-keys/sth-public.json).
  const sthKeys = await loadOrWriteSthKeys(join(dataDir, "ledger-keys"));
  const network = createEmbeddedNetwork();
  const serviceNodes: StrataNode[] = [];
  const sources: Array<{ close(): void }> = [];
  const eventsByNode: Events[] = [];
  const runners: SagaRunner[] = [];
  const spaces: CrdtSpace[] = [];
  const consumers = new Map<string, { subscriptions: Subscription[]; sales: Projection }>();
  const gateways: Partial<Record<DemoRegion, StrataNode>> = {};
  let ledger: Ledger | undefined;
  const stop = async (): Promise<void> => {
    await Promise.allSettled(runners.map((r) => r.close()));
    await Promise.allSettled(eventsByNode.map((e) => e.close()));
    await Promise.allSettled(
      [...serviceNodes, ...Object.values(gateways)].map((n) => n.stop({ drainTimeoutMs: 2_000 })),
    );
    for (const source of sources) source.close();
    await ledger?.close();
    await blob.close();
    await log.close();
    await stockKv[Symbol.asyncDispose]();
    await kv.close();
  };
  try {
    await seedProducts(stockKv, products);
    await seedInventory(stockKv, seedStock(products));
    // Payments post to a double-entry ledger. The embedded nodes share this process and its
    // log, so they share one replica (one writer, no conditional appends lost to each other);
    // clustered nodes each open their own over JetStream.
    ledger = await openLedger({
      log,
      stream: "payments-ledger",
      heads: { signer: createSthSigner(sthKeys.privateKeys), everyMs: 1_000 },
    });
    await openPaymentAccounts(ledger, CUSTOMER_FUNDS_MINOR);
    let index = 0;
    for (const [region, ids] of Object.entries(DEMO_REGIONS)) {
      for (const id of ids) {
        const telemetry = options.telemetry?.(id, index++);
        const node = createNode({
          id,
          region,
          transport: network.transport(),
          services: [inventoryService(stockKv)],
          heartbeatIntervalMs: 250,
          resilience: SERVICE_RESILIENCE,
          ...(telemetry === undefined ? {} : { telemetry }),
        });
        options.onServiceNode?.(node);
        // The catalog reads products from the sharded store; listings from an index of it.
        const productSource = await storeProducts(stockKv);
        sources.push(productSource);
        node.serve(catalogService(productSource));
        // Orders and payments: order outcomes and their events commit together (outbox).
        const events = createEvents({
          log,
          kv,
          source: `strata://${id}`,
          critical: true,
          leaseMs: 2_000,
          rebalanceMs: 200,
        });
        eventsByNode.push(events);
        node.serve(paymentsService(kv, { ledger }));
        // Checkout is a saga: any node's runner resumes one whose node died.
        const sagas = createSagaRunner({ kv, owner: id, leaseMs: 2_000, scanIntervalMs: 500 });
        const saga = checkoutSaga(node, events);
        sagas.register(saga);
        runners.push(sagas);
        node.serve(ordersService(events, sagaCheckout(sagas, saga, events)));
        // Carts: a CRDT replica on every node, replicated between the regions.
        const space = await createCrdtSpace(node, { name: "carts", shipEveryMs: 25 });
        node.serve(cartService(space));
        spaces.push(space);
        serviceNodes.push(node);
      }
    }
    for (const region of Object.keys(DEMO_REGIONS) as DemoRegion[]) {
      gateways[region] = createNode({
        id: `gateway-${region}`,
        region,
        transport: network.transport(),
        heartbeatIntervalMs: 250,
        resilience: GATEWAY_RESILIENCE,
      });
    }
    const all = [...serviceNodes, ...Object.values(gateways)];
    await Promise.all(all.map((n) => n.start()));
    for (const gateway of Object.values(gateways)) {
      for (const service of ["cart", "inventory", "catalog", "orders", "payments"]) {
        await gateway.waitForService(service, { timeoutMs: 5_000 });
      }
    }
    for (const [i, events] of eventsByNode.entries()) {
      await events.startRelay();
      consumers.set(serviceNodes[i]?.id as string, await startOrderConsumers(events));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const regionOf = (region: DemoRegion): string[] => [...DEMO_REGIONS[region], `gateway-${region}`];
  const events = createEvents({ log, kv, source: "strata://demo", critical: true });
  const cluster: EmbeddedCluster = {
    mode: "embedded",
    canPartition: true,
    description: `embedded: ${Object.entries(DEMO_REGIONS)
      .map(([region, ids]) => `${ids.join(", ")} (${region})`)
      .join(" and ")} in this process; state in ${dataDir}`,
    regions: DEMO_REGIONS,
    gateways: gateways as Record<DemoRegion, StrataNode>,
    serviceNodes,
    transport: () => network.transport(),
    kv,
    stockKv,
    openStockGroup,
    log,
    events,
    ledgers: [ledger],
    sthKeys,
    blob,
    partitionRegions: () => {
      network.partition(regionOf("eu"), regionOf("us"));
      return Promise.resolve();
    },
    heal: () => {
      network.heal();
      return Promise.resolve();
    },
    async stopConsuming(node) {
      const leaving = consumers.get(node);
      if (leaving === undefined) throw new Error(`no consumers on ${node}`);
      consumers.delete(node);
      await Promise.all([
        ...leaving.subscriptions.map((sub) => sub.close()),
        leaving.sales.close(),
      ]);
    },
    cartReplicas: () =>
      Promise.resolve(
        spaces.map(
          (space) =>
            new Map(
              space
                .keys()
                .sort()
                .map((key) => [key, JSON.stringify(cartItems(space.get(key)))]),
            ),
        ),
      ),
    async stop() {
      await events.close();
      await stop();
    },
    [Symbol.asyncDispose]: () => cluster.stop(),
  };
  return cluster;
}

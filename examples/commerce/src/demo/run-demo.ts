import {
  AVAILABILITY_P99_SLO_MS,
  startAutoscaleLeg,
  type AutoscaleLeg,
  type AutoscaleSummary,
} from "./autoscale-leg.js";
import { trace } from "@opentelemetry/api";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEvents,
  createSagaRunner,
  openEmbeddedLog,
  type SagaRunner,
  type Events,
  type Projection,
  type Subscription,
  createEmbeddedNetwork,
  createNode,
  createCrdtSpace,
  createStateStore,
  type CrdtSpace,
  isStrataError,
  openEmbeddedKv,
  runLoad,
  runOpenLoad,
  seededRandom,
  type LoadReport,
  type NodeEvent,
  type SloSpec,
  type StrataNode,
} from "@strata/core";
import {
  ParentBasedSampler,
  SamplingDecision,
  TraceCollector,
  TraceIdRatioBasedSampler,
  criticalPath,
  startMetrics,
  startTracing,
  type Metrics,
  type Sampler,
} from "@strata/telemetry";
import { fileURLToPath } from "node:url";
import { createCedarAuthorizer, type CedarAuthorizer } from "@strata/security";
import { seedCatalog, seedStock } from "../data/seed.js";
import { recordsService } from "../services/records.js";
import { startSecureLeg, type SecureLeg, type SecureLegReport } from "./secure-leg.js";
import { runRecordsTraffic, startTestIssuer, type EdgeReport, type TestIssuer } from "./edge.js";
import { catalog, catalogService } from "../services/catalog.js";
import { cart, cartItems, cartService } from "../services/cart.js";
import { inventory, inventoryService, seedInventory } from "../services/inventory.js";
import { checkoutSaga, sagaCheckout } from "../services/checkout.js";
import { isAuditPoison, startOrderConsumers } from "../services/order-consumers.js";
import { orders, ordersService, type Order } from "../services/orders.js";
import { openPaymentAccounts, paymentsService } from "../services/payments.js";
import { createSthSigner, loadOrWriteSthKeys, openLedger, type Ledger } from "@strata/ledger";
import { checkLedger, type LedgerReport } from "./ledger-check.js";

/** Options for {@link runDemo}. */
export interface DemoOptions {
  /** How long the traffic runs, in seconds. */
  readonly durationSeconds: number;
  /** Calls kept in flight by the load generator; default 32. */
  readonly concurrency?: number;
  /** Print exactly one JSON object (the report) on `out`, and nothing else there. */
  readonly json?: boolean;
  /** Inject a fault into one inventory node for the middle of the run; default true. */
  readonly faults?: boolean;
  /** Keep the store here instead of a temporary folder (which is removed at the end). */
  readonly dataDir?: string;
  /** Also export the traces over OTLP/HTTP to this endpoint (e.g. `http://localhost:4318/v1/traces`). */
  readonly otlpUrl?: string;
  /** Serve each service node's Prometheus `/metrics` on this port and the next ones. */
  readonly metricsPort?: number;
  readonly signal?: AbortSignal;
  readonly out?: NodeJS.WritableStream;
  readonly err?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** One section per capability; later building blocks add theirs. */
export interface DemoReport {
  readonly durationSeconds: number;
  readonly cluster: {
    readonly nodes: ReadonlyArray<{
      readonly id: string;
      readonly region: string;
      readonly served: number;
    }>;
  };
  readonly calls: {
    readonly total: number;
    readonly ok: number;
    readonly failed: number;
    readonly successRate: number;
    readonly throughput: number;
    readonly latencyMs: {
      readonly p50: number;
      readonly p90: number;
      readonly p99: number;
      readonly max: number;
    };
    readonly errors: Readonly<Record<string, number>>;
  };
  readonly inventory: {
    readonly reservations: number;
    readonly refusedOutOfStock: number;
    readonly releases: number;
    /** Units sold beyond stock: must be 0. */
    readonly oversold: number;
    /** available + reserved equals the initial stock for every SKU. */
    readonly stockConserved: boolean;
  };
  readonly carts: {
    /** Cart writes made in each region. */
    readonly updates: Readonly<Record<string, number>>;
    readonly carts: number;
    /** The regions were cut apart for this window; carts took writes on both sides. */
    readonly partition: { readonly fromSecond: number; readonly toSecond: number } | null;
    /** How long after the partition healed the three replicas held equal carts. */
    readonly convergedAfterMs: number | null;
    /** Every replica holds the same carts at the end. */
    readonly converged: boolean;
  };
  readonly resilience: {
    readonly fault: {
      readonly node: string;
      readonly service: string;
      readonly fromSecond: number;
      readonly toSecond: number;
    } | null;
    readonly successRateDuringFault: number | null;
    readonly breakerTransitions: ReadonlyArray<{
      readonly atSecond: number;
      readonly target: string;
      readonly state: string;
    }>;
    readonly retries: number;
    readonly shed: number;
    readonly ejections: number;
    readonly faultHits: number;
  };
  readonly events: {
    /** Checkout calls made, and how they ended for the caller. */
    readonly checkouts: {
      readonly placed: number;
      readonly ok: number;
      readonly errors: Readonly<Record<string, number>>;
    };
    readonly orders: { readonly confirmed: number; readonly cancelled: number };
    /** Order events in the log (each order's outcome is published exactly once). */
    readonly published: number;
    /** Notifications sent, each committed with its event's marker: one per order. */
    readonly notifications: number;
    /** Orders notified more than once: must be 0. */
    readonly duplicateEffects: number;
    readonly deadLetters: number;
    readonly projectionRows: number;
    /** A consumer node left mid-run; its partitions moved to the others. */
    readonly handover: { readonly node: string; readonly atSecond: number } | null;
    /** Checkout sagas by how they ended; `unfinished` must be 0 at the end. */
    readonly sagas: {
      readonly completed: number;
      readonly compensated: number;
      readonly failed: number;
      readonly unfinished: number;
    };
  };
  /** Users reach patient records through the gateway: tokens verified, Cedar policies enforced. */
  /** The payments ledger, audited and proven against its signed head at the end. */
  readonly ledger: LedgerReport;
  readonly security: EdgeReport & {
    /** How the records leg ran: mutual TLS over NATS with signed envelopes, or in-process. */
    readonly transport: SecureLegReport;
    /** Denials at the records node, by the policy's reason. */
    readonly deniedByReason: Readonly<Record<string, number>>;
  };
  readonly observability: {
    readonly tracing: {
      readonly sampler: string;
      readonly spans: number;
      readonly otlp: string | null;
    };
    /** Service level objectives over the run, summed over the service nodes. */
    readonly slos: ReadonlyArray<{
      readonly name: string;
      readonly objective: number;
      readonly total: number;
      readonly attainment: number;
      readonly met: boolean;
    }>;
    /** Burn-rate alerts the nodes raised (the injected fault burns inventory's budget). */
    readonly alerts: ReadonlyArray<{
      readonly atSecond: number;
      readonly node: string;
      readonly slo: string;
      readonly severity: string;
      readonly state: string;
    }>;
    /** The slowest checkout's trace: where its time went. */
    readonly slowestOrder: {
      readonly orderId: string | null;
      readonly traceId: string;
      readonly durationMs: number;
      readonly spans: number;
      readonly nodes: readonly string[];
      readonly criticalPath: ReadonlyArray<{
        readonly name: string;
        readonly node: string | null;
        readonly selfMs: number;
      }>;
    } | null;
    /** `/metrics` endpoints, when asked for. */
    readonly metrics: readonly string[];
  };
  /** The availability service scaled by the autoscaler through a traffic spike. */
  readonly autoscale: AutoscaleSummary;
  readonly verdicts: Readonly<Record<string, boolean>>;
}

/** The commerce objectives, declared on every service node. */
export const COMMERCE_SLOS: readonly SloSpec[] = [
  {
    name: "checkout-availability",
    service: "orders",
    action: "place",
    kind: "availability",
    objective: 0.995,
  },
  {
    name: "checkout-latency",
    service: "orders",
    action: "place",
    kind: "latency",
    objective: 0.99,
    thresholdMs: 1_000,
  },
  { name: "inventory-availability", service: "inventory", kind: "availability", objective: 0.999 },
  {
    name: "catalog-latency",
    service: "catalog",
    kind: "latency",
    objective: 0.99,
    thresholdMs: 50,
  },
];

/**
 * Every checkout is traced (the report shows the slowest one's critical path); of the other
 * traffic one trace in twenty is kept, so tracing costs the demo little.
 */
class DemoSampler implements Sampler {
  private readonly rest = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.05) });

  shouldSample(...args: Parameters<Sampler["shouldSample"]>): ReturnType<Sampler["shouldSample"]> {
    const [context, , spanName] = args;
    if (spanName === "orders/place" && trace.getSpanContext(context) === undefined) {
      return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    }
    return this.rest.shouldSample(...args);
  }

  toString(): string {
    return "every checkout, parentbased_traceidratio(0.05) for the rest";
  }
}

const REGIONS: Record<string, string> = { n1: "eu", n2: "eu", n3: "us" };

/**
 * Runs the commerce demo: catalog and inventory on an embedded three-node cluster (two regions),
 * a gateway node driving a traffic mix, an injected inventory fault in the middle of the run,
 * and a report with the invariants checked at the end.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  using _alive = holdProcessOpen();
  return await demo(options);
}

/**
 * The core's clock timers are unref'd, so that a node's heartbeat never keeps its host process
 * alive. The catch: neither does a call waiting out its deadline or a retry backoff, and the
 * embedded transport has no socket to hold the event loop open either, so a plain
 * `await runDemo(...)` could see Node exit mid-run (exit code 13, unsettled top-level await)
 * whenever every in-flight call happened to be waiting on such a timer. The demo is a foreground
 * job: it holds the process open until it returns.
 */
function holdProcessOpen(): Disposable {
  const handle = setInterval(() => undefined, 2 ** 31 - 1);
  return { [Symbol.dispose]: () => clearInterval(handle) };
}

async function demo(options: DemoOptions): Promise<DemoReport> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const log = (line: string): void => {
    if (!options.json) out.write(`${line}\n`);
  };
  const durationMs = Math.round(options.durationSeconds * 1000);
  const products = seedCatalog();
  const initialStock = seedStock(products);
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "strata-demo-")));
  const kv = await openEmbeddedKv({ dir: dataDir });
  const eventLog = await openEmbeddedLog({ dir: join(dataDir, "events") });
  const collector = new TraceCollector({ maxTraces: 500 });
  const tracing = startTracing({
    serviceName: "strata-demo",
    sampler: new DemoSampler(),
    processors: [collector],
    ...(options.otlpUrl === undefined ? {} : { otlpUrl: options.otlpUrl }),
  });
  const metrics: Metrics[] = [];
  const alerts: Array<{
    atSecond: number;
    node: string;
    slo: string;
    severity: string;
    state: string;
  }> = [];
  const demoStarted = performance.now();
  let issuer: TestIssuer | undefined;
  let recordsAuthorizer: CedarAuthorizer | undefined;
  let secureLeg: SecureLeg | undefined;
  let autoscaleLeg: AutoscaleLeg | undefined;
  // Stopped before the secure leg's NATS server goes.
  const secureNodes: StrataNode[] = [];
  const nodes: StrataNode[] = [];
  const eventsByNode: Events[] = [];
  const runners: SagaRunner[] = [];
  const consumers: Array<{ subscriptions: Subscription[]; sales: Projection }> = [];
  const ledgers: Ledger[] = [];
  // The ledger's tree heads are signed with the demo's keys (Ed25519 + ML-DSA-65), kept with
  // its data (strata ledger audit --public-keys <data>/ledger-keys/sth-public.json).
  const sthKeys = await loadOrWriteSthKeys(join(dataDir, "ledger-keys"));
  try {
    await seedInventory(kv, initialStock);
    const network = createEmbeddedNetwork();
    const spaces: CrdtSpace[] = [];
    for (const [i, id] of ["n1", "n2", "n3"].entries()) {
      const nodeMetrics =
        options.metricsPort === undefined
          ? undefined
          : await startMetrics({ nodeId: id, port: options.metricsPort + i, host: "127.0.0.1" });
      if (nodeMetrics !== undefined) metrics.push(nodeMetrics);
      const node = createNode({
        id,
        region: REGIONS[id] as string,
        transport: network.transport(),
        services: [catalogService(products), inventoryService(kv)],
        heartbeatIntervalMs: 250,
        resilience: { serving: { concurrency: { type: "gradient", initial: 64, max: 1_000 } } },
        telemetry: {
          slos: COMMERCE_SLOS,
          sloEvaluateEveryMs: 500,
          ...(nodeMetrics === undefined ? {} : { meterProvider: nodeMetrics.meterProvider }),
        },
      });
      node.on((event) => {
        if (event.type !== "slo") return;
        alerts.push({
          atSecond: Math.round((performance.now() - demoStarted) / 100) / 10,
          node: id,
          slo: event.slo,
          severity: event.severity,
          state: event.state,
        });
      });
      // Orders and payments: order outcomes and their events commit together (outbox).
      const events = createEvents({
        log: eventLog,
        kv,
        source: `strata://${id}`,
        critical: true,
        leaseMs: 2_000,
        rebalanceMs: 200,
      });
      eventsByNode.push(events);
      // Payments post to a double-entry ledger. The embedded nodes share this process and its
      // log, so they share one replica (one writer, no conditional appends lost to each other);
      // clustered nodes each open their own over JetStream.
      if (ledgers.length === 0) {
        ledgers.push(
          await openLedger({
            log: eventLog,
            stream: "payments-ledger",
            heads: { signer: createSthSigner(sthKeys.privateKeys), everyMs: 1_000 },
          }),
        );
      }
      node.serve(paymentsService(kv, { ledger: ledgers[0] as Ledger }));
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
      nodes.push(node);
    }
    const gateway = createNode({
      id: "gateway",
      region: "eu",
      transport: network.transport(),
      heartbeatIntervalMs: 250,
      resilience: {
        defaults: {
          breaker: { strategy: { type: "consecutive", threshold: 5 }, halfOpenAfterMs: 1_000 },
        },
      },
    });
    nodes.push(gateway);
    // Shoppers in the us region reach the cart service through their own gateway.
    const gatewayUs = createNode({
      id: "gateway-us",
      region: "us",
      transport: network.transport(),
      heartbeatIntervalMs: 250,
      resilience: {
        defaults: {
          breaker: { strategy: { type: "consecutive", threshold: 5 }, halfOpenAfterMs: 1_000 },
        },
      },
    });
    nodes.push(gatewayUs);
    // Every customer starts with EUR 6,000; orders beyond that are declined for lack of funds.
    await openPaymentAccounts(ledgers[0] as Ledger, 600_000n);
    await Promise.all(nodes.map((n) => n.start()));
    await gateway.waitForService("cart", { timeoutMs: 5_000 });
    await gatewayUs.waitForService("cart", { timeoutMs: 5_000 });
    await gateway.waitForService("inventory", { timeoutMs: 5_000 });
    await gateway.waitForService("catalog", { timeoutMs: 5_000 });
    await gateway.waitForService("orders", { timeoutMs: 5_000 });
    // Patient records on a node of their own, every call authorized by the Cedar policies in
    // examples/commerce/policies (deny by default); users come through the gateway with tokens
    // from a local identity provider.
    recordsAuthorizer = await createCedarAuthorizer({
      dir: fileURLToPath(new URL("../../policies", import.meta.url)),
      watch: false,
    });
    // Records and the edge node that serves users talk over mutual TLS with signed call
    // envelopes when a nats-server is at hand (see secure-leg.ts).
    secureLeg = await startSecureLeg({ dir: join(dataDir, "secure"), log });
    const recordsNode = createNode({
      id: "records-1",
      region: "eu",
      transport: secureLeg.records,
      services: [recordsService()],
      heartbeatIntervalMs: 250,
      authorizer: recordsAuthorizer,
    });
    const edgeNode = createNode({
      id: "gateway-edge",
      region: "eu",
      transport: secureLeg.edge,
      heartbeatIntervalMs: 250,
    });
    secureNodes.push(recordsNode, edgeNode);
    await recordsNode.start();
    await edgeNode.start();
    await edgeNode.waitForService("records", { timeoutMs: 10_000 });
    issuer = await startTestIssuer();
    for (const events of eventsByNode) {
      await events.startRelay();
      consumers.push(await startOrderConsumers(events));
    }
    log(
      `strata demo: catalog (${products.length} products) and inventory on n1, n2 (eu) and n3 (us); gateway in eu`,
    );

    const started = performance.now();
    const second = (): number => Math.round((performance.now() - started) / 100) / 10;
    const transitions: Array<{ atSecond: number; target: string; state: string }> = [];
    using _events = gateway.on((event: NodeEvent) => {
      if (event.type === "breaker")
        transitions.push({ atSecond: second(), target: event.target, state: event.state.type });
    });

    const catalogClient = gateway.client(catalog);
    const cartEu = gateway.client(cart);
    const cartUs = gatewayUs.client(cart);
    const cartUpdates: Record<string, number> = { eu: 0, us: 0 };
    const cartRandom = seededRandom(7);
    const cartUpdate = async (client: typeof cartEu, region: string): Promise<unknown> => {
      // A shopper edits one of 200 carts, each drawing from a handful of products.
      const n = Math.floor(cartRandom() * 200);
      const sku =
        products[(n * 7 + Math.floor(cartRandom() * 8)) % products.length]?.sku ?? "sku-00001";
      const result = await client.setItem({
        cartId: `cart-${n}`,
        sku,
        qty: Math.floor(cartRandom() * 4),
      });
      cartUpdates[region] = (cartUpdates[region] ?? 0) + 1;
      return result;
    };
    const inventoryClient = gateway.client(inventory);
    const ordersClient = gateway.client(orders);
    const random = seededRandom(99);
    let reservations = 0;
    let refused = 0;
    let releases = 0;
    const open: string[] = [];
    let orderSeq = 0;
    const call = async (): Promise<unknown> => {
      const roll = random();
      const product = products[Math.floor(random() * products.length)] as (typeof products)[number];
      if (roll < 0.1) return cartUpdate(cartEu, "eu");
      if (roll < 0.55) return catalogClient.getProduct({ id: product.id });
      if (roll < 0.7)
        return catalogClient.searchProducts({
          query: product.name.split(" ")[1] ?? "Kettle",
          limit: 5,
        });
      if (roll < 0.8) return catalogClient.listProducts({ category: product.category, limit: 20 });
      if (roll < 0.85) return inventoryClient.getStock({ sku: product.sku });
      if (roll < 0.95 || open.length === 0) {
        const orderId = `o-${++orderSeq}`;
        try {
          await inventoryClient.reserve({
            sku: product.sku,
            qty: 1 + Math.floor(random() * 3),
            orderId,
          });
          reservations++;
          open.push(orderId);
        } catch (error) {
          if (isStrataError(error, "FAILED_PRECONDITION")) {
            refused++; // out of stock is a correct answer, not a failure
            return undefined;
          }
          throw error;
        }
        return undefined;
      }
      const orderId = open.splice(Math.floor(random() * open.length), 1)[0] as string;
      const result = await inventoryClient.release({ orderId });
      if (result.released) releases++;
      return result;
    };

    // From 40% to 60% of the run the regions are cut apart; both keep taking cart writes.
    const partitionFrom = Math.round(durationMs * 0.4);
    const partitionTo = Math.round(durationMs * 0.6);
    const partitionOn = durationMs >= 1_000;
    let healedAt: number | undefined;
    let convergedAfterMs: number | null = null;
    const cartsEqual = (): boolean => {
      const keys = new Set(spaces.flatMap((sp) => sp.keys()));
      for (const key of keys) {
        const views = spaces.map((sp) => JSON.stringify(cartItems(sp.get(key))));
        if (new Set(views).size !== 1) return false;
      }
      return true;
    };
    let watcher: NodeJS.Timeout | undefined;
    const faultFrom = Math.round(durationMs * 0.3);
    const faultTo = Math.round(durationMs * 0.7);
    const faulty = nodes[1] as StrataNode;
    const faultsOn = options.faults !== false && durationMs >= 1_000;
    let faultRule: { hits: number } | undefined;
    let duringFault = { calls: 0, ok: 0 };
    let baseline = { calls: 0, errors: 0 };
    const timers: NodeJS.Timeout[] = [];
    if (partitionOn) {
      timers.push(
        setTimeout(() => {
          network.partition(["n1", "n2", "gateway"], ["n3", "gateway-us"]);
          if (!options.json) err.write(`\n  ! regions partitioned: eu (n1, n2) | us (n3)\n`);
        }, partitionFrom),
        setTimeout(() => {
          network.heal();
          healedAt = performance.now();
          if (!options.json) err.write(`\n  ! partition healed\n`);
          watcher = setInterval(() => {
            if (healedAt !== undefined && convergedAfterMs === null && cartsEqual()) {
              convergedAfterMs = Math.round(performance.now() - healedAt);
              clearInterval(watcher);
            }
          }, 5);
        }, partitionTo),
      );
    }
    if (faultsOn) {
      timers.push(
        setTimeout(() => {
          faultRule = faulty.faults.inject({
            effect: {
              type: "fail",
              code: "UNAVAILABLE",
              message: "injected: inventory on n2 is down",
            },
            scope: { service: "inventory" },
          });
          baseline = { calls: progressCalls, errors: progressErrors };
          if (!options.json)
            err.write(`\n  ! fault injected: inventory on ${faulty.id} fails every call\n`);
        }, faultFrom),
        setTimeout(() => {
          faulty.faults.clear();
          duringFault = {
            calls: progressCalls - baseline.calls,
            ok: progressCalls - baseline.calls - (progressErrors - baseline.errors),
          };
          if (!options.json) err.write(`\n  ! fault cleared on ${faulty.id}\n`);
        }, faultTo),
      );
    }
    // Halfway through, n3 stops consuming (as when a node is drained): its partitions move.
    let handover: { node: string; atSecond: number } | null = null;
    if (durationMs >= 1_000) {
      timers.push(
        setTimeout(
          () => {
            const leaving = consumers[2];
            if (leaving === undefined) return;
            handover = { node: "n3", atSecond: second() };
            void Promise.all([
              ...leaving.subscriptions.map((sub) => sub.close()),
              leaving.sales.close(),
            ]);
            if (!options.json)
              err.write(`\n  ! n3 stopped consuming order events; n1 and n2 take its partitions\n`);
          },
          Math.round(durationMs * 0.5),
        ),
      );
    }
    let progressCalls = 0;
    let progressErrors = 0;
    const tty = err.isTTY === true && !options.json;
    let lastLine = 0;
    // Product pages check availability: a spike of five times the base rate in the middle of
    // the run, which the autoscaler meets by adding replicas of the availability service.
    autoscaleLeg = await startAutoscaleLeg({
      network,
      kv,
      caller: gateway,
      skus: products.map((p) => p.sku),
    });
    const autoscaleRun = autoscaleLeg.run(durationMs, options.signal);
    // Shoppers in the us region: 300 cart edits a second, arriving whatever the replies do.
    const usLoad = runOpenLoad({
      rate: 300,
      durationMs,
      call: () => cartUpdate(cartUs, "us"),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    // Checkouts: 40 orders a second, each a saga (reserve, charge, confirm) whose outcome is
    // published as an event through the outbox.
    const orderRandom = seededRandom(11);
    let orderNumber = 0;
    const edgeLoad = runRecordsTraffic({
      gateway: edgeNode,
      issuer,
      durationMs,
      rate: 20,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    const ordersLoad = runOpenLoad({
      rate: 40,
      durationMs,
      call: () => {
        const product = products[
          Math.floor(orderRandom() * products.length)
        ] as (typeof products)[number];
        return ordersClient.place({
          orderId: `order-${++orderNumber}`,
          sku: product.sku,
          qty: 1 + Math.floor(orderRandom() * 3),
          priceMinor: product.priceMinor,
        });
      },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    const report: LoadReport = await runLoad({
      concurrency: options.concurrency ?? 32,
      durationMs,
      call,
      progressIntervalMs: 250,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onProgress: (p) => {
        progressCalls = p.calls;
        progressErrors = p.errors;
        if (options.json) return;
        const line = `  ${(p.elapsedMs / 1000).toFixed(1)}s  ${p.calls} calls  ${Math.round(p.rate)}/s  errors ${p.errors}  breakers ${transitions.filter((t) => t.state === "open").length} opened`;
        if (tty) err.write(`\r${line.padEnd(78)}`);
        else if (p.elapsedMs - lastLine >= 1_000) {
          lastLine = p.elapsedMs;
          err.write(`${line}\n`);
        }
      },
    });
    for (const timer of timers) clearTimeout(timer);
    const usReport = await usLoad;
    const ordersReport = await ordersLoad;
    const edge = await edgeLoad;
    const autoscale = await autoscaleRun;
    if (partitionOn && healedAt === undefined) {
      network.heal();
      healedAt = performance.now();
    }
    // Let replication finish: carts must converge once the regions can talk.
    const convergeBy = performance.now() + 10_000;
    while (!cartsEqual() && performance.now() < convergeBy)
      await new Promise((resolve) => setTimeout(resolve, 10));
    if (watcher !== undefined) clearInterval(watcher);
    const converged = cartsEqual();
    if (converged && convergedAfterMs === null && healedAt !== undefined) {
      convergedAfterMs = Math.round(performance.now() - healedAt);
    }
    if (faultsOn && duringFault.calls === 0) {
      faulty.faults.clear();
      duringFault = {
        calls: progressCalls - baseline.calls,
        ok: progressCalls - baseline.calls - (progressErrors - baseline.errors),
      };
    }
    if (tty) err.write("\n");

    // Invariants: no overselling, and every unit is either available or reserved.
    const stock = createStateStore(kv, "stock");
    let oversold = 0;
    let conserved = true;
    for await (const entry of stock.list<{ available: number; reserved: number }>()) {
      if (entry.value.available < 0) oversold -= entry.value.available;
      if (entry.value.available + entry.value.reserved !== initialStock.get(entry.key))
        conserved = false;
    }
    const ev = await checkEvents(eventsByNode[0] as Events, consumers[0]?.sales as Projection);
    const ledgerReport = await checkLedger(ledgers, eventLog, sthKeys, seededRandom(3));
    const observability = summarizeTelemetry(
      nodes.slice(0, 3),
      collector,
      tracing.sampler,
      options.otlpUrl,
      alerts,
      metrics.flatMap((m) => (m.url === undefined ? [] : [m.url])),
    );
    const stats = nodes.map((n) => n.stats());
    const gatewayStats = gateway.stats();
    const result: DemoReport = {
      durationSeconds: Math.round(report.durationMs / 100) / 10,
      cluster: {
        nodes: nodes.slice(0, 3).map((n) => ({
          id: n.id,
          region: n.region,
          served: n.stats().served,
        })),
      },
      calls: {
        total: report.calls,
        ok: report.ok,
        failed: report.calls - report.ok,
        successRate: report.calls === 0 ? 1 : round4(report.ok / report.calls),
        throughput: Math.round(report.throughput),
        latencyMs: {
          p50: report.latency.p50,
          p90: report.latency.p90,
          p99: report.latency.p99,
          max: report.latency.max,
        },
        errors: report.errors,
      },
      inventory: {
        reservations,
        refusedOutOfStock: refused,
        releases,
        oversold,
        stockConserved: conserved,
      },
      carts: {
        updates: cartUpdates,
        carts: new Set(spaces.flatMap((sp) => sp.keys())).size,
        partition: partitionOn
          ? { fromSecond: partitionFrom / 1000, toSecond: partitionTo / 1000 }
          : null,
        convergedAfterMs,
        converged,
      },
      resilience: {
        fault: faultsOn
          ? {
              node: faulty.id,
              service: "inventory",
              fromSecond: faultFrom / 1000,
              toSecond: faultTo / 1000,
            }
          : null,
        successRateDuringFault:
          faultsOn && duringFault.calls > 0 ? round4(duringFault.ok / duringFault.calls) : null,
        breakerTransitions: transitions,
        retries: gatewayStats.retries,
        shed: stats.reduce((sum, s) => sum + s.shed, 0),
        ejections: gatewayStats.ejections,
        faultHits: faultRule?.hits ?? 0,
      },
      events: {
        checkouts: {
          placed: ordersReport.started,
          ok: ordersReport.ok,
          errors: ordersReport.errors,
        },
        orders: { confirmed: ev.confirmed, cancelled: ev.cancelled },
        published: ev.published,
        notifications: ev.notifications,
        duplicateEffects: ev.duplicateEffects,
        deadLetters: ev.deadLetters,
        projectionRows: ev.projectionRows,
        handover,
        sagas: ev.sagas,
      },
      ledger: ledgerReport,
      security: {
        ...edge,
        deniedByReason: recordsAuthorizer.stats().denials,
        transport: secureLeg.report(),
      },
      observability,
      autoscale,
      verdicts: {
        noOversell: oversold === 0,
        stockConserved: conserved,
        noInternalErrors:
          (report.errors["INTERNAL"] ?? 0) === 0 &&
          (usReport.errors["INTERNAL"] ?? 0) === 0 &&
          (ordersReport.errors["INTERNAL"] ?? 0) === 0,
        cartsConverged: converged,
        eventsExactlyOnce: ev.exactlyOnce,
        projectionConsistent: ev.projectionConsistent,
        poisonDeadLettered: ev.poisonDeadLettered,
        sagasSettled: ev.sagas.failed === 0 && ev.sagas.unfinished === 0,
        // The slowest checkout is one trace from the gateway through the service nodes.
        orderTraced:
          ev.confirmed + ev.cancelled === 0 ||
          (observability.slowestOrder !== null &&
            observability.slowestOrder.nodes.length >= 2 &&
            observability.slowestOrder.criticalPath[0]?.name === "orders/place"),
        // Every records request ended as its scenario intends: allowed, denied, or refused.
        policyEnforced: edge.unexpected === 0,
        // The ledger re-derived from storage matches its signed head, money is conserved, and
        // sampled entries prove their inclusion.
        ledgerVerified:
          ledgerReport.audited &&
          ledgerReport.conserved &&
          ledgerReport.head.signed &&
          ledgerReport.proofs.verified === ledgerReport.proofs.sampled,
        // Over mTLS every records call was signed by a workload the records node verified.
        workloadsAuthenticated: workloadsAuthenticated(secureLeg.report()),
        // The spike was met: replicas were added, and p99 came back under the SLO for good.
        autoscaled:
          durationMs < 5_000 ||
          (autoscale.peakReplicas > autoscale.minReplicas &&
            autoscale.recoveredAfterSeconds !== null),
      },
    };
    if (options.json) out.write(`${JSON.stringify(result)}\n`);
    else printSummary(result, log);
    return result;
  } finally {
    await autoscaleLeg?.stop();
    await Promise.allSettled(runners.map((r) => r.close()));
    await Promise.allSettled(eventsByNode.map((e) => e.close()));
    await Promise.allSettled(nodes.map((n) => n.stop({ drainTimeoutMs: 2_000 })));
    await Promise.allSettled(secureNodes.map((n) => n.stop({ drainTimeoutMs: 2_000 })));
    await secureLeg?.[Symbol.asyncDispose]();
    await Promise.allSettled(ledgers.map((l) => l.close()));
    await eventLog.close();
    await kv.close();
    await Promise.allSettled(metrics.map((m) => m.close()));
    await recordsAuthorizer?.close();
    await issuer?.[Symbol.asyncDispose]();
    await tracing.shutdown();
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

/** Over mTLS, every records call carried an envelope the records node verified. */
function workloadsAuthenticated(report: SecureLegReport): boolean {
  return (
    report.mode === "embedded" || (report.envelopesVerified > 0 && report.envelopesRefused === 0)
  );
}

/**
 * Waits for the outbox and the consumers to finish, then checks the events invariants: every
 * order's outcome was published exactly once, every order notified exactly once, the sales
 * projection equals the confirmed orders, and the audit consumer's poison events (and only
 * they) are in the dead-letter stream.
 */
async function checkEvents(events: Events, sales: Projection) {
  const dec = new TextDecoder();
  const deadline = performance.now() + 20_000;
  // Sagas still running (a checkout whose caller gave up) finish first: they record orders.
  for (;;) {
    const page = await events.kv.list("sagas/checkout/", { limit: 10_000 });
    const open = page.entries.filter((e) => {
      const { status } = JSON.parse(dec.decode(e.value)) as { status: string };
      return status === "running" || status === "compensating";
    });
    if (open.length === 0 || performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await events.flushOutbox();
  for (;;) {
    const lags = await Promise.all(
      ["notifications", "audit", "proj-sales"].map((g) => events.lag(orders, g)),
    );
    if (lags.every((l) => l === 0) || performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const all: Order[] = [];
  let after: string | undefined;
  do {
    const page = await events.kv.list("order/", after === undefined ? {} : { after });
    for (const entry of page.entries) all.push(JSON.parse(dec.decode(entry.value)) as Order);
    after = page.next;
  } while (after !== undefined);
  const confirmed = all.filter((o) => o.status === "confirmed");
  const notified = new Map<string, number>();
  after = undefined;
  do {
    const page = await events.kv.list("notification/", after === undefined ? {} : { after });
    for (const entry of page.entries) {
      notified.set(entry.key.slice("notification/".length), Number(dec.decode(entry.value)));
    }
    after = page.next;
  } while (after !== undefined);
  const duplicateEffects = [...notified.values()].filter((n) => n !== 1).length;
  const stream = events.streamOf(orders);
  const ids = new Set<string>();
  let published = 0;
  for (let fromSeq = 1; ;) {
    const page = await events.log.read(stream, { fromSeq, limit: 10_000 });
    for (const r of page) {
      published++;
      ids.add(r.headers["ce-id"] ?? r.id);
    }
    const last = page.at(-1);
    if (last === undefined || page.length < 10_000) break;
    fromSeq = last.seq + 1;
  }
  const units = new Map<string, number>();
  for (const o of confirmed) units.set(o.sku, (units.get(o.sku) ?? 0) + o.qty);
  const rows = await sales.list<number>();
  const projectionConsistent =
    rows.length === units.size && rows.every((row) => units.get(row.key) === row.value);
  const letters = (await events.deadLetters(orders, { limit: 10_000 })).filter(
    (l) => l.group === "audit",
  );
  const poison = confirmed.filter((o) => isAuditPoison(o.sku)).length;
  const sagas = { completed: 0, compensated: 0, failed: 0, unfinished: 0 };
  after = undefined;
  do {
    const page = await events.kv.list("sagas/checkout/", after === undefined ? {} : { after });
    for (const entry of page.entries) {
      const { status } = JSON.parse(dec.decode(entry.value)) as { status: string };
      if (status === "completed" || status === "compensated" || status === "failed")
        sagas[status]++;
      else sagas.unfinished++;
    }
    after = page.next;
  } while (after !== undefined);
  return {
    confirmed: confirmed.length,
    cancelled: all.length - confirmed.length,
    published,
    notifications: notified.size,
    duplicateEffects,
    deadLetters: letters.length,
    projectionRows: rows.length,
    exactlyOnce:
      published === all.length &&
      ids.size === all.length &&
      notified.size === all.length &&
      duplicateEffects === 0,
    projectionConsistent,
    poisonDeadLettered: letters.length === poison,
    sagas,
  };
}

/** SLO attainment over the service nodes, the alerts they raised, and the slowest checkout. */
function summarizeTelemetry(
  serviceNodes: readonly StrataNode[],
  collector: TraceCollector,
  sampler: string,
  otlpUrl: string | undefined,
  alerts: DemoReport["observability"]["alerts"],
  metricUrls: readonly string[],
): DemoReport["observability"] {
  const totals = new Map<string, { objective: number; total: number; good: number }>();
  for (const node of serviceNodes) {
    for (const slo of node.slos.status()) {
      const t = totals.get(slo.name) ?? { objective: slo.objective, total: 0, good: 0 };
      t.total += slo.total;
      t.good += slo.good;
      totals.set(slo.name, t);
    }
  }
  const slos = [...totals].map(([name, t]) => {
    const attainment = t.total === 0 ? 1 : t.good / t.total;
    return {
      name,
      objective: t.objective,
      total: t.total,
      attainment: round4(attainment),
      met: attainment >= t.objective,
    };
  });
  const slowest = collector.slowestRoot("orders/place");
  let slowestOrder: DemoReport["observability"]["slowestOrder"] = null;
  if (slowest !== undefined) {
    const spans = collector.trace(slowest.traceId);
    const root = spans.find((s) => s.parentSpanId === undefined && s.name === "orders/place");
    const orderId = spans.find((s) => typeof s.attributes["commerce.order.id"] === "string")
      ?.attributes["commerce.order.id"] as string | undefined;
    const nodes = new Set<string>();
    for (const s of spans) {
      const node = s.attributes["strata.node.id"];
      if (typeof node === "string") nodes.add(node);
    }
    slowestOrder = {
      orderId: orderId ?? null,
      traceId: slowest.traceId,
      durationMs: Math.round(slowest.durationMs * 10) / 10,
      spans: spans.length,
      nodes: [...nodes].sort(),
      criticalPath: criticalPath(spans, root?.spanId)
        .filter((step) => step.selfMs >= 0.05)
        .map((step) => ({
          name: step.name,
          node: step.node ?? null,
          selfMs: Math.round(step.selfMs * 10) / 10,
        })),
    };
  }
  return {
    tracing: { sampler, spans: collector.spans().length, otlp: otlpUrl ?? null },
    slos,
    alerts,
    slowestOrder,
    metrics: metricUrls,
  };
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

function printSummary(r: DemoReport, log: (line: string) => void): void {
  const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
  log("");
  log(
    `nodes        ${r.cluster.nodes.map((n) => `${n.id} (${n.region}) served ${n.served}`).join(", ")}`,
  );
  log(
    `calls        ${r.calls.total} in ${r.durationSeconds}s, ${r.calls.throughput}/s, success ${pct(r.calls.successRate)}`,
  );
  log(
    `latency      p50 ${r.calls.latencyMs.p50} ms  p90 ${r.calls.latencyMs.p90} ms  p99 ${r.calls.latencyMs.p99} ms  max ${r.calls.latencyMs.max} ms`,
  );
  const errors = Object.entries(r.calls.errors);
  log(
    `errors       ${errors.length === 0 ? "none" : errors.map(([code, n]) => `${code} ${n}`).join(", ")}`,
  );
  log(
    `inventory    ${r.inventory.reservations} reservations, ${r.inventory.refusedOutOfStock} refused (out of stock), ${r.inventory.releases} releases`,
  );
  log(
    `             oversold units ${r.inventory.oversold}; stock conserved: ${r.inventory.stockConserved ? "yes" : "NO"}`,
  );
  if (r.resilience.fault !== null) {
    const f = r.resilience.fault;
    log(
      `resilience   fault: ${f.service} on ${f.node} failed every call from ${f.fromSecond}s to ${f.toSecond}s (${r.resilience.faultHits} calls hit it)`,
    );
    log(
      `             success rate during the fault ${r.resilience.successRateDuringFault === null ? "n/a" : pct(r.resilience.successRateDuringFault)}; retries ${r.resilience.retries}; shed ${r.resilience.shed}; ejections ${r.resilience.ejections}`,
    );
  }
  const c = r.carts;
  log(
    `carts        ${c.carts} carts, ${Object.entries(c.updates)
      .map(([region, n]) => `${n} updates in ${region}`)
      .join(", ")}` +
      (c.partition === null
        ? ""
        : `; regions partitioned ${c.partition.fromSecond}s-${c.partition.toSecond}s`),
  );
  log(
    `             converged: ${c.converged ? "yes" : "NO"}${c.convergedAfterMs === null ? "" : `, ${c.convergedAfterMs} ms after the partition healed`}`,
  );
  const e = r.events;
  const checkoutErrors = Object.entries(e.checkouts.errors);
  log(
    `checkouts    ${e.checkouts.placed} placed, ${e.checkouts.ok} answered` +
      (checkoutErrors.length === 0
        ? ""
        : `, failed: ${checkoutErrors.map(([c, n]) => `${c} ${n}`).join(", ")}`),
  );
  log(
    `events       ${e.orders.confirmed} orders confirmed, ${e.orders.cancelled} cancelled; ${e.published} order events published; ${e.notifications} notifications (${e.duplicateEffects} duplicated)`,
  );
  log(
    `             ${e.deadLetters} poison events dead-lettered; sales projection ${e.projectionRows} SKUs` +
      (e.handover === null
        ? ""
        : `; ${e.handover.node} left the consumer groups at ${e.handover.atSecond}s`),
  );
  const l = r.ledger;
  log(
    `ledger       ${l.entries} entries, ${l.transfers} transfers, ${l.insufficientFunds} refused for insufficient funds; money ${l.conserved ? "conserved" : "NOT conserved"} (${Object.entries(
      l.totals,
    )
      .map(([c, t]) => `${c} ${t}`)
      .join(", ")})`,
  );
  log(
    `             ${l.headsSigned} signed heads (Ed25519 + ML-DSA-65), the last of ${l.head.size} entries, root ${l.head.root.slice(0, 16)}…; audit ${l.audited ? "ok" : `FAILED at entry ${l.firstTampered ?? "?"}`}; ${l.proofs.verified}/${l.proofs.sampled} inclusion proofs verified`,
  );
  const sec = r.security;
  const refused = Object.entries(sec.unauthenticated);
  log(
    `security     ${sec.requests} record requests through the gateway: ${sec.allowed} allowed, ${sec.denied} denied by policy, ${refused.reduce((n, [, c]) => n + c, 0)} refused at the gateway` +
      (refused.length === 0
        ? ""
        : ` (${refused.map(([reason, n]) => `${reason} ${n}`).join(", ")})`),
  );
  log(
    `             denials: ${
      Object.entries(sec.deniedByReason)
        .map(([reason, n]) => `${reason} ${n}`)
        .join("; ") || "none"
    }; outcomes other than intended: ${sec.unexpected}`,
  );
  const t = sec.transport;
  log(
    t.mode === "mtls"
      ? `             records over mutual TLS (${t.tls ?? "?"}${t.postQuantum === true ? ", post-quantum" : ""}): ${t.envelopesVerified} signed calls verified, ${t.envelopesRefused} refused, ${t.renewals} certificate renewals`
      : `             records in-process: ${t.note ?? ""}`,
  );
  const o = r.observability;
  log(
    `SLOs         ${o.slos
      .map(
        (slo) =>
          `${slo.name} ${pct(slo.attainment)} (objective ${pct(slo.objective)}${slo.met ? "" : ", MISSED"})`,
      )
      .join("; ")}`,
  );
  const fired = o.alerts.filter((a) => a.state === "firing");
  log(
    `alerts       ${
      fired.length === 0
        ? "none fired"
        : fired.map((a) => `${a.atSecond}s ${a.node} ${a.slo} ${a.severity}`).join(", ")
    }`,
  );
  if (o.slowestOrder !== null) {
    const so = o.slowestOrder;
    log(
      `slowest      ${so.orderId ?? "an order"}: ${so.durationMs} ms, ${so.spans} spans on ${so.nodes.join(", ")} (trace ${so.traceId})`,
    );
    log(
      `             critical path: ${so.criticalPath
        .map(
          (step) => `${step.name}${step.node === null ? "" : ` [${step.node}]`} ${step.selfMs} ms`,
        )
        .join(" → ")}`,
    );
  }
  log(
    `tracing      ${o.tracing.spans} spans kept (${o.tracing.sampler})${o.tracing.otlp === null ? "" : `, exported to ${o.tracing.otlp}`}`,
  );
  if (o.metrics.length > 0) log(`metrics      ${o.metrics.join(" ")}`);
  const transitions = r.resilience.breakerTransitions;
  log(
    `breakers     ${transitions.length === 0 ? "no transitions" : transitions.map((t) => `${t.atSecond}s ${t.target} ${t.state}`).join(", ")}`,
  );
  const a = r.autoscale;
  const replicasOverTime = a.timeline.map((p) => p.replicas).join(" ");
  log(
    `autoscale    availability ${a.traffic.baseRps} -> ${a.traffic.spikeRps} checks/s from ${a.traffic.spikeFromSecond}s to ${a.traffic.spikeToSecond}s; ${a.policy} policy: replicas ${a.minReplicas} -> ${a.peakReplicas} (max ${a.maxReplicas}), ${a.decisions.length} decisions, start-up ${a.startupMs} ms`,
  );
  log(`             replicas per second: ${replicasOverTime}`);
  log(
    `             p99 ${a.recoveredAfterSeconds === null ? `did not come back under ${AVAILABILITY_P99_SLO_MS} ms` : `back under ${AVAILABILITY_P99_SLO_MS} ms for good ${a.recoveredAfterSeconds}s after the spike began`}; checks ${a.checks.ok} ok, ${a.checks.failed} failed`,
  );
  const gain = a.predictiveGain;
  if (gain !== null) {
    log(
      `             predictive vs reactive on the ${gain.trace} trace (simulated): SLO-violation minutes ${gain.predictive.violationMinutes} vs ${gain.reactive.violationMinutes}, replica-minutes ${gain.predictive.replicaMinutes} vs ${gain.reactive.replicaMinutes}`,
    );
  }
  log(
    `verdicts     ${Object.entries(r.verdicts)
      .map(([name, ok]) => `${name} ${ok ? "ok" : "FAILED"}`)
      .join(", ")}`,
  );
}

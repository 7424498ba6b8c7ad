import {
  AVAILABILITY_P99_SLO_MS,
  startAutoscaleLeg,
  type AutoscaleLeg,
  type AutoscaleSummary,
} from "./autoscale-leg.js";
import { trace } from "@opentelemetry/api";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ADMIN_SERVICE,
  createNode,
  createStateStore,
  isStrataError,
  runOpenLoad,
  seededRandom,
  type Events,
  type FaultRule,
  type OpenLoadReport,
  type NodeEvent,
  type NodeStats,
  type SloStatus,
  type StrataNode,
  type TelemetryOptions,
  type TelemetrySnapshot,
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
import { createCedarAuthorizer, type CedarAuthorizer } from "@strata/security";
import { seedCatalog, seedStock, type Product } from "../data/seed.js";
import { recordsService } from "../services/records.js";
import { startSecureLeg, type SecureLeg, type SecureLegReport } from "./secure-leg.js";
import { runRecordsTraffic, startTestIssuer, type EdgeReport, type TestIssuer } from "./edge.js";
import { catalog } from "../services/catalog.js";
import { cart } from "../services/cart.js";
import { inventory } from "../services/inventory.js";
import { isAuditPoison } from "../services/order-consumers.js";
import { orders, type Order } from "../services/orders.js";
import { checkLedger, type LedgerReport } from "./ledger-check.js";
import { DEMO_REGIONS, HANDOVER_NODE, SERVICE_NODES, type DemoCluster } from "./cluster.js";
import { startEmbeddedCluster } from "./embedded-cluster.js";
import { createProgressView } from "./progress.js";
import { renderHtmlReport } from "./report-html.js";
import { COMMERCE_SLOS } from "./slos.js";
import { startEnginesCluster } from "./engines/cluster.js";
import { startDocumentsLeg, type DocumentsLeg, type DocumentsReport } from "./documents-leg.js";

/** Options for {@link runDemo}. */
export interface DemoOptions {
  /** How long the traffic runs, in seconds. */
  readonly durationSeconds: number;
  /** Browsing calls a second at the base of the traffic profile (twice that in the spike); default 1 500. */
  readonly browseRate?: number;
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
  /**
   * Run every service node as a process of its own on real engines: a NATS cluster and
   * PostgreSQL started locally, or reached by URL. Without it, everything runs in this process.
   */
  readonly engines?: {
    readonly nats?: { readonly urls?: readonly string[] };
    readonly postgres?: { readonly url?: string };
  };
  /**
   * With the engines profile: real nemeses on the node processes besides the demo's own faults
   * (a node killed with kill -9 and started again, another paused with SIGSTOP).
   */
  readonly nemeses?: boolean;
  /** Write the report as an HTML page to this file too. */
  readonly reportFile?: string;
}

/** One section per capability; later building blocks add theirs. */
export interface DemoReport {
  /** Where the nodes ran: all in this process, or as processes on real engines. */
  readonly profile: { readonly mode: "embedded" | "engines"; readonly description: string };
  readonly durationSeconds: number;
  readonly cluster: {
    readonly nodes: ReadonlyArray<Omit<NodeTelemetry, "slos">>;
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
    /** The first few INTERNAL errors' messages (browsing and checkouts). */
    readonly internalErrors: readonly string[];
  };
  /** The traffic profile: checkouts and us cart edits rise during the Black-Friday spike. */
  readonly traffic: {
    readonly spike: { readonly fromSecond: number; readonly toSecond: number };
    readonly browsePerSecond: { readonly base: number; readonly spike: number };
    readonly checkoutsPerSecond: { readonly base: number; readonly spike: number };
    readonly usCartEditsPerSecond: { readonly base: number; readonly spike: number };
  };
  readonly inventory: {
    readonly reservations: number;
    readonly refusedOutOfStock: number;
    readonly releases: number;
    /** Units sold beyond stock: must be 0. */
    readonly oversold: number;
    /** available + reserved equals the initial stock for every SKU. */
    readonly stockConserved: boolean;
    /** SKUs per shard group of the sharded stock store. */
    readonly shards: Readonly<Record<string, number>>;
    /**
     * A shard group added mid-run: the routers of every process (the driver and each node)
     * hand over a third of the slots while orders reserve stock.
     */
    readonly rebalance: {
      readonly group: string;
      readonly atSecond: number;
      readonly slots: number;
      readonly keys: number;
      readonly ms: number;
      /** The map's epoch after it (each freeze and each handover is one). */
      readonly epoch: number;
    } | null;
  };
  readonly carts: {
    /** Cart writes made in each region. */
    readonly updates: Readonly<Record<string, number>>;
    readonly carts: number;
    /** Replicas compared (one per service node). */
    readonly replicas: number;
    /** The regions were cut apart for this window; carts took writes on both sides. */
    readonly partition: { readonly fromSecond: number; readonly toSecond: number } | null;
    /** How long after the partition healed every replica held the same carts. */
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
    /**
     * Of the browse calls admitted while the fault was on, the share that succeeded. Calls shed
     * for load (`RESOURCE_EXHAUSTED`) are left out: they measure the machine, not the fault.
     */
    readonly successRateDuringFault: number | null;
    /** Browse calls shed for load while the fault was on. */
    readonly shedDuringFault: number | null;
    readonly breakerTransitions: ReadonlyArray<{
      readonly atSecond: number;
      readonly target: string;
      readonly state: string;
    }>;
    readonly retries: number;
    readonly shed: number;
    readonly ejections: number;
    readonly faultHits: number;
    /** Real nemeses on node processes (engines profile with nemeses on), in order. */
    readonly nemeses: ReadonlyArray<{
      readonly atSecond: number;
      readonly node: string;
      readonly action: string;
    }>;
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
  /** The payments ledger, audited and proven against its signed head at the end. */
  readonly ledger: LedgerReport;
  /** Order documents filed in the object store, and the invoices a function rendered from them. */
  readonly documents: DocumentsReport;
  /** Users reach patient records through the gateway: tokens verified, Cedar policies enforced. */
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
  /** The HTML report's file, when one was written. */
  readonly htmlReport: string | null;
}

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

/** The Black-Friday spike: from 30% to 70% of the run, traffic of every kind rises. */
export const SPIKE = { from: 0.3, to: 0.7 } as const;

/**
 * Runs the commerce demo: the commerce system in two regions (embedded in this process, or as
 * node processes on NATS and PostgreSQL), gateways driving a traffic profile with a Black-Friday
 * spike, faults and a partition between the regions in the middle of the run, and a report with
 * the invariants checked at the end.
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

async function startCluster(
  options: DemoOptions,
  dataDir: string,
  products: readonly Product[],
  hooks: {
    telemetry: (id: string, index: number) => TelemetryOptions;
    onServiceNode: (node: StrataNode) => void;
    log: (line: string) => void;
  },
): Promise<DemoCluster> {
  if (options.engines === undefined) {
    return startEmbeddedCluster({
      dataDir,
      products,
      telemetry: hooks.telemetry,
      onServiceNode: hooks.onServiceNode,
    });
  }
  return startEnginesCluster({
    ...options.engines,
    dir: dataDir,
    log: hooks.log,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
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
  const view = createProgressView({ stream: err, durationMs, quiet: options.json === true });
  let cluster: DemoCluster | undefined;
  let issuer: TestIssuer | undefined;
  let recordsAuthorizer: CedarAuthorizer | undefined;
  let secureLeg: SecureLeg | undefined;
  let autoscaleLeg: AutoscaleLeg | undefined;
  let documentsLeg: DocumentsLeg | undefined;
  // Stopped before the secure leg's NATS server goes.
  const secureNodes: StrataNode[] = [];
  // Ends the watch for converged carts (also when the run fails: its timers would keep the
  // process alive).
  let stopWatching = false;
  try {
    if (options.metricsPort !== undefined) {
      for (const [i, id] of SERVICE_NODES.entries()) {
        metrics.push(
          await startMetrics({ nodeId: id, port: options.metricsPort + i, host: "127.0.0.1" }),
        );
      }
    }
    cluster = await startCluster(options, dataDir, products, {
      telemetry: (_id, i) => ({
        slos: COMMERCE_SLOS,
        sloEvaluateEveryMs: 500,
        ...(metrics[i] === undefined ? {} : { meterProvider: metrics[i].meterProvider }),
      }),
      onServiceNode: (node) =>
        node.on((event) => {
          if (event.type !== "slo") return;
          alerts.push({
            atSecond: Math.round((performance.now() - demoStarted) / 100) / 10,
            node: node.id,
            slo: event.slo,
            severity: event.severity,
            state: event.state,
          });
        }),
      log: (line) => void err.write(`  ${line}\n`),
    });
    const { gateways } = cluster;
    const gateway = gateways.eu;
    const gatewayUs = gateways.us;
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
    // Documents: confirmed orders are filed in the object store, and a function triggered by
    // each new file renders its invoice.
    documentsLeg = await startDocumentsLeg({
      events: cluster.events,
      blob: cluster.blob,
      products,
    });
    log(
      `strata demo: ${products.length} products; ${Object.entries(cluster.regions)
        .map(([region, ids]) => `${region}: ${ids.join(", ")} + gateway-${region}`)
        .join("; ")}`,
    );
    log(`             ${cluster.description}`);

    const started = performance.now();
    const second = (): number => Math.round((performance.now() - started) / 100) / 10;
    const transitions: Array<{ atSecond: number; target: string; state: string }> = [];
    const breakerStates = new Map<string, string>();
    using _events = gateway.on((event: NodeEvent) => {
      if (event.type !== "breaker") return;
      transitions.push({ atSecond: second(), target: event.target, state: event.state.type });
      breakerStates.set(event.target, event.state.type);
      if (event.state.type === "open") view.incident(`breaker for ${event.target} opened`);
    });
    const traffic = trafficProfile(cluster.mode, options.browseRate);
    const inSpike = (elapsedMs: number): boolean =>
      elapsedMs >= durationMs * SPIKE.from && elapsedMs < durationMs * SPIKE.to;

    const catalogClient = gateway.client(catalog);
    const cartEu = gateway.client(cart);
    const cartUs = gatewayUs.client(cart);
    const cartUpdates: Record<string, number> = { eu: 0, us: 0 };
    view.state.carts = cartUpdates;
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
    const partitionOn = durationMs >= 1_000 && cluster.canPartition;
    let healedAt: number | undefined;
    let convergedAfterMs: number | null = null;
    const cartsEqual = async (): Promise<boolean> => {
      const replicas = await (cluster as DemoCluster).cartReplicas();
      const keys = new Set(replicas.flatMap((r) => [...r.keys()]));
      for (const key of keys) {
        if (new Set(replicas.map((r) => r.get(key) ?? "[]")).size !== 1) return false;
      }
      return true;
    };
    // After the partition heals: how long until every replica holds the same carts.
    const watchConvergence = async (): Promise<void> => {
      while (healedAt !== undefined && convergedAfterMs === null && !stopWatching) {
        const at = performance.now();
        if (await cartsEqual().catch(() => false)) {
          convergedAfterMs = Math.round(at - healedAt);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, cluster?.mode === "embedded" ? 5 : 50));
      }
    };
    let convergence: Promise<void> | undefined;
    const heal = async (): Promise<void> => {
      await (cluster as DemoCluster).heal();
      healedAt = performance.now();
      view.state.partitioned = false;
      view.incident("partition healed");
      convergence = watchConvergence();
    };
    const faultFrom = Math.round(durationMs * 0.3);
    const faultTo = Math.round(durationMs * 0.7);
    const faulty = DEMO_REGIONS.eu[1];
    const faultsOn = options.faults !== false && durationMs >= 1_000;
    let faultHits = 0;
    let faultCleared = false;
    let duringFault = { calls: 0, ok: 0, shed: 0 };
    let baseline = { calls: 0, errors: 0, shed: 0 };
    const admin = (action: string, input: object): Promise<unknown> =>
      gateway.call(ADMIN_SERVICE, action, input, { node: faulty, timeoutMs: 2_000 });
    const clearFault = async (): Promise<void> => {
      if (faultCleared) return;
      const rules = (await admin("faultList", {})) as FaultRule[];
      faultHits = rules.reduce((sum, r) => sum + r.hits, 0);
      await admin("faultClear", {});
      faultCleared = true;
      duringFault = {
        calls: progressCalls - baseline.calls,
        ok: progressCalls - baseline.calls - (progressErrors - baseline.errors),
        shed: progressShed - baseline.shed,
      };
      view.state.fault = null;
      view.incident(`fault cleared on ${faulty}`);
    };
    const timers: NodeJS.Timeout[] = [];
    const background: Array<Promise<unknown>> = [];
    const at = (ms: number, what: () => Promise<void>): void => {
      timers.push(
        setTimeout(() => {
          background.push(
            what().catch((error: unknown) =>
              view.incident(`could not ${what.name}: ${(error as Error).message}`),
            ),
          );
        }, ms),
      );
    };
    if (partitionOn) {
      at(partitionFrom, async function partition() {
        await (cluster as DemoCluster).partitionRegions();
        view.state.partitioned = true;
        view.incident(
          `regions partitioned: eu (${DEMO_REGIONS.eu.join(", ")}) | us (${DEMO_REGIONS.us.join(", ")})`,
        );
      });
      at(partitionTo, heal);
    }
    if (faultsOn) {
      at(faultFrom, async function injectFault() {
        await admin("faultInject", {
          effect: {
            type: "fail",
            code: "UNAVAILABLE",
            message: `injected: inventory on ${faulty} is down`,
          },
          scope: { service: "inventory" },
        });
        baseline = { calls: progressCalls, errors: progressErrors, shed: progressShed };
        view.state.fault = `inventory on ${faulty} failing`;
        view.incident(`fault injected: inventory on ${faulty} fails every call`);
      });
      at(faultTo, clearFault);
    }
    // At 40%, the stock store gets a second shard group in eu: a third of the slots move to it
    // while orders reserve stock, batch by batch, fenced across every router that serves them.
    let rebalance: DemoReport["inventory"]["rebalance"] = null;
    if (durationMs >= 1_000) {
      at(Math.round(durationMs * 0.4), async function rebalanceStock() {
        const stockKv = (cluster as DemoCluster).stockKv;
        const eu = stockKv.map().groups.filter((g) => g.region === "eu").length;
        const id = `stock-eu-${eu + 1}`;
        const atSecond = second();
        const group = await (cluster as DemoCluster).openStockGroup(id, "eu");
        view.incident(`inventory: shard group ${id} added; slots move to it while orders run`);
        const started = performance.now();
        let slots = 0;
        const keys = await stockKv.addGroup(group, { onSlotMoved: () => slots++ });
        const ms = Math.round(performance.now() - started);
        rebalance = { group: id, atSecond, slots, keys, ms, epoch: stockKv.map().epoch };
        view.incident(`inventory: ${id} took ${slots} slots (${keys} keys) in ${ms} ms`);
      });
    }
    // Halfway through, a node stops consuming (as when it is drained): its partitions move.
    let handover: { node: string; atSecond: number } | null = null;
    if (durationMs >= 1_000) {
      at(Math.round(durationMs * 0.5), async function handOver() {
        handover = { node: HANDOVER_NODE, atSecond: second() };
        await (cluster as DemoCluster).stopConsuming(HANDOVER_NODE);
        view.incident(
          `${HANDOVER_NODE} stopped consuming order events; the others take its partitions`,
        );
      });
    }
    // Real nemeses on the engines profile: kill -9 a us node after the partition heals and start
    // it again; pause an eu node for a second and a half.
    const nemeses: Array<{ atSecond: number; node: string; action: string }> = [];
    const real = cluster.nemeses;
    if (options.nemeses === true && real !== undefined && durationMs >= 5_000) {
      const note = (node: string, action: string): void => {
        nemeses.push({ atSecond: second(), node, action });
        view.incident(`${node}: ${action}`);
      };
      const killed = DEMO_REGIONS.us[0];
      const paused = DEMO_REGIONS.eu[0];
      at(Math.round(durationMs * 0.62), async function kill() {
        await real.kill(killed);
        note(killed, "killed (kill -9)");
      });
      at(Math.round(durationMs * 0.72), async function restart() {
        await real.restart(killed);
        note(killed, "restarted");
      });
      at(Math.round(durationMs * 0.8), async function pause() {
        real.pause(paused, true);
        note(paused, "paused (SIGSTOP)");
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        real.pause(paused, false);
        note(paused, "resumed (SIGCONT)");
      });
    }
    let progressCalls = 0;
    let progressErrors = 0;
    let progressShed = 0;
    // Product pages check availability: the spike is five times the base rate, which the
    // autoscaler meets by adding replicas of the availability service.
    autoscaleLeg = await startAutoscaleLeg({
      transport: () => (cluster as DemoCluster).transport(),
      kv: cluster.stockKv,
      caller: gateway,
      skus: products.map((p) => p.sku),
    });
    const autoscaleRun = autoscaleLeg.run(durationMs, options.signal);
    // Shoppers in the us region edit carts, arriving whatever the replies do (embedded: 200 a second,
    // 450 in the spike).
    const usLoad = runOpenLoad({
      rate: (ms) => (inSpike(ms) ? traffic.carts.spike : traffic.carts.base),
      durationMs,
      call: () => cartUpdate(cartUs, "us"),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    // Checkouts (embedded: 25 a second, 75 in the spike), each a saga (reserve, charge, confirm)
    // whose outcome is published as an event through the outbox.
    const orderRandom = seededRandom(11);
    let orderNumber = 0;
    const edgeLoad = runRecordsTraffic({
      gateway: edgeNode,
      issuer,
      durationMs,
      rate: 20,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    const checkouts = view.state.checkouts;
    // The first few internal errors, with their messages: an INTERNAL is a bug to look into.
    const internalErrors: string[] = [];
    const noteInternal = (error: unknown): void => {
      if (internalErrors.length < 5 && isStrataError(error, "INTERNAL"))
        internalErrors.push(error.message);
    };
    const ordersLoad = runOpenLoad({
      rate: (ms) => (inSpike(ms) ? traffic.checkouts.spike : traffic.checkouts.base),
      durationMs,
      call: async () => {
        const product = products[
          Math.floor(orderRandom() * products.length)
        ] as (typeof products)[number];
        checkouts.placed++;
        try {
          const placed = await ordersClient.place({
            orderId: `order-${++orderNumber}`,
            sku: product.sku,
            qty: 1 + Math.floor(orderRandom() * 3),
            priceMinor: product.priceMinor,
          });
          checkouts.ok++;
          return placed;
        } catch (error) {
          checkouts.failed++;
          noteInternal(error);
          throw error;
        }
      },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    // Browsing: shoppers arrive at `browseRate` calls a second, twice that in the spike, whatever
    // the replies do (an open system: a slow or shedding shop does not slow its shoppers down).
    let spikeShown = false;
    let lastProgress = { at: 0, calls: 0 };
    const progress = setInterval(() => {
      const elapsedMs = performance.now() - started;
      const state = view.state;
      state.elapsedMs = elapsedMs;
      state.spike = inSpike(elapsedMs);
      if (state.spike !== spikeShown) {
        spikeShown = state.spike;
        view.incident(spikeShown ? "Black-Friday spike begins" : "the spike is over");
      }
      const rate =
        ((progressCalls - lastProgress.calls) * 1_000) / Math.max(1, elapsedMs - lastProgress.at);
      lastProgress = { at: elapsedMs, calls: progressCalls };
      state.browse = { calls: progressCalls, errors: progressErrors, rate };
      state.replicas = autoscaleLeg?.replicas() ?? 0;
      state.breakersOpen = [...breakerStates.values()].filter((x) => x === "open").length;
      view.render();
    }, 250);
    let browseReport: OpenLoadReport;
    try {
      browseReport = await runOpenLoad({
        rate: (ms) => (inSpike(ms) ? traffic.browse.spike : traffic.browse.base),
        durationMs,
        call: async () => {
          progressCalls++;
          try {
            return await call();
          } catch (error) {
            progressErrors++;
            if (isStrataError(error, "RESOURCE_EXHAUSTED")) progressShed++;
            noteInternal(error);
            throw error;
          }
        },
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } finally {
      clearInterval(progress);
    }
    const report = {
      calls: browseReport.started,
      ok: browseReport.ok,
      durationMs: browseReport.durationMs,
      throughput: (browseReport.started * 1_000) / Math.max(1, browseReport.durationMs),
      latency: browseReport.latency,
      errors: browseReport.errors,
    };
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(background);
    const usReport = await usLoad;
    const ordersReport = await ordersLoad;
    const edge = await edgeLoad;
    view.state.records = edge.requests;
    const autoscale = await autoscaleRun;
    if (partitionOn && healedAt === undefined) await heal();
    if (faultsOn) await clearFault();
    view.close();
    // Let replication finish: carts must converge once the regions can talk.
    const convergeBy = performance.now() + (cluster.mode === "embedded" ? 10_000 : 30_000);
    while (!(await cartsEqual().catch(() => false)) && performance.now() < convergeBy)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const converged = await cartsEqual().catch((error: unknown) => {
      view.incident(`could not read the cart replicas: ${(error as Error).message}`);
      return false;
    });
    stopWatching = true;
    await convergence;
    if (converged && convergedAfterMs === null && healedAt !== undefined) {
      convergedAfterMs = Math.round(performance.now() - healedAt);
    }
    const cartReplicas = await cluster.cartReplicas().catch(() => []);

    // Invariants: no overselling, and every unit is either available or reserved.
    const stock = createStateStore(cluster.stockKv, "stock");
    // How the stock is spread over the shard groups.
    const shards = new Map<string, number>();
    for (const p of products) {
      const group = cluster.stockKv.groupOf(`stock/${p.sku}`);
      const label = `${group.id} (${group.region})`;
      shards.set(label, (shards.get(label) ?? 0) + 1);
    }
    let oversold = 0;
    let conserved = true;
    for await (const entry of stock.list<{ available: number; reserved: number }>()) {
      if (entry.value.available < 0) oversold -= entry.value.available;
      if (entry.value.available + entry.value.reserved !== initialStock.get(entry.key))
        conserved = false;
    }
    const ev = await checkEvents(cluster.events);
    const documents = await documentsLeg.report({ confirmed: ev.confirmedOrders });
    const ledgerReport = await checkLedger(
      cluster.ledgers,
      cluster.log,
      cluster.sthKeys,
      seededRandom(3),
    );
    const nodeTelemetry = await readNodeTelemetry(gateway, SERVICE_NODES);
    const observability = summarizeTelemetry(
      nodeTelemetry,
      collector,
      tracing.sampler,
      options.otlpUrl,
      alerts,
      metrics.flatMap((m) => (m.url === undefined ? [] : [m.url])),
    );
    const gatewayStats = gateway.stats();
    const embedded = cluster.mode === "embedded";
    const verdicts: Record<string, boolean> = {
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
      // The ledger re-derived from storage matches its signed head, money is conserved, and
      // sampled entries prove their inclusion.
      ledgerVerified:
        ledgerReport.audited &&
        ledgerReport.conserved &&
        ledgerReport.head.signed &&
        ledgerReport.proofs.verified === ledgerReport.proofs.sampled,
      // Every confirmed order has exactly one invoice, with the right total.
      invoicesRendered: documents.invoicesRendered,
      // Every records request ended as its scenario intends: allowed, denied, or refused.
      policyEnforced: edge.unexpected === 0,
      // Over mTLS every records call was signed by a workload the records node verified.
      workloadsAuthenticated: workloadsAuthenticated(secureLeg.report()),
    };
    // The spike was met: replicas were added, and p99 came back under the SLO for good. Judged
    // only when the spike lasts long enough for replicas to boot (a second each in this process,
    // seconds as processes on the engines) and for p99 to settle after them.
    // The stock store's rebalance is judged when the run was long enough to schedule one.
    if (durationMs >= 1_000) verdicts["stockRebalanced"] = rebalance !== null;
    if (durationMs >= (cluster.mode === "embedded" ? 5_000 : 15_000)) {
      verdicts["autoscaled"] =
        autoscale.peakReplicas > autoscale.minReplicas && autoscale.recoveredAfterSeconds !== null;
    }
    // The slowest checkout is one trace from the gateway through the service nodes (their
    // spans are collected in this process only on the embedded profile).
    if (embedded) {
      verdicts["orderTraced"] =
        ev.confirmed + ev.cancelled === 0 ||
        (observability.slowestOrder !== null &&
          observability.slowestOrder.nodes.length >= 2 &&
          observability.slowestOrder.criticalPath[0]?.name === "orders/place");
    }
    const result: DemoReport = {
      profile: { mode: cluster.mode, description: cluster.description },
      durationSeconds: Math.round(report.durationMs / 100) / 10,
      cluster: {
        nodes: nodeTelemetry.map(({ slos: _slos, ...node }) => node),
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
        internalErrors,
      },
      traffic: {
        spike: {
          fromSecond: (durationMs * SPIKE.from) / 1000,
          toSecond: (durationMs * SPIKE.to) / 1000,
        },
        browsePerSecond: traffic.browse,
        checkoutsPerSecond: traffic.checkouts,
        usCartEditsPerSecond: traffic.carts,
      },
      inventory: {
        reservations,
        refusedOutOfStock: refused,
        releases,
        oversold,
        stockConserved: conserved,
        shards: Object.fromEntries(shards),
        rebalance,
      },
      carts: {
        updates: cartUpdates,
        carts: new Set(cartReplicas.flatMap((r) => [...r.keys()])).size,
        replicas: cartReplicas.length,
        partition: partitionOn
          ? { fromSecond: partitionFrom / 1000, toSecond: partitionTo / 1000 }
          : null,
        convergedAfterMs,
        converged,
      },
      resilience: {
        fault: faultsOn
          ? {
              node: faulty,
              service: "inventory",
              fromSecond: faultFrom / 1000,
              toSecond: faultTo / 1000,
            }
          : null,
        successRateDuringFault:
          faultsOn && duringFault.calls > duringFault.shed
            ? round4(duringFault.ok / (duringFault.calls - duringFault.shed))
            : null,
        shedDuringFault: faultsOn ? duringFault.shed : null,
        breakerTransitions: transitions,
        retries: gatewayStats.retries,
        shed: nodeTelemetry.reduce((sum, n) => sum + n.shed, 0),
        ejections: gatewayStats.ejections,
        faultHits,
        nemeses,
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
      documents,
      security: {
        ...edge,
        deniedByReason: recordsAuthorizer.stats().denials,
        transport: secureLeg.report(),
      },
      observability,
      autoscale,
      verdicts,
      htmlReport: options.reportFile ?? null,
    };
    if (options.reportFile !== undefined) {
      await writeFile(options.reportFile, renderHtmlReport(result));
    }
    if (options.json) out.write(`${JSON.stringify(result)}\n`);
    else printSummary(result, log);
    return result;
  } finally {
    stopWatching = true;
    view.close();
    await documentsLeg?.stop();
    await autoscaleLeg?.stop();
    await cluster?.stop();
    await Promise.allSettled(secureNodes.map((n) => n.stop({ drainTimeoutMs: 2_000 })));
    await secureLeg?.[Symbol.asyncDispose]();
    await Promise.allSettled(metrics.map((m) => m.close()));
    await recordsAuthorizer?.close();
    await issuer?.[Symbol.asyncDispose]();
    await tracing.shutdown();
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Calls a second at the base of the profile and in the spike. On the engines profile every call
 * crosses processes, NATS (replicated three times) and PostgreSQL on the same two cores as the
 * nodes: the shop sees a tenth of the embedded traffic there.
 */
function trafficProfile(mode: DemoCluster["mode"], browseRate: number | undefined) {
  const scale = mode === "embedded" ? 1 : 0.1;
  const browse = browseRate ?? 1_500 * scale;
  return {
    browse: { base: browse, spike: 2 * browse },
    checkouts: { base: 25 * scale, spike: 75 * scale },
    carts: { base: 200 * scale, spike: 450 * scale },
  };
}

/** A service node's counters and SLOs, read through the admin service. */
export interface NodeTelemetry {
  readonly id: string;
  readonly region: string;
  readonly served: number;
  readonly shed: number;
  /** At the end of the run: calls being served, and the adaptive concurrency limit. */
  readonly inFlight: number;
  readonly concurrencyLimit: number | null;
  readonly slos: readonly SloStatus[];
}

/** Reads every service node's stats and telemetry through its admin service (any profile). */
async function readNodeTelemetry(
  caller: StrataNode,
  ids: readonly string[],
): Promise<NodeTelemetry[]> {
  return Promise.all(
    ids.map(async (id) => {
      const options = { node: id, timeoutMs: 5_000 };
      let stats: NodeStats;
      let telemetry: TelemetrySnapshot;
      try {
        [stats, telemetry] = await Promise.all([
          caller.call(ADMIN_SERVICE, "stats", {}, options) as Promise<NodeStats>,
          caller.call(ADMIN_SERVICE, "telemetry", {}, options) as Promise<TelemetrySnapshot>,
        ]);
      } catch {
        // A node that is down at the end (a nemesis left it so) has nothing to report.
        return {
          id,
          region: "?",
          served: 0,
          shed: 0,
          inFlight: 0,
          concurrencyLimit: null,
          slos: [],
        };
      }
      return {
        id,
        region: telemetry.region,
        served: stats.served,
        shed: stats.shed,
        inFlight: telemetry.inFlight,
        concurrencyLimit: telemetry.concurrencyLimit ?? null,
        slos: telemetry.slos,
      };
    }),
  );
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
async function checkEvents(events: Events) {
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
  const rows: Array<{ key: string; value: number }> = [];
  after = undefined;
  do {
    const page = await events.kv.list(SALES_PREFIX, after === undefined ? {} : { after });
    for (const entry of page.entries) {
      rows.push({
        key: entry.key.slice(SALES_PREFIX.length),
        value: JSON.parse(dec.decode(entry.value)) as number,
      });
    }
    after = page.next;
  } while (after !== undefined);
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
    confirmedOrders: confirmed,
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

/** The rows of the `sales` projection (see order-consumers.ts), read straight from the store. */
const SALES_PREFIX = "proj/sales/";

/** SLO attainment over the service nodes, the alerts they raised, and the slowest checkout. */
function summarizeTelemetry(
  serviceNodes: readonly NodeTelemetry[],
  collector: TraceCollector,
  sampler: string,
  otlpUrl: string | undefined,
  alerts: DemoReport["observability"]["alerts"],
  metricUrls: readonly string[],
): DemoReport["observability"] {
  const totals = new Map<string, { objective: number; total: number; good: number }>();
  for (const node of serviceNodes) {
    for (const slo of node.slos) {
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
  log(`profile      ${r.profile.description}`);
  log(
    `traffic      Black-Friday spike ${r.traffic.spike.fromSecond}s-${r.traffic.spike.toSecond}s: browsing ${r.traffic.browsePerSecond.base} -> ${r.traffic.browsePerSecond.spike}/s, checkouts ${r.traffic.checkoutsPerSecond.base} -> ${r.traffic.checkoutsPerSecond.spike}/s, us cart edits ${r.traffic.usCartEditsPerSecond.base} -> ${r.traffic.usCartEditsPerSecond.spike}/s`,
  );
  log(
    `nodes        ${r.cluster.nodes.map((n) => `${n.id} (${n.region}) served ${n.served}, shed ${n.shed}`).join("; ")}`,
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
  for (const message of r.calls.internalErrors) log(`             INTERNAL: ${message}`);
  log(
    `inventory    ${r.inventory.reservations} reservations, ${r.inventory.refusedOutOfStock} refused (out of stock), ${r.inventory.releases} releases`,
  );
  log(
    `             oversold units ${r.inventory.oversold}; stock conserved: ${r.inventory.stockConserved ? "yes" : "NO"}; SKUs per shard: ${Object.entries(
      r.inventory.shards,
    )
      .map(([group, n]) => `${group} ${n}`)
      .join(", ")}`,
  );
  if (r.inventory.rebalance !== null) {
    const b = r.inventory.rebalance;
    log(
      `             rebalanced at ${b.atSecond}s: ${b.group} took ${b.slots} slots (${b.keys} keys) in ${b.ms} ms, map epoch ${b.epoch}`,
    );
  }
  if (r.resilience.fault !== null) {
    const f = r.resilience.fault;
    log(
      `resilience   fault: ${f.service} on ${f.node} failed every call from ${f.fromSecond}s to ${f.toSecond}s (${r.resilience.faultHits} calls hit it)`,
    );
    log(
      `             success rate during the fault ${r.resilience.successRateDuringFault === null ? "n/a" : `${pct(r.resilience.successRateDuringFault)} of calls admitted (${r.resilience.shedDuringFault ?? 0} shed)`}; retries ${r.resilience.retries}; shed ${r.resilience.shed}; ejections ${r.resilience.ejections}`,
    );
  }
  const c = r.carts;
  log(
    `carts        ${c.carts} carts on ${c.replicas} replicas, ${Object.entries(c.updates)
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
  const d = r.documents;
  log(
    `documents    ${d.documents} order documents filed, ${d.rendered} invoices rendered by ${d.function.name} (${d.function.started} instances started; render p50 ${d.renderLatency.p50Ms.toFixed(1)} ms, p99 ${d.renderLatency.p99Ms.toFixed(1)} ms); ${d.check.missingCount} missing, ${d.check.wrongTotals} wrong totals, ${d.check.duplicates} duplicated`,
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
  if (r.resilience.nemeses.length > 0) {
    log(
      `nemeses      ${r.resilience.nemeses.map((n) => `${n.atSecond}s ${n.node} ${n.action}`).join(", ")}`,
    );
  }
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
  if (r.htmlReport !== null) log(`report       ${r.htmlReport}`);
  log(
    `verdicts     ${Object.entries(r.verdicts)
      .map(([name, ok]) => `${name} ${ok ? "ok" : "FAILED"}`)
      .join(", ")}`,
  );
}

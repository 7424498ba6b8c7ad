import type { FunctionState, LatencyStats, StrataFunction } from "@strata/autoscale";
import type { BlobInfo, BlobStore, StrongKV, Subscription } from "@strata/core";
import { waitFor } from "@strata/test-harness/engines";
import {
  DOCUMENTS_GROUP,
  INVOICES_PREFIX,
  ORDER_DOCUMENTS_PREFIX,
  checkInvoices,
  invoiceKey,
  listObjects,
  orderDocumentKey,
  startInvoiceFunction,
  startOrderDocuments,
  type ConfirmedOrder,
  type InvoiceCheck,
  type OrderDocumentsOptions,
} from "../services/documents.js";
import { orders, type Order } from "../services/orders.js";

/** What the demo report says about documents. */
export interface DocumentsReport {
  /** Confirmed orders the report covers. */
  readonly orders: number;
  /** Of them, orders with a document under `orders/`. */
  readonly documents: number;
  /** Of them, orders with an invoice rendered from their current document. */
  readonly rendered: number;
  /** Of them, orders still without such an invoice when the report was taken. */
  readonly pending: number;
  /**
   * The pipeline settled before the deadline: every order has its invoice, or was given up on
   * (a dead letter of the consumer or of the function).
   */
  readonly caughtUp: boolean;
  /** How long the report waited for the pipeline to settle (ms). */
  readonly waitedMs: number;
  /** Orders the consumer gave up on, and order documents the function gave up on. */
  readonly deadLetters: { readonly documents: number; readonly invoices: number };
  /** The invoice function's pool, as counted since this leg started it. */
  readonly function: {
    readonly name: string;
    readonly state: FunctionState["type"];
    /** Warm instances now. */
    readonly instances: number;
    /** Instances started (each a cold start of the renderer) and retired. */
    readonly started: number;
    readonly retired: number;
    /** Inputs that found no warm instance, and how long they waited for one. */
    readonly coldStarts: LatencyStats;
    readonly warmHitRatio: number;
    readonly processed: number;
    readonly failed: number;
    readonly backlog: number;
  };
  /** From an order document stored to its invoice stored (the object store's clock), ms. */
  readonly renderLatency: LatencyStats;
  /** The invoices checked against the confirmed orders. */
  readonly check: InvoiceCheck;
  /** The verdict: every confirmed order has exactly one invoice, with its amount plus VAT. */
  readonly invoicesRendered: boolean;
}

/** The documents pipeline of the demo, running in this process. */
export interface DocumentsLeg extends AsyncDisposable {
  /**
   * Waits (up to `timeoutMs`, default 10 000) until every confirmed order has its invoice or was
   * dead-lettered, then checks the invoices. `confirmed` defaults to the confirmed order records
   * in `events.kv`.
   */
  report(options?: {
    readonly confirmed?: readonly ConfirmedOrder[];
    readonly timeoutMs?: number;
    readonly signal?: AbortSignal;
  }): Promise<DocumentsReport>;
  /** Stops the consumer, then drains and stops the function. */
  stop(): Promise<void>;
}

/** How the documents leg runs. */
export interface DocumentsLegOptions extends Pick<
  OrderDocumentsOptions,
  "events" | "blob" | "customers" | "products"
> {
  /** Where the invoice function keeps its position and dead letters; default `events.kv`. */
  readonly kv?: StrongKV;
  /** Default 4. */
  readonly maxInstances?: number;
  /** One line per notable thing (a report that hit its deadline). */
  readonly log?: (line: string) => void;
}

const dec = new TextDecoder();
const POLL_MS = 100;

/** The order records in a StrongKV that are confirmed (the orders service keeps them at `order/`). */
export async function readConfirmedOrders(
  kv: StrongKV,
  options: { readonly signal?: AbortSignal } = {},
): Promise<Order[]> {
  const confirmed: Order[] = [];
  let after: string | undefined;
  do {
    const page = await kv.list("order/", {
      ...(after === undefined ? {} : { after }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    for (const entry of page.entries) {
      const order = JSON.parse(dec.decode(entry.value)) as Order;
      if (order.status === "confirmed") confirmed.push(order);
    }
    after = page.next;
  } while (after !== undefined);
  return confirmed;
}

function latencyOf(samples: number[]): LatencyStats {
  if (samples.length === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p: number): number => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return {
    count: sorted.length,
    p50Ms: rank(0.5),
    p99Ms: rank(0.99),
    maxMs: sorted[sorted.length - 1] ?? 0,
  };
}

interface Progress {
  readonly documents: number;
  readonly rendered: number;
  /** Orders with no invoice of their current document yet. */
  readonly waiting: readonly string[];
  readonly latencies: number[];
}

async function progressOf(
  blob: BlobStore,
  confirmed: readonly ConfirmedOrder[],
  signal: AbortSignal | undefined,
): Promise<Progress> {
  const options = signal === undefined ? {} : { signal };
  const byKey = (items: BlobInfo[]): Map<string, BlobInfo> => new Map(items.map((i) => [i.key, i]));
  const documents = byKey(await listObjects(blob, ORDER_DOCUMENTS_PREFIX, options));
  const invoices = byKey(await listObjects(blob, INVOICES_PREFIX, options));
  let documented = 0;
  let rendered = 0;
  const waiting: string[] = [];
  const latencies: number[] = [];
  for (const { orderId } of confirmed) {
    const document = documents.get(orderDocumentKey(orderId));
    const invoice = invoices.get(invoiceKey(orderId));
    if (document !== undefined) documented++;
    if (document !== undefined && invoice?.metadata["source-sha256"] === document.sha256) {
      rendered++;
      latencies.push(Math.max(0, invoice.at - document.at));
    } else {
      waiting.push(orderId);
    }
  }
  return { documents: documented, rendered, waiting, latencies };
}

/**
 * Starts the documents pipeline: the invoice function (blob-triggered on `orders/`) and the
 * consumer group that writes order documents from `orders.confirmed`. In one process, on the
 * demo's events and an (embedded) object store.
 *
 * @example
 * await using leg = await startDocumentsLeg({ events: cluster.events, blob: cluster.blob });
 * // ... traffic ...
 * const documents = await leg.report({ confirmed });
 * verdicts.invoicesRendered = documents.invoicesRendered;
 */
export async function startDocumentsLeg(options: DocumentsLegOptions): Promise<DocumentsLeg> {
  const { events, blob } = options;
  const fn: StrataFunction = await startInvoiceFunction({
    blob,
    kv: options.kv ?? events.kv,
    maxInstances: options.maxInstances ?? 4,
  });
  let subscription: Subscription;
  try {
    subscription = await startOrderDocuments({
      events,
      blob,
      ...(options.customers === undefined ? {} : { customers: options.customers }),
      ...(options.products === undefined ? {} : { products: options.products }),
    });
  } catch (error) {
    await fn.stop();
    throw error;
  }

  const deadLettered = async (): Promise<{ documents: Set<string>; invoices: Set<string> }> => {
    const consumer = await events.deadLetters(orders, { limit: 10_000 });
    const given = await fn.deadLetters();
    return {
      documents: new Set(consumer.filter((l) => l.group === DOCUMENTS_GROUP).map((l) => l.key)),
      invoices: new Set(
        given.map((l) => l.change.key.slice(ORDER_DOCUMENTS_PREFIX.length, -".json".length)),
      ),
    };
  };

  const report: DocumentsLeg["report"] = async (reportOptions = {}) => {
    const { signal } = reportOptions;
    const timeoutMs = reportOptions.timeoutMs ?? 10_000;
    const started = performance.now();
    const confirmed =
      reportOptions.confirmed ??
      (await readConfirmedOrders(events.kv, signal === undefined ? {} : { signal }));
    let progress = await progressOf(blob, confirmed, signal);
    let letters = { documents: new Set<string>(), invoices: new Set<string>() };
    const settled = async (): Promise<boolean> => {
      progress = await progressOf(blob, confirmed, signal);
      if (progress.waiting.length === 0) return true;
      // Work still queued or running: not settled, whatever the dead letters say.
      const stats = fn.stats();
      if (stats.backlog > 0 || stats.running > 0) return false;
      letters = await deadLettered();
      return progress.waiting.every((id) => letters.documents.has(id) || letters.invoices.has(id));
    };
    let caughtUp = true;
    try {
      await waitFor(settled, {
        timeoutMs,
        intervalMs: POLL_MS,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch {
      signal?.throwIfAborted();
      caughtUp = false;
      options.log?.(
        `documents: ${progress.waiting.length} of ${confirmed.length} confirmed orders still without an invoice after ${timeoutMs} ms`,
      );
    }
    const waitedMs = Math.round(performance.now() - started);
    letters = await deadLettered();
    const check = await checkInvoices(blob, confirmed, signal === undefined ? {} : { signal });
    const stats = fn.stats();
    return {
      orders: confirmed.length,
      documents: progress.documents,
      rendered: progress.rendered,
      pending: progress.waiting.length,
      caughtUp,
      waitedMs,
      deadLetters: { documents: letters.documents.size, invoices: letters.invoices.size },
      function: {
        name: stats.name,
        state: stats.state.type,
        instances: stats.instances,
        started: stats.started,
        retired: stats.retired,
        coldStarts: stats.coldStarts,
        warmHitRatio: stats.warmHitRatio,
        processed: stats.processed,
        failed: stats.failed,
        backlog: stats.backlog,
      },
      renderLatency: latencyOf(progress.latencies),
      check,
      invoicesRendered: check.ok,
    };
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      try {
        await subscription.close();
      } finally {
        await fn.stop();
      }
    })();
    return stopped;
  };
  return { report, stop, [Symbol.asyncDispose]: stop };
}

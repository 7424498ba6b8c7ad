import { createFunction, type StrataFunction } from "@strata/autoscale";
import {
  StrataError,
  defineService,
  isStrataError,
  type BlobInfo,
  type BlobStore,
  type Events,
  type Logger,
  type StartFrom,
  type StrongKV,
  type Subscription,
} from "@strata/core";
import { z } from "zod";
import { seedCustomers, type Customer, type Product } from "../data/seed.js";
import { orders, type Order } from "./orders.js";
import { customerOf } from "./payments.js";

/*
 * Documents: a consumer of confirmed orders writes each order's document (the order and the
 * customer who paid) to the object store, and a function on the store's changes renders the
 * invoice from it. The two halves meet only in the store, so invoices can be re-rendered from
 * the documents at any time, and a new kind of document (a delivery note) is one more function.
 */

const ORDER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const OrderId = z.string().regex(ORDER_ID_PATTERN, "order ids are 1-64 of A-Z a-z 0-9 _ -");

/** The consumer group that writes order documents. */
export const DOCUMENTS_GROUP = "documents";
/** The function that renders invoices; names its position and dead letters in the StrongKV. */
export const INVOICE_FUNCTION = "render-invoices";
/** Where order documents go: `orders/<orderId>.json`. */
export const ORDER_DOCUMENTS_PREFIX = "orders/";
/** Where invoices go: `invoices/<orderId>.html`. */
export const INVOICES_PREFIX = "invoices/";
/** The VAT rate invoices charge on top of the order's net amount, in percent. */
export const VAT_RATE_PERCENT = 19;

/** The object-store key of an order's document. */
export const orderDocumentKey = (orderId: string): string =>
  `${ORDER_DOCUMENTS_PREFIX}${orderId}.json`;
/** The object-store key of an order's invoice. */
export const invoiceKey = (orderId: string): string => `${INVOICES_PREFIX}${orderId}.html`;
/** The invoice number of an order: one invoice per order, so the order id names it. */
export const invoiceNumberOf = (orderId: string): string => `INV-${orderId}`;

const DOCUMENT_KEY = /^orders\/([A-Za-z0-9_-]{1,64})\.json$/;
const INVOICE_KEY = /^invoices\/([A-Za-z0-9_-]{1,64})\.html$/;

/** Who issues the invoices. */
export interface Seller {
  readonly name: string;
  /** The whole address on one line. */
  readonly address: string;
  readonly vatId: string;
  readonly email: string;
}

/** The demo shop (the VAT id is a placeholder, not a registered one). */
export const DEMO_SELLER: Seller = {
  name: "Strata Demo Shop GmbH",
  address: "Musterstraße 1, 10115 Berlin, Germany",
  vatId: "DE000000000",
  email: "billing@example.com",
};

const CustomerSchema = z.object({
  id: z.string().min(1).max(64),
  name: z.string().min(1).max(200),
  email: z.string().min(3).max(254),
  region: z.enum(["eu", "us"]),
  country: z.string().regex(/^[A-Z]{2}$/),
  city: z.string().min(1).max(100),
  billingAddress: z.string().min(1).max(500),
});

/** An order document, as stored at `orders/<orderId>.json`. Money in minor units (cents). */
export const OrderDocumentSchema = z.object({
  orderId: OrderId,
  /** When the order was confirmed: its event's time (RFC 3339). */
  confirmedAt: z.string().max(64),
  currency: z.literal("EUR"),
  line: z
    .object({
      sku: z.string().min(1).max(64),
      /** The product's name, when the catalog was at hand. */
      name: z.string().max(200).optional(),
      qty: z.number().int().min(1),
      unitPriceMinor: z.number().int().min(0),
      netMinor: z.number().int().min(0),
    })
    .refine((line) => line.qty * line.unitPriceMinor === line.netMinor, {
      message: "netMinor must be qty × unitPriceMinor",
    }),
  customer: CustomerSchema,
});
export type OrderDocument = z.infer<typeof OrderDocumentSchema>;

/** What a confirmed order contributes to its invoice (an `Order` record fits). */
export type ConfirmedOrder = Pick<Order, "orderId" | "sku" | "qty" | "amountMinor">;

// ---------------------------------------------------------------------------------------------
// Money: integers of minor units only; no floating point anywhere.

function checkMinor(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `${what} must be a non-negative integer of minor units (got ${String(value)})`,
    );
  }
}

/**
 * The VAT on a net amount in minor units, rounded half up to a whole minor unit (commercial
 * rounding, once per invoice). Exact: the product is taken in BigInt, never a float.
 *
 * @example
 * vatOf(250); // 48 (47.5 rounds up)
 * vatOf(3); // 1 (0.57)
 */
export function vatOf(netMinor: number, ratePercent = VAT_RATE_PERCENT): number {
  checkMinor("netMinor", netMinor);
  if (!Number.isSafeInteger(ratePercent) || ratePercent < 0 || ratePercent > 100) {
    throw new StrataError("INVALID_ARGUMENT", "ratePercent must be an integer from 0 to 100");
  }
  return Number((BigInt(netMinor) * BigInt(ratePercent) + 50n) / 100n);
}

/** Net, VAT and total of a net amount, all in minor units. */
export function invoiceTotals(netMinor: number): {
  netMinor: number;
  vatMinor: number;
  totalMinor: number;
} {
  const vatMinor = vatOf(netMinor);
  return { netMinor, vatMinor, totalMinor: netMinor + vatMinor };
}

/**
 * Formats minor units of a two-decimal currency, from the digits (never through a float).
 *
 * @example
 * formatMoney(123456, "EUR"); // "EUR 1,234.56"
 */
export function formatMoney(minor: number, currency: string): string {
  checkMinor("amount", minor);
  const digits = String(minor).padStart(3, "0");
  const major = digits.slice(0, -2).replace(/\B(?=(\d{3})+$)/g, ",");
  return `${currency} ${major}.${digits.slice(-2)}`;
}

const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** An invoice rendered from an order document. */
export interface RenderedInvoice {
  readonly orderId: string;
  readonly invoiceNumber: string;
  readonly currency: string;
  readonly netMinor: number;
  readonly vatMinor: number;
  readonly totalMinor: number;
  readonly html: string;
}

/** Renders invoices for one seller: the parts that never change are built once. */
export interface InvoiceRenderer {
  render(document: OrderDocument): RenderedInvoice;
}

const STYLE = [
  "body{font-family:system-ui,sans-serif;color:#222;margin:2rem}",
  ".parties{display:flex;gap:4rem;margin:1.5rem 0}",
  "table{border-collapse:collapse;width:100%}",
  "th,td{padding:.4rem .6rem;border-bottom:1px solid #ddd;text-align:left}",
  ".num{text-align:right;font-variant-numeric:tabular-nums}",
  "tfoot .total th,tfoot .total td{font-weight:700;border-bottom:2px solid #222}",
].join("");

/** The date part of an RFC 3339 time, or the text itself when it is not one. */
function dateOf(time: string): string {
  return /^\d{4}-\d{2}-\d{2}T/.test(time) ? time.slice(0, 10) : time;
}

/** Makes a renderer for `seller` (what a function instance keeps warm). */
export function createInvoiceRenderer(seller: Seller = DEMO_SELLER): InvoiceRenderer {
  const sellerBlock = [
    `<div class="seller"><h2>From</h2><p>`,
    `${escapeHtml(seller.name)}<br>${escapeHtml(seller.address)}<br>`,
    `VAT ID ${escapeHtml(seller.vatId)}<br>${escapeHtml(seller.email)}</p></div>`,
  ].join("");
  const vatLabel = `VAT ${VAT_RATE_PERCENT}%`;
  return {
    render(document) {
      const { orderId, line, customer, currency } = document;
      const invoiceNumber = invoiceNumberOf(orderId);
      const { netMinor, vatMinor, totalMinor } = invoiceTotals(line.netMinor);
      const e = escapeHtml;
      const money = (minor: number): string => e(formatMoney(minor, currency));
      const item =
        line.name === undefined ? e(line.sku) : `${e(line.name)} <small>${e(line.sku)}</small>`;
      const html = [
        `<!doctype html>`,
        `<html lang="en">`,
        `<head><meta charset="utf-8"><title>Invoice ${e(invoiceNumber)}</title>`,
        `<style>${STYLE}</style></head>`,
        `<body>`,
        `<article class="invoice" data-order-id="${e(orderId)}" data-invoice-number="${e(invoiceNumber)}" data-currency="${e(currency)}" data-total-minor="${totalMinor}">`,
        `<header><h1>Invoice ${e(invoiceNumber)}</h1>`,
        `<p>Date ${e(dateOf(document.confirmedAt))} · Order ${e(orderId)}</p></header>`,
        `<section class="parties">`,
        sellerBlock,
        `<div class="customer"><h2>Bill to</h2><p>${e(customer.name)}<br>`,
        `${e(customer.billingAddress)}<br>${e(customer.email)}<br>`,
        `Customer ${e(customer.id)}</p></div>`,
        `</section>`,
        `<table>`,
        `<thead><tr><th>Item</th><th class="num">Qty</th><th class="num">Unit price</th><th class="num">Amount</th></tr></thead>`,
        `<tbody><tr><td>${item}</td><td class="num">${line.qty}</td>`,
        `<td class="num">${money(line.unitPriceMinor)}</td><td class="num">${money(line.netMinor)}</td></tr></tbody>`,
        `<tfoot>`,
        `<tr><th colspan="3">Net</th><td class="num">${money(netMinor)}</td></tr>`,
        `<tr><th colspan="3">${vatLabel}</th><td class="num">${money(vatMinor)}</td></tr>`,
        `<tr class="total"><th colspan="3">Total</th><td class="num">${money(totalMinor)}</td></tr>`,
        `</tfoot>`,
        `</table>`,
        `</article>`,
        `</body>`,
        `</html>`,
        ``,
      ].join("\n");
      return { orderId, invoiceNumber, currency, netMinor, vatMinor, totalMinor, html };
    },
  };
}

/**
 * Renders the HTML invoice of an order document: seller, customer, the line (SKU, quantity,
 * unit price), net, VAT and total. Every value from the document is HTML-escaped, and the same
 * document always renders the same bytes.
 */
export function renderInvoice(document: OrderDocument, seller?: Seller): RenderedInvoice {
  return createInvoiceRenderer(seller).render(document);
}

/**
 * The document of a confirmed order. Built from the event alone (no clock, no random), so a
 * redelivered event builds the same bytes. INVALID_ARGUMENT when the amount is not qty whole
 * unit prices; FAILED_PRECONDITION when the customer is unknown.
 */
export function orderDocument(options: {
  readonly order: ConfirmedOrder;
  readonly confirmedAt: string;
  readonly customers: ReadonlyMap<string, Customer>;
  readonly products?: ReadonlyMap<string, Product>;
}): OrderDocument {
  const { order } = options;
  if (!ORDER_ID_PATTERN.test(order.orderId)) {
    throw new StrataError("INVALID_ARGUMENT", "order ids are 1-64 of A-Z a-z 0-9 _ -", {
      details: { orderId: order.orderId.slice(0, 80) },
    });
  }
  checkMinor("amountMinor", order.amountMinor);
  if (!Number.isSafeInteger(order.qty) || order.qty < 1 || order.amountMinor % order.qty !== 0) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `order ${order.orderId}: ${order.amountMinor} is not ${order.qty} whole unit prices`,
      { details: { orderId: order.orderId } },
    );
  }
  const customerId = customerOf(order.orderId);
  const customer = options.customers.get(customerId);
  if (customer === undefined) {
    throw new StrataError(
      "FAILED_PRECONDITION",
      `order ${order.orderId}: no customer ${customerId} to address its documents to`,
      { details: { orderId: order.orderId, customerId } },
    );
  }
  const name = options.products?.get(order.sku)?.name;
  return {
    orderId: order.orderId,
    confirmedAt: options.confirmedAt,
    currency: "EUR",
    line: {
      sku: order.sku,
      ...(name === undefined ? {} : { name }),
      qty: order.qty,
      unitPriceMinor: order.amountMinor / order.qty,
      netMinor: order.amountMinor,
    },
    customer: {
      id: customer.id,
      name: customer.name,
      email: customer.email,
      region: customer.region,
      country: customer.country,
      city: customer.city,
      billingAddress: customer.billingAddress,
    },
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// The consumer: confirmed orders → order documents

/** How the order-document consumer runs. */
export interface OrderDocumentsOptions {
  readonly events: Events;
  readonly blob: BlobStore;
  /** Who orders are addressed to; default `seedCustomers()`. */
  readonly customers?: readonly Customer[];
  /** Products, to name the invoice line (by SKU); without them the line shows the SKU only. */
  readonly products?: readonly Product[];
  /** Default {@link DOCUMENTS_GROUP}. */
  readonly group?: string;
  /** Where a group with no stored position starts; default "earliest". */
  readonly from?: StartFrom;
}

/**
 * Subscribes a consumer group to `orders.confirmed` that writes each order's document to
 * `orders/<orderId>.json`. Idempotent: a document, once written, is kept; a redelivered event
 * finds it and writes nothing (so no second change reaches the invoice function). An order that
 * cannot have a document (bad amount, unknown customer) is dead-lettered with the reason.
 */
export async function startOrderDocuments(options: OrderDocumentsOptions): Promise<Subscription> {
  const { events, blob } = options;
  const customers = new Map((options.customers ?? seedCustomers()).map((c) => [c.id, c]));
  const products = new Map((options.products ?? []).map((p) => [p.sku, p]));
  return events.subscribe(orders, {
    group: options.group ?? DOCUMENTS_GROUP,
    ...(options.from === undefined ? {} : { from: options.from }),
    on: {
      confirmed: async (event, ctx) => {
        const document = orderDocument({
          order: event.data,
          confirmedAt: event.time,
          customers,
          products,
        });
        const key = orderDocumentKey(document.orderId);
        // An issued document is never replaced: its invoice may already be out.
        if ((await blob.head(key, { signal: ctx.signal })) !== undefined) return;
        await blob.put(key, enc.encode(JSON.stringify(document)), {
          contentType: "application/json",
          metadata: { "order-id": document.orderId, "customer-id": document.customer.id },
          signal: ctx.signal,
        });
      },
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The function: order documents → invoices

/** How the invoice function runs. */
export interface InvoiceFunctionOptions {
  readonly blob: BlobStore;
  /** Keeps the function's position, dead letters and runner lock. */
  readonly kv: StrongKV;
  /** Default {@link INVOICE_FUNCTION}. */
  readonly name?: string;
  readonly seller?: Seller;
  /** Default 4. */
  readonly maxInstances?: number;
  /** An idle instance is retired after this (ms); default 30 000. */
  readonly idleMs?: number;
  /** Runs before a document is dead-lettered; default 5. */
  readonly maxAttempts?: number;
  readonly logger?: Logger;
}

/**
 * Starts the function that renders `invoices/<orderId>.html` for every order document stored
 * under `orders/`. An instance holds a renderer (the cold start builds it). Re-rendering is
 * idempotent: an invoice records the SHA-256 of the document it was rendered from, and a change
 * whose document it already reflects writes nothing. A document that does not parse is
 * dead-lettered at once (`fn.deadLetters()`); other objects under `orders/` are ignored.
 *
 * @example
 * await using fn = await startInvoiceFunction({ blob, kv });
 * fn.stats().coldStarts; // { count, p50Ms, p99Ms, maxMs }
 */
export function startInvoiceFunction(options: InvoiceFunctionOptions): Promise<StrataFunction> {
  const { blob } = options;
  return createFunction<InvoiceRenderer>({
    name: options.name ?? INVOICE_FUNCTION,
    blob,
    prefix: ORDER_DOCUMENTS_PREFIX,
    kv: options.kv,
    maxInstances: options.maxInstances ?? 4,
    idleMs: options.idleMs ?? 30_000,
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    init: () => createInvoiceRenderer(options.seller),
    handler: async (change, { instance, signal }) => {
      const orderId = DOCUMENT_KEY.exec(change.key)?.[1];
      if (orderId === undefined) return;
      let bytes: Uint8Array;
      let sha256: string;
      try {
        ({ bytes, sha256 } = await blob.get(change.key, { signal }));
      } catch (error) {
        // Deleted since: nothing to render.
        if (isStrataError(error, "NOT_FOUND")) return;
        throw error;
      }
      const document = parseDocument(orderId, bytes);
      const target = invoiceKey(orderId);
      const existing = await blob.head(target, { signal });
      if (existing?.metadata["source-sha256"] === sha256) return;
      const invoice = instance.render(document);
      await blob.put(target, enc.encode(invoice.html), {
        contentType: "text/html; charset=utf-8",
        metadata: {
          "order-id": orderId,
          "invoice-number": invoice.invoiceNumber,
          "total-minor": String(invoice.totalMinor),
          currency: invoice.currency,
          "source-sha256": sha256,
        },
        signal,
      });
    },
  });
}

function parseDocument(orderId: string, bytes: Uint8Array): OrderDocument {
  let json: unknown;
  try {
    json = JSON.parse(dec.decode(bytes));
  } catch {
    throw new StrataError("INVALID_ARGUMENT", `order document ${orderId} is not JSON`);
  }
  const parsed = OrderDocumentSchema.safeParse(json);
  if (!parsed.success || parsed.data.orderId !== orderId) {
    const issue = parsed.success ? "its orderId does not match its key" : parsed.error.message;
    throw new StrataError(
      "INVALID_ARGUMENT",
      `order document ${orderId} is malformed: ${issue.slice(0, 300)}`,
    );
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// The documents service: reads invoices back

/** The documents service: invoices as rendered, read from the object store. */
export const documents = defineService({
  name: "documents",
  version: "1.0.0",
  description: "Order documents and invoices",
  actions: {
    getInvoice: {
      input: z.object({ orderId: OrderId }),
      output: z.object({
        orderId: z.string(),
        invoiceNumber: z.string(),
        totalMinor: z.number().int().nonnegative(),
        currency: z.string(),
        html: z.string(),
      }),
      idempotent: true,
    },
  },
});

/** What an invoice's metadata says about it, or undefined when it is not an invoice's. */
function invoiceFacts(
  info: BlobInfo,
): { orderId: string; totalMinor: number; currency: string } | undefined {
  const orderId = info.metadata["order-id"] ?? INVOICE_KEY.exec(info.key)?.[1];
  const total = info.metadata["total-minor"];
  const currency = info.metadata.currency;
  if (orderId === undefined || total === undefined || currency === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(total)) return undefined;
  const totalMinor = Number(total);
  return Number.isSafeInteger(totalMinor) ? { orderId, totalMinor, currency } : undefined;
}

/** The documents service over a blob store: NOT_FOUND until the order's invoice is rendered. */
export function documentsService(blob: BlobStore) {
  return documents.implement({
    getInvoice: async ({ orderId }, ctx) => {
      const key = invoiceKey(orderId);
      let bytes: Uint8Array;
      let facts: ReturnType<typeof invoiceFacts>;
      try {
        const object = await blob.get(key, { signal: ctx.signal });
        bytes = object.bytes;
        facts = invoiceFacts(object);
      } catch (error) {
        if (isStrataError(error, "NOT_FOUND")) {
          throw new StrataError("NOT_FOUND", `no invoice for order ${orderId}`, {
            details: { orderId },
          });
        }
        throw error;
      }
      if (facts === undefined) {
        throw new StrataError(
          "DATA_LOSS",
          `the invoice of order ${orderId} has no readable total`,
          {
            details: { orderId },
          },
        );
      }
      return {
        orderId,
        invoiceNumber: invoiceNumberOf(orderId),
        totalMinor: facts.totalMinor,
        currency: facts.currency,
        html: dec.decode(bytes),
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The check the demo's verdict reads

/** Whether every confirmed order has exactly one invoice with the right total. */
export interface InvoiceCheck {
  /** Confirmed orders checked. */
  readonly orders: number;
  /** Of them, orders with a document under `orders/`. */
  readonly documents: number;
  /** Of them, orders with an invoice under `invoices/`. */
  readonly invoices: number;
  /** Orders with no invoice: how many, and the first few ids. */
  readonly missingCount: number;
  readonly missing: readonly string[];
  /** Invoices whose total (metadata or HTML) is not the order's amount plus VAT. */
  readonly wrongTotals: number;
  /** Invoice objects beyond the first for one order (another key naming the same order). */
  readonly duplicates: number;
  /** Invoices for orders that are not among the confirmed ones (a cancelled order, say). */
  readonly unexpected: number;
  /** Nothing missing, wrong, duplicated or unexpected. */
  readonly ok: boolean;
}

/** Every object under `prefix`, in key order (all pages). */
export async function listObjects(
  blob: BlobStore,
  prefix: string,
  options: { readonly signal?: AbortSignal } = {},
): Promise<BlobInfo[]> {
  const { signal } = options;
  const items: BlobInfo[] = [];
  let after: string | undefined;
  do {
    const page = await blob.list(prefix, {
      limit: 10_000,
      ...(after === undefined ? {} : { after }),
      ...(signal === undefined ? {} : { signal }),
    });
    items.push(...page.items);
    after = page.next;
  } while (after !== undefined);
  return items;
}

/**
 * Checks the invoices against the confirmed orders: each has exactly one invoice, whose total —
 * in its metadata and in the HTML — is the order's amount plus VAT, and no other order has one.
 * Reads every invoice of a confirmed order (a few at a time).
 *
 * @example
 * const check = await checkInvoices(blob, confirmed);
 * check.ok; // the demo's `invoicesRendered` verdict
 */
export async function checkInvoices(
  blob: BlobStore,
  confirmedOrders: readonly ConfirmedOrder[],
  options: { readonly signal?: AbortSignal; readonly show?: number } = {},
): Promise<InvoiceCheck> {
  const { signal } = options;
  const show = options.show ?? 5;
  const confirmed = new Map(confirmedOrders.map((o) => [o.orderId, o]));
  const documentKeys = new Set(
    (await listObjects(blob, ORDER_DOCUMENTS_PREFIX, options)).map((i) => i.key),
  );
  const invoiceObjects = await listObjects(blob, INVOICES_PREFIX, options);
  const byOrder = new Map<string, BlobInfo[]>();
  for (const info of invoiceObjects) {
    const orderId = info.metadata["order-id"] ?? INVOICE_KEY.exec(info.key)?.[1] ?? info.key;
    const list = byOrder.get(orderId) ?? [];
    list.push(info);
    byOrder.set(orderId, list);
  }
  let duplicates = 0;
  let unexpected = 0;
  for (const [orderId, list] of byOrder) {
    duplicates += list.length - 1;
    if (!confirmed.has(orderId)) unexpected += list.length;
  }
  let documentCount = 0;
  const missing: string[] = [];
  const toRead: { order: ConfirmedOrder; info: BlobInfo }[] = [];
  for (const order of confirmed.values()) {
    if (documentKeys.has(orderDocumentKey(order.orderId))) documentCount++;
    const info = byOrder.get(order.orderId)?.find((i) => i.key === invoiceKey(order.orderId));
    if (info === undefined) missing.push(order.orderId);
    else toRead.push({ order, info });
  }
  let wrongTotals = 0;
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < toRead.length) {
      const { order, info } = toRead[next++] as { order: ConfirmedOrder; info: BlobInfo };
      const expected = invoiceTotals(order.amountMinor).totalMinor;
      const facts = invoiceFacts(info);
      let right = facts?.totalMinor === expected;
      if (right) {
        const html = dec.decode(
          (await blob.get(info.key, signal === undefined ? {} : { signal })).bytes,
        );
        right =
          html.includes(`data-total-minor="${expected}"`) &&
          html.includes(escapeHtml(formatMoney(expected, facts?.currency ?? "EUR")));
      }
      if (!right) wrongTotals++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, reader));
  return {
    orders: confirmed.size,
    documents: documentCount,
    invoices: toRead.length,
    missingCount: missing.length,
    missing: missing.slice(0, show),
    wrongTotals,
    duplicates,
    unexpected,
    ok: missing.length === 0 && wrongTotals === 0 && duplicates === 0 && unexpected === 0,
  };
}

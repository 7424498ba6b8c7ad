import {
  createEvents,
  openEmbeddedBlob,
  openEmbeddedKv,
  openEmbeddedLog,
  type BlobInfo,
  type EmbeddedBlob,
  type Events,
} from "@strata/core";
import { tempDir, waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { seedCatalog, seedCustomers, type Customer } from "../data/seed.js";
import {
  DOCUMENTS_GROUP,
  escapeHtml,
  invoiceKey,
  invoiceTotals,
  listObjects,
} from "../services/documents.js";
import { orders, recordOrder, type Order } from "../services/orders.js";
import { customerOf } from "../services/payments.js";
import { startDocumentsLeg } from "./documents-leg.js";

const dec = new TextDecoder();
const products = seedCatalog(40);

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => undefined);
});

/** Embedded kv, log and object store in a temporary folder, with events over the first two. */
async function stores(): Promise<{ events: Events; blob: EmbeddedBlob }> {
  const dir = await tempDir("strata-documents-leg-");
  cleanup.push(async () => dir[Symbol.asyncDispose]());
  const kv = await openEmbeddedKv({ dir: `${dir.path}/kv` });
  cleanup.push(() => kv.close());
  const log = await openEmbeddedLog({ dir: `${dir.path}/log` });
  cleanup.push(() => log.close());
  const blob = await openEmbeddedBlob({ dir: `${dir.path}/blob`, sync: false });
  cleanup.push(() => blob.close());
  const events = createEvents({
    log,
    kv,
    source: "strata://documents-test",
    partitions: 4,
    leaseMs: 1_000,
    rebalanceMs: 50,
    commitMs: 10,
  });
  cleanup.push(() => events.close());
  return { events, blob };
}

/** Records orders the way checkout does (record and event in one outbox transaction). */
async function placeOrders(
  events: Events,
  from: number,
  count: number,
  options: { flush?: boolean } = {},
): Promise<Order[]> {
  const placed: Order[] = [];
  for (let i = from; i < from + count; i++) {
    const product = products[i % products.length] as (typeof products)[number];
    const qty = 1 + (i % 3);
    const cancelled = i % 5 === 4;
    placed.push(
      await recordOrder(events, {
        orderId: `order-${i}`,
        sku: product.sku,
        qty,
        amountMinor: product.priceMinor * qty,
        status: cancelled ? "cancelled" : "confirmed",
        ...(cancelled ? { reason: "card declined" } : {}),
      }),
    );
  }
  if (options.flush !== false) await events.flushOutbox();
  return placed;
}

const seqs = (items: BlobInfo[]): Map<string, number> => new Map(items.map((i) => [i.key, i.seq]));

describe("documents leg", () => {
  it("renders exactly one correct invoice per confirmed order, also after a redelivery", async () => {
    const { events, blob } = await stores();
    const first = await placeOrders(events, 0, 20);
    const confirmed = first.filter((o) => o.status === "confirmed");
    expect(confirmed).toHaveLength(16);

    const leg = await startDocumentsLeg({ events, blob, products });
    cleanup.push(() => leg.stop());
    const report = await leg.report({ timeoutMs: 8_000 });
    expect(report).toMatchObject({
      orders: 16,
      documents: 16,
      rendered: 16,
      pending: 0,
      caughtUp: true,
      deadLetters: { documents: 0, invoices: 0 },
      invoicesRendered: true,
      check: { invoices: 16, missingCount: 0, wrongTotals: 0, duplicates: 0, unexpected: 0 },
    });
    expect(report.function.name).toBe("render-invoices");
    expect(report.function.started).toBeGreaterThanOrEqual(1);
    expect(report.function.coldStarts.count).toBeGreaterThanOrEqual(1);
    expect(report.function.processed).toBe(16);
    expect(report.renderLatency.count).toBe(16);
    expect(report.renderLatency.p99Ms).toBeGreaterThanOrEqual(report.renderLatency.p50Ms);

    // The invoice names the customer who paid and adds VAT to what was charged.
    const order = confirmed[0] as Order;
    const customer = seedCustomers().find((c) => c.id === customerOf(order.orderId)) as Customer;
    const html = dec.decode((await blob.get(invoiceKey(order.orderId))).bytes);
    expect(html).toContain(escapeHtml(customer.name));
    expect(html).toContain(escapeHtml(customer.billingAddress));
    expect(html).toContain(order.sku);
    expect(html).toContain(`data-total-minor="${invoiceTotals(order.amountMinor).totalMinor}"`);
    const documentsBefore = seqs(await listObjects(blob, "orders/"));
    const invoicesBefore = seqs(await listObjects(blob, "invoices/"));
    expect([...invoicesBefore.keys()].sort()).toEqual(
      confirmed.map((o) => invoiceKey(o.orderId)).sort(),
    );

    // Restart the consumer from the start of the stream: every order event is delivered again.
    await leg.stop();
    await events.resetGroup(orders, DOCUMENTS_GROUP, "earliest");
    const second = await placeOrders(events, 20, 10);
    expect(await events.lag(orders, DOCUMENTS_GROUP)).toBe(30);
    const again = await startDocumentsLeg({ events, blob, products });
    cleanup.push(() => again.stop());
    await waitFor(async () => (await events.lag(orders, DOCUMENTS_GROUP)) === 0, {
      message: "redelivered events not consumed",
    });
    const after = await again.report({ timeoutMs: 8_000 });
    const all = [...first, ...second].filter((o) => o.status === "confirmed");
    expect(after).toMatchObject({
      orders: all.length,
      rendered: all.length,
      pending: 0,
      caughtUp: true,
      invoicesRendered: true,
      check: { invoices: all.length, duplicates: 0, unexpected: 0, wrongTotals: 0 },
    });
    // Only the new orders' documents went to the function: the redelivered ones wrote nothing.
    expect(after.function.processed).toBe(all.length - confirmed.length);
    const documentsAfter = seqs(await listObjects(blob, "orders/"));
    const invoicesAfter = seqs(await listObjects(blob, "invoices/"));
    for (const [key, seq] of documentsBefore)
      expect([key, documentsAfter.get(key)]).toEqual([key, seq]);
    for (const [key, seq] of invoicesBefore)
      expect([key, invoicesAfter.get(key)]).toEqual([key, seq]);
    expect(invoicesAfter.size).toBe(all.length);
  });

  it("reports orders still waiting when the deadline passes, and says so", async () => {
    const { events, blob } = await stores();
    await placeOrders(events, 0, 4);
    // Recorded, but its event still waits in the outbox: no document can come of it yet.
    await placeOrders(events, 100, 1, { flush: false });
    const lines: string[] = [];
    const leg = await startDocumentsLeg({ events, blob, log: (line) => lines.push(line) });
    cleanup.push(() => leg.stop());
    const report = await leg.report({ timeoutMs: 1_500 });
    expect(report).toMatchObject({
      orders: 5,
      rendered: 4,
      pending: 1,
      caughtUp: false,
      invoicesRendered: false,
      check: { missingCount: 1, missing: ["order-100"] },
    });
    expect(report.waitedMs).toBeGreaterThanOrEqual(1_500);
    expect(lines).toEqual([
      "documents: 1 of 5 confirmed orders still without an invoice after 1500 ms",
    ]);
  });

  it("settles without waiting out the deadline when orders are dead-lettered", async () => {
    const { events, blob } = await stores();
    const placed = await placeOrders(events, 0, 10);
    // Only the first ten customers are known: orders of the others cannot be addressed.
    const customers = seedCustomers(10);
    const known = new Set(customers.map((c) => c.id));
    const confirmed = placed.filter((o) => o.status === "confirmed");
    const unknown = confirmed.filter((o) => !known.has(customerOf(o.orderId)));
    expect(unknown.length).toBeGreaterThan(0);
    const leg = await startDocumentsLeg({ events, blob, customers });
    cleanup.push(() => leg.stop());
    const report = await leg.report({ timeoutMs: 30_000 });
    expect(report).toMatchObject({
      orders: confirmed.length,
      rendered: confirmed.length - unknown.length,
      pending: unknown.length,
      caughtUp: true,
      deadLetters: { documents: unknown.length, invoices: 0 },
      invoicesRendered: false,
    });
    expect(report.waitedMs).toBeLessThan(10_000);
    const letters = (await events.deadLetters(orders)).filter((l) => l.group === DOCUMENTS_GROUP);
    expect(letters.map((l) => l.key).sort()).toEqual(unknown.map((o) => o.orderId).sort());
    expect(letters[0]?.reason).toMatch(/no customer customer-\d\d/);
  });
});

import {
  createEmbeddedNetwork,
  createNode,
  openEmbeddedBlob,
  openEmbeddedKv,
  type EmbeddedBlob,
  type EmbeddedKv,
} from "@strata/core";
import { tempDir, waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { seedCustomers, type Customer } from "../data/seed.js";
import {
  checkInvoices,
  documents,
  documentsService,
  escapeHtml,
  formatMoney,
  invoiceKey,
  invoiceTotals,
  orderDocument,
  orderDocumentKey,
  renderInvoice,
  startInvoiceFunction,
  vatOf,
  type OrderDocument,
} from "./documents.js";
import { customerOf } from "./payments.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => undefined);
});

async function stores(): Promise<{ blob: EmbeddedBlob; kv: EmbeddedKv }> {
  const dir = await tempDir("strata-documents-");
  cleanup.push(async () => dir[Symbol.asyncDispose]());
  const blob = await openEmbeddedBlob({ dir: `${dir.path}/blob`, sync: false });
  cleanup.push(() => blob.close());
  const kv = await openEmbeddedKv({ dir: `${dir.path}/kv` });
  cleanup.push(() => kv.close());
  return { blob, kv };
}

const customers = new Map(seedCustomers().map((c) => [c.id, c]));

function documentOf(
  orderId: string,
  qty: number,
  unitPriceMinor: number,
  customer?: Partial<Customer>,
): OrderDocument {
  const document = orderDocument({
    order: { orderId, sku: "sku-00042", qty, amountMinor: qty * unitPriceMinor },
    confirmedAt: "2026-03-14T09:26:53.589Z",
    customers,
  });
  return { ...document, customer: { ...document.customer, ...customer } };
}

describe("money", () => {
  it("adds 19% VAT rounded half up, in whole minor units", () => {
    const cases: [number, number][] = [
      [0, 0],
      [1, 0], // 0.19
      [2, 0], // 0.38
      [3, 1], // 0.57
      [50, 10], // 9.5 rounds up
      [150, 29], // 28.5 rounds up
      [250, 48], // 47.5 rounds up
      [1_000, 190],
      [1_999, 380], // 379.81
      [49_999, 9_500], // 9499.81
      [9_007_199_254_740_991, 1_711_367_858_400_788], // exact where a float product would not be
    ];
    for (const [net, vat] of cases) expect([net, vatOf(net)]).toEqual([net, vat]);
    expect(invoiceTotals(250)).toEqual({ netMinor: 250, vatMinor: 48, totalMinor: 298 });
    expect(() => vatOf(1.5)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => vatOf(-1)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("formats minor units from their digits, with thousands separators", () => {
    expect(formatMoney(0, "EUR")).toBe("EUR 0.00");
    expect(formatMoney(7, "EUR")).toBe("EUR 0.07");
    expect(formatMoney(123, "EUR")).toBe("EUR 1.23");
    expect(formatMoney(123_456, "EUR")).toBe("EUR 1,234.56");
    expect(formatMoney(100_000_000, "EUR")).toBe("EUR 1,000,000.00");
    expect(() => formatMoney(0.1, "EUR")).toThrow(/integer/);
  });
});

describe("invoice rendering", () => {
  it("shows seller, customer, the line, net, VAT and total", () => {
    const document = documentOf("order-17", 3, 1_999);
    const customer = customers.get(customerOf("order-17")) as Customer;
    expect(document.customer.id).toBe(customer.id);
    const invoice = renderInvoice(document);
    expect(invoice).toMatchObject({
      orderId: "order-17",
      invoiceNumber: "INV-order-17",
      netMinor: 5_997,
      vatMinor: 1_139, // 1139.43
      totalMinor: 7_136,
      currency: "EUR",
    });
    const { html } = invoice;
    expect(html.startsWith("<!doctype html>")).toBe(true);
    for (const text of [
      "Invoice INV-order-17",
      "Strata Demo Shop GmbH",
      escapeHtml(customer.name),
      escapeHtml(customer.billingAddress),
      customer.email,
      "sku-00042",
      '<td class="num">3</td>',
      "EUR 19.99",
      "EUR 59.97",
      "VAT 19%",
      "EUR 11.39",
      "EUR 71.36",
      'data-total-minor="7136"',
      "Date 2026-03-14",
    ]) {
      expect(html).toContain(text);
    }
  });

  it("escapes every value it interpolates", () => {
    const hostile = '<script>alert("pwned")</script>';
    const document = documentOf("order-1", 1, 500, {
      name: hostile,
      billingAddress: `1 "Main" St & <b>Co</b>, O'Hara`,
      email: "x@example.com<img src=x onerror=alert(1)>",
    });
    const { html } = renderInvoice(
      { ...document, line: { ...document.line, name: "<iframe src=//evil>" } },
      { name: "<Shop>", address: "a & b", vatId: '"id"', email: "s@example.com" },
    );
    expect(html).not.toMatch(/<script|<img|<iframe|<b>|<Shop>/i);
    expect(html).toContain("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;");
    expect(html).toContain("1 &quot;Main&quot; St &amp; &lt;b&gt;Co&lt;/b&gt;, O&#39;Hara");
    expect(html).toContain("&lt;iframe src=//evil&gt;");
    expect(html).toContain("&lt;Shop&gt;");
  });

  it("builds the same document and invoice bytes from the same order", () => {
    expect(documentOf("order-9", 2, 350)).toEqual(documentOf("order-9", 2, 350));
    expect(renderInvoice(documentOf("order-9", 2, 350)).html).toBe(
      renderInvoice(documentOf("order-9", 2, 350)).html,
    );
  });

  it("refuses orders that cannot have a document", () => {
    const order = { orderId: "order-2", sku: "sku-00001", qty: 3, amountMinor: 1_000 };
    const confirmedAt = "2026-03-14T00:00:00Z";
    expect(() => orderDocument({ order, confirmedAt, customers })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() =>
      orderDocument({ order: { ...order, orderId: "../x" }, confirmedAt, customers }),
    ).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() =>
      orderDocument({ order: { ...order, amountMinor: 999 }, confirmedAt, customers: new Map() }),
    ).toThrow(expect.objectContaining({ code: "FAILED_PRECONDITION" }));
  });
});

describe("invoice function", () => {
  it("renders an invoice per order document, and re-renders only a changed document", async () => {
    const { blob, kv } = await stores();
    const fn = await startInvoiceFunction({ blob, kv, idleMs: 60_000 });
    cleanup.push(() => fn.stop());
    const document = documentOf("order-5", 2, 1_250);
    const bytes = enc.encode(JSON.stringify(document));
    await blob.put(orderDocumentKey("order-5"), bytes, { contentType: "application/json" });
    await waitFor(async () => (await blob.head(invoiceKey("order-5"))) !== undefined, {
      message: "no invoice rendered",
    });
    const first = await blob.get(invoiceKey("order-5"));
    expect(first.contentType).toBe("text/html; charset=utf-8");
    expect(first.metadata).toMatchObject({ "order-id": "order-5", "total-minor": "2975" });
    expect(dec.decode(first.bytes)).toBe(renderInvoice(document).html);
    expect(fn.stats().coldStarts.count).toBe(1);

    // The same document again (a redelivered event that wrote it anyway): no new invoice.
    await blob.put(orderDocumentKey("order-5"), bytes, { contentType: "application/json" });
    await waitFor(() => fn.stats().processed === 2, { message: "second change not handled" });
    expect((await blob.head(invoiceKey("order-5")))?.seq).toBe(first.seq);

    // A changed document is the source of truth: its invoice follows it.
    const renamed = documentOf("order-5", 2, 1_250, { name: "Renamed Customer" });
    await blob.put(orderDocumentKey("order-5"), enc.encode(JSON.stringify(renamed)));
    await waitFor(async () => (await blob.head(invoiceKey("order-5")))?.seq !== first.seq, {
      message: "changed document not re-rendered",
    });
    expect(dec.decode((await blob.get(invoiceKey("order-5"))).bytes)).toContain("Renamed Customer");
    expect((await blob.list("invoices/")).items).toHaveLength(1);
  });

  it("dead-letters a malformed document at once and ignores other objects", async () => {
    const { blob, kv } = await stores();
    const fn = await startInvoiceFunction({ blob, kv });
    cleanup.push(() => fn.stop());
    await blob.put("orders/notes.txt", enc.encode("not an order"));
    await blob.put(orderDocumentKey("order-bad"), enc.encode('{"orderId":"order-bad"}'));
    await blob.put(
      orderDocumentKey("order-ok"),
      enc.encode(JSON.stringify(documentOf("order-ok", 1, 100))),
    );
    await waitFor(async () => (await fn.deadLetters()).length === 1, {
      message: "malformed document not dead-lettered",
    });
    const [letter] = await fn.deadLetters();
    expect(letter?.change.key).toBe("orders/order-bad.json");
    expect(letter?.attempts).toBe(1);
    expect(letter?.reason).toMatch(/^INVALID_ARGUMENT: order document order-bad is malformed/);
    await waitFor(async () => (await blob.head(invoiceKey("order-ok"))) !== undefined);
    expect((await blob.list("invoices/")).items.map((i) => i.key)).toEqual([
      "invoices/order-ok.html",
    ]);
  });
});

describe("documents service", () => {
  it("serves rendered invoices, NOT_FOUND before, and INVALID_ARGUMENT for bad order ids", async () => {
    const { blob, kv } = await stores();
    const fn = await startInvoiceFunction({ blob, kv });
    cleanup.push(() => fn.stop());
    const network = createEmbeddedNetwork();
    await using server = createNode({
      id: "docs",
      transport: network.transport(),
      services: [documentsService(blob)],
    });
    await using gateway = createNode({ id: "gw", transport: network.transport() });
    await server.start();
    await gateway.start();
    await gateway.waitForService("documents");
    const client = gateway.client(documents);

    await expect(client.getInvoice({ orderId: "order-3" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    const document = documentOf("order-3", 4, 999);
    await blob.put(orderDocumentKey("order-3"), enc.encode(JSON.stringify(document)));
    await waitFor(async () => (await blob.head(invoiceKey("order-3"))) !== undefined);
    const invoice = await client.getInvoice({ orderId: "order-3" });
    expect(invoice).toEqual({
      orderId: "order-3",
      invoiceNumber: "INV-order-3",
      totalMinor: 3_996 + 759, // 759.24
      currency: "EUR",
      html: renderInvoice(document).html,
    });
    for (const orderId of ["../invoices/x", "", "a/b", "x".repeat(65)]) {
      await expect(client.getInvoice({ orderId })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
        details: { issues: [expect.objectContaining({ path: "orderId" })] as unknown },
      });
    }
  });
});

describe("checkInvoices", () => {
  it("finds missing, wrong, duplicated and unexpected invoices", async () => {
    const { blob, kv } = await stores();
    const fn = await startInvoiceFunction({ blob, kv });
    cleanup.push(() => fn.stop());
    const confirmed = [1, 2, 3, 4].map((i) => ({
      orderId: `order-${i}`,
      sku: "sku-00042",
      qty: i,
      amountMinor: i * 1_000,
    }));
    for (const order of confirmed) {
      const document = documentOf(order.orderId, order.qty, 1_000);
      await blob.put(orderDocumentKey(order.orderId), enc.encode(JSON.stringify(document)));
    }
    await waitFor(async () => (await blob.list("invoices/")).items.length === 4);
    await expect(checkInvoices(blob, confirmed)).resolves.toEqual({
      orders: 4,
      documents: 4,
      invoices: 4,
      missingCount: 0,
      missing: [],
      wrongTotals: 0,
      duplicates: 0,
      unexpected: 0,
      ok: true,
    });
    await fn.stop();

    // Order 2's total tampered with in the HTML only, order 4's invoice gone, a second invoice
    // for order 1 under another key, and one for an order that was never confirmed.
    const html = dec.decode((await blob.get(invoiceKey("order-2"))).bytes);
    const info = await blob.head(invoiceKey("order-2"));
    await blob.put(invoiceKey("order-2"), enc.encode(html.replace("EUR 23.80", "EUR 20.00")), {
      metadata: info?.metadata ?? {},
    });
    await blob.delete(invoiceKey("order-4"));
    const copy = await blob.get(invoiceKey("order-1"));
    await blob.put("invoices/copy-of-order-1.html", copy.bytes, { metadata: copy.metadata });
    await blob.put(invoiceKey("order-9"), copy.bytes, {
      metadata: { ...copy.metadata, "order-id": "order-9" },
    });
    await expect(
      checkInvoices(blob, [
        ...confirmed,
        { orderId: "order-5", sku: "sku-00042", qty: 1, amountMinor: 1_000 },
      ]),
    ).resolves.toEqual({
      orders: 5,
      documents: 4,
      invoices: 3,
      missingCount: 2,
      missing: ["order-4", "order-5"],
      wrongTotals: 1,
      duplicates: 1,
      unexpected: 1,
      ok: false,
    });
  });
});

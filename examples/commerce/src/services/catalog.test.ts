import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEmbeddedNetwork, createNode, createStateStore, openEmbeddedKv } from "@strata/core";
import { waitFor } from "@strata/test-harness";
import { describe, expect, it } from "vitest";
import { seedCatalog, type Product } from "../data/seed.js";
import { catalog, catalogService, seedProducts, storeProducts } from "./catalog.js";

async function catalogNode(products = seedCatalog()) {
  const node = createNode({
    id: "cat",
    transport: createEmbeddedNetwork().transport(),
    services: [catalogService(products)],
  });
  await node.start();
  return node;
}

describe("seed catalog", () => {
  it("is the same shop for the same seed, with integer prices in minor units", () => {
    const products = seedCatalog();
    expect(products).toHaveLength(300);
    expect(seedCatalog()).toEqual(products);
    expect(seedCatalog(300, 1)).not.toEqual(products);
    expect(new Set(products.map((p) => p.id)).size).toBe(300);
    expect(new Set(products.map((p) => p.sku)).size).toBe(300);
    for (const p of products) {
      expect(Number.isInteger(p.priceMinor)).toBe(true);
      expect(p.priceMinor).toBeGreaterThan(0);
      expect(p.currency).toBe("EUR");
    }
  });
});

describe("catalog", () => {
  it("pages through every product exactly once, in id order", async () => {
    await using node = await catalogNode();
    const client = node.client(catalog);
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const result = await client.listProducts({
        limit: 7,
        ...(after === undefined ? {} : { after }),
      });
      seen.push(...result.products.map((p) => p.id));
      if (result.next === undefined) break;
      after = result.next;
    }
    expect(seen).toHaveLength(300);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(300);
  });

  it("filters by category and searches names case-insensitively", async () => {
    await using node = await catalogNode();
    const client = node.client(catalog);
    const kitchen = await client.listProducts({ category: "kitchen", limit: 100 });
    expect(kitchen.products.length).toBeGreaterThan(0);
    expect(kitchen.products.every((p) => p.category === "kitchen")).toBe(true);
    const found = await client.searchProducts({ query: "kETTLE", limit: 50 });
    expect(found.products.length).toBeGreaterThan(0);
    expect(found.products.every((p) => p.name.toLowerCase().includes("kettle"))).toBe(true);
    expect((await client.searchProducts({ query: "no such thing" })).products).toEqual([]);
  });

  it("answers unknown products with NOT_FOUND and bad input with field paths", async () => {
    await using node = await catalogNode();
    const client = node.client(catalog);
    const first = seedCatalog()[0];
    await expect(client.getProduct({ id: first?.id ?? "" })).resolves.toEqual(first);
    await expect(client.getProduct({ id: "p-9999" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    await expect(client.listProducts({ limit: 1000 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { issues: [expect.objectContaining({ path: "limit" })] as unknown },
    });
    await expect(client.searchProducts({ query: "" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { issues: [expect.objectContaining({ path: "query" })] as unknown },
    });
  });
});

describe("catalog on strong state", () => {
  it("reads products from the store at once, and lists them from an index of it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-catalog-"));
    const kv = await openEmbeddedKv({ dir });
    const products = seedCatalog(20);
    await seedProducts(kv, products);
    await seedProducts(kv, products); // seeding again keeps what is there
    const source = await storeProducts(kv, { refreshMs: 20 });
    const node = createNode({
      id: "cat",
      transport: createEmbeddedNetwork().transport(),
      services: [catalogService(source)],
    });
    await node.start();
    try {
      const client = node.client(catalog);
      const first = products[0] as Product;
      expect(await client.getProduct({ id: first.id })).toEqual(first);
      // A price change is read at once by id; the listing index catches up on its next reload.
      await createStateStore(kv, "product").put(first.id, { ...first, priceMinor: 1 });
      expect((await client.getProduct({ id: first.id })).priceMinor).toBe(1);
      await waitFor(
        async () => (await client.listProducts({ limit: 1 })).products[0]?.priceMinor === 1,
        { message: "the listing index never reloaded" },
      );
      expect((await client.listProducts({ limit: 100 })).products).toHaveLength(20);
      await expect(client.getProduct({ id: "p-9999" })).rejects.toMatchObject({
        code: "NOT_FOUND",
      });
    } finally {
      source.close();
      await node.stop();
      await kv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

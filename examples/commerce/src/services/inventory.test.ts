import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEmbeddedNetwork, createNode, isStrataError, openEmbeddedKv } from "@strata/core";
import { afterEach, describe, expect, it } from "vitest";
import { catalog, catalogService } from "./catalog.js";
import { inventory, inventoryService, seedInventory } from "./inventory.js";
import { seedCatalog, seedStock } from "../data/seed.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function cluster(stock: Map<string, number>) {
  const dir = await mkdtemp(join(tmpdir(), "strata-inventory-"));
  dirs.push(dir);
  const kv = await openEmbeddedKv({ dir });
  await seedInventory(kv, stock);
  const network = createEmbeddedNetwork();
  const nodes = ["a", "b", "c"].map((id) =>
    createNode({
      id,
      transport: network.transport(),
      services: [inventoryService(kv), catalogService(seedCatalog(10))],
    }),
  );
  const gateway = createNode({ id: "gw", transport: network.transport() });
  for (const n of [...nodes, gateway]) await n.start();
  await gateway.waitForService("inventory");
  return {
    kv,
    gateway,
    async [Symbol.asyncDispose]() {
      for (const n of [gateway, ...nodes]) await n.stop();
      await kv.close();
    },
  };
}

describe("inventory", () => {
  it("never oversells under 200 concurrent reserves of one SKU across three nodes", async () => {
    await using c = await cluster(new Map([["sku-00001", 50]]));
    const client = c.gateway.client(inventory, { strategy: "round-robin" });
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        client.reserve({ sku: "sku-00001", qty: 1, orderId: `o-${i}` }),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.filter(
      (r) => r.status === "rejected" && isStrataError(r.reason, "FAILED_PRECONDITION"),
    ).length;
    expect(ok).toBe(50);
    expect(refused).toBe(150);
    await expect(client.getStock({ sku: "sku-00001" })).resolves.toEqual({
      sku: "sku-00001",
      available: 0,
      reserved: 50,
    });
  });

  it("makes reserve and release safe to repeat for the same order", async () => {
    await using c = await cluster(new Map([["sku-00002", 10]]));
    const client = c.gateway.client(inventory);
    await client.reserve({ sku: "sku-00002", qty: 3, orderId: "dup" });
    await client.reserve({ sku: "sku-00002", qty: 3, orderId: "dup" });
    await expect(
      client.reserve({ sku: "sku-00002", qty: 4, orderId: "dup" }),
    ).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    expect((await client.getStock({ sku: "sku-00002" })).available).toBe(7);
    const releases = await Promise.all([
      client.release({ orderId: "dup" }),
      client.release({ orderId: "dup" }),
    ]);
    expect(releases.filter((r) => r.released)).toHaveLength(1);
    await expect(client.getStock({ sku: "sku-00002" })).resolves.toEqual({
      sku: "sku-00002",
      available: 10,
      reserved: 0,
    });
  });

  it("refuses malformed input with field paths", async () => {
    await using c = await cluster(seedStock(seedCatalog(5)));
    const inv = c.gateway.client(inventory);
    await expect(inv.reserve({ sku: "apple", qty: 0, orderId: "x y" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      details: {
        issues: expect.arrayContaining([
          expect.objectContaining({ path: "sku" }),
          expect.objectContaining({ path: "qty" }),
          expect.objectContaining({ path: "orderId" }),
        ]) as unknown,
      },
    });
    await expect(c.gateway.client(catalog).getProduct({ id: "p-9999" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
  });
});

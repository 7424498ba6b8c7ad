import { createCrdtSpace, createEmbeddedNetwork, createNode } from "@strata/core";
import { describe, expect, it } from "vitest";
import { cart, cartService } from "./cart.js";

describe("cart", () => {
  it("sets, changes and removes items, and refuses bad input with field paths", async () => {
    const network = createEmbeddedNetwork();
    await using node = createNode({ id: "c1", transport: network.transport() });
    await using space = await createCrdtSpace(node, { name: "carts" });
    node.serve(cartService(space));
    await node.start();
    const client = node.client(cart);
    await client.setItem({ cartId: "c-1", sku: "sku-00001", qty: 2 });
    await client.setItem({ cartId: "c-1", sku: "sku-00002", qty: 1 });
    await client.setItem({ cartId: "c-1", sku: "sku-00001", qty: 3 });
    expect(await client.getCart({ cartId: "c-1" })).toEqual({
      cartId: "c-1",
      items: [
        { sku: "sku-00001", qty: 3 },
        { sku: "sku-00002", qty: 1 },
      ],
    });
    await client.setItem({ cartId: "c-1", sku: "sku-00002", qty: 0 });
    expect((await client.getCart({ cartId: "c-1" })).items).toEqual([{ sku: "sku-00001", qty: 3 }]);
    expect(await client.getCart({ cartId: "empty" })).toEqual({ cartId: "empty", items: [] });
    await expect(
      client.setItem({ cartId: "bad id", sku: "apple", qty: 100 }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      details: {
        issues: expect.arrayContaining([expect.objectContaining({ path: "qty" })]) as unknown,
      },
    });
  });

  // listCarts is how the engines profile compares the node processes' cart replicas.
  it("pages through a replica's carts in id order, items in SKU order", async () => {
    const network = createEmbeddedNetwork();
    await using node = createNode({ id: "c1", transport: network.transport() });
    await using space = await createCrdtSpace(node, { name: "carts" });
    node.serve(cartService(space));
    await node.start();
    const client = node.client(cart);
    for (const id of ["c-3", "c-1", "c-2"]) {
      await client.setItem({ cartId: id, sku: "sku-00009", qty: 1 });
      await client.setItem({ cartId: id, sku: "sku-00002", qty: 4 });
    }
    await client.setItem({ cartId: "c-2", sku: "sku-00009", qty: 0 });
    const first = await client.listCarts({ limit: 2 });
    expect(first).toEqual({
      carts: [
        {
          cartId: "c-1",
          items: [
            { sku: "sku-00002", qty: 4 },
            { sku: "sku-00009", qty: 1 },
          ],
        },
        { cartId: "c-2", items: [{ sku: "sku-00002", qty: 4 }] },
      ],
      next: "c-2",
    });
    const second = await client.listCarts({ after: "c-2", limit: 2 });
    expect(second.carts.map((c) => c.cartId)).toEqual(["c-3"]);
    expect(second.next).toBeUndefined();
    expect((await client.listCarts({})).carts).toHaveLength(3);
    await expect(client.listCarts({ limit: 0 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });
});

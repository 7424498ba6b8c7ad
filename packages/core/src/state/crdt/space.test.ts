import { describe, expect, it } from "vitest";
import { waitFor } from "@strata/test-harness";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { createEmbeddedNetwork } from "../../adapters/embedded/index.js";
import { openEmbeddedKv } from "../../adapters/embedded/embedded-kv.js";
import { createNode, type StrataNode } from "../../runtime/node.js";
import { createCrdtSpace, type CrdtSpace } from "./space.js";
import { mvRegister, orMap, type Causal, type DotMap } from "./types.js";

function canon(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** Waits for the condition (polling every 10 ms, up to 10 s); answers how long it took. */
async function until(condition: () => boolean): Promise<number> {
  const started = performance.now();
  await waitFor(condition, { timeoutMs: 10_000, intervalMs: 10 });
  return performance.now() - started;
}

const setQty = (sku: string, qty: number) => (cart: Causal<DotMap>, replica: string) =>
  orMap.update(cart, replica, sku, (q, r) => mvRegister.write(q as never, r, qty));

describe("CRDT spaces replicated between regions", () => {
  it("take writes on both sides of a partition and converge after it heals", async () => {
    const network = createEmbeddedNetwork();
    const nodes: StrataNode[] = [];
    const spaces: CrdtSpace[] = [];
    try {
      for (const [id, region] of [
        ["eu1", "eu"],
        ["eu2", "eu"],
        ["us1", "us"],
      ] as const) {
        const node = createNode({
          id,
          region,
          transport: network.transport(),
          heartbeatIntervalMs: 50,
          deadAfterMs: 400,
        });
        await node.start();
        nodes.push(node);
      }
      for (const node of nodes)
        spaces.push(await createCrdtSpace(node, { name: "carts", shipEveryMs: 10 }));
      await until(() =>
        nodes.every(
          (n) =>
            n.nodes().filter((m) => m.services.some((s) => s.name === "crdt-carts")).length === 3,
        ),
      );
      const [eu1, eu2, us1] = spaces as [CrdtSpace, CrdtSpace, CrdtSpace];
      await eu1.update("cart-1", setQty("sku-1", 1));
      await until(() => us1.get("cart-1") !== undefined && eu2.get("cart-1") !== undefined);

      network.partition(["eu1", "eu2"], ["us1"]);
      await eu1.update("cart-1", setQty("sku-2", 2));
      await us1.update("cart-1", setQty("sku-3", 3));
      await us1.update("cart-1", (cart) => orMap.remove(cart, "sku-1"));
      await eu2.update("cart-1", setQty("sku-1", 5)); // concurrent with us1's remove: survives
      // Within a side replication goes on; across the cut nothing passes.
      await until(() => canon(eu1.get("cart-1")) === canon(eu2.get("cart-1")));
      expect(canon(eu1.get("cart-1"))).not.toBe(canon(us1.get("cart-1")));

      network.heal();
      const ms = await until(() => new Set(spaces.map((s) => canon(s.get("cart-1")))).size === 1);
      console.log(`carts converged ${Math.round(ms)} ms after the partition healed`);
      const cart = eu1.get("cart-1") as Causal<DotMap>;
      expect(orMap.keys(cart)).toEqual(["sku-1", "sku-2", "sku-3"]);
      expect(
        mvRegister.values(orMap.get(cart, "sku-1", { t: "fun", entries: {} }) as never),
      ).toEqual([5]);
    } finally {
      for (const s of spaces) await s[Symbol.asyncDispose]();
      for (const n of nodes) await n.stop({ drainTimeoutMs: 200 });
    }
  });

  it("persists local updates, so a restarted replica keeps them, and refuses bad input", async () => {
    const dir = await mkdtemp(joinPath(tmpdir(), "strata-space-"));
    const network = createEmbeddedNetwork();
    try {
      {
        await using kv = await openEmbeddedKv({ dir });
        await using node = createNode({ id: "solo", transport: network.transport() });
        await node.start();
        await using space = await createCrdtSpace(node, { name: "carts", store: kv });
        await space.update("cart-9", setQty("sku-1", 4));
        await expect(
          node.call(
            "crdt-carts",
            "apply",
            { deltas: [["k", { store: { t: "set" } }]] },
            { node: "solo" },
          ),
        ).rejects.toMatchObject({
          code: "INVALID_ARGUMENT",
        });
      }
      await using kv = await openEmbeddedKv({ dir });
      await using node = createNode({ id: "solo2", transport: network.transport() });
      await node.start();
      await using space = await createCrdtSpace(node, { name: "carts", store: kv });
      expect(orMap.keys(space.get("cart-9") as Causal<DotMap>)).toEqual(["sku-1"]);
      await expect(createCrdtSpace(node, { name: "Bad Name" })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import { readFile } from "node:fs/promises";
import { createStateStore, isStrataError } from "@strata/core";
import { findNatsServer, findPostgresBin, waitFor } from "@strata/test-harness";
import { describe, expect, it } from "vitest";
import { seedCatalog, seedStock } from "../../data/seed.js";
import { cart } from "../../services/cart.js";
import { orders } from "../../services/orders.js";
import { HANDOVER_NODE, SERVICE_NODES } from "../cluster.js";
import { startEnginesCluster, type EnginesCluster } from "./cluster.js";

/** Why the engines cannot be started here, or undefined when they can. */
async function enginesMissing(): Promise<string | undefined> {
  const found = await Promise.allSettled([findNatsServer(), findPostgresBin()]);
  const reasons = found.flatMap((r) =>
    r.status === "rejected"
      ? [r.reason instanceof Error ? r.reason.message : String(r.reason)]
      : [],
  );
  return reasons.length === 0 ? undefined : reasons.join("; ");
}

const missing = await enginesMissing();
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const dec = new TextDecoder();

/**
 * The commerce system as node processes on NATS and PostgreSQL (the node program runs from the
 * build: `npm run build` first). One cluster for the whole scenario, to keep it short.
 */
describe.skipIf(missing !== undefined)(
  `commerce on engines${missing === undefined ? "" : ` (skipped: ${missing})`}`,
  () => {
    it("checks out, keeps carts on both sides of a partition, converges, and leaves nothing running", async () => {
      const progress: string[] = [];
      const cluster: EnginesCluster = await startEnginesCluster({
        log: (line) => progress.push(line),
      });
      const pids = cluster.processes().map((p) => p.pid);
      try {
        expect(cluster.mode).toBe("engines");
        expect(cluster.processes().map((p) => p.id)).toEqual(SERVICE_NODES);
        expect(progress.at(-1)).toMatch(/^engines: ready in/);
        // The configuration (with the PostgreSQL URL) is not on the command lines `ps` shows.
        for (const pid of pids) {
          const cmdline = await readFile(`/proc/${String(pid)}/cmdline`, "utf8");
          expect(cmdline).toMatch(/node-main\.js/);
          expect(cmdline).not.toMatch(/postgres|"id"/);
        }
        const { eu, us } = cluster.gateways;
        const products = seedCatalog();
        const initialStock = seedStock(products);

        // Checkouts through the eu gateway: each a saga over PostgreSQL and JetStream.
        const placeOrder = (orderId: string, i: number) => {
          const product = products[(i * 37) % products.length] as (typeof products)[number];
          return eu.client(orders).place({
            orderId,
            sku: product.sku,
            qty: 1 + (i % 3),
            priceMinor: product.priceMinor,
          });
        };
        const placed = await Promise.all(
          [1, 2, 3, 4, 5, 6].map((i) => placeOrder(`engines-${i}`, i)),
        );
        for (const order of placed) expect(["confirmed", "cancelled"]).toContain(order.status);
        expect(placed.some((o) => o.status === "confirmed")).toBe(true);

        // Carts through both gateways, replicated to every node process.
        const cartEu = eu.client(cart);
        const cartUs = us.client(cart);
        await cartEu.setItem({ cartId: "shared", sku: "sku-00001", qty: 1 });
        await cartUs.setItem({ cartId: "shared", sku: "sku-00002", qty: 1 });
        const converged = async (): Promise<ReadonlyMap<string, string>> => {
          let last: ReadonlyArray<ReadonlyMap<string, string>> = [];
          await waitFor(
            async () => {
              last = await cluster.cartReplicas();
              const first = JSON.stringify([...(last[0] ?? [])]);
              return last.every((r) => JSON.stringify([...r]) === first);
            },
            { timeoutMs: 15_000, intervalMs: 100, message: "cart replicas did not converge" },
          );
          return last[0] as ReadonlyMap<string, string>;
        };
        expect((await converged()).get("shared")).toBe(
          JSON.stringify([
            { sku: "sku-00001", qty: 1 },
            { sku: "sku-00002", qty: 1 },
          ]),
        );

        // Cut apart, each region takes writes: the same item on both sides, and carts of its own.
        await cluster.partitionRegions();
        expect(
          eu
            .nodes()
            .map((n) => n.region)
            .every((r) => r === "eu"),
        ).toBe(true);
        await cartEu.setItem({ cartId: "shared", sku: "sku-00001", qty: 2 });
        await cartEu.setItem({ cartId: "eu-only", sku: "sku-00003", qty: 5 });
        await cartUs.setItem({ cartId: "shared", sku: "sku-00001", qty: 3 });
        await cartUs.setItem({ cartId: "us-only", sku: "sku-00004", qty: 7 });
        // Each side converges on its own; the sides differ while cut.
        await waitFor(
          async () => {
            const [n1, n2, n3, n4] = await cluster.cartReplicas();
            return (
              n1?.get("eu-only") !== undefined &&
              n2?.get("eu-only") !== undefined &&
              n3?.get("us-only") !== undefined &&
              n4?.get("us-only") !== undefined
            );
          },
          { timeoutMs: 10_000, intervalMs: 100, message: "a region did not replicate its writes" },
        );
        const [cutEu, , cutUs] = await cluster.cartReplicas();
        expect(cutEu?.has("us-only")).toBe(false);
        expect(cutUs?.has("eu-only")).toBe(false);

        await cluster.heal();
        const healed = await converged();
        // Concurrent quantities are both kept; the cart shows the larger.
        expect(healed.get("shared")).toBe(
          JSON.stringify([
            { sku: "sku-00001", qty: 3 },
            { sku: "sku-00002", qty: 1 },
          ]),
        );
        expect(healed.get("eu-only")).toBe(JSON.stringify([{ sku: "sku-00003", qty: 5 }]));
        expect(healed.get("us-only")).toBe(JSON.stringify([{ sku: "sku-00004", qty: 7 }]));

        // A node leaves the consumer groups; the others take its partitions: every order after
        // the handover is still notified exactly once.
        await cluster.stopConsuming(HANDOVER_NODE);
        const late = await placeOrder("engines-late", 7);
        await waitFor(
          async () => {
            const entry = await cluster.kv.get(`notification/${late.orderId}`);
            return entry !== undefined && dec.decode(entry.value) === "1";
          },
          { timeoutMs: 15_000, intervalMs: 100, message: "the late order was never notified" },
        );
        await expect(cluster.stopConsuming("n9")).rejects.toSatisfy((e) =>
          isStrataError(e, "NOT_FOUND"),
        );

        // Every unit of stock is available or reserved.
        const stock = createStateStore(cluster.stockKv, "stock");
        let skus = 0;
        for await (const entry of stock.list<{ available: number; reserved: number }>()) {
          skus++;
          expect(entry.value.available).toBeGreaterThanOrEqual(0);
          expect(entry.value.available + entry.value.reserved).toBe(initialStock.get(entry.key));
        }
        expect(skus).toBe(initialStock.size);
      } finally {
        await cluster.stop();
      }
      for (const pid of pids) {
        expect(pid).toBeDefined();
        expect(alive(pid as number)).toBe(false);
      }
      expect(cluster.processes().every((p) => !p.running)).toBe(true);
    }, 90_000);
  },
);

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createEmbeddedNetwork,
  createEvents,
  createNode,
  createStateStore,
  defineService,
  isStrataError,
  openEmbeddedKv,
  openEmbeddedLog,
  StrataError,
  type EventHandler,
  type EventLog,
  type StrongKV,
  type Transport,
} from "@strata/core";
import { z } from "zod";

// An orders service that takes stock and announces each order with an event.
const Placed = z.object({ orderId: z.string(), sku: z.string(), qty: z.number().int() });

export const orders = defineService({
  name: "orders",
  version: "1.0.0",
  actions: {
    place: {
      input: z.object({
        orderId: z.string().min(1),
        sku: z.string().min(1),
        qty: z.number().int().min(1),
      }),
      output: z.object({ orderId: z.string(), remaining: z.number().int() }),
    },
  },
  events: { placed: Placed },
});

interface Stock {
  readonly available: number;
}

/** What the shop runs on: the same code runs on the embedded engines and on NATS + PostgreSQL. */
export interface Engines {
  /** A transport for each node (each node has its own link). */
  readonly transport: () => Transport;
  /** Strong state with transactions: stock, orders, consumer positions, the outbox. */
  readonly kv: StrongKV;
  /** The durable, partitioned log that events go to. */
  readonly log: EventLog;
}

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

export async function runShop(engines: Engines) {
  const { kv, log } = engines;
  const stock = createStateStore(kv, "stock");
  await stock.put<Stock>("sku-1", { available: 7 });
  let stockAttempts = 0; // how often the update function ran, retries included
  let deliveries = 0; // how often a notification handler was given an event

  // The effect of an event and its de-duplication marker commit in one transaction.
  const notify: EventHandler<z.infer<typeof Placed>> = async (event, ctx) => {
    deliveries++;
    await ctx.transaction({
      writes: [
        { type: "put", key: `notifications/${event.data.orderId}`, value: bytes(event.data) },
      ],
    });
  };

  // A service node: the orders service, its own events instance, a member of the group.
  async function startMember(id: string) {
    const events = createEvents({ log, kv, source: `strata://${id}` });
    const impl = orders.implement({
      place: async ({ orderId, sku, qty }) => {
        // Compare-and-set under the hood: a concurrent change makes update() read again and retry.
        const after = await stock.update<Stock>(sku, (current) => {
          stockAttempts++;
          if (current === undefined || current.available < qty) {
            throw new StrataError("FAILED_PRECONDITION", `out of stock: ${sku}`);
          }
          return { available: current.available - qty };
        });
        // The order and its event commit together, or not at all (transactional outbox).
        await events.transaction({
          checks: [{ key: `orders/${orderId}`, revision: 0 }], // 0: the order must be new
          writes: [{ type: "put", key: `orders/${orderId}`, value: bytes({ sku, qty }) }],
          events: [
            { contract: orders, event: "placed", data: { orderId, sku, qty }, key: orderId },
          ],
        });
        return { orderId, remaining: after.value?.available ?? 0 };
      },
    });
    const node = createNode({ id, transport: engines.transport(), services: [impl] });
    await node.start();
    // A consumer group: members share the partitions, and each event goes to one of them.
    const subscription = await events.subscribe(orders, {
      group: "notifications",
      on: { placed: notify },
    });
    return { node, events, subscription };
  }

  const n1 = await startMember("n1");
  const n2 = await startMember("n2");
  // The relay publishes what transactions put in the outbox; one is enough, here on n1.
  await n1.events.startRelay();
  const caller = createNode({ id: "web", transport: engines.transport() });
  await caller.start();
  try {
    await caller.waitForService("orders");
    const client = caller.client(orders, { timeoutMs: 10_000 });

    // Ten buyers for seven units, all at once.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        client.place({ orderId: `o-${i}`, sku: "sku-1", qty: 1 }),
      ),
    );
    const placed = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.filter(
      (r) => r.status === "rejected" && isStrataError(r.reason, "FAILED_PRECONDITION"),
    ).length;

    const notifications = async () => (await kv.list("notifications/")).entries.length;
    await until(async () => (await notifications()) === placed);

    // Replay the whole group, as happens to events not yet committed when a consumer dies:
    // every event is delivered again, and every effect is already there.
    await n1.subscription.close();
    await n2.subscription.close();
    await n1.events.resetGroup(orders, "notifications", "earliest");
    const replay = await n1.events.subscribe(orders, {
      group: "notifications",
      on: { placed: notify },
    });
    await until(async () => (await n1.events.lag(orders, "notifications")) === 0);
    await replay.close();

    return {
      placed, // 7
      refused, // 3, each with FAILED_PRECONDITION
      remaining: (await stock.get<Stock>("sku-1"))?.value.available, // 0
      stockAttempts, // more than 10: conflicting updates were retried
      deliveries, // at least 14: every event delivered at least twice
      notified: await notifications(), // 7: exactly one effect per order
    };
  } finally {
    await caller.stop();
    for (const member of [n1, n2]) {
      await member.node.stop();
      await member.events.close();
    }
  }
}

/** Waits for a condition, polling, for at most `timeoutMs`. */
async function until(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await sleep(25);
  }
}

// Embedded: every node in this process, state and events durable in a temporary folder.
export async function main() {
  const dir = await mkdtemp(join(tmpdir(), "strata-getting-started-"));
  try {
    const network = createEmbeddedNetwork();
    await using kv = await openEmbeddedKv({ dir: join(dir, "kv") });
    await using log = await openEmbeddedLog({ dir: join(dir, "log") });
    return await runShop({ transport: () => network.transport(), kv, log });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

import {
  describeStrongKvConformance,
  startPostgres,
  waitFor,
  type PostgresCluster,
} from "@strata/test-harness";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  action,
  anySchema,
  createEvents,
  defineService,
  objectSchema,
  openEmbeddedLog,
  startProjection,
} from "@strata/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresKv } from "./pg-kv.js";

let pg: PostgresCluster;
let namespaces = 0;

beforeAll(async () => {
  pg = await startPostgres({ standby: true });
});

afterAll(async () => {
  await pg.stop();
});

describeStrongKvConformance("PostgreSQL with a hot standby", {
  open: () =>
    openPostgresKv({
      url: pg.primary.url,
      standbyUrl: pg.standby?.url ?? "",
      namespace: `conformance${++namespaces}`,
      pollMs: 50,
    }),
});

describe("PostgreSQL StrongKV", () => {
  it("expires leases on the server's clock and deletes their keys", async () => {
    await using kv = await openPostgresKv({ url: pg.primary.url, namespace: "leases", pollMs: 25 });
    const lease = await kv.grantLease(150);
    await kv.put("lock/a", new TextEncoder().encode("me"), { lease });
    expect((await kv.get("lock/a"))?.lease).toBe(lease);
    await waitFor(async () => (await kv.get("lock/a")) === undefined, {
      timeoutMs: 5_000,
      message: "lease never expired",
    });
    await expect(kv.keepAlive(lease)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("serves stale reads from the standby, which catches up", async () => {
    await using kv = await openPostgresKv({
      url: pg.primary.url,
      standbyUrl: pg.standby?.url ?? "",
      namespace: "stale",
    });
    const revision = await kv.put("s/k", new TextEncoder().encode("v"));
    await waitFor(
      async () =>
        (await kv.get("s/k", { consistency: { maxStalenessMs: 1_000 } }))?.revision === revision,
      {
        timeoutMs: 5_000,
        message: "standby never caught up",
      },
    );
  });

  it("refuses bad namespaces and fails clearly when the server is gone", async () => {
    await expect(
      openPostgresKv({ url: pg.primary.url, namespace: "Bad-Name" }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(
      openPostgresKv({ url: "postgresql://strata@127.0.0.1:1/postgres", namespace: "gone" }),
    ).rejects.toMatchObject({
      code: "UNAVAILABLE",
    });
  });
});

describe("events on PostgreSQL state", () => {
  const orders = defineService({
    name: "orders",
    version: "1.0.0",
    actions: { noop: action({ input: objectSchema(), output: objectSchema() }) },
    events: { placed: anySchema<{ orderId: string; sku: string }>() },
  });

  it("commits state and events together (outbox) and applies effects and projections once", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-pg-events-"));
    try {
      await using kv = await openPostgresKv({
        url: pg.primary.url,
        namespace: "events",
        pollMs: 25,
      });
      await using log = await openEmbeddedLog({ dir });
      await using events = createEvents({
        log,
        kv,
        source: "strata://pg",
        partitions: 2,
        commitMs: 10,
      });
      const enc = new TextEncoder();
      const effects: string[] = [];
      await events.subscribe(orders, {
        group: "ship",
        on: {
          placed: async (e, ctx) => {
            await ctx.transaction({
              writes: [{ type: "put", key: `shipments/${e.data.orderId}`, value: enc.encode("1") }],
            });
            effects.push(e.data.orderId);
          },
        },
      });
      const sales = await startProjection(events, {
        name: "sales",
        contract: orders,
        on: {
          placed: async (e, model) =>
            model.put(e.data.sku, ((await model.get<number>(e.data.sku)) ?? 0) + 1),
        },
      });
      await events.startRelay();
      for (let i = 0; i < 20; i++) {
        await events.transaction({
          checks: [{ key: `orders/o${i}`, revision: 0 }],
          writes: [{ type: "put", key: `orders/o${i}`, value: enc.encode("placed") }],
          events: [
            {
              contract: orders,
              event: "placed",
              data: { orderId: `o${i}`, sku: `s${i % 2}` },
              key: `o${i}`,
            },
          ],
        });
      }
      // A failed check commits neither the order nor its event.
      await expect(
        events.transaction({
          checks: [{ key: "orders/o1", revision: 0 }],
          writes: [{ type: "put", key: "orders/o1", value: enc.encode("again") }],
          events: [
            { contract: orders, event: "placed", data: { orderId: "o1", sku: "s1" }, key: "o1" },
          ],
        }),
      ).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
      await waitFor(() => effects.length === 20, { message: "events not delivered" });
      await sales.caughtUp();
      expect(await sales.list<number>()).toEqual([
        { key: "s0", value: 10 },
        { key: "s1", value: 10 },
      ]);
      expect((await kv.list("shipments/")).entries).toHaveLength(20);
      expect((await log.streamInfo(events.streamOf(orders))).records).toBe(20);
      await sales.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

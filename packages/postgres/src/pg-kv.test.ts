import {
  checkRegisterHistory,
  describeStrongKvConformance,
  startPostgres,
  waitFor,
  type PostgresCluster,
} from "@strata/test-harness";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ShardedKv,
  action,
  anySchema,
  createEvents,
  defineService,
  objectSchema,
  openEmbeddedLog,
  startProjection,
} from "@strata/core";
import pgDriver from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KvEvent, StrongKV } from "@strata/core";
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

describe("PostgreSQL StrongKV without a change log", () => {
  it("writes one row per write, refuses watches, and keeps the choice in the namespace", async () => {
    const namespace = `nolog${++namespaces}`;
    const kv = await openPostgresKv({ url: pg.primary.url, namespace, watch: false, pollMs: 50 });
    try {
      expect(kv.capabilities.watch).toBe(false);
      const verdict = await checkRegisterHistory(() => kv);
      expect(verdict.result, JSON.stringify(verdict).slice(0, 2_000)).toBe("linearizable");
      const first = await kv.put("n/a", new TextEncoder().encode("1"));
      const second = await kv.compareAndSet("n/a", new TextEncoder().encode("2"), first);
      expect(second).toBeGreaterThan(first);
      expect(await kv.revision()).toBeGreaterThanOrEqual(second);
      const txn = await kv.transaction({
        checks: [{ key: "n/a", revision: second }],
        writes: [
          { type: "delete", key: "n/a" },
          { type: "put", key: "n/b", value: new Uint8Array(1) },
        ],
      });
      expect(txn).toBeGreaterThan(second);
      expect(await kv.get("n/a")).toBeUndefined();
      expect(() => kv.watch("n/")).toThrow(/keeps no change log/);
      const client = new pgDriver.Client({ connectionString: pg.primary.url });
      await client.connect();
      const log = await client.query<{ t: string | null }>("SELECT to_regclass($1)::text AS t", [
        `strata_kv_${namespace}_log`,
      ]);
      await client.end();
      expect(log.rows[0]?.t).toBeNull();
      await expect(openPostgresKv({ url: pg.primary.url, namespace })).rejects.toMatchObject({
        code: "FAILED_PRECONDITION",
        message: /created without a change log/,
      });
    } finally {
      await kv.close();
    }
    // A namespace that keeps a log (as every namespace made before the choice existed) stays so.
    const logged = `logged${++namespaces}`;
    await (await openPostgresKv({ url: pg.primary.url, namespace: logged })).close();
    await expect(
      openPostgresKv({ url: pg.primary.url, namespace: logged, watch: false }),
    ).rejects.toMatchObject({ code: "FAILED_PRECONDITION", message: /created with a change log/ });
  });
});

describe("a sharded store on PostgreSQL with a map shared by routers", () => {
  it("stays linearizable while one router moves slots and the others serve", async () => {
    const run = ++namespaces;
    const open = (name: string): Promise<StrongKV & { close(): Promise<void> }> =>
      openPostgresKv({
        url: pg.primary.url,
        namespace: `shard${run}_${name}`,
        watch: false,
        poolSize: 3,
        pollMs: 1_000,
      });
    const closers: Array<() => Promise<void>> = [];
    const opened = async (name: string): Promise<StrongKV> => {
      const kv = await open(name);
      closers.push(() => kv.close());
      return kv;
    };
    try {
      // Three routers, each with connections of its own, as three processes would have.
      const routers: ShardedKv[] = [];
      for (let r = 0; r < 3; r++) {
        const groups = [
          { id: "a", region: "eu", kv: await opened("a") },
          { id: "b", region: "us", kv: await opened("b") },
        ];
        const router = await ShardedKv.open(groups, {
          coordination: {
            kv: await opened("map"),
            routerId: `router-${r}`,
            leaseMs: 3_000,
            pollMs: 50,
            batchSlots: 64,
            resolveGroup: async (g) => ({ ...g, kv: await opened(g.id) }),
          },
        });
        closers.unshift(() => router.close());
        routers.push(router);
      }
      let moved = -1;
      const verdict = await checkRegisterHistory((p) => routers[p % 3] as ShardedKv, {
        clients: 9,
        operations: 300,
        keys: 24,
        during: async () => {
          moved = await (routers[0] as ShardedKv).addGroup({
            id: "c",
            region: "eu",
            kv: await opened("c"),
          });
        },
      });
      expect(verdict.result, JSON.stringify(verdict).slice(0, 2_000)).toBe("linearizable");
      expect(moved).toBeGreaterThan(0);
      await waitFor(() => routers.every((r) => r.map().epoch === routers[0]?.map().epoch), {
        timeoutMs: 5_000,
        message: "routers never agreed on the map",
      });
      expect(routers[2]?.map().owners.filter((o) => o === "c")).toHaveLength(341);
    } finally {
      for (const close of closers) await close();
    }
  });
});

const text = new TextEncoder();
const revisionOf = (e: KvEvent): number => (e.type === "put" ? e.entry.revision : e.revision);
const keyOf = (e: KvEvent): string => (e.type === "put" ? e.entry.key : e.key);

/**
 * Watches `prefix` after `fromRevision`; `seen` fills as events arrive; ends at key `last`, or
 * after `deadlineMs` (the test's assertions then show what was missing).
 */
function watchUntil(
  kv: StrongKV,
  prefix: string,
  fromRevision: number,
  last: string,
  deadlineMs = 10_000,
): { seen: KvEvent[]; done: Promise<void> } {
  const seen: KvEvent[] = [];
  const controller = new AbortController();
  const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(deadlineMs)]);
  const done = (async () => {
    for await (const event of kv.watch(prefix, { fromRevision, signal })) {
      seen.push(event);
      if (keyOf(event) === last) controller.abort();
    }
  })();
  return { seen, done };
}

// Writes to different keys commit concurrently; these tests check that watchers still see every
// change in revision order: they stop at a revision that a running writer could still commit.
describe("PostgreSQL StrongKV watches under concurrent commits", () => {
  it("holds watchers below a revision drawn by a writer that has not committed yet", async () => {
    await using kv = await openPostgresKv({
      url: pg.primary.url,
      namespace: "horizon",
      pollMs: 20,
    });
    const start = await kv.put("h/start", text.encode("0"));
    const watch = watchUntil(kv, "h/", start, "h/end");
    // A writer as the write function does it: the namespace lock, then a revision; no commit yet.
    const slow = new pgDriver.Client({ connectionString: pg.primary.url });
    await slow.connect();
    try {
      await slow.query("BEGIN");
      await slow.query("SELECT pg_advisory_xact_lock_shared(hashtext('strata_kv_horizon'))");
      const drawn = await slow.query<{ r: string }>("SELECT nextval('strata_kv_horizon_rev') AS r");
      const early = Number(drawn.rows[0]?.r);
      const later = await kv.put("h/later", text.encode("1"));
      expect(later).toBeGreaterThan(early);
      // Wait until the watcher has read the log since `later` committed (pg_stat_activity shows
      // its last query), so a watcher without a horizon would have delivered `later` by now.
      const since = (await slow.query<{ t: string }>("SELECT clock_timestamp()::text AS t")).rows[0]
        ?.t;
      const observer = new pgDriver.Client({ connectionString: pg.primary.url });
      await observer.connect();
      try {
        await waitFor(
          async () =>
            (
              await observer.query(
                `SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT revision, key, value, lease FROM strata_kv_horizon_log%'
                 AND query_start > $1::timestamptz`,
                [since],
              )
            ).rows.length > 0,
          { message: "the watcher never read the log" },
        );
      } finally {
        await observer.end();
      }
      expect(watch.seen.map(keyOf)).not.toContain("h/later");
      await slow.query(
        "INSERT INTO strata_kv_horizon (key, value, revision, create_revision) VALUES ('h/early', '\\x01', $1, $1)",
        [early],
      );
      await slow.query(
        "INSERT INTO strata_kv_horizon_log (revision, key, value) VALUES ($1, 'h/early', '\\x01')",
        [early],
      );
      await slow.query("COMMIT");
    } finally {
      await slow.end();
    }
    await kv.put("h/end", text.encode(""));
    await watch.done;
    expect(watch.seen.map(keyOf)).toEqual(["h/early", "h/later", "h/end"]);
  });

  it("is not held back by a long transaction of another application", async () => {
    await using kv = await openPostgresKv({
      url: pg.primary.url,
      namespace: "foreign",
      pollMs: 20,
    });
    const other = new pgDriver.Client({ connectionString: pg.primary.url });
    await other.connect();
    try {
      // An open transaction with a transaction id, as a long batch job would have.
      await other.query("BEGIN");
      await other.query("CREATE TABLE IF NOT EXISTS unrelated (n int)");
      await other.query("INSERT INTO unrelated VALUES (1)");
      const start = await kv.put("f/start", text.encode(""));
      const watch = watchUntil(kv, "f/", start, "f/end");
      await kv.put("f/end", text.encode(""));
      await watch.done;
      expect(watch.seen.map(keyOf)).toEqual(["f/end"]);
    } finally {
      await other.query("ROLLBACK");
      await other.end();
    }
  });

  // A watcher announces itself before its first read, so a writer in another process notifies it
  // from then on; its own poll (a minute here) never has to fire.
  it("wakes watchers in another process at once (they would otherwise wait a minute)", async () => {
    await using watcher = await openPostgresKv({
      url: pg.primary.url,
      namespace: "notify",
      pollMs: 60_000,
    });
    await using writer = await openPostgresKv({
      url: pg.primary.url,
      namespace: "notify",
      // The writer looks for watchers only every minute too: it learns of this one from its
      // announcement alone.
      pollMs: 60_000,
    });
    const start = await writer.put("n/start", text.encode(""));
    const watch = watchUntil(watcher, "n/", start, "n/end", 20_000);
    // The watcher's first read may find writes on its own; go on until it has read once.
    let i = 0;
    await waitFor(
      async () => {
        await writer.put(`n/${i++}`, text.encode(""));
        return watch.seen.length > 0;
      },
      { message: "the watcher saw nothing" },
    );
    const end = await writer.put("n/end", text.encode(""));
    await watch.done;
    expect(watch.seen.map(revisionOf).at(-1)).toBe(end);
  });

  it("replays to the final state with single writes and transactions over many keys", async () => {
    await using kv = await openPostgresKv({ url: pg.primary.url, namespace: "mixed", pollMs: 20 });
    const start = await kv.put("m/start", text.encode(""));
    const watch = watchUntil(kv, "m/", start, "m/zz-end");
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let n = 0; n < 15; n++) {
          const key = `m/${(w * 3 + n) % 20}`;
          if (n % 5 === 4) {
            // Over 64 keys: this one takes the namespace lock alone.
            await kv.transaction({
              writes: Array.from({ length: 80 }, (_, k) => ({
                type: "put" as const,
                key: `m/bulk/${String(k).padStart(2, "0")}`,
                value: text.encode(`${w}-${n}`),
              })),
            });
          } else if (n % 3 === 2) {
            const current = await kv.get(key);
            await kv
              .compareAndSet(key, text.encode(`${w}-${n}`), current?.revision ?? 0)
              .catch(() => undefined);
          } else if (n % 7 === 6) await kv.delete(key);
          else await kv.put(key, text.encode(`${w}-${n}`));
        }
      }),
    );
    await kv.put("m/zz-end", text.encode(""));
    await watch.done;
    const revisions = watch.seen.map(revisionOf);
    expect([...revisions].sort((a, b) => a - b)).toEqual(revisions);
    const replayed = new Map<string, string>();
    for (const e of watch.seen)
      if (e.type === "put") replayed.set(e.entry.key, new TextDecoder().decode(e.entry.value));
      else replayed.delete(e.key);
    const state = new Map<string, string>();
    for (let after: string | undefined = ""; after !== undefined;) {
      const page = await kv.list("m/", { after, limit: 1_000 });
      for (const e of page.entries) state.set(e.key, new TextDecoder().decode(e.value));
      after = page.next;
    }
    state.delete("m/start");
    expect(replayed).toEqual(state);
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

import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import {
  action,
  anySchema,
  createEvents,
  defineService,
  isStrataError,
  objectSchema,
  type EventLog,
} from "@strata/core";
import {
  describeLogConformance,
  startNatsCluster,
  waitFor,
  type NatsCluster,
} from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openNatsLog } from "./jetstream-log.js";
import { openNatsKv } from "./nats-kv.js";

let single: NatsCluster;
let cluster: NatsCluster;
let nc1: NatsConnection;
let nc3: NatsConnection;
let namespaces = 0;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

beforeAll(async () => {
  [single, cluster] = await Promise.all([
    startNatsCluster({ nodes: 1 }),
    startNatsCluster({ nodes: 3, syncAlways: true }),
  ]);
  nc1 = await connect({ servers: single.url });
  nc3 = await connect({ servers: cluster.urls as string[] });
});

afterAll(async () => {
  await nc1.close();
  await nc3.close();
  await Promise.all([single.stop(), cluster.stop()]);
});

/** Each test gets streams and subjects of its own on the shared servers. */
function fixture(connection: () => NatsConnection, replicas: 1 | 3) {
  const prefixes = new WeakMap<EventLog, number>();
  const open = async (n: number): Promise<EventLog> => {
    const log = await openNatsLog({
      connection: connection(),
      subjectPrefix: `t${n}`,
      streamPrefix: `T${n}_`,
      replicas,
      serversSyncAlways: replicas === 3,
    });
    prefixes.set(log, n);
    return log;
  };
  return {
    open: () => open(++namespaces),
    async reopen(log: EventLog) {
      const n = prefixes.get(log) as number;
      await log[Symbol.asyncDispose]();
      return open(n);
    },
  };
}

describeLogConformance(
  "NATS JetStream, one server (R1)",
  fixture(() => nc1, 1),
);
describeLogConformance(
  "NATS JetStream, three servers (R3)",
  fixture(() => nc3, 3),
);

const orders = defineService({
  name: "orders",
  version: "1.0.0",
  actions: { noop: action({ input: objectSchema(), output: objectSchema() }) },
  events: { placed: anySchema<{ n: number; key: string }>() },
});

describe("NATS Log", () => {
  it("refuses a critical stream unless the servers fsync before acknowledging", async () => {
    const log = await openNatsLog({
      connection: nc1,
      subjectPrefix: "crit",
      streamPrefix: "CRIT_",
    });
    const error = await log
      .ensureStream({ name: "money", partitions: 1, critical: true })
      .catch((e: unknown) => e);
    expect(isStrataError(error, "FAILED_PRECONDITION")).toBe(true);
    expect(String((error as Error).message)).toContain("sync_interval");
    const synced = await openNatsLog({
      connection: nc3,
      subjectPrefix: "crit",
      streamPrefix: "CRIT_",
      replicas: 3,
      serversSyncAlways: true,
    });
    await expect(
      synced.ensureStream({ name: "money", partitions: 2, critical: true }),
    ).resolves.toMatchObject({ partitions: 2, replicas: 3 });
  });

  it("reads a message some other client published without Strata's headers", async () => {
    const log = await openNatsLog({
      connection: nc1,
      subjectPrefix: "foreign",
      streamPrefix: "F_",
    });
    await log.ensureStream({ name: "raw", partitions: 2 });
    const h = headers();
    h.set("ce-type", "x");
    await jetstream(nc1).publish("foreign.raw.1", enc("hello"), { headers: h });
    await jetstream(nc1).publish("foreign.raw.0", enc("bare"));
    const records = await log.read("raw");
    expect(records.map((r) => [r.partition, r.key, r.id, dec(r.payload)])).toEqual([
      [1, "", "seq-1", "hello"],
      [0, "", "seq-2", "bare"],
    ]);
    expect(records[0]?.headers).toEqual({ "ce-type": "x" });
  });

  it("loses no acknowledged append and keeps followers gapless when one server of three is killed", async () => {
    const log = await openNatsLog({
      connection: nc3,
      subjectPrefix: "kill",
      streamPrefix: "KILL_",
      replicas: 3,
      serversSyncAlways: true,
    });
    await log.ensureStream({ name: "orders", partitions: 4, critical: true });
    const acknowledged = new Map<string, number>();
    const followed: number[] = [];
    const following = new AbortController();
    const follower = (async () => {
      for await (const r of log.follow("orders", { signal: following.signal }))
        followed.push(r.seq);
    })();
    let stop = false;
    let failures = 0;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const id = `w${w}-${i}`;
        // A failed append is retried with the same id: the duplicate window keeps one copy.
        for (let attempt = 0; attempt < 20 && !stop; attempt++) {
          try {
            const r = await log.append("orders", {
              partition: i % 4,
              id,
              key: `k${w}`,
              payload: enc(id),
            });
            acknowledged.set(id, r.seq);
            break;
          } catch {
            failures++;
          }
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await waitFor(() => acknowledged.size >= 300, { timeoutMs: 20_000 });
    const victim = cluster.servers[1];
    await victim?.kill();
    const before = acknowledged.size;
    await waitFor(() => acknowledged.size >= before + 300, {
      timeoutMs: 30_000,
      message: "appends did not resume with one server down",
    });
    stop = true;
    await Promise.all(writers);
    await victim?.restart();
    const info = await log.streamInfo("orders");
    const stored = new Map<string, number>();
    for (let from = 1; from <= info.lastSeq;) {
      const page = await log.read("orders", { fromSeq: from, limit: 1_000 });
      for (const r of page) stored.set(dec(r.payload), r.seq);
      const last = page.at(-1);
      if (last === undefined) break;
      from = last.seq + 1;
    }
    for (const [id, seq] of acknowledged) expect(stored.get(id), id).toBe(seq);
    // Each id at most once: the stream holds no more records than distinct ids.
    expect(info.records).toBe(stored.size);
    await waitFor(() => followed.length >= info.records, { timeoutMs: 20_000 });
    following.abort();
    await follower;
    expect(new Set(followed).size).toBe(followed.length);
    expect([...followed].sort((a, b) => a - b)).toEqual(followed);
    expect(failures).toBeGreaterThanOrEqual(0);
  }, 90_000);

  it("delivers every acknowledged event to a group, in order per key, across a killed server", async () => {
    const log = await openNatsLog({
      connection: nc3,
      subjectPrefix: "grp",
      streamPrefix: "GRP_",
      replicas: 3,
      serversSyncAlways: true,
    });
    const kv = await openNatsKv({ connection: nc3, bucket: "grp_events", replicas: 3 });
    await using events = createEvents({
      log,
      kv,
      source: "strata://test",
      partitions: 4,
      replicas: 3,
      critical: true,
      leaseMs: 2_000,
      rebalanceMs: 100,
      commitMs: 20,
    });
    const seen = new Map<string, number[]>();
    await events.subscribe(orders, {
      group: "g",
      idempotent: true,
      on: {
        placed: (e) => {
          const list = seen.get(e.data.key) ?? [];
          list.push(e.data.n);
          seen.set(e.data.key, list);
        },
      },
    });
    const published: Array<{ key: string; n: number }> = [];
    // A publish that fails while the cluster elects new leaders is retried with its id: the
    // log's duplicate window keeps one copy.
    const publish = (key: string, n: number): Promise<void> =>
      waitFor(
        async () => {
          await events.publish(orders, "placed", { key, n }, { key, id: `${key}-${n}` });
          published.push({ key, n });
          return true;
        },
        { timeoutMs: 20_000, intervalMs: 50, message: `could not publish ${key}-${n}` },
      );
    for (let n = 0; n < 40; n++) {
      await Promise.all(["a", "b", "c", "d", "e"].map((key) => publish(key, n)));
      if (n === 15) await cluster.servers[2]?.kill();
    }
    await cluster.servers[2]?.restart();
    await waitFor(
      () =>
        [...seen.values()].reduce((sum, list) => sum + new Set(list).size, 0) === published.length,
      {
        timeoutMs: 30_000,
        message: `not every acknowledged event was delivered: ${published.length} published`,
      },
    );
    for (const [key, list] of seen) {
      const firsts = list.filter((n, i) => list.indexOf(n) === i);
      expect(firsts, key).toEqual(Array.from({ length: 40 }, (_, i) => i));
    }
  }, 90_000);
});

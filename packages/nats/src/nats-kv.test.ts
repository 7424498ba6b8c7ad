import { connect, type NatsConnection } from "@nats-io/transport-node";
import { StrataError } from "@strata/core";
import {
  describeStrongKvConformance,
  startNatsCluster,
  waitFor,
  type NatsCluster,
} from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openNatsKv } from "./nats-kv.js";

let cluster: NatsCluster;
let nc: NatsConnection;
let buckets = 0;

beforeAll(async () => {
  cluster = await startNatsCluster({ nodes: 3, syncAlways: true });
  nc = await connect({ servers: cluster.urls as string[] });
});

afterAll(async () => {
  await nc.close();
  await cluster.stop();
});

describeStrongKvConformance("NATS JetStream KV, R3", {
  async open() {
    const kv = await openNatsKv({ connection: nc, bucket: `conformance${++buckets}`, replicas: 3 });
    return kv;
  },
});

// One replica: linearizable gets use direct get, answered by the bucket's only server.
describeStrongKvConformance("NATS JetStream KV, R1", {
  async open() {
    const kv = await openNatsKv({ connection: nc, bucket: `conformance${++buckets}`, replicas: 1 });
    return kv;
  },
});

describe("NATS StrongKV", () => {
  it("refuses a bucket that exists with other settings, and bad options", async () => {
    await openNatsKv({ connection: nc, bucket: "settings", replicas: 1 });
    await expect(
      openNatsKv({ connection: nc, bucket: "settings", replicas: 3 }),
    ).rejects.toMatchObject({
      code: expect.stringMatching(/FAILED_PRECONDITION|UNAVAILABLE/) as unknown,
    });
    await expect(openNatsKv({ connection: nc, bucket: "bad.name" })).rejects.toBeInstanceOf(
      StrataError,
    );
    await expect(openNatsKv({ connection: nc, bucket: "b", replicas: 9 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });

  it("loses no acknowledged write and keeps compare-and-set exclusive when one server of three is killed", async () => {
    const kv = await openNatsKv({ connection: nc, bucket: "failover", replicas: 3 });
    const acknowledged = new Map<string, number>();
    let stop = false;
    let failures = 0;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const key = `f/${w}-${i}`;
        try {
          acknowledged.set(key, await kv.put(key, new TextEncoder().encode(key)));
        } catch {
          failures++; // unacknowledged: allowed to be lost
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await waitFor(() => acknowledged.size >= 200, {
      timeoutMs: 20_000,
      message: "writers made no progress",
    });
    const victim = cluster.servers[1];
    if (victim === undefined) throw new Error("no server");
    await victim.kill();
    // Keep writing through the loss until plenty more writes were acknowledged by the survivors.
    const before = acknowledged.size;
    await waitFor(() => acknowledged.size >= before + 500, {
      timeoutMs: 30_000,
      message: "no progress after the kill",
    });
    stop = true;
    await Promise.all(writers);
    await victim.restart();
    expect(acknowledged.size).toBeGreaterThan(100);
    // Right after the restart the cluster may still be settling its stream leader: a read that
    // times out is retried (this test is about durability, not availability).
    const read = async (key: string): Promise<number | undefined> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return (await kv.get(key))?.revision;
        } catch (error) {
          if (attempt >= 20 || !(error instanceof StrataError && error.code === "UNAVAILABLE"))
            throw error;
        }
      }
    };
    let lost = 0;
    for (const [key, revision] of acknowledged) if ((await read(key)) !== revision) lost++;
    expect(lost).toBe(0);
    await waitFor(
      async () =>
        await kv.put("f/probe", new TextEncoder().encode("ok")).then(
          () => true,
          () => false,
        ),
      {
        timeoutMs: 30_000,
        message: "writes did not come back after the restart",
      },
    );
    const base = await kv.put("f/cas", new TextEncoder().encode("0"));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        kv.compareAndSet("f/cas", new TextEncoder().encode(`${i}`), base),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    console.log(
      `failover: ${acknowledged.size} acknowledged writes, ${failures} failed during the kill, 0 lost`,
    );
  });
});

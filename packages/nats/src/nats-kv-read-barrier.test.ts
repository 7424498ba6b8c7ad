import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { isStrataError, type KvEvent } from "@strata/core";
import { startNatsCluster, waitFor, type NatsServerHandle } from "@strata/test-harness";
import { describe, expect, it } from "vitest";
import { PINNED_CONNECTION } from "./connection-options.js";
import { openNatsKv } from "./nats-kv.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

async function jsz(server: NatsServerHandle, query: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${server.monitorPort}/jsz${query}`, {
    signal: AbortSignal.timeout(1_000),
  });
  return (await response.json()) as Record<string, unknown>;
}

/** The meta group's leader as `server` sees it ("" when it knows none). */
async function metaLeader(server: NatsServerHandle): Promise<string> {
  const meta = (await jsz(server, ""))["meta_cluster"] as { leader?: string } | undefined;
  return meta?.leader ?? "";
}

/** The stream's leader as `server` sees it ("" when it knows none). */
async function streamLeader(server: NatsServerHandle, stream: string): Promise<string> {
  const details = (await jsz(server, "?streams=true"))["account_details"] as
    Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string } }> }> | undefined;
  for (const account of details ?? []) {
    const found = account.stream_detail?.find((s) => s.name === stream);
    if (found !== undefined) return found.cluster?.leader ?? "";
  }
  return "";
}

/** Resolves to the operation's value, or to the StrataError it failed with (any other error throws). */
async function outcome<T>(operation: Promise<T>): Promise<{ value: T } | { code: string }> {
  try {
    return { value: await operation };
  } catch (error) {
    if (!isStrataError(error)) throw error;
    return { code: error.code };
  }
}

describe("NATS StrongKV under a partition (R3, links through proxies)", () => {
  // NATS JetStream has no leader leases. A stream leader cut off from both followers keeps
  // believing it leads until its lost-quorum check (every 10 s, for peers silent 10 s), while the
  // followers elect a new leader after their election timeout (4-9 s) and commit writes. A server
  // that also leads the meta group keeps answering API requests in that window; a server that
  // only follows the meta group answers "cluster not available" once its meta election timeout
  // fires (until the partition heals), so the test puts both leaderships on one server to make
  // the window certain. After the heal the old leader answers as leader for about another second,
  // until it hears of the new term: clients cut off with it are reachable again by then.
  it("gets and deletes through a cut-off old leader never answer from its stale state, during the partition or after it heals", async () => {
    await using cluster = await startNatsCluster({ nodes: 3, proxied: true, syncAlways: true });
    const [readerLinks, writerLinks] = [
      await cluster.client("reader"),
      await cluster.client("writer"),
    ];
    const bucket = "partitioned";
    const stream = `KV_${bucket}`;
    const connections: NatsConnection[] = [];
    const connectTo = async (url: string | undefined, name: string): Promise<NatsConnection> => {
      const nc = await connect({ servers: [url ?? ""], name, ...PINNED_CONNECTION });
      connections.push(nc);
      return nc;
    };
    try {
      const setup = await connectTo(writerLinks.urls[0], "setup");
      // A new cluster may still be settling: creating the bucket is tried again for a while.
      let setupKv: Awaited<ReturnType<typeof openNatsKv>> | undefined;
      await waitFor(
        async () => {
          setupKv = await openNatsKv({ connection: setup, bucket, replicas: 3 });
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 200, message: "the bucket was never created" },
      );
      if (setupKv === undefined) throw new Error("no bucket");
      await setupKv.put("r", enc("old"));

      // One server leads both the stream and the meta group.
      const first = cluster.servers[0] as NatsServerHandle;
      let leader: NatsServerHandle | undefined;
      await waitFor(
        async () => {
          const meta = await metaLeader(first);
          const current = await streamLeader(first, stream);
          if (meta !== "" && meta === current) {
            leader = cluster.servers.find((s) => s.name === meta);
            return true;
          }
          if (current !== "") {
            await setup
              .request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 2_000 })
              .catch(() => undefined);
            await waitFor(async () => !["", current].includes(await streamLeader(first, stream)), {
              timeoutMs: 10_000,
              message: "no new stream leader after a step-down",
            });
          }
          return false;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          message: "the stream leader never led the meta group",
        },
      );
      if (leader === undefined) throw new Error("no leader");
      const old = leader;
      const leaderIndex = cluster.servers.indexOf(old);
      const others = cluster.servers.filter((s) => s !== old);
      const other = others[0] as NatsServerHandle;

      const reader = await openNatsKv({
        connection: await connectTo(readerLinks.urls[leaderIndex], "reader"),
        bucket,
        replicas: 3,
        timeoutMs: 2_000,
      });
      const writer = await openNatsKv({
        connection: await connectTo(writerLinks.urls[cluster.servers.indexOf(other)], "writer"),
        bucket,
        replicas: 3,
        timeoutMs: 2_000,
      });
      expect(dec((await reader.get("r"))?.value)).toBe("old");
      // What a linearizable get costs on a healthy R3 bucket: one at a time, then 32 at a time.
      let started = performance.now();
      for (let i = 0; i < 200; i++) await reader.get("r");
      const sequentialMs = (performance.now() - started) / 200;
      started = performance.now();
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          for (let i = 0; i < 20; i++) await reader.get("r");
        }),
      );
      const perSecond = 640 / ((performance.now() - started) / 1_000);
      console.log(
        `linearizable R3 get: ${sequentialMs.toFixed(2)} ms one at a time, ${perSecond.toFixed(0)}/s at concurrency 32`,
      );
      await setupKv[Symbol.asyncDispose]();
      await setup.close();

      cluster.partition([
        [old.name, "reader"],
        [...others.map((s) => s.name), "writer"],
      ]);
      const cutAt = performance.now();
      await waitFor(
        async () => {
          const seen = await streamLeader(other, stream);
          return seen !== "" && seen !== old.name;
        },
        { timeoutMs: 20_000, intervalMs: 50, message: "the majority elected no stream leader" },
      );
      const electedAfter = performance.now() - cutAt;
      // The majority side commits new state: a new value, and a key created after the cut. (A
      // write tried again after a timeout writes the same thing.)
      const write = (op: () => Promise<number>): Promise<void> =>
        waitFor(
          () =>
            op().then(
              () => true,
              () => false,
            ),
          { timeoutMs: 10_000, intervalMs: 50, message: "the majority acknowledged no write" },
        );
      await write(() => writer.put("r", enc("new")));
      await write(() => writer.put("d", enc("created after the cut")));

      // The old leader still believes it leads (what makes a stale answer possible at all).
      expect(await streamLeader(old, stream)).toBe(old.name);

      const readAt = performance.now() - cutAt;
      const read = await outcome(reader.get("r"));
      const deleted = await outcome(reader.delete("d"));
      const context = `old leader ${old.name}, read ${readAt.toFixed(0)} ms after the cut (new leader seen after ${electedAfter.toFixed(0)} ms); get: ${JSON.stringify(read)}, delete: ${JSON.stringify(deleted)}`;
      // Failing is fine (a read claims nothing); answering the pre-partition value is not.
      if ("value" in read) expect(dec(read.value?.value), context).toBe("new");
      else expect(read.code, context).toMatch(/^(UNAVAILABLE|DEADLINE_EXCEEDED)$/);
      // A delete that answers "nothing to delete" claims the key is absent: it was created.
      if ("value" in deleted) expect(deleted.value, context).toBe(true);
      else expect(deleted.code, context).toMatch(/^(UNAVAILABLE|DEADLINE_EXCEEDED)$/);

      console.log(`partition: ${context}`);
      cluster.heal();
      // Healed, the old leader's routes come back within a second or so, and until it hears of
      // the new term it still answers as leader: that is when the processes attached to it are
      // reachable again. Reads may fail meanwhile, never answer the old value, and then see the
      // new one.
      const answers: string[] = [];
      await waitFor(
        async () => {
          const again = await outcome(reader.get("r"));
          answers.push("value" in again ? String(dec(again.value?.value)) : again.code);
          return "value" in again && dec(again.value?.value) === "new";
        },
        { timeoutMs: 30_000, intervalMs: 20, message: "the reader never saw the new value" },
      );
      expect(answers.filter((a) => a !== "new" && !/^[A-Z_]+$/.test(a))).toEqual([]);
      await reader[Symbol.asyncDispose]();
      await writer[Symbol.asyncDispose]();
    } finally {
      await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    }
  }, 90_000);
});

describe("NATS StrongKV read barriers (R3)", () => {
  it("are shared by concurrent gets, and no watch, listing or resumed watch sees them", async () => {
    await using cluster = await startNatsCluster({ nodes: 3 });
    const nc = await connect({ servers: [...cluster.urls] });
    try {
      let kv: Awaited<ReturnType<typeof openNatsKv>> | undefined;
      await waitFor(
        async () => {
          kv = await openNatsKv({ connection: nc, bucket: "barriers", replicas: 3, history: 2 });
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 200, message: "the bucket was never created" },
      );
      if (kv === undefined) throw new Error("no bucket");
      const store = kv;

      // The stream's first messages are barriers, and the history limit (2) removes them as
      // later ones arrive: the stream then starts after revision 0 with no key's change lost.
      expect(await store.get("k")).toBeUndefined();
      const written = await store.put("k", enc("v"));
      for (let i = 0; i < 3; i++) expect(dec((await store.get("k"))?.value)).toBe("v");

      // Gets invoked together wait for one barrier: the store's revision moves by one for them
      // (the revision read takes a barrier of its own).
      const before = await store.revision();
      const values = await Promise.all(Array.from({ length: 64 }, () => store.get("k")));
      expect(values.map((e) => dec(e?.value))).toEqual(Array.from({ length: 64 }, () => "v"));
      expect(await store.revision()).toBe(before + 2);

      expect((await store.list("")).entries.map((e) => e.key)).toEqual(["k"]);
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info("KV_barriers")).state.first_seq).toBe(written);
      const replayed: KvEvent[] = [];
      const replay = new AbortController();
      for await (const event of store.watch("", { fromRevision: 0, signal: replay.signal })) {
        replayed.push(event);
        replay.abort();
      }
      expect(
        replayed.map((e) =>
          e.type === "put" ? [e.entry.key, dec(e.entry.value), e.entry.revision] : [e.key],
        ),
      ).toEqual([["k", "v", written]]);

      // A live watch sees the writes, and none of the barriers published while it runs.
      const live: string[] = [];
      const stop = new AbortController();
      const watching = (async () => {
        for await (const e of store.watch("", { signal: stop.signal }))
          live.push(e.type === "put" ? e.entry.key : e.key);
      })().catch(() => undefined);
      await waitFor(async () => (await store.put("live", enc("1"))) > 0 && live.includes("live"), {
        message: "the live watch saw no write",
      });
      for (let i = 0; i < 3; i++) await store.get("k");
      await store.put("last", enc("1"));
      await waitFor(() => live.includes("last"), { message: "the live watch missed a write" });
      expect(new Set(live)).toEqual(new Set(["live", "last"]));
      stop.abort();
      await watching;

      // A key's revisions removed by the history limit from the head of the stream still make a
      // watch resumed before them fail.
      const compacted = await openNatsKv({
        connection: nc,
        bucket: "compacted",
        replicas: 3,
        history: 2,
      });
      for (let i = 0; i < 3; i++) await compacted.put("h", enc(String(i)));
      const resumed = (async () => {
        for await (const _ of compacted.watch("", { fromRevision: 0 })) return "replayed";
        return "ended";
      })();
      await expect(resumed).rejects.toMatchObject({ code: "OUT_OF_RANGE" });
      await compacted[Symbol.asyncDispose]();
      await store[Symbol.asyncDispose]();
    } finally {
      await nc.close();
    }
  }, 60_000);
});

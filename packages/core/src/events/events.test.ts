import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { openEmbeddedKv } from "../adapters/embedded/embedded-kv.js";
import { openEmbeddedLog } from "../adapters/embedded/embedded-log.js";
import { StrataError, isStrataError } from "../errors/index.js";
import { action, defineService } from "../service/define-service.js";
import { customSchema, objectSchema } from "../service/custom-schema.js";
import type { EventLog } from "../ports/log.js";
import type { StrongKV } from "../ports/strong-kv.js";
import { createEvents, type Events, type ReceivedEvent } from "./events.js";
import { startProjection } from "./projection.js";

interface Placed {
  orderId: string;
  n: number;
  sku?: string;
  qty?: number;
}
const placedSchema = customSchema<Placed>((v) => {
  const o = v as Partial<Placed> | null;
  return typeof o === "object" &&
    o !== null &&
    typeof o.orderId === "string" &&
    typeof o.n === "number"
    ? { value: o as Placed }
    : { issues: [{ message: "expected { orderId: string, n: number }" }] };
});
const orders = defineService({
  name: "orders",
  version: "1.0.0",
  actions: { noop: action({ input: objectSchema(), output: objectSchema() }) },
  events: {
    placed: placedSchema,
    cancelled: customSchema<{ orderId: string }>((v) => ({ value: v as { orderId: string } })),
  },
});

const dirs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "strata-events-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

interface Fixture {
  log: EventLog;
  kv: StrongKV;
  events(options?: { leaseMs?: number; rebalanceMs?: number; commitMs?: number }): Events;
}
async function fixture(): Promise<Fixture> {
  const log = await openEmbeddedLog({ dir: await freshDir() });
  const kv = await openEmbeddedKv({ dir: await freshDir() });
  closers.push(
    () => log.close(),
    () => kv.close(),
  );
  return {
    log,
    kv,
    events: (options = {}) => {
      const events = createEvents({
        log,
        kv,
        source: "strata://test",
        partitions: 4,
        leaseMs: options.leaseMs ?? 1_000,
        rebalanceMs: options.rebalanceMs ?? 50,
        commitMs: options.commitMs ?? 10,
      });
      closers.push(() => events.close());
      return events;
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("events", () => {
  it("publishes validated CloudEvents and delivers them typed to a group", async () => {
    const f = await fixture();
    const events = f.events();
    const seen: ReceivedEvent<Placed>[] = [];
    await events.subscribe(orders, {
      group: "billing",
      on: {
        placed: (event) => {
          expectTypeOf(event.data).toEqualTypeOf<Placed>();
          seen.push(event);
        },
      },
    });
    const trace = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
    const published = await events.publish(
      orders,
      "placed",
      { orderId: "o-1", n: 1 },
      { key: "o-1", trace },
    );
    await waitFor(() => seen.length === 1);
    const event = seen[0] as ReceivedEvent<Placed>;
    expect(event).toMatchObject({
      specversion: "1.0",
      id: published.id,
      source: "strata://test",
      type: "orders.placed",
      subject: "o-1",
      datacontenttype: "application/json",
      data: { orderId: "o-1", n: 1 },
      traceparent: trace.traceparent,
      seq: published.seq,
    });
    expect(Date.parse(event.time)).not.toBeNaN();

    const bad = await events
      .publish(orders, "placed", { orderId: 1 } as unknown as Placed, { key: "o-2" })
      .catch((e: unknown) => e);
    expect(isStrataError(bad, "INVALID_ARGUMENT")).toBe(true);
    const unknown = await events
      .publish(orders, "shipped" as "placed", { orderId: "x", n: 1 }, { key: "x" })
      .catch((e: unknown) => e);
    expect(isStrataError(unknown, "INVALID_ARGUMENT")).toBe(true);
    const noKey = await events
      .publish(orders, "placed", { orderId: "x", n: 1 }, { key: "" })
      .catch((e: unknown) => e);
    expect(isStrataError(noKey, "INVALID_ARGUMENT")).toBe(true);
    const again = await events.publish(
      orders,
      "placed",
      { orderId: "o-1", n: 1 },
      { key: "o-1", id: published.id },
    );
    expect(again).toMatchObject({ seq: published.seq, duplicate: true });
  });

  it("keeps per-key order across competing consumers that fail, retry and rebalance", async () => {
    const f = await fixture();
    const keys = 12;
    const perKey = 25;
    const handled = new Map<string, number[]>();
    const failedOnce = new Set<string>();
    let concurrent = 0;
    let maxConcurrent = 0;
    const member = async (): Promise<{ close(): Promise<void> }> => {
      const events = f.events();
      return events.subscribe(orders, {
        group: "shipping",
        maxInFlight: 8,
        backoff: { initialMs: 1, maxMs: 5 },
        on: {
          placed: async (event) => {
            concurrent++;
            maxConcurrent = Math.max(maxConcurrent, concurrent);
            try {
              await tick();
              // Every fifth event fails on its first delivery: its key must wait for it.
              const id = `${event.data.orderId}#${event.data.n}`;
              if (event.data.n % 5 === 0 && !failedOnce.has(id)) {
                failedOnce.add(id);
                throw new Error("transient");
              }
              const list = handled.get(event.data.orderId) ?? [];
              list.push(event.data.n);
              handled.set(event.data.orderId, list);
            } finally {
              concurrent--;
            }
          },
        },
      });
    };
    const a = await member();
    const b = await member();
    const c = await member();
    const producer = f.events();
    for (let n = 0; n < perKey; n++) {
      await Promise.all(
        Array.from({ length: keys }, (_, k) =>
          producer.publish(orders, "placed", { orderId: `k${k}`, n }, { key: `k${k}` }),
        ),
      );
      if (n === 10) await b.close(); // a member leaves mid-stream: its partitions move
    }
    await waitFor(
      () =>
        [...handled.values()].reduce((sum, list) => sum + new Set(list).size, 0) === keys * perKey,
      { message: "not every event was handled", timeoutMs: 20_000 },
    );
    for (const [key, list] of handled) {
      // In order; a record may be redelivered after a rebalance (at least once), never reordered.
      const firsts = list.filter((n, i) => list.indexOf(n) === i);
      expect(firsts, key).toEqual(Array.from({ length: perKey }, (_, i) => i));
      for (let i = 1; i < list.length; i++) {
        expect(
          (list[i] as number) >= (list[i - 1] as number) ||
            list.slice(0, i).includes(list[i] as number),
          key,
        ).toBe(true);
      }
    }
    expect(maxConcurrent).toBeLessThanOrEqual(16);
    await a.close();
    await c.close();
  });

  it("sends a poison event to the dead-letter stream after N attempts with its reason", async () => {
    const f = await fixture();
    const events = f.events();
    const handled: number[] = [];
    let attempts = 0;
    await events.subscribe(orders, {
      group: "fragile",
      maxAttempts: 3,
      backoff: { initialMs: 1, maxMs: 2 },
      on: {
        placed: (event) => {
          if (event.data.n === 1) {
            attempts++;
            throw new Error(`cannot handle ${event.data.orderId}`);
          }
          handled.push(event.data.n);
        },
      },
    });
    for (let n = 0; n < 3; n++)
      await events.publish(orders, "placed", { orderId: "p", n }, { key: "p" });
    await waitFor(() => handled.length === 2);
    expect(handled).toEqual([0, 2]);
    expect(attempts).toBe(3);
    const letters = await events.deadLetters(orders);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ attempts: 3, group: "fragile", key: "p" });
    expect(letters[0]?.reason).toContain("cannot handle p");
  });

  it("never dead-letters an event because its idempotency markers' store was down", async () => {
    const f = await fixture();
    // The store answers the markers' reads and writes with UNAVAILABLE, more often than the
    // handler's attempts allow, then comes back.
    let failures = 0;
    const flaky = new Proxy(f.kv, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if ((property !== "get" && property !== "create") || typeof value !== "function")
          return typeof value === "function"
            ? (value as (...args: unknown[]) => unknown).bind(target)
            : value;
        return (key: string, ...rest: unknown[]) => {
          if (key.startsWith("events/seen/") && failures < 8) {
            failures++;
            return Promise.reject(new StrataError("UNAVAILABLE", "store down"));
          }
          return (value as (...args: unknown[]) => unknown).call(target, key, ...rest);
        };
      },
    });
    const events = createEvents({
      log: f.log,
      kv: flaky,
      source: "strata://test",
      partitions: 1,
      leaseMs: 1_000,
      rebalanceMs: 50,
      commitMs: 10,
    });
    closers.push(() => events.close());
    const handled: number[] = [];
    await events.subscribe(orders, {
      group: "careful",
      idempotent: true,
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 5 },
      on: { placed: (event) => void handled.push(event.data.n) },
    });
    await events.publish(orders, "placed", { orderId: "q", n: 7 }, { key: "q" });
    await waitFor(() => handled.length === 1 && failures === 8, {
      message: "the event was never handled",
    });
    expect(handled).toEqual([7]);
    expect(await events.deadLetters(orders)).toEqual([]);
    // The marker was written in the end: a redelivery would be recognised.
    expect((await f.kv.list("events/seen/careful/")).entries).toHaveLength(1);
  });

  it("dead-letters malformed and schema-violating records at once and keeps consuming", async () => {
    const f = await fixture();
    const events = f.events();
    const handled: string[] = [];
    await events.subscribe(orders, {
      group: "robust",
      on: { placed: (e) => void handled.push(e.data.orderId) },
    });
    const stream = events.streamOf(orders);
    const enc = new TextEncoder();
    const base = {
      "ce-specversion": "1.0",
      "ce-id": "x1",
      "ce-source": "s",
      "ce-type": "orders.placed",
    };
    await f.log.append(stream, { partition: 0, id: "raw-1", key: "k", payload: enc.encode("{}") });
    await f.log.append(stream, {
      partition: 0,
      id: "raw-2",
      key: "k",
      headers: base,
      payload: enc.encode("{not json"),
    });
    await f.log.append(stream, {
      partition: 0,
      id: "raw-3",
      key: "k",
      headers: { ...base, "ce-id": "x3" },
      payload: enc.encode(JSON.stringify({ orderId: 7 })),
    });
    await f.log.append(stream, {
      partition: 0,
      id: "raw-4",
      key: "k",
      headers: { ...base, "ce-specversion": "0.3", "ce-id": "x4" },
      payload: enc.encode("{}"),
    });
    await events.publish(orders, "placed", { orderId: "fine", n: 1 }, { key: "k" });
    await waitFor(() => handled.length === 1);
    const letters = await events.deadLetters(orders);
    expect(letters.map((l) => l.origin.id)).toEqual(["raw-1", "raw-2", "raw-3", "raw-4"]);
    expect(letters[0]?.reason).toContain("no ce-specversion");
    expect(letters[1]?.reason).toContain("not UTF-8 JSON");
    expect(letters[2]?.reason).toContain("INVALID_ARGUMENT");
    expect(letters[3]?.reason).toContain("specversion");
    expect(letters.every((l) => l.attempts <= 1)).toBe(true);
  });

  it("delivers every event to every broadcast subscriber", async () => {
    const f = await fixture();
    const events = f.events();
    const one: number[] = [];
    const two: number[] = [];
    await events.subscribe(orders, {
      broadcast: true,
      on: { placed: (e) => void one.push(e.data.n) },
    });
    await events.subscribe(orders, {
      broadcast: true,
      on: { placed: (e) => void two.push(e.data.n) },
    });
    for (let n = 0; n < 10; n++)
      await events.publish(orders, "placed", { orderId: "b", n }, { key: "b" });
    await waitFor(() => one.length === 10 && two.length === 10);
    expect(one).toEqual(two);
  });

  it("replays a group from a sequence and starts a new group at a time", async () => {
    const f = await fixture();
    const events = f.events();
    const published = [];
    for (let n = 0; n < 6; n++) {
      published.push(await events.publish(orders, "placed", { orderId: "r", n }, { key: "r" }));
    }
    const seen: number[] = [];
    const sub = await events.subscribe(orders, {
      group: "replayer",
      on: { placed: (e) => void seen.push(e.data.n) },
    });
    await waitFor(() => seen.length === 6);
    await waitFor(async () => (await events.lag(orders, "replayer")) === 0);
    await sub.close();
    await events.resetGroup(orders, "replayer", { seq: (published[3] as { seq: number }).seq });
    expect(await events.lag(orders, "replayer")).toBe(3);
    const again: number[] = [];
    await events.subscribe(orders, {
      group: "replayer",
      on: { placed: (e) => void again.push(e.data.n) },
    });
    await waitFor(() => again.length === 3);
    expect(again).toEqual([3, 4, 5]);

    const records = await f.log.read(events.streamOf(orders), {
      fromSeq: (published[4] as { seq: number }).seq,
      limit: 1,
    });
    const fromTime: number[] = [];
    await events.subscribe(orders, {
      group: "late",
      from: { time: (records[0] as { time: number }).time },
      on: { placed: (e) => void fromTime.push(e.data.n) },
    });
    await waitFor(() => fromTime.length >= 2);
    expect(fromTime[0]).toBeLessThanOrEqual(4);
    expect(fromTime.at(-1)).toBe(5);
  });

  it("applies each event's effect exactly once when a consumer is killed with SIGKILL mid-batch", async () => {
    const logDir = await freshDir();
    const kvDir = await freshDir();
    const total = 300;
    {
      await using log = await openEmbeddedLog({ dir: logDir });
      await using kv = await openEmbeddedKv({ dir: kvDir });
      await using producer = createEvents({ log, kv, source: "strata://producer", partitions: 4 });
      for (let n = 0; n < total; n += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            producer.publish(
              orders,
              "placed",
              { orderId: `e${n + i}`, n: n + i },
              { key: `e${(n + i) % 17}` },
            ),
          ),
        );
      }
    }
    const fixturePath = fileURLToPath(
      new URL("../../test-fixtures/event-consumer.mjs", import.meta.url),
    );
    const child = spawn(process.execPath, [fixturePath, logDir, kvDir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let applied = 0;
    let buffer = "";
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", () => reject(new Error("consumer exited before it was killed")));
      child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        applied += lines.filter((line) => line.startsWith("applied")).length;
        if (applied >= 60) {
          child.kill("SIGKILL");
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.once("exit", resolve));
    expect(applied).toBeLessThan(total);

    const log = await openEmbeddedLog({ dir: logDir });
    const kv = await openEmbeddedKv({ dir: kvDir });
    closers.push(
      () => log.close(),
      () => kv.close(),
    );
    const events = createEvents({
      log,
      kv,
      source: "strata://survivor",
      partitions: 4,
      leaseMs: 500,
      rebalanceMs: 50,
      commitMs: 20,
    });
    closers.push(() => events.close());
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    await events.subscribe(orders, {
      group: "exact",
      on: {
        placed: async (event, ctx) => {
          const key = `effects/${event.data.n}`;
          const current = await kv.get(key);
          const count = current === undefined ? 0 : Number(dec.decode(current.value));
          await ctx.transaction({
            checks: [{ key, revision: current?.revision ?? 0 }],
            writes: [{ type: "put", key, value: enc.encode(String(count + 1)) }],
          });
        },
      },
    });
    await waitFor(async () => (await events.lag(orders, "exact")) === 0, {
      timeoutMs: 20_000,
      message: "the group did not finish after the crash",
    });
    const effects = (await kv.list("effects/", { limit: 1_000 })).entries;
    expect(effects).toHaveLength(total);
    expect(effects.filter((e) => dec.decode(e.value) !== "1").map((e) => e.key)).toEqual([]);
  });

  it("commits a state change and its events together through the outbox", async () => {
    const f = await fixture();
    const events = f.events();
    const enc = new TextEncoder();
    const seen: string[] = [];
    await events.subscribe(orders, {
      group: "audit",
      on: { placed: (e) => void seen.push(e.data.orderId) },
    });
    const committed = await events.transaction({
      checks: [{ key: "orders/o-1", revision: 0 }],
      writes: [{ type: "put", key: "orders/o-1", value: enc.encode("placed") }],
      events: [{ contract: orders, event: "placed", data: { orderId: "o-1", n: 1 }, key: "o-1" }],
    });
    expect(committed.ids).toHaveLength(1);
    // A failed check writes neither the state nor the event.
    const conflict = await events
      .transaction({
        checks: [{ key: "orders/o-1", revision: 0 }],
        writes: [{ type: "put", key: "orders/o-1", value: enc.encode("again") }],
        events: [
          { contract: orders, event: "placed", data: { orderId: "o-1b", n: 2 }, key: "o-1" },
        ],
      })
      .catch((e: unknown) => e);
    expect(isStrataError(conflict, "FAILED_PRECONDITION")).toBe(true);
    expect((await f.kv.list("events/outbox/")).entries).toHaveLength(1);
    // The relay crashed after publishing but before removing the entry: it publishes again.
    const entry = (await f.kv.list("events/outbox/")).entries[0];
    const record = JSON.parse(new TextDecoder().decode(entry?.value)) as {
      stream: string;
      partition: number;
      id: string;
      key: string;
      headers: Record<string, string>;
      payload: string;
    };
    await f.log.append(record.stream, {
      ...record,
      payload: Buffer.from(record.payload, "base64"),
    });
    expect(await events.flushOutbox()).toBe(1);
    expect((await f.kv.list("events/outbox/")).entries).toHaveLength(0);
    await waitFor(() => seen.length === 1);
    expect((await f.log.streamInfo(events.streamOf(orders))).records).toBe(1);

    await events.startRelay();
    await events.transaction({
      writes: [{ type: "put", key: "orders/o-2", value: enc.encode("placed") }],
      events: [{ contract: orders, event: "placed", data: { orderId: "o-2", n: 1 }, key: "o-2" }],
    });
    await waitFor(() => seen.length === 2, { message: "relay did not publish" });
    expect(seen).toEqual(["o-1", "o-2"]);
  });

  it("closes relays that wait for the lock as the holder releases it", async () => {
    const f = await fixture();
    for (let round = 0; round < 10; round++) {
      const relays = [f.events(), f.events(), f.events()];
      for (const e of relays) await e.startRelay();
      // The holder releases the lock on its way out, and a waiter may win it just as its own
      // close begins: every close must still finish (one relay used to flush forever).
      const closed = Promise.all(relays.map((e) => e.close()));
      const timeout = new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 5_000));
      expect(await Promise.race([closed.then(() => "closed" as const), timeout])).toBe("closed");
    }
  });

  it("keeps no listener per relay wait (a long-running relay leaks nothing)", async () => {
    const f = await fixture();
    const events = f.events();
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning.name);
    };
    process.on("warning", onWarning);
    try {
      await events.startRelay();
      // Every outbox entry wakes the relay for one more wait; 30 waits on one signal used to add
      // 30 abort listeners (Node warns past 10).
      for (let i = 0; i < 30; i++) {
        await events.transaction({
          writes: [],
          events: [
            { contract: orders, event: "placed", data: { orderId: `w-${i}`, n: i }, key: "k" },
          ],
        });
        await waitFor(async () => (await f.kv.list("events/outbox/")).entries.length === 0);
      }
      await tick();
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });

  it("publishes every committed outbox event exactly once after the producer is killed with SIGKILL", async () => {
    const logDir = await freshDir();
    const kvDir = await freshDir();
    const fixturePath = fileURLToPath(
      new URL("../../test-fixtures/outbox-producer.mjs", import.meta.url),
    );
    const child = spawn(process.execPath, [fixturePath, logDir, kvDir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const acknowledged = new Set<string>();
    let buffer = "";
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", () => reject(new Error("producer exited before it was killed")));
      child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) if (line.startsWith("o")) acknowledged.add(line);
        if (acknowledged.size >= 300) {
          child.kill("SIGKILL");
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.once("exit", resolve));
    const log = await openEmbeddedLog({ dir: logDir });
    const kv = await openEmbeddedKv({ dir: kvDir });
    closers.push(
      () => log.close(),
      () => kv.close(),
    );
    const events = createEvents({ log, kv, source: "strata://relay", partitions: 4 });
    closers.push(() => events.close());
    await events.startRelay();
    await waitFor(async () => (await kv.list("events/outbox/")).entries.length === 0, {
      message: "the relay did not empty the outbox",
    });
    const committed = new Set(
      (await kv.list("orders/", { limit: 10_000 })).entries.map((e) => e.key.slice(7)),
    );
    for (const orderId of acknowledged) expect(committed.has(orderId), orderId).toBe(true);
    const published = new Map<string, number>();
    for (const record of await log.read(events.streamOf(orders), { limit: 10_000 })) {
      const orderId = (JSON.parse(new TextDecoder().decode(record.payload)) as { orderId: string })
        .orderId;
      published.set(orderId, (published.get(orderId) ?? 0) + 1);
    }
    // Every committed order (acknowledged or not) has its event, once; no event without an order.
    expect([...published.keys()].sort()).toEqual([...committed].sort());
    expect([...published.values()].every((n) => n === 1)).toBe(true);
  });

  it("projects a read model exactly once, reports lag, and rebuilds it", async () => {
    const f = await fixture();
    const events = f.events();
    for (let n = 0; n < 30; n++) {
      await events.publish(
        orders,
        "placed",
        { orderId: `o${n}`, n, sku: `sku-${n % 3}`, qty: 1 },
        { key: `o${n}` },
      );
    }
    const projection = await startProjection(events, {
      name: "sales",
      contract: orders,
      on: {
        placed: async (e, model) => {
          const sku = e.data.sku ?? "none";
          model.put(sku, ((await model.get<number>(sku)) ?? 0) + (e.data.qty ?? 0));
        },
      },
    });
    await projection.caughtUp();
    expect(await projection.lag()).toBe(0);
    const rows = await projection.list<number>();
    expect(rows).toEqual([
      { key: "sku-0", value: 10 },
      { key: "sku-1", value: 10 },
      { key: "sku-2", value: 10 },
    ]);
    await projection.rebuild();
    await projection.caughtUp();
    expect(await projection.list<number>()).toEqual(rows);
    await projection.close();
  });
});

import {
  action,
  createEvents,
  customSchema,
  defineService,
  objectSchema,
  openEmbeddedBlob,
  openEmbeddedKv,
  openEmbeddedLog,
  systemClock,
  type BlobChange,
  type EmbeddedBlob,
  type EmbeddedKv,
  type Events,
  type ReceivedEvent,
} from "@strata/core";
import { tempDir, waitFor, type TempDir } from "@strata/test-harness";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { createFunction, type StrataFunction } from "./create-function.js";

const orders = defineService({
  name: "fn-orders",
  version: "1.0.0",
  actions: { noop: action({ input: objectSchema(), output: objectSchema() }) },
  events: {
    placed: customSchema<{ orderId: string }>((v) => ({ value: v as { orderId: string } })),
    cancelled: customSchema<{ orderId: string }>((v) => ({ value: v as { orderId: string } })),
  },
});

const clock = systemClock();
/** Loading templates: the cost of a cold start, 40 ms of the clock. */
const loadTemplates = (): Promise<{ invoice: string }> =>
  new Promise((resolve) => clock.setTimer(() => resolve({ invoice: "<h1>{{id}}</h1>" }), 40));

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => undefined);
});

async function dir(): Promise<string> {
  const d: TempDir = await tempDir("strata-fn-");
  cleanup.push(async () => d[Symbol.asyncDispose]());
  return d.path;
}

async function openKv(): Promise<EmbeddedKv> {
  const kv = await openEmbeddedKv({ dir: await dir() });
  cleanup.push(() => kv.close());
  return kv;
}

async function openEvents(): Promise<Events> {
  const log = await openEmbeddedLog({ dir: await dir() });
  const kv = await openKv();
  cleanup.push(() => log.close());
  const events = createEvents({
    log,
    kv,
    source: "strata://fn-test",
    partitions: 4,
    leaseMs: 1_000,
    rebalanceMs: 50,
    commitMs: 10,
  });
  cleanup.push(() => events.close());
  return events;
}

async function openBlob(path?: string): Promise<EmbeddedBlob> {
  const blob = await openEmbeddedBlob({ dir: path ?? (await dir()) });
  cleanup.push(() => blob.close());
  return blob;
}

function track(fn: StrataFunction): StrataFunction {
  cleanup.push(() => fn.stop());
  return fn;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("functions on events", () => {
  it("scale up under a burst, to zero when idle, and back up with a measured cold start", async () => {
    const events = await openEvents();
    let gate = deferred();
    const rendered: string[] = [];
    const fn = track(
      await createFunction({
        name: "render-invoices",
        events,
        contract: orders,
        type: "placed",
        init: loadTemplates,
        handler: async (event, ctx) => {
          expectTypeOf(event).toEqualTypeOf<ReceivedEvent<{ orderId: string }>>();
          expectTypeOf(ctx.instance).toEqualTypeOf<{ invoice: string }>();
          await gate.promise;
          rendered.push(ctx.instance.invoice.replace("{{id}}", event.data.orderId));
        },
        maxInstances: 4,
        perInstanceConcurrency: 2,
        idleMs: 150,
        evaluateEveryMs: 20,
        clock,
      }),
    );
    expect(fn.stats()).toMatchObject({ instances: 0, state: { type: "running" } });

    for (let i = 0; i < 16; i++) {
      await events.publish(orders, "placed", { orderId: `o-${i}` }, { key: `o-${i}` });
    }
    await waitFor(() => fn.stats().instances === 4, { message: "did not scale up to 4" });
    // Every slot busy (4 instances x 2), the rest waiting: the pool stays at its maximum.
    await waitFor(() => fn.stats().running === 8 && fn.stats().backlog === 8, {
      message: "burst not spread over the instances",
    });
    expect(fn.stats()).toMatchObject({ instances: 4, starting: 0 });
    gate.resolve();
    await waitFor(() => fn.stats().processed === 16, { message: "burst not processed" });
    expect(new Set(rendered).size).toBe(16);
    const burst = fn.stats();
    expect(burst.started).toBe(4);
    expect(burst.coldStarts.count).toBeGreaterThan(0);
    // The first event waits out a whole init (40 ms); later ones of the burst arrive while
    // instances are already starting and wait less, but still more than nothing.
    expect(burst.coldStarts.p50Ms).toBeGreaterThan(0);
    expect(burst.coldStarts.maxMs).toBeGreaterThanOrEqual(35);

    await waitFor(() => fn.stats().instances === 0, { message: "did not scale to zero" });
    expect(fn.stats().retired).toBe(4);

    gate = deferred();
    gate.resolve();
    const before = fn.stats().coldStarts.count;
    await events.publish(orders, "placed", { orderId: "o-late" }, { key: "o-late" });
    await waitFor(() => fn.stats().processed === 17, { message: "late event not processed" });
    const after = fn.stats();
    expect(after.coldStarts.count).toBe(before + 1);
    expect(after.coldStarts.maxMs).toBeGreaterThanOrEqual(35);
    expect(after.instances).toBe(1);
    console.log(
      `cold starts (events): count ${after.coldStarts.count}, p50 ${after.coldStarts.p50Ms.toFixed(1)} ms, ` +
        `p99 ${after.coldStarts.p99Ms.toFixed(1)} ms, init p50 ${after.init.p50Ms.toFixed(1)} ms`,
    );
  });

  it("pre-warmed instances take the next burst with no cold start", async () => {
    const events = await openEvents();
    let wanted = 0;
    const fn = track(
      await createFunction({
        name: "prewarmed",
        events,
        contract: orders,
        type: "placed",
        init: loadTemplates,
        handler: () => undefined,
        maxInstances: 4,
        perInstanceConcurrency: 4,
        idleMs: 50,
        evaluateEveryMs: 10,
        prewarm: () => wanted,
        clock,
      }),
    );
    wanted = 2;
    await waitFor(() => fn.stats().instances === 2, { message: "not pre-warmed" });
    for (let i = 0; i < 6; i++) {
      await events.publish(orders, "placed", { orderId: `p-${i}` }, { key: `p-${i}` });
    }
    await waitFor(() => fn.stats().processed === 6);
    expect(fn.stats()).toMatchObject({ coldStarts: { count: 0 }, warmHitRatio: 1, started: 2 });
  });

  it("retries a failing handler per the group's policy and dead-letters it", async () => {
    const events = await openEvents();
    const fn = track(
      await createFunction({
        name: "fails",
        events,
        contract: orders,
        type: "placed",
        handler: (event) => {
          if (event.data.orderId === "poison") throw new Error("template error");
        },
        maxAttempts: 3,
        backoff: { initialMs: 1, maxMs: 5 },
        idleMs: 1_000,
        clock,
      }),
    );
    await events.publish(orders, "placed", { orderId: "poison" }, { key: "a" });
    await events.publish(orders, "placed", { orderId: "fine" }, { key: "b" });
    await waitFor(async () => (await events.deadLetters(orders)).length === 1);
    const [letter] = await events.deadLetters(orders);
    expect(letter).toMatchObject({ attempts: 3, group: "fails" });
    expect(letter?.reason).toMatch(/template error/);
    await waitFor(() => fn.stats().processed === 1);
    expect(fn.stats().failed).toBe(3);
  });
});

describe("functions on blob changes", () => {
  it("run once per put, resume after a restart without losing one", async () => {
    const blob = await openBlob();
    const kv = await openKv();
    const seen = new Map<string, number>();
    const hang = deferred();
    const options = {
      name: "thumbnails",
      blob,
      prefix: "uploads/",
      kv,
      init: loadTemplates,
      maxInstances: 2,
      perInstanceConcurrency: 2,
      idleMs: 100,
      evaluateEveryMs: 20,
      drainTimeoutMs: 50,
      clock,
    };
    const first = track(
      await createFunction({
        ...options,
        handler: async (change) => {
          expectTypeOf(change).toEqualTypeOf<BlobChange>();
          // Uploads from 5 on hang in this run, as if it died while working on them.
          if (Number(change.key.split("-")[1]) >= 5) await hang.promise;
          else seen.set(change.key, (seen.get(change.key) ?? 0) + 1);
        },
      }),
    );
    for (let i = 0; i < 10; i++) await blob.put(`uploads/u-${i}`, new Uint8Array([i]));
    await blob.put("other/ignored", new Uint8Array([1]));
    await blob.delete("uploads/u-0");
    await waitFor(() => seen.size === 5, { message: "first run did not process uploads 0-4" });
    await first.stop();
    hang.resolve();
    expect(first.stats().state).toEqual({ type: "stopped" });

    // Uploads made while nothing runs are picked up on restart, with the unfinished ones.
    for (let i = 10; i < 15; i++) await blob.put(`uploads/u-${i}`, new Uint8Array([i]));
    const second = track(
      await createFunction({
        ...options,
        handler: (change) => {
          seen.set(change.key, (seen.get(change.key) ?? 0) + 1);
        },
      }),
    );
    await waitFor(() => seen.size === 15, { message: "restart did not catch up" });
    await waitFor(() => second.stats().processed >= 10);
    // Finished before the stop: exactly once. Unfinished then: at least once. Nothing lost.
    for (let i = 0; i < 15; i++) expect(seen.get(`uploads/u-${i}`), `u-${i}`).toBe(1);
    expect(seen.has("other/ignored")).toBe(false);
    const stats = second.stats();
    expect(stats.coldStarts.count).toBeGreaterThan(0);
    console.log(
      `cold starts (blob): count ${stats.coldStarts.count}, p50 ${stats.coldStarts.p50Ms.toFixed(1)} ms, ` +
        `p99 ${stats.coldStarts.p99Ms.toFixed(1)} ms`,
    );
    await waitFor(() => second.stats().instances === 0, { message: "did not scale to zero" });
  });

  it("dead-letters a change that keeps failing and moves on", async () => {
    const blob = await openBlob();
    const kv = await openKv();
    const done: string[] = [];
    const fn = track(
      await createFunction({
        name: "strict",
        blob,
        prefix: "",
        kv,
        handler: (change) => {
          if (change.key === "bad.pdf") throw new Error("corrupt PDF");
          done.push(change.key);
        },
        maxAttempts: 3,
        backoff: { initialMs: 1, maxMs: 5 },
        clock,
      }),
    );
    await blob.put("bad.pdf", new Uint8Array(1));
    await blob.put("good.pdf", new Uint8Array(1));
    await waitFor(() => done.includes("good.pdf") && fn.stats().deadLettered === 1);
    const letters = await fn.deadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ attempts: 3, change: { key: "bad.pdf", type: "put" } });
    expect(letters[0]?.reason).toMatch(/corrupt PDF/);
  });
});

describe("createFunction options", () => {
  it("refuses bad options with clear messages", async () => {
    const events = await openEvents();
    const blob = await openBlob();
    const kv = await openKv();
    const handler = (): void => undefined;
    const base = { name: "ok", events, contract: orders, type: "placed" as const, handler };
    const cases: [unknown, RegExp][] = [
      [{ ...base, name: "Bad Name" }, /function name must be 1-48/],
      [{ name: "x", handler }, /needs a trigger/],
      [{ ...base, blob, prefix: "", kv }, /not both/],
      [{ ...base, handler: "nope" }, /handler must be a function/],
      [{ ...base, type: "shipped" }, /declares no event "shipped" \(declared: placed, cancelled\)/],
      [{ ...base, minInstances: 3, maxInstances: 2 }, /minInstances \(3\) exceeds maxInstances/],
      [{ ...base, maxInstances: 0 }, /maxInstances must be an integer >= 1/],
      [{ ...base, perInstanceConcurrency: 1.5 }, /perInstanceConcurrency must be an integer/],
      [{ ...base, idleMs: -1 }, /idleMs must be an integer >= 0/],
      [{ ...base, prewarm: 3 }, /prewarm must be a function/],
      [{ ...base, backoff: { initialMs: 10, maxMs: 5 } }, /backoff.maxMs must be >= /],
      [{ name: "b", blob, prefix: "../up", kv, handler }, /"\.\." segments are not allowed/],
      [{ name: "b", blob, prefix: "", handler }, /needs a kv/],
      [{ name: "b", blob, prefix: "", kv, handler, changes: ["rename"] }, /changes must list/],
    ];
    for (const [options, message] of cases) {
      await expect(
        createFunction(options as Parameters<typeof createFunction>[0]),
        String(message),
      ).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
        message: expect.stringMatching(message),
      });
    }
  });
});

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { openEmbeddedKv, type EmbeddedKv } from "../adapters/embedded/embedded-kv.js";
import { StrataError } from "../errors/index.js";
import { systemClock } from "../ports/clock.js";
import { customSchema } from "../service/custom-schema.js";
import { createSagaRunner, defineSaga, type SagaOutcome, type StepContext } from "./sagas.js";

const dirs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "strata-saga-"));
  dirs.push(dir);
  return dir;
}
async function store(dir?: string): Promise<EmbeddedKv> {
  const kv = await openEmbeddedKv({ dir: dir ?? (await freshDir()) });
  closers.push(() => kv.close());
  return kv;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Counts an effect under a key, so a test can see how often it happened. */
async function count(kv: EmbeddedKv, key: string): Promise<void> {
  const current = await kv.get(key);
  const n = current === undefined ? 0 : Number(dec.decode(current.value));
  await kv.compareAndSet(key, enc.encode(String(n + 1)), current?.revision ?? 0);
}
async function counts(kv: EmbeddedKv, prefix: string): Promise<Record<string, number>> {
  const page = await kv.list(prefix);
  return Object.fromEntries(
    page.entries.map((e) => [e.key.slice(prefix.length), Number(dec.decode(e.value))]),
  );
}

interface Order {
  orderId: string;
  failAt?: string;
}
const OrderInput = customSchema<Order>((v) =>
  typeof v === "object" && v !== null && typeof (v as Order).orderId === "string"
    ? { value: v as Order }
    : { issues: [{ message: "expected { orderId }" }] },
);

function checkout(
  kv: EmbeddedKv,
  log: string[],
  options: { stepTimeoutMs?: number; hang?: string } = {},
) {
  const step = (name: string) => ({
    run: async (s: StepContext) => {
      log.push(`run ${name}`);
      if (options.hang === name)
        await new Promise<never>((_, reject) =>
          s.signal.addEventListener("abort", () => reject(s.signal.reason as Error)),
        );
      await count(kv, `effects/${s.idempotencyKey}`);
      return { id: `${name}-${s.sagaId}` };
    },
    compensate: async (result: { id: string } | undefined, s: StepContext) => {
      log.push(`undo ${name}`);
      await count(kv, `undo/${s.idempotencyKey}`);
      void result;
    },
    timeoutMs: options.stepTimeoutMs ?? 5_000,
    retries: 1,
  });
  return defineSaga({
    name: "checkout",
    input: OrderInput,
    timeoutMs: 10_000,
    async run(ctx, input) {
      expectTypeOf(input).toEqualTypeOf<Order>();
      const hold = await ctx.step("reserve", step("reserve"));
      const charge = await ctx.step("charge", step("charge"));
      if (input.failAt === "confirm") {
        await ctx.step("confirm", {
          run: () => Promise.reject(new StrataError("FAILED_PRECONDITION", "order was cancelled")),
        });
      }
      return { orderId: input.orderId, hold: hold.id, charge: charge.id };
    },
  });
}

describe("sagas", () => {
  it("runs every step once and returns the typed output", async () => {
    const kv = await store();
    const log: string[] = [];
    const saga = checkout(kv, log);
    const runner = createSagaRunner({ kv, owner: "a", scanIntervalMs: 50 });
    closers.push(() => runner.close());
    runner.register(saga);
    const handle = await runner.start(saga, { orderId: "o-1" }, { id: "o-1" });
    const outcome = await handle.result();
    expectTypeOf(outcome).toEqualTypeOf<
      SagaOutcome<{ orderId: string; hold: string; charge: string }>
    >();
    expect(outcome).toEqual({
      status: "completed",
      output: { orderId: "o-1", hold: "reserve-o-1", charge: "charge-o-1" },
    });
    expect(log).toEqual(["run reserve", "run charge"]);
    // Starting the same id again is the same instance: nothing runs twice.
    const again = await runner.start(saga, { orderId: "o-1" }, { id: "o-1" });
    expect((await again.result()).status).toBe("completed");
    expect(await counts(kv, "effects/checkout/o-1/")).toEqual({ reserve: 1, charge: 1 });
    const journal = await runner.get(saga, "o-1");
    expect(journal?.steps.map((s) => [s.name, s.status])).toEqual([
      ["reserve", "done"],
      ["charge", "done"],
    ]);
  });

  it("compensates finished steps in reverse order, once each, when a step fails", async () => {
    const kv = await store();
    const log: string[] = [];
    const saga = checkout(kv, log);
    const runner = createSagaRunner({ kv, owner: "a", scanIntervalMs: 50 });
    closers.push(() => runner.close());
    runner.register(saga);
    const outcome = await (
      await runner.start(saga, { orderId: "o-2", failAt: "confirm" }, { id: "o-2" })
    ).result();
    expect(outcome).toMatchObject({
      status: "compensated",
      error: { code: "FAILED_PRECONDITION", message: "order was cancelled" },
    });
    expect(log).toEqual(["run reserve", "run charge", "undo charge", "undo reserve"]);
    expect(await counts(kv, "undo/checkout/o-2/")).toEqual({
      "reserve/compensate": 1,
      "charge/compensate": 1,
    });
  });

  // A compensation undoes what was done, so it is retried through outages that outlast a step's
  // own retries; only past `compensationRetryMs` is the saga left failed for an operator.
  function flakyUndo(failures: number) {
    let calls = 0;
    const saga = defineSaga({
      name: "refund",
      input: OrderInput,
      async run(ctx) {
        await ctx.step("charge", {
          run: () => Promise.resolve("charged"),
          compensate: () => {
            calls++;
            return calls <= failures
              ? Promise.reject(new StrataError("UNAVAILABLE", "payments is down"))
              : Promise.resolve();
          },
        });
        await ctx.step("ship", {
          run: () => Promise.reject(new StrataError("FAILED_PRECONDITION", "no courier")),
        });
      },
    });
    return { saga, calls: () => calls };
  }
  // Backoff waits pass in a millisecond; the wall clock, and so the retry budget, runs as usual.
  const hurried = {
    ...systemClock(),
    setTimer: (fn: () => void, ms: number) => systemClock().setTimer(fn, Math.min(ms, 1)),
  };

  it("retries a failing compensation until it succeeds, within its budget", async () => {
    const kv = await store();
    const { saga, calls } = flakyUndo(20);
    const runner = createSagaRunner({ kv, owner: "a", scanIntervalMs: 50, clock: hurried });
    closers.push(() => runner.close());
    runner.register(saga);
    const outcome = await (await runner.start(saga, { orderId: "o-9" }, { id: "o-9" })).result();
    expect(outcome).toMatchObject({
      status: "compensated",
      error: { code: "FAILED_PRECONDITION" },
    });
    expect(calls()).toBe(21);
  });

  it("leaves the saga failed, for an operator, when compensation outlasts its budget", async () => {
    const kv = await store();
    const { saga, calls } = flakyUndo(Number.POSITIVE_INFINITY);
    const runner = createSagaRunner({
      kv,
      owner: "a",
      scanIntervalMs: 50,
      clock: hurried,
      compensationRetryMs: 50,
    });
    closers.push(() => runner.close());
    runner.register(saga);
    const outcome = await (await runner.start(saga, { orderId: "o-10" }, { id: "o-10" })).result();
    expect(outcome).toMatchObject({
      status: "failed",
      error: {
        code: "INTERNAL",
        message: expect.stringContaining("compensation of charge failed") as unknown,
      },
    });
    expect(calls()).toBeGreaterThan(1);
    expect(() => createSagaRunner({ kv, compensationRetryMs: -1 })).toThrow(/compensationRetryMs/);
  });

  it("compensates what ran when a step times out", async () => {
    const kv = await store();
    const log: string[] = [];
    const saga = checkout(kv, log, { stepTimeoutMs: 50, hang: "charge" });
    const runner = createSagaRunner({ kv, owner: "a", scanIntervalMs: 50 });
    closers.push(() => runner.close());
    runner.register(saga);
    const outcome = await (await runner.start(saga, { orderId: "o-3" }, { id: "o-3" })).result();
    expect(outcome).toMatchObject({ status: "compensated", error: { code: "DEADLINE_EXCEEDED" } });
    // The hung step may have taken effect: it is compensated too.
    expect(log).toEqual(["run reserve", "run charge", "run charge", "undo charge", "undo reserve"]);
  });

  it("refuses bad input and unregistered sagas", async () => {
    const kv = await store();
    const saga = checkout(kv, []);
    const runner = createSagaRunner({ kv });
    closers.push(() => runner.close());
    await expect(runner.start(saga, { orderId: "x" })).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
    runner.register(saga);
    await expect(runner.start(saga, { nope: 1 } as unknown as Order)).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(runner.start(saga, { orderId: "x" }, { id: "bad id!" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    expect(() =>
      defineSaga({ name: "Bad Name", input: OrderInput, run: () => Promise.resolve(1) }),
    ).toThrow(StrataError);
  });

  it("refuses a stale runner's journal write (fencing by compare-and-set)", async () => {
    const kv = await store();
    const log: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const saga = defineSaga({
      name: "fenced",
      input: OrderInput,
      async run(ctx) {
        await ctx.step("one", {
          run: async () => {
            log.push("one");
            await gate;
          },
        });
        await ctx.step("two", { run: () => Promise.resolve(log.push("two")) });
      },
    });
    const runner = createSagaRunner({ kv, owner: "old", leaseMs: 200, scanIntervalMs: 20 });
    closers.push(() => runner.close());
    runner.register(saga);
    const handle = await runner.start(saga, { orderId: "f" }, { id: "f" });
    await waitFor(() => log.length === 1);
    // Someone else moves the journal on (as a successor that took over would).
    const entry = await kv.get("sagas/fenced/f");
    const journal = JSON.parse(dec.decode(entry?.value)) as { owner: string };
    await kv.compareAndSet(
      "sagas/fenced/f",
      enc.encode(JSON.stringify({ ...journal, owner: "new" })),
      entry?.revision ?? 0,
    );
    release();
    // The old runner's write fails: it stops without running step two.
    await waitFor(async () => (await runner.get(saga, "f"))?.owner === "new");
    const settled = await Promise.race([
      handle.result().then(() => "ended"),
      new Promise((r) => setImmediate(() => r("pending"))),
    ]);
    expect(settled).toBe("pending");
    expect(log).toEqual(["one"]);
  });

  it.each([
    ["completes", "no", "completed"],
    ["compensates", "yes", "compensated"],
  ])(
    "resumes a saga whose runner was killed with SIGKILL mid-step, and %s it exactly once",
    async (_, fail, status) => {
      const dir = await freshDir();
      const fixture = fileURLToPath(
        new URL("../../test-fixtures/saga-runner.mjs", import.meta.url),
      );
      const child = spawn(process.execPath, [fixture, dir, "s-1", fail], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      await new Promise<void>((resolve, reject) => {
        child.on("error", reject);
        child.stdout.on("data", (chunk: Buffer) => {
          if (chunk.toString().includes("in charge")) {
            child.kill("SIGKILL");
            resolve();
          }
        });
      });
      await new Promise((resolve) => child.once("exit", resolve));
      const kv = await store(dir);
      const log: string[] = [];
      const counted = (name: string) => ({
        run: async (s: StepContext) => {
          log.push(`run ${name}`);
          await count(kv, `effects/${s.idempotencyKey}`);
        },
        compensate: async (_r: unknown, s: StepContext) => {
          log.push(`undo ${name}`);
          await count(kv, `undo/${s.idempotencyKey}`);
        },
      });
      const saga = defineSaga({
        name: "checkout",
        input: customSchema<{ fail: boolean }>((value) => ({ value: value as { fail: boolean } })),
        async run(ctx, input) {
          await ctx.step("reserve", counted("reserve"));
          await ctx.step("charge", counted("charge"));
          if (input.fail) {
            await ctx.step("confirm", {
              run: () => Promise.reject(new StrataError("FAILED_PRECONDITION", "declined")),
            });
          }
          return "done";
        },
      });
      const runner = createSagaRunner({ kv, owner: "survivor", leaseMs: 500, scanIntervalMs: 50 });
      closers.push(() => runner.close());
      runner.register(saga);
      await waitFor(
        async () => {
          const journal = await runner.get(saga, "s-1");
          return journal !== undefined && ["completed", "compensated"].includes(journal.status);
        },
        { timeoutMs: 15_000, message: "the saga was not resumed" },
      );
      expect((await runner.get(saga, "s-1"))?.status).toBe(status);
      expect((await runner.get(saga, "s-1"))?.owner).toBe("survivor");
      // reserve ran in the killed process and is not run again; charge was cut off and reruns.
      expect(log.filter((l) => l.startsWith("run"))).toEqual(["run charge"]);
      expect(await counts(kv, "effects/checkout/s-1/")).toEqual({ reserve: 1, charge: 1 });
      expect(await counts(kv, "undo/checkout/s-1/")).toEqual(
        fail === "yes" ? { "reserve/compensate": 1, "charge/compensate": 1 } : {},
      );
    },
  );
});

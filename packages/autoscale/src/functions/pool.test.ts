import { manualClock, silentLogger, type ManualClock } from "@strata/core";
import { waitFor } from "@strata/test-harness";
import { describe, expect, it } from "vitest";
import { InstancePool, type Delivery, type PoolConfig } from "./pool.js";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Template {
  readonly id: number;
}

/** A pool on a manual clock whose `init` takes `initMs` of that clock (loading templates). */
function setup(overrides: Partial<PoolConfig<Template, string>> = {}, initMs = 250) {
  const clock = manualClock();
  let made = 0;
  let gate = deferred();
  const handled: string[] = [];
  const config: PoolConfig<Template, string> = {
    name: "render",
    clock,
    logger: silentLogger,
    init: () =>
      new Promise<Template>((resolve) => clock.setTimer(() => resolve({ id: ++made }), initMs)),
    dispose: undefined,
    handler: async (input) => {
      await gate.promise;
      handled.push(input);
    },
    minInstances: 0,
    maxInstances: 4,
    perInstanceConcurrency: 2,
    targetBacklogPerInstance: 2,
    idleMs: 1_000,
    evaluateEveryMs: 100,
    prewarm: undefined,
    initBackoff: { initialMs: 100, maxMs: 1_000 },
    ...overrides,
  };
  const pool = new InstancePool(config);
  pool.start();
  const controller = new AbortController();
  const delivery = (id: string): Delivery => ({
    signal: controller.signal,
    attempt: 1,
    idempotencyKey: id,
  });
  const submit = (count: number, from = 0): Promise<void>[] =>
    Array.from({ length: count }, (_, i) =>
      pool.submit(`in-${from + i}`, delivery(`in-${from + i}`)),
    );
  return {
    clock,
    pool,
    handled,
    submit,
    release: () => gate.resolve(),
    hold: () => (gate = deferred()),
  };
}

/** Advances the manual clock in steps, letting promises settle between them. */
async function advance(clock: ManualClock, ms: number, step = 50): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("function instance pool", () => {
  it("scales up under a burst, back to zero when idle, and back up with a measured cold start", async () => {
    const { clock, pool, submit, release, hold } = setup();
    expect(pool.stats()).toMatchObject({ instances: 0, starting: 0, backlog: 0 });

    const burst = submit(8);
    // 8 waiting at 2 per instance: 4 instances start at once (the maximum).
    expect(pool.stats()).toMatchObject({ instances: 0, starting: 4, backlog: 8 });
    await advance(clock, 250);
    await waitFor(() => pool.stats().running === 8, { message: "burst not running" });
    expect(pool.stats()).toMatchObject({ instances: 4, starting: 0, started: 4, backlog: 0 });

    release();
    await Promise.all(burst);
    const afterBurst = pool.stats();
    expect(afterBurst.processed).toBe(8);
    // Every input of the burst arrived with nothing warm: each waited out init (250 ms).
    expect(afterBurst.coldStarts).toEqual({ count: 8, p50Ms: 250, p99Ms: 250, maxMs: 250 });
    expect(afterBurst.init.p50Ms).toBe(250);

    // Idle for idleMs: every instance retires, down to zero.
    await advance(clock, 900);
    expect(pool.stats().instances).toBe(4);
    await advance(clock, 200);
    expect(pool.stats()).toMatchObject({ instances: 0, retired: 4 });

    // New work after the quiet period pays a cold start again, and it is measured.
    hold();
    const next = submit(1, 100);
    expect(pool.stats()).toMatchObject({ starting: 1, backlog: 1 });
    await advance(clock, 300);
    release();
    await Promise.all(next);
    const stats = pool.stats();
    expect(stats.coldStarts.count).toBe(9);
    expect(stats.coldStarts.p99Ms).toBe(300 - 50); // init 250, observed at the next 50 ms step
    expect(stats.instances).toBe(1);
    // A second input while that instance is warm is a warm hit.
    await Promise.all(submit(1, 200));
    expect(pool.stats()).toMatchObject({ warmHits: 1, coldStarts: { count: 9 } });
    expect(pool.stats().warmHitRatio).toBeCloseTo(0.1);
    await pool.close();
  });

  it("keeps pre-warmed instances ready so the next burst has no cold start", async () => {
    let wanted = 0;
    const { clock, pool, submit, release } = setup({ prewarm: () => wanted });
    release();
    // A forecast says load comes soon: the hook asks for 3 warm instances.
    wanted = 3;
    await advance(clock, 100);
    expect(pool.stats().starting).toBe(3);
    await advance(clock, 250);
    expect(pool.stats()).toMatchObject({ instances: 3, started: 3 });
    // Idle far past idleMs: pre-warmed instances are not retired.
    await advance(clock, 5_000);
    expect(pool.stats()).toMatchObject({ instances: 3, retired: 0 });

    await Promise.all(submit(6));
    expect(pool.stats()).toMatchObject({
      processed: 6,
      warmHits: 6,
      warmHitRatio: 1,
      coldStarts: { count: 0, p50Ms: 0, p99Ms: 0 },
    });
    // The forecast drops: the instances go once idle.
    wanted = 0;
    await advance(clock, 1_200);
    expect(pool.stats()).toMatchObject({ instances: 0, retired: 3 });
    await pool.close();
  });

  it("keeps minInstances warm and never starts more than maxInstances", async () => {
    const { clock, pool, submit, release } = setup({ minInstances: 1, maxInstances: 2 });
    await advance(clock, 250);
    expect(pool.stats()).toMatchObject({ instances: 1 });
    const work = submit(10);
    await advance(clock, 300);
    expect(pool.stats()).toMatchObject({ instances: 2, running: 4, backlog: 6 });
    release();
    await Promise.all(work);
    await advance(clock, 2_000);
    expect(pool.stats()).toMatchObject({ instances: 1, retired: 1, processed: 10 });
    await pool.close();
  });

  it("retries a failing init with backoff, counts the failures, then serves", async () => {
    const clock = manualClock();
    let attempts = 0;
    const { pool } = ((): { pool: InstancePool<string, string> } => {
      const pool = new InstancePool<string, string>({
        name: "flaky",
        clock,
        logger: silentLogger,
        init: () => {
          attempts++;
          if (attempts < 3) throw new Error("template store unreachable");
          return "ready";
        },
        dispose: undefined,
        handler: () => undefined,
        minInstances: 0,
        maxInstances: 1,
        perInstanceConcurrency: 1,
        targetBacklogPerInstance: 1,
        idleMs: 1_000,
        evaluateEveryMs: 100,
        prewarm: undefined,
        initBackoff: { initialMs: 100, maxMs: 1_000 },
      });
      pool.start();
      return { pool };
    })();
    const done = pool.submit("x", {
      signal: new AbortController().signal,
      attempt: 1,
      idempotencyKey: "x",
    });
    await waitFor(() => pool.stats().initFailures === 1);
    await advance(clock, 100, 10);
    await waitFor(() => pool.stats().initFailures === 2);
    await advance(clock, 200, 10);
    await done;
    expect(pool.stats()).toMatchObject({ initFailures: 2, started: 1, processed: 1 });
    expect(pool.stats().coldStarts.p50Ms).toBeGreaterThanOrEqual(100);
    await pool.close();
  });

  it("rejects the handler's error so the trigger can retry, and drains started work on stop", async () => {
    const { clock, pool, release } = setup({
      handler: (input) => {
        if (input === "bad") throw new Error("cannot render");
      },
    });
    release();
    const controller = new AbortController();
    const bad = pool
      .submit("bad", { signal: controller.signal, attempt: 1, idempotencyKey: "b" })
      .catch((error: unknown) => error);
    await advance(clock, 250);
    expect(await bad).toMatchObject({ message: "cannot render" });
    expect(pool.stats()).toMatchObject({ failed: 1, processed: 0 });
    await pool.drain(1_000);
    // Arrivals while draining are held, never started, and refused at close.
    const late = pool.submit("late", {
      signal: controller.signal,
      attempt: 1,
      idempotencyKey: "l",
    });
    expect(pool.stats()).toMatchObject({ backlog: 1, state: { type: "draining" } });
    await pool.close();
    await expect(late).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(pool.stats()).toMatchObject({ state: { type: "stopped" }, instances: 0, retired: 1 });
  });
});

import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { StrataError } from "../errors/index.js";
import { defineService } from "../service/define-service.js";
import {
  createTestCluster,
  echo,
  echoOn,
  failsWith,
  flush,
  gate,
  track,
} from "../test-support/cluster.js";
import type { NodeEvent } from "./events.js";
import { ADMIN_SERVICE } from "./admin.js";

/** Awaits a call on the manual clock, moving time forward (retry backoff) until it settles. */
async function run<T>(
  cluster: { advance(ms: number): Promise<void> },
  promise: Promise<T>,
): Promise<T> {
  const call = track(promise);
  for (let i = 0; i < 400 && !call.settled(); i++) await cluster.advance(25);
  return call.promise;
}

/** A service whose actions differ only in idempotency, counting what each node served. */
const orders = defineService({
  name: "orders",
  version: "1.0.0",
  actions: {
    read: { input: z.object({ id: z.string() }), output: z.string(), idempotent: true },
    place: { input: z.object({ id: z.string() }), output: z.string() },
    slow: { input: z.object({ ms: z.number() }), output: z.string(), idempotent: true },
  },
});

function ordersOn(node: string, served: Map<string, number>, gates?: { wait: Promise<void> }) {
  const count = (): void => {
    served.set(node, (served.get(node) ?? 0) + 1);
  };
  return orders.implement({
    read: ({ id }) => {
      count();
      return `${id}@${node}`;
    },
    place: ({ id }) => {
      count();
      return `${id}@${node}`;
    },
    slow: async () => {
      count();
      await gates?.wait;
      return node;
    },
  });
}

describe("circuit breakers and fault injection", () => {
  it("opens the breaker of a failing node, moves traffic to the others, and closes after a probe", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const n1 = await cluster.add({ id: "n1", services: [echoOn("n1", served)] });
    await cluster.add({ id: "n2", services: [echoOn("n2", served)] });
    const caller = await cluster.add({
      id: "caller",
      resilience: {
        defaults: {
          breaker: { strategy: { type: "consecutive", threshold: 3 }, halfOpenAfterMs: 1_000 },
        },
        outlier: false,
      },
    });
    const events: NodeEvent[] = [];
    using _sub = caller.on((e) => events.push(e));
    const rule = n1.faults.inject({
      effect: { type: "fail", code: "UNAVAILABLE" },
      scope: { service: "echo" },
    });
    const client = caller.client(echo, { strategy: "round-robin" });
    let ok = 0;
    for (let i = 0; i < 40; i++) {
      // Idempotent: failures on n1 are retried on n2, so every call succeeds.
      const out = await run(cluster, client.echo({ text: `t${i}` }));
      if (out.node === "n2") ok++;
    }
    expect(ok).toBe(40);
    const transitions = events.filter((e) => e.type === "breaker");
    expect(transitions).toContainEqual({
      type: "breaker",
      scope: "node",
      target: "n1",
      state: expect.objectContaining({ type: "open" }) as unknown,
    });
    // Once open, n1 gets no more traffic: only the calls before the trip reached it.
    expect(rule.hits).toBeLessThanOrEqual(3);
    expect(caller.stats().breakerOpened).toBe(1);
    expect(caller.stats().retries).toBeGreaterThan(0);
    // The open breaker does not keep an operator from the node's admin service.
    const listed = (await run(
      cluster,
      caller.call(ADMIN_SERVICE, "faultList", {}, { node: "n1" }),
    )) as Array<{ id: string }>;
    expect(listed.map((r) => r.id)).toEqual([rule.id]);

    n1.faults.clear();
    await cluster.advance(1_000);
    for (let i = 0; i < 10; i++) await run(cluster, client.echo({ text: "again" }));
    expect(
      events
        .filter((e) => e.type === "breaker")
        .map((e) => (e.type === "breaker" ? e.state.type : "")),
    ).toEqual(["open", "half-open", "closed"]);
    expect(served.get("n1") ?? 0).toBeGreaterThan(0);
  });

  it("never retries a non-idempotent call without a key (at most once), and retries it with one", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const n1 = await cluster.add({ id: "n1", services: [ordersOn("n1", served)] });
    const caller = await cluster.add({ id: "caller", resilience: { outlier: false } });
    n1.faults.inject({
      effect: { type: "fail", code: "UNAVAILABLE" },
      scope: { action: "place" },
      probability: 1,
    });
    const client = caller.client(orders);
    await failsWith(client.place({ id: "o1" }), "UNAVAILABLE");
    expect(caller.stats().attempts).toBe(1);
    const before = caller.stats().attempts;
    const withKey = track(client.place({ id: "o2" }, { idempotencyKey: "k-o2" }));
    await cluster.advance(2_000);
    await failsWith(withKey.promise, "UNAVAILABLE");
    expect(caller.stats().attempts - before).toBe(3); // the default: 3 attempts in all
  });

  it("says a refusal before sending is not the whole story when earlier attempts went out", async () => {
    await using cluster = createTestCluster();
    const n1 = await cluster.add({ id: "n1", services: [ordersOn("n1", new Map())] });
    const caller = await cluster.add({
      id: "caller",
      resilience: {
        outlier: false,
        defaults: { breaker: { strategy: { type: "consecutive", threshold: 1 } } },
      },
    });
    n1.faults.inject({
      effect: { type: "fail", code: "UNAVAILABLE" },
      scope: { action: "read" },
      probability: 1,
    });
    const client = caller.client(orders);
    // The first attempt reaches n1 and fails, which opens n1's breaker; the retry is refused by
    // it before it is sent. The first attempt ran, so the error must not claim nothing did.
    const first = (await run(
      cluster,
      client.read({ id: "r1" }).catch((e: unknown) => e),
    )) as StrataError;
    expect(first.code).toBe("UNAVAILABLE");
    expect(first.details).toMatchObject({ reason: "circuit-open", attempts: 1 });
    expect(first.message).toContain("after 1 sent attempts");
    // A call refused before any attempt went out says so, with no attempts.
    const second = (await client.read({ id: "r2" }).catch((e: unknown) => e)) as StrataError;
    expect(second.details).toMatchObject({ reason: "circuit-open" });
    expect(second.details["attempts"]).toBeUndefined();
    expect(caller.stats().attempts).toBe(1);
  });

  it("keeps retries within the budget under a 100% failure storm", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const n1 = await cluster.add({ id: "n1", services: [ordersOn("n1", served)] });
    const caller = await cluster.add({
      id: "caller",
      resilience: {
        defaults: { retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 2 }, breaker: false },
        retryBudget: { ratio: 0.1, minPerSecond: 0 },
        outlier: false,
      },
    });
    n1.faults.inject({ effect: { type: "fail", code: "UNAVAILABLE" } });
    const client = caller.client(orders);
    const calls = 500;
    const pending = Array.from({ length: calls }, (_, i) => track(client.read({ id: `r${i}` })));
    for (let i = 0; i < 20 && pending.some((p) => !p.settled()); i++) await cluster.advance(100);
    for (const p of pending) await failsWith(p.promise, "UNAVAILABLE");
    const stats = caller.stats();
    expect(stats.retries).toBeLessThanOrEqual(calls * 0.1);
    expect(stats.attempts).toBeLessThanOrEqual(calls * 1.1);
    expect(stats.budgetExhausted).toBeGreaterThan(0);
  });

  it("injects latency, dropped replies and black holes through the admin service", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    await cluster.add({ id: "n1", services: [ordersOn("n1", served)] });
    const caller = await cluster.add({
      id: "caller",
      resilience: { defaults: { retry: false }, outlier: false },
    });
    const inject = (effect: unknown) =>
      caller.call(
        "strata-admin",
        "faultInject",
        { effect, scope: { action: "read" } },
        { node: "n1" },
      );
    await expect(inject({ type: "explode" })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });

    await inject({ type: "latency", ms: 300 });
    const slow = track(caller.client(orders).read({ id: "a" }, { timeoutMs: 1_000 }));
    await cluster.advance(200);
    expect(slow.settled()).toBe(false);
    await cluster.advance(200);
    await expect(slow.promise).resolves.toBe("a@n1");
    expect(await caller.call("strata-admin", "faultList", {}, { node: "n1" })).toHaveLength(1);
    expect(await caller.call("strata-admin", "faultClear", {}, { node: "n1" })).toEqual({
      removed: 1,
    });

    for (const type of ["drop-reply", "black-hole"]) {
      await inject({ type });
      const lost = track(caller.client(orders).read({ id: type }, { timeoutMs: 300 }));
      await cluster.advance(400);
      await failsWith(lost.promise, "DEADLINE_EXCEEDED");
      await caller.call("strata-admin", "faultClear", {}, { node: "n1" });
    }
    // drop-reply ran the handler; black-hole did not.
    expect(served.get("n1")).toBe(2);
    await expect(caller.client(orders).read({ id: "z" })).resolves.toBe("z@n1");
  });
});

describe("bulkheads, hedging, fallback", () => {
  it("rejects calls beyond the bulkhead with RESOURCE_EXHAUSTED", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const g = gate();
    await cluster.add({ id: "n1", services: [ordersOn("n1", served, g)] });
    const caller = await cluster.add({
      id: "caller",
      resilience: {
        services: {
          orders: { actions: { slow: { bulkhead: { maxConcurrent: 2, maxQueue: 1 } } } },
        },
      },
    });
    const client = caller.client(orders);
    const running = [
      track(client.slow({ ms: 0 })),
      track(client.slow({ ms: 0 })),
      track(client.slow({ ms: 0 })),
    ];
    const error = await failsWith(client.slow({ ms: 0 }), "RESOURCE_EXHAUSTED");
    expect(error.details["reason"]).toBe("bulkhead");
    expect(served.get("n1")).toBe(2); // the third waits in the queue
    g.open();
    for (const r of running) await expect(r.promise).resolves.toBe("n1");
    expect(caller.stats().bulkheadRejected).toBe(1);
  });

  it("hedges a slow idempotent call on another node and takes the first answer", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const n1 = await cluster.add({ id: "n1", services: [ordersOn("n1", served)] });
    await cluster.add({ id: "n2", services: [ordersOn("n2", served)] });
    const caller = await cluster.add({
      id: "caller",
      resilience: { defaults: { hedge: { delayMs: 50 } }, outlier: false },
    });
    n1.faults.inject({ effect: { type: "latency", ms: 1_000 } });
    const client = caller.client(orders, { strategy: "round-robin" });
    const results: string[] = [];
    for (let i = 0; i < 4; i++) {
      const call = track(client.read({ id: `h${i}` }));
      await cluster.advance(75);
      results.push(await call.promise);
    }
    // Every answer came from n2 within the hedge delay, whichever node went first.
    expect(results.every((r) => r.endsWith("@n2"))).toBe(true);
    expect(caller.stats().hedges).toBeGreaterThan(0);
  });

  it("answers from the fallback when the call fails for good", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const n1 = await cluster.add({ id: "n1", services: [ordersOn("n1", served)] });
    const caller = await cluster.add({ id: "caller" });
    n1.faults.inject({ effect: { type: "fail", code: "INTERNAL" } });
    const client = caller.client(orders, {
      policies: { fallback: (error: StrataError) => `fallback:${error.code}` },
    });
    await expect(client.place({ id: "x" })).resolves.toBe("fallback:INTERNAL");
    await expect(
      client.place({ id: "x" }, { policies: { fallback: false } }),
    ).rejects.toMatchObject({ code: "INTERNAL" });
    expect(caller.stats().fallbacks).toBe(1);
  });
});

describe("serving-side protection", () => {
  it("sheds calls beyond the concurrency limit at once with RESOURCE_EXHAUSTED", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const g = gate();
    const n1 = await cluster.add({
      id: "n1",
      services: [ordersOn("n1", served, g)],
      resilience: { serving: { concurrency: { type: "fixed", limit: 2 } } },
    });
    const caller = await cluster.add({ id: "caller", resilience: { defaults: { retry: false } } });
    const client = caller.client(orders);
    const running = [track(client.slow({ ms: 0 })), track(client.slow({ ms: 0 }))];
    const shed = await failsWith(client.slow({ ms: 0 }), "RESOURCE_EXHAUSTED");
    expect(shed.details["reason"]).toBe("shed");
    expect(n1.stats().shed).toBe(1);
    // The admin service is not shed: faults can be read and cleared on an overloaded node.
    await expect(caller.call(ADMIN_SERVICE, "faultList", {}, { node: "n1" })).resolves.toEqual([]);
    expect(n1.stats().shed).toBe(1);
    g.open();
    for (const r of running) await r.promise;
    await expect(client.slow({ ms: 0 })).resolves.toBe("n1");
  });

  it("rate-limits each caller with a token bucket", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    await cluster.add({
      id: "n1",
      services: [ordersOn("n1", served)],
      resilience: { serving: { rateLimit: { perCaller: { perSecond: 10, burst: 3 } } } },
    });
    const a = await cluster.add({ id: "a", resilience: { defaults: { retry: false } } });
    const b = await cluster.add({ id: "b", resilience: { defaults: { retry: false } } });
    const ca = a.client(orders);
    for (let i = 0; i < 3; i++) await ca.read({ id: "x" });
    const limited = await failsWith(ca.read({ id: "x" }), "RESOURCE_EXHAUSTED");
    expect(limited.details).toMatchObject({ reason: "rate-limit", scope: "caller" });
    await expect(b.client(orders).read({ id: "y" })).resolves.toBe("y@n1");
    await cluster.advance(200);
    await expect(ca.read({ id: "x" })).resolves.toBe("x@n1");
  });
});

describe("outlier ejection and health", () => {
  it("ejects a node with a high error rate so traffic goes elsewhere", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const n1 = await cluster.add({ id: "n1", services: [ordersOn("n1", served)] });
    await cluster.add({ id: "n2", services: [ordersOn("n2", served)] });
    await cluster.add({ id: "n3", services: [ordersOn("n3", served)] });
    const caller = await cluster.add({
      id: "caller",
      resilience: {
        defaults: { retry: false, breaker: false },
        outlier: { errorRate: 0.3, minimumCalls: 10, intervalMs: 100, baseEjectionMs: 10_000 },
      },
    });
    const events: NodeEvent[] = [];
    using _sub = caller.on((e) => events.push(e));
    n1.faults.inject({ effect: { type: "fail", code: "INTERNAL" }, probability: 0.6 });
    const client = caller.client(orders, { strategy: "round-robin" });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 30; i++) await client.read({ id: "o" }).catch(() => undefined);
      await cluster.advance(100);
    }
    expect(events.some((e) => e.type === "ejected" && e.node === "n1")).toBe(true);
    const before = served.get("n1") ?? 0;
    for (let i = 0; i < 60; i++) await client.read({ id: "o" });
    expect(served.get("n1") ?? 0).toBe(before);
  });

  it("an unready node (failing a required check) leaves routing and comes back when it passes", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    let dbUp = true;
    const n1 = await cluster.add({
      id: "n1",
      services: [echoOn("n1", served)],
      healthChecks: [{ name: "db", check: () => dbUp }],
    });
    await cluster.add({ id: "n2", services: [echoOn("n2", served)] });
    const caller = await cluster.add({ id: "caller" });
    const client = caller.client(echo, { strategy: "round-robin" });
    dbUp = false;
    await cluster.advance(300);
    expect(n1.health()).toMatchObject({ live: true, ready: false });
    expect(caller.nodes().find((n) => n.id === "n1")?.status).toBe("unready");
    served.clear();
    for (let i = 0; i < 20; i++) await client.echo({ text: "x" });
    expect(served.get("n1")).toBeUndefined();
    dbUp = true;
    await cluster.advance(300);
    expect(n1.health().ready).toBe(true);
    for (let i = 0; i < 20; i++) await client.echo({ text: "x" });
    expect(served.get("n1")).toBeGreaterThan(0);
    await flush();
  });
});

describe("membership under event-loop stalls", () => {
  it("does not evict live peers when its own heartbeat fires late after a stall", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    await cluster.add({ id: "n1", services: [echoOn("n1", served)] });
    const caller = await cluster.add({ id: "caller" });
    expect(caller.nodes().map((n) => n.id)).toContain("n1");
    const left: string[] = [];
    using _sub = caller.on((e) => {
      if (e.type === "left") left.push(e.id);
    });
    // Every timer of both nodes fires late, before any queued heartbeat is read.
    cluster.clock.stall(2_000);
    await flush();
    expect(left).toEqual([]);
    await cluster.advance(500);
    await expect(caller.client(echo).echo({ text: "still" })).resolves.toMatchObject({
      node: "n1",
    });
  });
});

describe("resilience configuration at start-up", () => {
  it("refuses a node whose policies are unknown or out of range, naming the option", async () => {
    await using cluster = createTestCluster();
    await expect(
      cluster.add({ id: "x", resilience: { defaults: { timeoutMs: -1 } } }),
    ).rejects.toThrow(/resilience.defaults: timeoutMs must be a positive number, got -1/);
    await expect(
      cluster.add({ id: "y", resilience: { services: { s: { retries: 3 } } } as never }),
    ).rejects.toThrow(/unknown policy "retries"/);
    const node = await cluster.add({ id: "z" });
    expect(() => node.client(echo, { policies: { bulkhead: { maxConcurrent: 0 } } })).toThrow(
      /bulkhead.maxConcurrent must be a positive integer/,
    );
    await expect(
      node.client(echo).echo({ text: "x" }, { policies: { hedge: { delayMs: -5 } } }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });
});

describe("trace context at the edge", () => {
  it("carries a caller's traceparent to the handler and its nested calls, and refuses a malformed one", async () => {
    await using cluster = createTestCluster();
    const seen: Array<string | undefined> = [];
    const inner = defineService({
      name: "inner",
      version: "1.0.0",
      actions: { ping: { input: z.object({}), output: z.string() } },
    });
    const outer = defineService({
      name: "outer",
      version: "1.0.0",
      actions: { call: { input: z.object({}), output: z.string() } },
    });
    await cluster.add({
      id: "n1",
      services: [
        inner.implement({
          ping: (_input, ctx) => {
            seen.push(ctx.trace?.traceparent);
            return "pong";
          },
        }),
        outer.implement({
          call: async (_input, ctx) => {
            seen.push(ctx.trace?.traceparent);
            return ctx.client(inner).ping({});
          },
        }),
      ],
    });
    const caller = await cluster.add({ id: "caller" });
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    await expect(caller.client(outer).call({}, { trace: { traceparent } })).resolves.toBe("pong");
    expect(seen).toEqual([traceparent, traceparent]);
    await expect(
      caller.client(outer).call({}, { trace: { traceparent: "nope" } }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });
});

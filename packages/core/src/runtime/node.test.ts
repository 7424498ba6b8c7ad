import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createEmbeddedNetwork } from "../adapters/embedded/index.js";
import { StrataError, isStrataError } from "../errors/index.js";
import { manualClock, type Logger } from "../ports/index.js";
import { defineService } from "../service/define-service.js";
import {
  DEAD_AFTER_MS,
  HEARTBEAT_MS,
  createTestCluster,
  echo,
  echoOn,
  failsWith,
  failure,
  flush,
  gate,
  track,
} from "../test-support/cluster.js";
import type { CallContext } from "./context.js";
import { createNode, type NodeEvent, type NodeOptions, type StrataNode } from "./node.js";

const Item = z.object({ sku: z.string().min(1), qty: z.number().int().positive() });

const shop = defineService({
  name: "shop",
  version: "1.0.0",
  actions: {
    place: {
      input: z.object({ items: z.array(Item).min(1), note: z.string().default("none") }),
      output: z.object({ count: z.number(), note: z.string(), node: z.string() }),
    },
    fail: {
      input: z.object({ kind: z.enum(["plain", "strata", "string"]) }),
      output: z.null(),
    },
    /** Waits until the test opens the node's gate or the call's signal aborts. */
    wait: { input: z.object({}), output: z.object({ aborted: z.boolean(), node: z.string() }) },
    big: { input: z.object({ size: z.number() }), output: z.string() },
    badOutput: { input: z.object({}), output: z.object({ n: z.number() }) },
  },
});

/** What a shop node's handlers saw. */
interface ShopState {
  readonly gate: ReturnType<typeof gate>;
  /** Abort reasons the `wait` handler observed. */
  readonly aborts: unknown[];
  /** Contexts the handlers ran with. */
  readonly contexts: CallContext[];
  waiting: number;
}

function shopOn(nodeId: string) {
  const state: ShopState = { gate: gate(), aborts: [], contexts: [], waiting: 0 };
  const implementation = shop.implement({
    place: ({ items, note }, ctx) => {
      state.contexts.push(ctx);
      return { count: items.reduce((sum, i) => sum + i.qty, 0), note, node: nodeId };
    },
    fail: ({ kind }) => {
      if (kind === "strata") {
        throw new StrataError("NOT_FOUND", "sku s-9 is not in the catalogue", {
          details: { sku: "s-9" },
          retryable: true,
        });
      }
      if (kind === "string") throw "password=hunter2"; // eslint-disable-line @typescript-eslint/only-throw-error
      throw new Error("connection to db.internal:5432 failed: password=hunter2");
    },
    wait: async (_, ctx) => {
      state.contexts.push(ctx);
      state.waiting++;
      const aborted = await new Promise<boolean>((resolve) => {
        void state.gate.wait.then(() => resolve(false));
        const onAbort = () => {
          state.aborts.push(ctx.signal.reason);
          resolve(true);
        };
        if (ctx.signal.aborted) onAbort();
        else ctx.signal.addEventListener("abort", onAbort, { once: true });
      });
      state.waiting--;
      return { aborted, node: nodeId };
    },
    big: ({ size }) => "x".repeat(size),
    badOutput: () => ({ n: "not a number" }) as unknown as { n: number },
  });
  return { implementation, state };
}

/** A logger that records what it is told, children included. */
function recordingLogger() {
  const errors: Array<{ fields: Record<string, unknown>; message: string | undefined }> = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error(fields, message) {
      errors.push({ fields: fields as Record<string, unknown>, message });
    },
    child: () => logger,
  };
  return { logger, errors };
}

function reasonCode(reason: unknown): string | undefined {
  return isStrataError(reason) ? reason.code : undefined;
}

for (const serialize of [false, true]) {
  describe(`node calls (serialize: ${serialize})`, () => {
    async function twoNodes() {
      const cluster = createTestCluster({ serialize, maxFrameBytes: 4096 });
      const a = shopOn("a");
      const { logger, errors } = recordingLogger();
      await cluster.add({ id: "a", services: [a.implementation], logger });
      const caller = await cluster.add({ id: "caller" });
      return { cluster, a, caller, logged: errors };
    }

    it("makes a typed call and returns the handler's output", async () => {
      const { cluster, a, caller } = await twoNodes();
      await using _ = cluster;
      const out = await caller.client(shop).place(
        {
          items: [
            { sku: "s-1", qty: 2 },
            { sku: "s-2", qty: 3 },
          ],
        },
        { meta: { tenant: "acme" }, idempotencyKey: "order-1" },
      );
      expect(out).toEqual({ count: 5, note: "none", node: "a" });
      const ctx = a.state.contexts[0];
      expect(ctx?.service).toBe("shop");
      expect(ctx?.action).toBe("place");
      expect(ctx?.nodeId).toBe("a");
      expect(ctx?.callerNode).toBe("caller");
      expect(ctx?.meta).toEqual({ tenant: "acme" });
      expect(ctx?.idempotencyKey).toBe("order-1");
      expect(ctx?.principal).toBeUndefined();
      expect(ctx?.remainingMs()).toBe(10_000);
      // The untyped call reaches the same handler.
      expect(await caller.call("shop", "place", { items: [{ sku: "s", qty: 1 }] })).toEqual({
        count: 1,
        note: "none",
        node: "a",
      });
    });

    it("refuses input that breaks the schema with INVALID_ARGUMENT and field paths", async () => {
      const { cluster, a, caller } = await twoNodes();
      await using _ = cluster;
      const error = await failsWith(
        caller.call("shop", "place", {
          items: [
            { sku: "s-1", qty: 1 },
            { sku: 2, qty: 0 },
          ],
          note: 5,
        }),
        "INVALID_ARGUMENT",
      );
      const issues = error.details["issues"] as Array<{ path: string; message: string }>;
      expect(issues.map((i) => i.path).sort()).toEqual(["items[1].qty", "items[1].sku", "note"]);
      expect(error.message).toMatch(/^shop\.place input is invalid: /);
      expect(a.state.contexts).toHaveLength(0);
      await failsWith(caller.call("shop", "place", "not an object"), "INVALID_ARGUMENT");
    });

    it("answers UNAVAILABLE for an unknown service and UNIMPLEMENTED for an unknown action", async () => {
      const { cluster, caller } = await twoNodes();
      await using _ = cluster;
      const noService = await failsWith(caller.call("nope", "x", {}), "UNAVAILABLE");
      expect(noService.message).toMatch(/no ready node serves nope/);
      const noAction = await failsWith(
        caller.call("shop", "nope", {}, { node: "a" }),
        "UNIMPLEMENTED",
      );
      expect(noAction.message).toBe('shop has no action "nope"');
      expect(noAction.details).toEqual({ service: "shop", action: "nope" });
      // Without a node, the router finds shop and the callee refuses the action the same way.
      await failsWith(caller.call("shop", "nope", {}), "UNIMPLEMENTED");
    });

    it("hides a plain error behind INTERNAL and logs the real one on the callee", async () => {
      const { cluster, caller, logged } = await twoNodes();
      await using _ = cluster;
      const error = await failsWith(caller.client(shop).fail({ kind: "plain" }), "INTERNAL");
      expect(error.message).toBe("shop.fail: internal error");
      expect(error.retryable).toBe(false);
      expect(error.details).toEqual({});
      expect(error.cause).toBeUndefined();
      expect(JSON.stringify(error.toWire()) + String(error.stack)).not.toContain("hunter2");
      expect(logged).toHaveLength(1);
      expect(String(logged[0]?.fields["err"])).toContain("hunter2");

      const thrownString = await failsWith(
        caller.client(shop).fail({ kind: "string" }),
        "INTERNAL",
      );
      expect(thrownString.message).not.toContain("hunter2");
    });

    it("passes a StrataError from the handler through with its code and details", async () => {
      const { cluster, caller, logged } = await twoNodes();
      await using _ = cluster;
      const error = await failsWith(caller.client(shop).fail({ kind: "strata" }), "NOT_FOUND");
      expect(error.message).toBe("sku s-9 is not in the catalogue");
      expect(error.details).toEqual({ sku: "s-9" });
      expect(error.retryable).toBe(true);
      expect(logged).toHaveLength(0);
    });

    it("fails with DEADLINE_EXCEEDED when the deadline passes, and aborts the callee", async () => {
      const { cluster, a, caller } = await twoNodes();
      await using _ = cluster;
      const call = track(caller.client(shop).wait({}, { timeoutMs: 50 }));
      await flush();
      expect(a.state.waiting).toBe(1);
      cluster.clock.advance(49);
      await flush();
      expect(call.settled()).toBe(false);
      cluster.clock.advance(1);
      const error = await failsWith(call.promise, "DEADLINE_EXCEEDED");
      expect(error.message).toBe("shop.wait: deadline of 50 ms exceeded");
      expect(error.details).toMatchObject({ timeoutMs: 50, node: "a" });
      await flush();
      expect(a.state.aborts).toHaveLength(1);
      expect(["DEADLINE_EXCEEDED", "CANCELLED"]).toContain(reasonCode(a.state.aborts[0]));
      expect(a.state.waiting).toBe(0);
      expect(cluster.node("a").inFlight()).toBe(0);
    });

    it("fails with CANCELLED when the caller aborts, and aborts the callee", async () => {
      const { cluster, a, caller } = await twoNodes();
      await using _ = cluster;
      const controller = new AbortController();
      const call = track(caller.client(shop).wait({}, { signal: controller.signal }));
      await flush();
      expect(a.state.waiting).toBe(1);
      controller.abort();
      const error = await failsWith(call.promise, "CANCELLED");
      expect(error.message).toBe("shop.wait: cancelled by the caller");
      await flush();
      expect(a.state.aborts.map(reasonCode)).toEqual(["CANCELLED"]);
      expect(cluster.node("a").inFlight()).toBe(0);

      // A signal that is already aborted stops the call before it is sent.
      const early = await failsWith(
        caller.client(shop).wait({}, { signal: AbortSignal.abort() }),
        "CANCELLED",
      );
      expect(early.message).toMatch(/cancelled before it was sent/);
      expect(a.state.contexts).toHaveLength(1);
    });

    it("refuses an oversized payload with RESOURCE_EXHAUSTED and keeps serving", async () => {
      const { cluster, caller } = await twoNodes();
      await using _ = cluster;
      if (serialize) {
        const request = await failsWith(
          caller.client(shop).place({ items: [{ sku: "x".repeat(5_000), qty: 1 }] }),
          "RESOURCE_EXHAUSTED",
        );
        expect(request.details).toMatchObject({ limit: 4096 });
        const reply = await failsWith(
          caller.client(shop).big({ size: 5_000 }),
          "RESOURCE_EXHAUSTED",
        );
        expect(reply.details).toMatchObject({ limit: 4096 });
      } else {
        // Handed over by reference: no frame, so no frame limit.
        expect(await caller.client(shop).big({ size: 5_000 })).toHaveLength(5_000);
      }
      expect(await caller.client(shop).big({ size: 100 })).toHaveLength(100);
      expect(cluster.node("a").inFlight()).toBe(0);
      expect(cluster.node("a").state).toBe("running");
    });

    it("checks handler outputs when validateOutput is on", async () => {
      await using cluster = createTestCluster({ serialize });
      await cluster.add({ id: "a", services: [shopOn("a").implementation], validateOutput: true });
      const caller = await cluster.add({ id: "caller" });
      const error = await failsWith(caller.client(shop).badOutput({}), "INTERNAL");
      expect(error.message).toBe("shop.badOutput returned an invalid output");
      expect((await caller.client(shop).place({ items: [{ sku: "s", qty: 1 }] })).count).toBe(1);
    });
  });

  describe(`nested calls (serialize: ${serialize})`, () => {
    const back = defineService({
      name: "back",
      version: "1.0.0",
      actions: {
        inspect: {
          input: z.object({}),
          output: z.object({
            remainingMs: z.number(),
            meta: z.record(z.string(), z.string()),
            idempotencyKey: z.string().nullable(),
            callerNode: z.string(),
          }),
        },
        hang: { input: z.object({}), output: z.string() },
      },
    });
    const front = defineService({
      name: "front",
      version: "1.0.0",
      actions: {
        relay: {
          input: z.object({ spendMs: z.number() }),
          output: z.object({ frontRemainingMs: z.number(), seen: back.actions.inspect.output }),
        },
        relayHang: { input: z.object({}), output: z.string() },
      },
    });

    async function hops() {
      const cluster = createTestCluster({ serialize });
      const backAborts: unknown[] = [];
      const childErrors: StrataError[] = [];
      await cluster.add({
        id: "b",
        services: [
          back.implement({
            inspect: (_, ctx) => ({
              remainingMs: ctx.remainingMs(),
              meta: { ...ctx.meta },
              idempotencyKey: ctx.idempotencyKey ?? null,
              callerNode: ctx.callerNode,
            }),
            hang: (_, ctx) =>
              new Promise<string>((resolve) =>
                ctx.signal.addEventListener("abort", () => {
                  backAborts.push(ctx.signal.reason);
                  resolve("gave up");
                }),
              ),
          }),
        ],
      });
      await cluster.add({
        id: "f",
        services: [
          front.implement({
            relay: async ({ spendMs }, ctx) => {
              cluster.clock.advance(spendMs); // work that takes time before the next hop
              const frontRemainingMs = ctx.remainingMs();
              // Asking for more than is left does not extend the deadline.
              try {
                const seen = await ctx
                  .client(back)
                  .inspect({}, { meta: { hop: "front" }, timeoutMs: 60_000 });
                return { frontRemainingMs, seen };
              } catch (error) {
                childErrors.push(error as StrataError);
                throw error;
              }
            },
            relayHang: (_, ctx) => ctx.client(back).hang({}),
          }),
        ],
      });
      const caller = await cluster.add({ id: "caller" });
      return { cluster, caller, backAborts, childErrors };
    }

    it("shrinks the deadline budget across hops and propagates meta and idempotency key", async () => {
      const { cluster, caller } = await hops();
      await using _ = cluster;
      const out = await caller
        .client(front)
        .relay(
          { spendMs: 30 },
          { timeoutMs: 1_000, meta: { tenant: "acme" }, idempotencyKey: "order-7" },
        );
      expect(out.frontRemainingMs).toBe(970);
      expect(out.seen.remainingMs).toBeLessThanOrEqual(out.frontRemainingMs);
      expect(out.seen.remainingMs).toBe(970);
      expect(out.seen.meta).toEqual({ tenant: "acme", hop: "front" });
      expect(out.seen.idempotencyKey).toBe("order-7");
      expect(out.seen.callerNode).toBe("f");
    });

    it("aborts the whole chain when the first caller's deadline passes", async () => {
      const { cluster, caller, backAborts } = await hops();
      await using _ = cluster;
      const call = track(caller.client(front).relayHang({}, { timeoutMs: 100 }));
      await flush();
      cluster.clock.advance(100);
      await failsWith(call.promise, "DEADLINE_EXCEEDED");
      await flush();
      expect(backAborts).toHaveLength(1);
      expect(cluster.node("b").inFlight()).toBe(0);
      expect(cluster.node("f").inFlight()).toBe(0);
    });

    it("fails a child call at once when the parent has no time left", async () => {
      const { cluster, caller, childErrors } = await hops();
      await using _ = cluster;
      const error = await failure(caller.client(front).relay({ spendMs: 80 }, { timeoutMs: 80 }));
      expect(error.code).toBe("DEADLINE_EXCEEDED");
      await flush();
      // The child was refused on the spot, without being sent.
      expect(childErrors).toHaveLength(1);
      expect(childErrors[0]?.code).toBe("DEADLINE_EXCEEDED");
      expect(childErrors[0]?.message).toBe("back.inspect: no time left in the caller's deadline");
    });
  });
}

describe("node faults", () => {
  it("fails calls pending on a killed node with UNAVAILABLE and routes around it", async () => {
    await using cluster = createTestCluster();
    const states = new Map<string, ShopState>();
    for (const id of ["a", "b", "c"]) {
      const { implementation, state } = shopOn(id);
      states.set(id, state);
      await cluster.add({ id, services: [implementation] });
    }
    const caller = await cluster.add({ id: "caller", routing: { strategy: "round-robin" } });
    const events: NodeEvent[] = [];
    caller.on((event) => events.push(event));
    const client = caller.client(shop);

    const load = Array.from({ length: 30 }, () => track(client.wait({})));
    await flush();
    expect([...states.values()].map((s) => s.waiting)).toEqual([10, 10, 10]);

    cluster.network.kill("a");
    const killedAt = cluster.clock.monotonic();
    states.get("b")?.gate.open();
    states.get("c")?.gate.open();
    await flush();
    expect(load.filter((c) => c.settled())).toHaveLength(20);

    // Before the sweep, a direct call to the dead node fails at once: nobody answers.
    const direct = await failsWith(client.wait({}, { node: "a" }), "UNAVAILABLE");
    expect(direct.message).toMatch(/no responders/);

    await cluster.advance(DEAD_AFTER_MS + HEARTBEAT_MS);
    expect(load.every((c) => c.settled())).toBe(true);
    const outcomes = await Promise.allSettled(load.map((c) => c.promise));
    const failed = outcomes.filter((o) => o.status === "rejected");
    expect(failed).toHaveLength(10);
    for (const outcome of failed) {
      const error = outcome.reason as StrataError;
      expect(error.code).toBe("UNAVAILABLE");
      expect(error.details).toMatchObject({ node: "a", reason: "timeout", outcome: "unknown" });
    }
    expect(cluster.clock.monotonic() - killedAt).toBeLessThanOrEqual(DEAD_AFTER_MS + HEARTBEAT_MS);
    expect(events).toContainEqual({ type: "left", id: "a", reason: "timeout" });
    expect(caller.nodes().map((n) => n.id)).toEqual(["b", "c", "caller"]);

    const after = await Promise.all(Array.from({ length: 20 }, () => client.wait({})));
    const byNode = after.reduce<Record<string, number>>(
      (acc, r) => ({ ...acc, [r.node]: (acc[r.node] ?? 0) + 1 }),
      {},
    );
    expect(byNode).toEqual({ b: 10, c: 10 });
    states.get("a")?.gate.open();
  });

  it("fails calls to a node that restarted under the same id", async () => {
    await using cluster = createTestCluster();
    const first = shopOn("a");
    await cluster.add({ id: "a", services: [first.implementation] });
    const caller = await cluster.add({ id: "caller" });
    const events: NodeEvent[] = [];
    caller.on((event) => events.push(event));
    const pending = track(caller.client(shop).wait({}));
    await flush();
    cluster.network.kill("a");
    const old = cluster.node("a");
    const restarted = shopOn("a");
    restarted.state.gate.open();
    await cluster.add({ id: "a", services: [restarted.implementation] });
    const error = await failsWith(pending.promise, "UNAVAILABLE");
    expect(error.details).toMatchObject({ node: "a", reason: "restarted" });
    expect(events).toContainEqual({ type: "left", id: "a", reason: "restarted" });
    expect((await caller.client(shop).wait({})).aborted).toBe(false);
    first.state.gate.open();
    await old.stop();
  });
});

describe("graceful stop", () => {
  it("finishes in-flight calls, refuses new ones and leaves the cluster", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    const a = shopOn("a");
    const b = shopOn("b");
    let stoppedHookRan = false;
    await cluster.add({ id: "a", services: [a.implementation, echoOn("a", served)] });
    await cluster.add({
      id: "b",
      services: [
        b.implementation,
        echo.implement(echoOn("b", served).handlers, {
          stopped: () => {
            stoppedHookRan = true;
          },
        }),
      ],
    });
    const caller = await cluster.add({ id: "caller", routing: { strategy: "round-robin" } });
    const events: NodeEvent[] = [];
    caller.on((event) => events.push(event));
    const nodeB = cluster.node("b");
    const states: string[] = [];
    nodeB.on((event) => {
      if (event.type === "state") states.push(event.state);
    });

    const inFlight = track(caller.client(shop).wait({}, { node: "b" }));
    await flush();
    expect(nodeB.inFlight()).toBe(1);

    const stopping = track(nodeB.stop());
    await flush();
    expect(nodeB.state).toBe("draining");
    expect(caller.nodes().find((n) => n.id === "b")?.status).toBe("draining");
    expect(events).toContainEqual({ type: "status", id: "b", status: "draining" });

    // New calls: refused by b itself, and the router no longer picks it.
    const refused = await failsWith(
      caller.client(echo).echo({ text: "x" }, { node: "b" }),
      "UNAVAILABLE",
    );
    expect(refused.message).toBe("node b is draining");
    // On b itself, the router sends its own calls elsewhere; only a call pinned to b is refused.
    expect((await nodeB.client(echo).echo({ text: "local" })).node).toBe("a");
    await failsWith(nodeB.client(echo).echo({ text: "local" }, { node: "b" }), "UNAVAILABLE");
    served.clear();
    for (let i = 0; i < 10; i++) await caller.client(echo).echo({ text: "x" });
    expect(Object.fromEntries(served)).toEqual({ a: 10 });

    expect(stopping.settled()).toBe(false);
    expect(stoppedHookRan).toBe(false);
    b.state.gate.open();
    expect(await inFlight.promise).toEqual({ aborted: false, node: "b" });
    await stopping.promise;
    expect(nodeB.state).toBe("stopped");
    expect(stoppedHookRan).toBe(true);
    expect(states).toEqual(["draining", "stopped"]);
    await flush();
    expect(events).toContainEqual({ type: "left", id: "b", reason: "bye" });
    expect(caller.nodes().map((n) => n.id)).toEqual(["a", "caller"]);
    // A stopped node makes no calls, and stopping again is a no-op.
    await failsWith(nodeB.client(echo).echo({ text: "x" }), "UNAVAILABLE");
    await nodeB.stop();
  });

  it("aborts stragglers with UNAVAILABLE when the drain times out", async () => {
    await using cluster = createTestCluster();
    const b = shopOn("b");
    const nodeB = await cluster.add({ id: "b", services: [b.implementation] });
    const caller = await cluster.add({ id: "caller" });
    const remote = track(caller.client(shop).wait({}));
    const local = track(nodeB.client(shop).wait({}));
    await flush();
    expect(nodeB.inFlight()).toBe(2);
    const stopping = track(nodeB.stop({ drainTimeoutMs: 200 }));
    cluster.clock.advance(199);
    await flush();
    expect(stopping.settled() || remote.settled() || local.settled()).toBe(false);
    cluster.clock.advance(1);
    for (const call of [remote, local]) {
      const error = await failsWith(call.promise, "UNAVAILABLE");
      expect(error.message).toBe("node b stopped before shop.wait finished");
      expect(error.details).toEqual({ node: "b", outcome: "unknown" });
    }
    await stopping.promise;
    expect(b.state.aborts.map(reasonCode)).toEqual(["UNAVAILABLE", "UNAVAILABLE"]);
    expect(nodeB.state).toBe("stopped");
  });

  it("stops when disposed with await using", async () => {
    const network = createEmbeddedNetwork();
    const clock = manualClock();
    const observer = createNode({ transport: network.transport(), id: "observer", clock });
    await observer.start();
    const events: NodeEvent[] = [];
    observer.on((event) => events.push(event));
    let escaped: StrataNode | undefined;
    {
      await using node = createNode({ transport: network.transport(), id: "scoped", clock });
      await node.start();
      await flush();
      expect(observer.nodes().map((n) => n.id)).toContain("scoped");
      escaped = node;
    }
    expect(escaped.state).toBe("stopped");
    expect(network.nodes()).toEqual(["observer"]);
    await flush();
    expect(events).toContainEqual({ type: "left", id: "scoped", reason: "bye" });
    await observer.stop();
  });
});

describe("node lifecycle", () => {
  it("joins a cluster, serves services added after start, and reports itself", async () => {
    await using cluster = createTestCluster();
    const a = await cluster.add({ id: "a", region: "eu" });
    const caller = await cluster.add({ id: "caller" });
    const waiting = track(caller.waitForService("echo", { range: "^1.0.0" }));
    const own = track(a.waitForService("echo"));
    await flush();
    expect(waiting.settled()).toBe(false);
    a.serve(echoOn("a", new Map()));
    await flush();
    // Both resolve without any membership event: a was already known, and is ready.
    expect(own.settled()).toBe(true);
    expect(waiting.settled()).toBe(true);
    await waiting.promise;
    await own.promise;
    expect(await caller.client(echo).echo({ text: "late" })).toEqual({ text: "late", node: "a" });
    const seen = caller.nodes().find((n) => n.id === "a");
    expect(seen).toMatchObject({ id: "a", region: "eu", status: "ready", transport: "embedded" });
    expect(seen?.services.find((s) => s.name === "echo")).toEqual({
      name: "echo",
      version: "1.0.0",
      actions: [{ name: "echo", idempotent: true }],
    });
    expect(() => a.serve(echoOn("a", new Map()))).toThrowError(/already serves echo/);
  });

  it("times out or cancels waitForService", async () => {
    await using cluster = createTestCluster();
    const caller = await cluster.add({ id: "caller" });
    const waiting = track(caller.waitForService("ghost", { timeoutMs: 100 }));
    cluster.clock.advance(100);
    const error = await failsWith(waiting.promise, "UNAVAILABLE");
    expect(error.message).toMatch(/no node serving ghost@\* appeared within 100 ms/);
    const controller = new AbortController();
    const cancelled = caller.waitForService("ghost", { signal: controller.signal });
    controller.abort();
    await failsWith(cancelled, "CANCELLED");
  });

  it("runs started hooks, refuses a second start and cleans up after a failed start", async () => {
    const network = createEmbeddedNetwork();
    const clock = manualClock();
    let started = 0;
    const ok = echo.implement(echoOn("x", new Map()).handlers, {
      started: (signal) => {
        expect(signal).toBeInstanceOf(AbortSignal);
        started++;
      },
    });
    const node = createNode({ transport: network.transport(), id: "x", clock, services: [ok] });
    const states: string[] = [];
    node.on((e) => {
      if (e.type === "state") states.push(e.state);
    });
    await failsWith(node.call("echo", "echo", { text: "x" }), "UNAVAILABLE");
    await node.start();
    expect(started).toBe(1);
    await failsWith(node.start(), "FAILED_PRECONDITION");
    await node.stop();
    expect(states).toEqual(["starting", "running", "draining", "stopped"]);
    expect(() => node.serve(echoOn("x", new Map()))).toThrowError(/stopped; cannot serve/);

    const broken = echo.implement(echoOn("y", new Map()).handlers, {
      started: () => {
        throw new Error("no database");
      },
    });
    const bad = createNode({ transport: network.transport(), id: "y", clock, services: [broken] });
    await expect(bad.start()).rejects.toThrowError("no database");
    expect(bad.state).toBe("stopped");
    expect(network.nodes()).toEqual([]);

    const twin = createNode({ transport: network.transport(), id: "x", clock });
    const other = createNode({ transport: network.transport(), id: "x", clock });
    await twin.start();
    await failsWith(other.start(), "ALREADY_EXISTS");
    await twin.stop();
  });

  it("refuses bad options with INVALID_ARGUMENT and a clear message", () => {
    const network = createEmbeddedNetwork();
    const transport = network.transport();
    const cases: Array<[Partial<NodeOptions>, RegExp]> = [
      [
        { defaultTimeoutMs: -5 },
        /defaultTimeoutMs must be a positive number of milliseconds, got -5/,
      ],
      [{ drainTimeoutMs: Number.NaN }, /drainTimeoutMs must be a positive number.*NaN/],
      [{ heartbeatIntervalMs: Infinity }, /heartbeatIntervalMs must be a positive number/],
      [{ heartbeatIntervalMs: 0 }, /heartbeatIntervalMs must be a positive number/],
      [
        { heartbeatIntervalMs: 100, deadAfterMs: 100 },
        /deadAfterMs \(100\) must exceed heartbeatIntervalMs \(100\)/,
      ],
      [{ heartbeatIntervalMs: 100, deadAfterMs: 50 }, /deadAfterMs \(50\) must exceed/],
      [
        { routing: { strategy: "random" as unknown as "p2c" } },
        /unknown routing strategy "random" \(use "p2c" or "round-robin"\)/,
      ],
      [{ id: "bad id!" }, /node id "bad id!" must match/],
      [{ id: "" }, /node id "" must match/],
      [{ id: "x".repeat(65) }, /node id "x+" must match/],
      [{ region: "eu west" }, /region "eu west" must match/],
      [{ transport: undefined as unknown as NodeOptions["transport"] }, /transport is required/],
    ];
    for (const [options, message] of cases) {
      let error: unknown;
      try {
        createNode({ transport, ...options });
      } catch (e) {
        error = e;
      }
      expect(error, message.source).toBeInstanceOf(StrataError);
      expect((error as StrataError).code).toBe("INVALID_ARGUMENT");
      expect((error as StrataError).message).toMatch(message);
    }
  });

  it("refuses bad client and call options", async () => {
    await using cluster = createTestCluster();
    const node = await cluster.add({ id: "a", services: [echoOn("a", new Map())] });
    expect(() => node.client(echo, { timeoutMs: -1 })).toThrowError(/timeoutMs must be a positive/);
    expect(() => node.client(echo, { strategy: "fastest" as unknown as "p2c" })).toThrowError(
      /unknown routing strategy "fastest"/,
    );
    await failsWith(node.client(echo).echo({ text: "x" }, { timeoutMs: 0 }), "INVALID_ARGUMENT");
    await failsWith(node.call("echo", "echo", {}, { version: "not a range" }), "INVALID_ARGUMENT");
    await failsWith(node.call("echo", "echo", {}, { timeoutMs: -3 }), "INVALID_ARGUMENT");
  });

  it("generates a valid id when none is given", async () => {
    const network = createEmbeddedNetwork();
    const node = createNode({ transport: network.transport(), clock: manualClock({ seed: 9 }) });
    expect(node.id).toMatch(/^node-[a-z0-9]{8}$/);
    expect(node.region).toBe("default");
    await node.start();
    await node.stop();
  });
});

import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineService } from "../service/define-service.js";
import {
  createTestCluster,
  echo,
  echoOn,
  failsWith,
  flush,
  gate,
  type TestCluster,
} from "../test-support/cluster.js";
import { HashRing } from "./hash-ring.js";

/** Starts nodes serving echo (counting what each serves) and one caller that serves nothing. */
async function echoCluster(
  cluster: TestCluster,
  servers: ReadonlyArray<{ readonly id: string; readonly region?: string }>,
  caller: Parameters<TestCluster["add"]>[0] = { id: "caller" },
) {
  const served = new Map<string, number>();
  for (const server of servers) {
    await cluster.add({ ...server, services: [echoOn(server.id, served)] });
  }
  const node = await cluster.add(caller);
  return { served, caller: node };
}

async function callMany(call: () => Promise<{ node: string }>, times: number) {
  const byNode = new Map<string, number>();
  for (let i = 0; i < times; i++) {
    const { node } = await call();
    byNode.set(node, (byNode.get(node) ?? 0) + 1);
  }
  return Object.fromEntries([...byNode].sort());
}

for (const serialize of [false, true]) {
  describe(`router (serialize: ${serialize})`, () => {
    it("round-robin spreads calls evenly", async () => {
      await using cluster = createTestCluster({ serialize });
      const { caller } = await echoCluster(cluster, [{ id: "a" }, { id: "b" }, { id: "c" }], {
        id: "caller",
        routing: { strategy: "round-robin" },
      });
      const client = caller.client(echo);
      expect(await callMany(() => client.echo({ text: "hi" }), 300)).toEqual({
        a: 100,
        b: 100,
        c: 100,
      });
    });

    it("p2c prefers the node with fewer outstanding calls", async () => {
      await using cluster = createTestCluster({ serialize });
      const served = new Map<string, number>();
      const slowGate = gate();
      await cluster.add({
        id: "slow",
        services: [
          echo.implement({
            echo: async ({ text }) => {
              served.set("slow", (served.get("slow") ?? 0) + 1);
              await slowGate.wait;
              return { text, node: "slow" };
            },
          }),
        ],
      });
      for (const id of ["fast-1", "fast-2"]) {
        await cluster.add({ id, services: [echoOn(id, served)] });
      }
      const caller = await cluster.add({ id: "caller" });
      const client = caller.client(echo, { strategy: "p2c" });
      const calls = Array.from({ length: 90 }, () => client.echo({ text: "x" }));
      await flush();
      // The slow node holds whatever it got; once it has one call outstanding it loses every
      // comparison against an idle node.
      expect(served.get("slow") ?? 0).toBeLessThanOrEqual(1);
      expect((served.get("fast-1") ?? 0) + (served.get("fast-2") ?? 0)).toBeGreaterThanOrEqual(89);
      expect(served.get("fast-1")).toBeGreaterThan(20);
      expect(served.get("fast-2")).toBeGreaterThan(20);
      slowGate.open();
      await Promise.all(calls);

      // Round-robin, by contrast, keeps feeding the slow node its share.
      // (Its handler still answers a tick late, so its outstanding count grows all the same.)
      const roundRobin = caller.client(echo, { strategy: "round-robin" });
      const before = served.get("slow") ?? 0;
      const more = Array.from({ length: 30 }, () => roundRobin.echo({ text: "x" }));
      expect((served.get("slow") ?? 0) - before).toBe(10);
      await Promise.all(more);
    });

    it("sends the same declared shard key to the same node, and spreads distinct keys", async () => {
      await using cluster = createTestCluster({ serialize });
      const cart = defineService({
        name: "cart",
        version: "1.0.0",
        actions: {
          get: {
            input: z.object({ user: z.string() }),
            output: z.object({ user: z.string(), node: z.string() }),
            shardKey: (input: { user: string }) => input.user,
          },
        },
      });
      const ids = ["a", "b", "c"];
      for (const id of ids) {
        await cluster.add({
          id,
          services: [cart.implement({ get: ({ user }) => ({ user, node: id }) })],
        });
      }
      const caller = await cluster.add({ id: "caller", routing: { strategy: "round-robin" } });
      const client = caller.client(cart);
      const ring = new HashRing(ids);
      const owners = new Set<string>();
      for (let u = 0; u < 60; u++) {
        const user = `user-${u}`;
        const first = await client.get({ user });
        expect(first.node).toBe(ring.owner(user));
        for (let i = 0; i < 5; i++) expect((await client.get({ user })).node).toBe(first.node);
        owners.add(first.node);
      }
      expect(owners).toEqual(new Set(ids));

      // The owner wins over a local instance, and an explicit key overrides the declared one.
      const onA = cluster.node("a").client(cart);
      const ownedByB = Array.from({ length: 100 }, (_, i) => `k${i}`).find(
        (k) => ring.owner(k) === "b",
      );
      expect(ownedByB).toBeDefined();
      expect((await onA.get({ user: ownedByB ?? "" })).node).toBe("b");
      expect((await client.get({ user: "user-0" }, { shardKey: ownedByB ?? "" })).node).toBe("b");
    });

    it("refuses a call whose shard key cannot be derived", async () => {
      await using cluster = createTestCluster({ serialize });
      const svc = defineService({
        name: "svc",
        version: "1.0.0",
        actions: {
          get: {
            input: z.object({ user: z.string() }),
            output: z.string(),
            shardKey: () => {
              throw new Error("no key");
            },
          },
        },
      });
      await cluster.add({ id: "a", services: [svc.implement({ get: () => "ok" })] });
      const error = await failsWith(
        cluster.node("a").client(svc).get({ user: "u" }),
        "INVALID_ARGUMENT",
      );
      expect(error.message).toMatch(/cannot derive the shard key/);
    });

    it("prefers a local instance unless told not to", async () => {
      await using cluster = createTestCluster({ serialize });
      const served = new Map<string, number>();
      for (const id of ["a", "b", "c"]) {
        await cluster.add({
          id,
          services: [echoOn(id, served)],
          routing: { strategy: "round-robin" },
        });
      }
      const a = cluster.node("a");
      expect(await callMany(() => a.client(echo).echo({ text: "x" }), 30)).toEqual({ a: 30 });
      const spread = await callMany(
        () => a.client(echo, { preferLocal: false }).echo({ text: "x" }),
        30,
      );
      expect(spread).toEqual({ a: 10, b: 10, c: 10 });
    });

    it("prefers nodes in the caller's region and falls back to others", async () => {
      await using cluster = createTestCluster({ serialize });
      const { caller } = await echoCluster(
        cluster,
        [
          { id: "eu-1", region: "eu" },
          { id: "us-1", region: "us" },
          { id: "us-2", region: "us" },
        ],
        { id: "caller-eu", region: "eu", routing: { strategy: "round-robin" } },
      );
      const client = caller.client(echo);
      expect(await callMany(() => client.echo({ text: "x" }), 20)).toEqual({ "eu-1": 20 });
      expect(
        await callMany(
          () => caller.client(echo, { regionAffinity: false }).echo({ text: "x" }),
          30,
        ),
      ).toEqual({ "eu-1": 10, "us-1": 10, "us-2": 10 });

      // A caller in a region nobody serves spreads over everyone.
      const ap = await cluster.add({
        id: "caller-ap",
        region: "ap",
        routing: { strategy: "round-robin" },
      });
      expect(await callMany(() => ap.client(echo).echo({ text: "x" }), 30)).toEqual({
        "eu-1": 10,
        "us-1": 10,
        "us-2": 10,
      });

      // When the only eu node leaves, eu callers fall back to us.
      await cluster.node("eu-1").stop();
      await flush();
      expect(await callMany(() => client.echo({ text: "x" }), 20)).toEqual({
        "us-1": 10,
        "us-2": 10,
      });
    });

    it("selects service versions by range", async () => {
      await using cluster = createTestCluster({ serialize });
      const spec = (version: string) =>
        defineService({
          name: "greeter",
          version,
          actions: { hi: { input: z.object({}), output: z.string() } },
        });
      const v1 = spec("1.2.0");
      const v2 = spec("2.0.0");
      await cluster.add({ id: "v1", services: [v1.implement({ hi: () => "v1" })] });
      await cluster.add({ id: "v2", services: [v2.implement({ hi: () => "v2" })] });
      const caller = await cluster.add({ id: "caller", routing: { strategy: "round-robin" } });

      const hits = async (call: () => Promise<string>, times = 10) => {
        const seen: Record<string, number> = {};
        for (let i = 0; i < times; i++) {
          const who = await call();
          seen[who] = (seen[who] ?? 0) + 1;
        }
        return seen;
      };
      // A contract's client asks for ^<its version> by default.
      expect(await hits(() => caller.client(v1).hi({}))).toEqual({ v1: 10 });
      expect(await hits(() => caller.client(v2).hi({}))).toEqual({ v2: 10 });
      expect(await hits(() => caller.client(v1, { version: ">=1.0.0" }).hi({}))).toEqual({
        v1: 5,
        v2: 5,
      });
      expect(await hits(() => caller.client(v1, { version: "~1.2" }).hi({}))).toEqual({ v1: 10 });
      expect(
        await hits(
          async () => (await caller.call("greeter", "hi", {}, { version: "^2" })) as string,
        ),
      ).toEqual({ v2: 10 });
      // The queue group is per major version too.
      expect(await hits(() => caller.client(v1).hi({}, { via: "group" }))).toEqual({ v1: 10 });

      const none = await failsWith(caller.client(v1, { version: "^3.0.0" }).hi({}), "UNAVAILABLE");
      expect(none.message).toMatch(/no ready node serves greeter@\^3\.0\.0/);
      expect(none.details).toEqual({
        reason: "no-instance",
        service: "greeter",
        version: "^3.0.0",
      });
      expect(() => caller.client(v1, { version: "one point two" })).toThrowError(
        /not a valid semver range/,
      );
    });

    it("sends a call to a named node, bypassing the router", async () => {
      await using cluster = createTestCluster({ serialize });
      const { caller } = await echoCluster(cluster, [{ id: "a" }, { id: "b" }]);
      expect(
        await callMany(() => caller.client(echo).echo({ text: "x" }, { node: "b" }), 10),
      ).toEqual({
        b: 10,
      });
      const error = await failsWith(
        caller.client(echo).echo({ text: "x" }, { node: "nobody" }),
        "UNAVAILABLE",
      );
      expect(error.message).toMatch(/node nobody is not known to serve echo/);
    });
  });
}

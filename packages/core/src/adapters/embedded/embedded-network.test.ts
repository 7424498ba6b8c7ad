import { describe, expect, it } from "vitest";
import {
  DEAD_AFTER_MS,
  HEARTBEAT_MS,
  createTestCluster,
  echo,
  echoOn,
  failsWith,
  failure,
} from "../../test-support/cluster.js";
import { createEmbeddedNetwork } from "./index.js";

describe("embedded network", () => {
  it("cuts links on a partition, and the cluster re-forms after healing", async () => {
    await using cluster = createTestCluster();
    await cluster.add({ id: "a", services: [echoOn("a", new Map())] });
    const caller = await cluster.add({ id: "caller" });
    const events: string[] = [];
    caller.on((e) => {
      if (e.type === "joined") events.push(`joined ${e.member.id}`);
      if (e.type === "left") events.push(`left ${e.id} (${e.reason})`);
    });

    cluster.network.partition(["a"], ["caller"]);
    const cut = await failsWith(
      caller.client(echo).echo({ text: "x" }, { node: "a" }),
      "UNAVAILABLE",
    );
    expect(cut.message).toMatch(/no responders: node a is unreachable/);
    await cluster.advance(DEAD_AFTER_MS + HEARTBEAT_MS);
    expect(events).toEqual(["left a (timeout)"]);
    await failsWith(caller.client(echo).echo({ text: "x" }), "UNAVAILABLE");

    cluster.network.heal();
    await cluster.advance(2 * HEARTBEAT_MS);
    expect(events).toEqual(["left a (timeout)", "joined a"]);
    expect(await caller.client(echo).echo({ text: "back" })).toEqual({ text: "back", node: "a" });
  });

  it("delivers group calls only to linked members", async () => {
    await using cluster = createTestCluster();
    const served = new Map<string, number>();
    for (const id of ["a", "b"]) await cluster.add({ id, services: [echoOn(id, served)] });
    const caller = await cluster.add({ id: "caller" });
    cluster.network.partition(["a"], ["caller"]);
    for (let i = 0; i < 20; i++) {
      expect((await caller.client(echo).echo({ text: "x" }, { via: "group" })).node).toBe("b");
    }
    cluster.network.partition(["b"], ["caller"]);
    // Echo is idempotent, so the call is retried (on the clock) before it fails for good.
    const error = await failure(
      cluster.settle(caller.client(echo).echo({ text: "x" }, { via: "group" })),
    );
    expect(error.code).toBe("UNAVAILABLE");
    expect(error.message).toMatch(/no responders: group echo\.v1 is unreachable/);
  });

  it("lists attached nodes and refuses a second node with the same id", async () => {
    const network = createEmbeddedNetwork();
    const handlers = {
      onRequest: () => undefined,
      onReply: () => undefined,
      onCancel: () => undefined,
      onControl: () => undefined,
    };
    const one = network.transport();
    await one.start("n1", handlers);
    await expect(one.start("n1", handlers)).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    await expect(network.transport().start("n1", handlers)).rejects.toMatchObject({
      code: "ALREADY_EXISTS",
    });
    expect(network.nodes()).toEqual(["n1"]);
    network.kill("n1");
    expect(network.nodes()).toEqual([]);
    await one.close();
  });
});

import {
  anySchema,
  createEmbeddedNetwork,
  createNode,
  defineService,
  manualClock,
  type StrataNode,
} from "@strata/core";
import { waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { createAutoscaler } from "./autoscaler.js";
import { collectSignals } from "./signals.js";
import type { Actuator, ScalingPolicy, ServiceSignals } from "./types.js";

const signalsOf = (over: Partial<ServiceSignals> = {}): ServiceSignals => ({
  service: "inventory",
  at: 0,
  replicas: 2,
  requestsPerSecond: 100,
  utilisation: 0.5,
  cpu: 0.3,
  eventLoopDelayMs: 1,
  backlog: 0,
  lagMs: 0,
  sloBurn: 0,
  p99Ms: 10,
  ...over,
});

/** Wants one more replica above 80% utilisation, one fewer below 30%. */
const simple: ScalingPolicy = {
  name: "simple",
  decide: (s) => ({
    service: s.service,
    at: s.at,
    current: s.replicas,
    desired:
      s.utilisation > 0.8 ? s.replicas + 1 : s.utilisation < 0.3 ? s.replicas - 1 : s.replicas,
    reason: `utilisation ${s.utilisation}`,
    policy: "simple",
  }),
};

function fakeActuator(start: number): Actuator & { calls: number[] } {
  let replicas = start;
  const calls: number[] = [];
  return {
    name: "fake",
    calls,
    replicas: () => Promise.resolve(replicas),
    scale: (_service, n) => {
      calls.push(n);
      replicas = n;
      return Promise.resolve();
    },
  };
}

describe("the autoscaler loop", () => {
  it("evaluates every period and hands changes to the actuator, from the actuator's count", async () => {
    const clock = manualClock();
    let utilisation = 0.9;
    const actuator = fakeActuator(2);
    const scaler = createAutoscaler({
      services: [
        {
          service: "inventory",
          policy: simple,
          signals: () => Promise.resolve(signalsOf({ replicas: 2, utilisation })),
        },
      ],
      actuator,
      everyMs: 1_000,
      clock,
    });
    scaler.start();
    clock.advance(1_000);
    await waitFor(() => actuator.calls.length === 1);
    expect(actuator.calls).toEqual([3]);
    utilisation = 0.5;
    clock.advance(1_000);
    await waitFor(() => scaler.decisions().length === 2);
    expect(scaler.decisions().map((d) => d.outcome)).toEqual(["applied", "held"]);
    await scaler.stop();
    clock.advance(5_000);
    expect(scaler.decisions()).toHaveLength(2);
  });

  it("counts replicas still starting as idle, so it does not ask for them twice", async () => {
    const actuator = fakeActuator(4);
    const scaler = createAutoscaler({
      services: [
        {
          service: "inventory",
          policy: simple,
          // 2 of the 4 requested serve, busy at 0.9: over all 4 the load is 0.45.
          signals: () => Promise.resolve(signalsOf({ replicas: 2, utilisation: 0.9, cpu: 0.8 })),
        },
      ],
      actuator,
    });
    const [decision] = await scaler.evaluate();
    expect(decision).toMatchObject({ current: 4, desired: 4, outcome: "held" });
    expect(decision?.reason).toBe("utilisation 0.45");
    await scaler.stop();
  });

  it("only logs in dry-run mode, and records failures without stopping", async () => {
    const actuator = fakeActuator(2);
    let fail = true;
    const scaler = createAutoscaler({
      services: [
        {
          service: "inventory",
          policy: simple,
          signals: () => Promise.resolve(signalsOf({ utilisation: 0.95 })),
        },
        {
          service: "orders",
          policy: simple,
          signals: () =>
            fail
              ? Promise.reject(new Error("no answer"))
              : Promise.resolve(signalsOf({ service: "orders" })),
        },
      ],
      actuator,
      dryRun: true,
    });
    const first = await scaler.evaluate();
    expect(first.map((d) => [d.service, d.outcome])).toEqual([
      ["inventory", "dry-run"],
      ["orders", "failed"],
    ]);
    expect(first[1]?.error).toBe("no answer");
    expect(actuator.calls).toEqual([]);
    fail = false;
    expect((await scaler.evaluate())[1]?.outcome).toBe("held");
    await scaler.stop();
  });

  it("refuses a bad configuration at start-up", () => {
    const actuator = fakeActuator(1);
    const s = { service: "a", policy: simple, signals: () => Promise.resolve(signalsOf()) };
    expect(() => createAutoscaler({ services: [], actuator })).toThrow(/at least one service/);
    expect(() => createAutoscaler({ services: [s, s], actuator })).toThrow(/listed twice/);
    expect(() => createAutoscaler({ services: [s], actuator, everyMs: 5 })).toThrow(/everyMs/);
  });
});

describe("signals from the runtime", () => {
  let nodes: StrataNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    nodes = [];
  });

  it("aggregates calls, utilisation and CPU across the nodes serving a service", async () => {
    const network = createEmbeddedNetwork();
    const inventory = defineService({
      name: "inventory",
      version: "1.0.0",
      actions: {
        reserve: { input: anySchema<{ n: number }>(), output: anySchema<{ ok: boolean }>() },
      },
    });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const servers = ["s1", "s2"].map((id) =>
      createNode({
        id,
        transport: network.transport(),
        resilience: { serving: { concurrency: { type: "fixed", limit: 4 } } },
      }),
    );
    for (const s of servers) {
      s.serve(inventory.implement({ reserve: async () => (await gate, { ok: true }) }));
    }
    const caller = createNode({ id: "caller", transport: network.transport() });
    nodes = [...servers, caller];
    await Promise.all(nodes.map((n) => n.start()));
    await waitFor(() => caller.nodes().filter((n) => n.status === "ready").length >= 3);
    const client = caller.client(inventory);
    const pending = Array.from({ length: 4 }, (_, n) =>
      client.reserve({ n }, { node: n % 2 === 0 ? "s1" : "s2" }),
    );
    try {
      await waitFor(() => servers.every((s) => s.inFlight() === 2));
      const signals = await collectSignals(caller, "inventory");
      expect(signals).toMatchObject({ service: "inventory", replicas: 2, utilisation: 0.5 });
      expect(signals.cpu).toBeGreaterThanOrEqual(0);
    } finally {
      release();
      await Promise.all(pending);
    }
    await waitFor(async () => (await collectSignals(caller, "inventory")).requestsPerSecond > 0);
    expect((await collectSignals(caller, "nothing")).replicas).toBe(0);
    await expect(collectSignals(caller, "inventory", { capacityInFlight: 0 })).rejects.toThrow(
      /capacityInFlight/,
    );
  });
});

import { isStrataError, systemClock, type Clock, type StrataError } from "@strata/core";
import { describe, expect, it } from "vitest";
import { startFakeKube, type FakeKube } from "./fake-kube.test-support.js";
import {
  createKubernetesActuator,
  type KubernetesActuatorEvent,
  type KubernetesActuatorOptions,
} from "./kubernetes.js";

const SCALE = "/apis/apps/v1/namespaces/shop/deployments/orders/scale";

/** A real clock whose waits are recorded and cut to 1 ms, so conflict backoff runs fast. */
function recordingClock(): Clock & { readonly waits: number[] } {
  const base = systemClock(7);
  const waits: number[] = [];
  return {
    ...base,
    waits,
    setTimer(fn, ms) {
      // Request deadlines pass through untouched; only backoff waits (< 2 s) are shortened.
      if (ms >= 2_000) return base.setTimer(fn, ms);
      waits.push(ms);
      return base.setTimer(fn, 1);
    },
  };
}

async function setup(
  options: Partial<KubernetesActuatorOptions> = {},
  replicas = 2,
): Promise<{
  kube: FakeKube;
  actuator: ReturnType<typeof createKubernetesActuator>;
  events: KubernetesActuatorEvent[];
  clock: ReturnType<typeof recordingClock>;
}> {
  const kube = await startFakeKube();
  kube.setDeployment("shop", "orders", replicas);
  const events: KubernetesActuatorEvent[] = [];
  const clock = recordingClock();
  const actuator = createKubernetesActuator({
    connection: { type: "config", config: kube.kubeConfig({ namespace: "shop" }) },
    clock,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { kube, actuator, events, clock };
}

async function failure(promise: Promise<unknown>): Promise<StrataError> {
  try {
    await promise;
  } catch (error) {
    if (isStrataError(error)) return error;
    throw new Error(`expected a StrataError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected a failure");
}

describe("Kubernetes actuator", () => {
  it("reads spec.replicas through the scale subresource with the bearer token", async () => {
    const { kube, actuator } = await setup({}, 3);
    await using _ = kube;
    expect(actuator.namespace).toBe("shop");
    expect(await actuator.replicas("orders")).toBe(3);
    expect(kube.requests).toEqual([
      expect.objectContaining({ method: "GET", path: SCALE, authorization: "Bearer fake-token" }),
    ]);
  });

  it("reads a deployment at zero replicas, whose Scale omits spec.replicas", async () => {
    const { kube, actuator } = await setup({}, 0);
    await using _ = kube;
    expect(await actuator.replicas("orders")).toBe(0);
  });

  it("replaces the Scale with the resourceVersion it read and the field manager", async () => {
    const { kube, actuator, events } = await setup();
    await using _ = kube;
    const before = kube.deployment("shop", "orders")?.resourceVersion;
    await actuator.scale("orders", 5);
    expect(kube.deployment("shop", "orders")?.replicas).toBe(5);
    expect(kube.requests.map((r) => r.method)).toEqual(["GET", "PUT"]);
    const put = kube.requests[1];
    expect(put?.path).toBe(SCALE);
    expect(put?.query).toEqual({ fieldManager: "strata-autoscale" });
    expect(put?.contentType).toMatch(/^application\/json/);
    expect(put?.body).toEqual({
      apiVersion: "autoscaling/v1",
      kind: "Scale",
      metadata: { name: "orders", namespace: "shop", resourceVersion: before },
      spec: { replicas: 5 },
    });
    expect(events).toEqual([
      { type: "scaled", service: "orders", deployment: "orders", from: 2, to: 5 },
    ]);
  });

  it("scales to zero and back", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    await actuator.scale("orders", 0);
    expect(kube.deployment("shop", "orders")?.replicas).toBe(0);
    await actuator.scale("orders", 1);
    expect(kube.deployment("shop", "orders")?.replicas).toBe(1);
  });

  it("does not write when the deployment already has the replicas asked for", async () => {
    const { kube, actuator, events } = await setup({}, 4);
    await using _ = kube;
    await actuator.scale("orders", 4);
    expect(kube.requests.map((r) => r.method)).toEqual(["GET"]);
    expect(events).toEqual([
      { type: "unchanged", service: "orders", deployment: "orders", replicas: 4 },
    ]);
  });

  it("maps services to deployments by table or function, and a custom field manager", async () => {
    const kube = await startFakeKube();
    await using _ = kube;
    kube.setDeployment("default", "orders-service", 1);
    kube.setDeployment("default", "svc-billing", 1);
    const config = kube.kubeConfig();
    const byTable = createKubernetesActuator({
      connection: { type: "config", config },
      deployments: { orders: "orders-service" },
      fieldManager: "shop-scaler",
    });
    expect(byTable.namespace).toBe("default");
    await byTable.scale("orders", 2);
    expect(kube.deployment("default", "orders-service")?.replicas).toBe(2);
    expect(kube.requests.at(-1)?.query).toEqual({ fieldManager: "shop-scaler" });
    const byFunction = createKubernetesActuator({
      connection: { type: "config", config },
      deployments: (service) => `svc-${service}`,
    });
    await byFunction.scale("billing", 3);
    expect(kube.deployment("default", "svc-billing")?.replicas).toBe(3);
    // Not a valid Deployment name: refused before any request.
    const count = kube.requests.length;
    expect((await failure(byTable.scale("Orders_V2", 1))).code).toBe("INVALID_ARGUMENT");
    expect(kube.requests.length).toBe(count);
  });

  it("refuses replica counts the API could not hold, without a request", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 31]) {
      expect((await failure(actuator.scale("orders", bad))).code).toBe("INVALID_ARGUMENT");
    }
    expect(kube.requests).toEqual([]);
  });

  it("on a conflict re-reads, compares again and retries with the new resourceVersion", async () => {
    const { kube, actuator, events, clock } = await setup();
    await using _ = kube;
    // Another writer sets 3 between our read and our write: the PUT carries a stale version.
    kube.inject({ type: "external-write", replicas: 3 }, { match: { method: "PUT" } });
    await actuator.scale("orders", 6);
    expect(kube.deployment("shop", "orders")?.replicas).toBe(6);
    expect(kube.requests.map((r) => r.method)).toEqual(["GET", "PUT", "GET", "PUT"]);
    const [firstPut, secondPut] = kube.requests.filter((r) => r.method === "PUT");
    expect(firstPut?.body).not.toEqual(secondPut?.body);
    expect(events.map((e) => e.type)).toEqual(["conflict", "scaled"]);
    expect(events[1]).toMatchObject({ from: 3, to: 6 });
    // The wait is jittered within the first backoff step.
    expect(clock.waits).toHaveLength(1);
    expect(clock.waits[0]).toBeGreaterThanOrEqual(0);
    expect(clock.waits[0]).toBeLessThan(100);
  });

  it("stops after a conflict when the other writer already set the asked count", async () => {
    const { kube, actuator, events } = await setup();
    await using _ = kube;
    kube.inject({ type: "external-write", replicas: 6 }, { match: { method: "PUT" } });
    await actuator.scale("orders", 6);
    expect(kube.requests.map((r) => r.method)).toEqual(["GET", "PUT", "GET"]);
    expect(events.map((e) => e.type)).toEqual(["conflict", "unchanged"]);
  });

  it("gives up with ABORTED after maxConflicts conflicts, backing off exponentially", async () => {
    const { kube, actuator, clock } = await setup({ maxConflicts: 4, conflictBackoffMs: 100 });
    await using _ = kube;
    kube.inject({ type: "status", status: 409 }, { times: 100, match: { method: "PUT" } });
    const error = await failure(actuator.scale("orders", 9));
    expect(error.code).toBe("ABORTED");
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/gave up after 4 conflicts/);
    expect(error.details).toMatchObject({ deployment: "orders", namespace: "shop", conflicts: 4 });
    expect(kube.requests.filter((r) => r.method === "PUT")).toHaveLength(4);
    expect(kube.deployment("shop", "orders")?.replicas).toBe(2);
    expect(clock.waits).toHaveLength(3);
    clock.waits.forEach((wait, i) => expect(wait).toBeLessThan(100 * 2 ** i));
  });

  it("maps 403 to PERMISSION_DENIED naming the RBAC rule", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    kube.inject({ type: "status", status: 403 }, { match: { method: "PUT" } });
    const error = await failure(actuator.scale("orders", 3));
    expect(error.code).toBe("PERMISSION_DENIED");
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('resources: ["deployments/scale"]');
    expect(error.message).toContain('verbs: ["get", "update", "patch"]');
    expect(error.message).toContain('namespace "shop"');
    expect(error.details).toMatchObject({ status: 403 });
  });

  it("maps a rejected token (401) to UNAUTHENTICATED", async () => {
    const kube = await startFakeKube();
    await using _ = kube;
    kube.setDeployment("default", "orders", 1);
    const actuator = createKubernetesActuator({
      connection: { type: "config", config: kube.kubeConfig({ token: "stolen" }) },
    });
    const error = await failure(actuator.replicas("orders"));
    expect(error.code).toBe("UNAUTHENTICATED");
    expect(error.message).toMatch(/credentials/);
  });

  it("maps a missing deployment to NOT_FOUND", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    const error = await failure(actuator.scale("payments", 2));
    expect(error.code).toBe("NOT_FOUND");
    expect(error.message).toContain("deployment shop/payments does not exist");
    expect(kube.requests.map((r) => r.method)).toEqual(["GET"]);
  });

  it("maps 500 and 429 to retryable UNAVAILABLE, keeping Retry-After", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    kube.inject({ type: "status", status: 500 });
    const server = await failure(actuator.scale("orders", 3));
    expect(server.code).toBe("UNAVAILABLE");
    expect(server.retryable).toBe(true);
    expect(server.message).toContain("injected 500");
    kube.inject(
      { type: "status", status: 429, retryAfterSeconds: 2 },
      { match: { method: "PUT" } },
    );
    const throttled = await failure(actuator.scale("orders", 3));
    expect(throttled.code).toBe("UNAVAILABLE");
    expect(throttled.details).toMatchObject({ status: 429, retryAfterMs: 2000 });
    expect(kube.deployment("shop", "orders")?.replicas).toBe(2);
  });

  it("maps a 422 from the API server to INVALID_ARGUMENT", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    kube.inject({ type: "status", status: 422 }, { match: { method: "PUT" } });
    expect((await failure(actuator.scale("orders", 3))).code).toBe("INVALID_ARGUMENT");
  });

  it("fails a request that outlives requestTimeoutMs with DEADLINE_EXCEEDED", async () => {
    const { kube, actuator } = await setup({ requestTimeoutMs: 100, clock: systemClock(1) });
    await using _ = kube;
    kube.inject({ type: "delay", ms: 1_500 });
    const started = performance.now();
    const error = await failure(actuator.replicas("orders"));
    expect(error.code).toBe("DEADLINE_EXCEEDED");
    expect(error.retryable).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("stops when the caller aborts, with CANCELLED", async () => {
    const { kube, actuator } = await setup();
    await using _ = kube;
    kube.inject({ type: "delay", ms: 1_500 });
    const controller = new AbortController();
    const pending = actuator.scale("orders", 4, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    expect((await failure(pending)).code).toBe("CANCELLED");
    expect((await failure(actuator.replicas("orders", { signal: controller.signal }))).code).toBe(
      "CANCELLED",
    );
  });

  it("maps an unreachable API server to UNAVAILABLE", async () => {
    const kube = await startFakeKube();
    const config = kube.kubeConfig();
    await kube.close();
    const actuator = createKubernetesActuator({ connection: { type: "config", config } });
    const error = await failure(actuator.replicas("orders"));
    expect(error.code).toBe("UNAVAILABLE");
    expect(error.retryable).toBe(true);
  });

  describe("hostile responses", () => {
    const cases: {
      name: string;
      response: { status: number; contentType: string; body: string };
      message: RegExp;
    }[] = [
      {
        name: "a body that is not JSON",
        response: { status: 200, contentType: "application/json", body: "<html>proxy</html>" },
        message: /not JSON/,
      },
      {
        name: "a Scale without spec",
        response: {
          status: 200,
          contentType: "application/json",
          body: JSON.stringify({ kind: "Scale", metadata: { resourceVersion: "1" } }),
        },
        message: /no spec/,
      },
      {
        name: "negative replicas",
        response: {
          status: 200,
          contentType: "application/json",
          body: JSON.stringify({ metadata: { resourceVersion: "1" }, spec: { replicas: -3 } }),
        },
        message: /spec\.replicas/,
      },
      {
        name: "replicas as a string",
        response: {
          status: 200,
          contentType: "application/json",
          body: JSON.stringify({ metadata: { resourceVersion: "1" }, spec: { replicas: "9" } }),
        },
        message: /spec\.replicas/,
      },
      {
        name: "no resourceVersion",
        response: {
          status: 200,
          contentType: "application/json",
          body: JSON.stringify({ spec: { replicas: 2 } }),
        },
        message: /resourceVersion/,
      },
      {
        name: "a JSON null",
        response: { status: 200, contentType: "application/json", body: "null" },
        message: /malformed/,
      },
    ];
    for (const { name, response, message } of cases) {
      it(`fails clearly on ${name}, without writing`, async () => {
        const { kube, actuator } = await setup();
        await using _ = kube;
        kube.inject({ type: "raw", ...response }, { match: { method: "GET" } });
        const error = await failure(actuator.scale("orders", 5));
        expect(error.code).toBe("INTERNAL");
        expect(error.message).toMatch(/Kubernetes API/);
        expect(error.message).toMatch(message);
        expect(kube.requests.map((r) => r.method)).toEqual(["GET"]);
        expect(kube.deployment("shop", "orders")?.replicas).toBe(2);
      });
    }

    it("fails clearly on an error status with a non-JSON body", async () => {
      const { kube, actuator } = await setup();
      await using _ = kube;
      kube.inject({ type: "raw", status: 502, contentType: "text/html", body: "<h1>bad</h1>" });
      const error = await failure(actuator.replicas("orders"));
      expect(error.code).toBe("UNAVAILABLE");
      expect(error.message).toContain("(502)");
    });
  });

  it("rejects a configuration it cannot load, and a bad namespace", async () => {
    expect(() =>
      createKubernetesActuator({ connection: { type: "file", path: "/nonexistent/kubeconfig" } }),
    ).toThrowError(/cannot load the Kubernetes configuration/);
    const kube = await startFakeKube();
    await using _ = kube;
    expect(() =>
      createKubernetesActuator({
        connection: { type: "config", config: kube.kubeConfig() },
        namespace: "Not_A_Namespace",
      }),
    ).toThrowError(/invalid Kubernetes namespace/);
  });
});

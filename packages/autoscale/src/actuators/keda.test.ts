import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { StrataError, manualClock, type ManualClock } from "@strata/core";
import { describe, expect, it } from "vitest";
import type { ServiceSignals } from "../types.js";
import { kedaReading, startKedaExternalScaler, type KedaExternalScalerOptions } from "./keda.js";

const PROTO = fileURLToPath(new URL("../../proto/externalscaler.proto", import.meta.url));

interface Ref {
  name?: string;
  namespace?: string;
  scalerMetadata?: Record<string, string>;
}
type Callback = (error: grpc.ServiceError | null, value: unknown) => void;
interface ScalerClient extends grpc.Client {
  IsActive(request: Ref, callback: Callback): void;
  StreamIsActive(request: Ref): grpc.ClientReadableStream<{ result: boolean }>;
  GetMetricSpec(request: Ref, callback: Callback): void;
  GetMetrics(request: { scaledObjectRef?: Ref; metricName?: string }, callback: Callback): void;
}

function clientFor(port: number): ScalerClient {
  const definition = loadSync(PROTO, { keepCase: true, longs: Number, defaults: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    externalscaler: {
      ExternalScaler: new (address: string, credentials: grpc.ChannelCredentials) => ScalerClient;
    };
  };
  return new loaded.externalscaler.ExternalScaler(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
}

function call<T>(invoke: (callback: Callback) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    invoke((error, value) => (error === null ? resolve(value as T) : reject(error))),
  );
}

async function grpcFailure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error("expected a gRPC error");
}

/** Waits for a condition with a deadline, instead of sleeping a guessed time. */
async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A manual clock that also tells how many timers of a given delay are waiting. */
function pollClock(): ManualClock & { waiting(ms: number): number } {
  const clock = manualClock();
  const live = new Map<number, number>();
  let next = 0;
  return {
    ...clock,
    advance: (ms) => clock.advance(ms),
    stall: (ms) => clock.stall(ms),
    setTimer(fn, ms) {
      const id = next++;
      live.set(id, ms);
      const timer = clock.setTimer(() => {
        live.delete(id);
        fn();
      }, ms);
      return {
        clear: () => {
          live.delete(id);
          timer.clear();
        },
      };
    },
    waiting: (ms) => [...live.values()].filter((delay) => delay === ms).length,
  };
}

function signalsOf(service: string, values: Partial<ServiceSignals> = {}): ServiceSignals {
  return {
    service,
    at: 0,
    replicas: 0,
    requestsPerSecond: 0,
    utilisation: 0,
    cpu: 0,
    eventLoopDelayMs: 0,
    backlog: 0,
    lagMs: 0,
    sloBurn: 0,
    p99Ms: 0,
    ...values,
  };
}

/** A table of services; unknown ones are NOT_FOUND, as the options contract asks. */
function table(): {
  services: Map<string, Partial<ServiceSignals>>;
  calls: string[];
  signals: KedaExternalScalerOptions["signals"];
} {
  const services = new Map<string, Partial<ServiceSignals>>();
  const calls: string[] = [];
  return {
    services,
    calls,
    signals: (service) => {
      calls.push(service);
      const values = services.get(service);
      if (values === undefined) {
        return Promise.reject(new StrataError("NOT_FOUND", `unknown service "${service}"`));
      }
      return Promise.resolve(signalsOf(service, values));
    },
  };
}

const orders: Ref = { name: "orders", namespace: "shop", scalerMetadata: { service: "orders" } };

describe("kedaReading", () => {
  it("serves totals, turning mean utilisation and CPU into busy replicas", () => {
    const s = signalsOf("orders", {
      replicas: 10,
      utilisation: 0.9,
      cpu: 0.5,
      backlog: 120,
      requestsPerSecond: 42.5,
    });
    expect(kedaReading(s, "utilisation", 0.7)).toMatchObject({ value: 9, active: true });
    expect(kedaReading(s, "cpu", 0.6).value).toBe(5);
    expect(kedaReading(s, "backlog", 100).value).toBe(120);
    expect(kedaReading(s, "requestsPerSecond", 50)).toMatchObject({
      value: 42.5,
      metricName: "strata-requests-per-second-orders",
    });
  });

  it("is active on any waiting or in-flight work, inactive when idle", () => {
    expect(kedaReading(signalsOf("a"), "backlog", 1).active).toBe(false);
    expect(kedaReading(signalsOf("a", { backlog: 1 }), "utilisation", 1).active).toBe(true);
    expect(kedaReading(signalsOf("a", { requestsPerSecond: 0.1 }), "backlog", 1).active).toBe(true);
  });

  it("refuses signals that are not finite and non-negative", () => {
    expect(() => kedaReading(signalsOf("a", { backlog: Number.NaN }), "backlog", 1)).toThrowError(
      /invalid backlog/,
    );
    expect(() => kedaReading(signalsOf("a", { replicas: -1 }), "cpu", 1)).toThrowError(
      /invalid replicas/,
    );
  });
});

describe("KEDA external scaler (gRPC)", () => {
  it("answers IsActive, GetMetricSpec and GetMetrics from the service's signals", async () => {
    const t = table();
    t.services.set("orders", { replicas: 2, backlog: 250 });
    await using scaler = await startKedaExternalScaler({
      port: 0,
      signals: t.signals,
      metric: "backlog",
      target: 100,
    });
    const client = clientFor(scaler.port);
    try {
      expect(await call((cb) => client.IsActive(orders, cb))).toEqual({ result: true });
      expect(await call((cb) => client.GetMetricSpec(orders, cb))).toEqual({
        metricSpecs: [
          { metricName: "strata-backlog-orders", targetSize: 100, targetSizeFloat: 100 },
        ],
      });
      expect(
        await call((cb) =>
          client.GetMetrics({ scaledObjectRef: orders, metricName: "strata-backlog-orders" }, cb),
        ),
      ).toEqual({
        metricValues: [
          { metricName: "strata-backlog-orders", metricValue: 250, metricValueFloat: 250 },
        ],
      });
      t.services.set("orders", { replicas: 2 });
      expect(await call((cb) => client.IsActive(orders, cb))).toEqual({ result: false });
    } finally {
      client.close();
    }
  });

  it("lets a trigger's metadata choose the metric and target", async () => {
    const t = table();
    t.services.set("orders", { replicas: 4, utilisation: 0.5 });
    await using scaler = await startKedaExternalScaler({
      port: 0,
      signals: t.signals,
      metric: "backlog",
      target: 100,
    });
    const client = clientFor(scaler.port);
    try {
      const ref = { scalerMetadata: { service: "orders", metric: "utilisation", target: "0.8" } };
      expect(await call((cb) => client.GetMetricSpec(ref, cb))).toEqual({
        metricSpecs: [
          { metricName: "strata-utilisation-orders", targetSize: 1, targetSizeFloat: 0.8 },
        ],
      });
      expect(await call((cb) => client.GetMetrics({ scaledObjectRef: ref }, cb))).toEqual({
        metricValues: [
          { metricName: "strata-utilisation-orders", metricValue: 2, metricValueFloat: 2 },
        ],
      });
      const badMetric = { scalerMetadata: { service: "orders", metric: "p99" } };
      const error = await grpcFailure(call((cb) => client.GetMetricSpec(badMetric, cb)));
      expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error.details).toMatch(/unknown metric "p99"/);
      const badTarget = { scalerMetadata: { service: "orders", target: "-1" } };
      expect((await grpcFailure(call((cb) => client.GetMetricSpec(badTarget, cb)))).code).toBe(
        grpc.status.INVALID_ARGUMENT,
      );
    } finally {
      client.close();
    }
  });

  it("answers NOT_FOUND for an unknown service and INVALID_ARGUMENT without metadata", async () => {
    const t = table();
    await using scaler = await startKedaExternalScaler({
      port: 0,
      signals: t.signals,
      metric: "backlog",
      target: 10,
    });
    const client = clientFor(scaler.port);
    try {
      const unknown = { scalerMetadata: { service: "nope" } };
      for (const invoke of [
        (cb: Callback) => client.IsActive(unknown, cb),
        (cb: Callback) => client.GetMetricSpec(unknown, cb),
        (cb: Callback) => client.GetMetrics({ scaledObjectRef: unknown }, cb),
      ]) {
        const error = await grpcFailure(call(invoke));
        expect(error.code).toBe(grpc.status.NOT_FOUND);
        expect(error.details).toBe('unknown service "nope"');
      }
      for (const invoke of [
        (cb: Callback) => client.IsActive({ name: "orders" }, cb),
        (cb: Callback) => client.GetMetricSpec({ scalerMetadata: { service: " " } }, cb),
        (cb: Callback) => client.GetMetrics({ metricName: "x" }, cb),
      ]) {
        const error = await grpcFailure(call(invoke));
        expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
      }
      expect(t.calls).toEqual(["nope", "nope", "nope"]);
    } finally {
      client.close();
    }
  });

  it("hides internals of unexpected failures and times out slow signals", async () => {
    const clock = manualClock();
    await using scaler = await startKedaExternalScaler({
      port: 0,
      clock,
      signalsTimeoutMs: 1_000,
      metric: "backlog",
      target: 10,
      signals: (service) =>
        service === "broken"
          ? Promise.reject(new Error("password=hunter2 at db.internal:5432"))
          : new Promise(() => undefined),
    });
    const client = clientFor(scaler.port);
    try {
      const broken = await grpcFailure(
        call((cb) => client.IsActive({ scalerMetadata: { service: "broken" } }, cb)),
      );
      expect(broken.code).toBe(grpc.status.INTERNAL);
      expect(broken.details).not.toContain("hunter2");
      const slow = call((cb) => client.IsActive({ scalerMetadata: { service: "slow" } }, cb));
      await until(() => clock.pending() > 0);
      clock.advance(1_000);
      expect((await grpcFailure(slow)).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    } finally {
      client.close();
    }
  });

  it("StreamIsActive sends the state at once, then only changes, and stops on cancel", async () => {
    const t = table();
    t.services.set("orders", { replicas: 0 });
    const clock = pollClock();
    await using scaler = await startKedaExternalScaler({
      port: 0,
      clock,
      pollIntervalMs: 1_000,
      signals: t.signals,
      metric: "backlog",
      target: 10,
    });
    const client = clientFor(scaler.port);
    try {
      const stream = client.StreamIsActive(orders);
      const received: boolean[] = [];
      let status: grpc.StatusObject | undefined;
      stream.on("data", (message: { result: boolean }) => received.push(message.result));
      stream.on("error", () => undefined);
      stream.on("status", (s: grpc.StatusObject) => (status = s));
      await until(() => received.length === 1);
      expect(received).toEqual([false]);
      // Two polls with no change: nothing sent.
      for (let i = 0; i < 2; i++) {
        const polls = t.calls.length;
        await until(() => clock.waiting(1_000) === 1);
        clock.advance(1_000);
        await until(() => t.calls.length === polls + 1);
      }
      expect(received).toEqual([false]);
      // Work arrives: the next poll sends true.
      t.services.set("orders", { replicas: 0, backlog: 3 });
      await until(() => clock.waiting(1_000) === 1);
      clock.advance(1_000);
      await until(() => received.length === 2);
      expect(received).toEqual([false, true]);
      // The client cancels: the server stops polling.
      await until(() => clock.waiting(1_000) === 1);
      stream.cancel();
      await until(() => status !== undefined);
      expect(status?.code).toBe(grpc.status.CANCELLED);
      await until(() => clock.pending() === 0);
      const polls = t.calls.length;
      clock.advance(10_000);
      expect(t.calls.length).toBe(polls);
    } finally {
      client.close();
    }
  });

  it("StreamIsActive ends with the error status when the service goes away", async () => {
    const t = table();
    t.services.set("orders", { replicas: 1, backlog: 1 });
    const clock = pollClock();
    await using scaler = await startKedaExternalScaler({
      port: 0,
      clock,
      pollIntervalMs: 1_000,
      signals: t.signals,
      metric: "backlog",
      target: 10,
    });
    const client = clientFor(scaler.port);
    try {
      const stream = client.StreamIsActive(orders);
      const received: boolean[] = [];
      let status: grpc.StatusObject | undefined;
      stream.on("data", (message: { result: boolean }) => received.push(message.result));
      stream.on("error", () => undefined);
      stream.on("status", (s: grpc.StatusObject) => (status = s));
      await until(() => received.length === 1);
      t.services.delete("orders");
      await until(() => clock.waiting(1_000) === 1);
      clock.advance(1_000);
      await until(() => status !== undefined);
      expect(status?.code).toBe(grpc.status.NOT_FOUND);
      expect(clock.pending()).toBe(0);
    } finally {
      client.close();
    }
  });

  it("close ends open streams and frees the port", async () => {
    const t = table();
    t.services.set("orders", { replicas: 1 });
    const clock = manualClock();
    const scaler = await startKedaExternalScaler({
      port: 0,
      clock,
      signals: t.signals,
      metric: "backlog",
      target: 10,
    });
    const client = clientFor(scaler.port);
    try {
      const stream = client.StreamIsActive(orders);
      let ended = false;
      stream.on("data", () => undefined);
      stream.on("error", () => undefined);
      stream.on("status", () => (ended = true));
      await until(() => clock.pending() === 1);
      await scaler.close();
      await until(() => ended);
      expect(clock.pending()).toBe(0);
      await scaler.close();
    } finally {
      client.close();
    }
  });

  it("refuses invalid options", async () => {
    const t = table();
    await expect(
      startKedaExternalScaler({ port: 0, signals: t.signals, metric: "backlog", target: 0 }),
    ).rejects.toThrowError(/target must be a positive number/);
    await expect(
      startKedaExternalScaler({
        port: 0,
        signals: t.signals,
        metric: "latency" as "backlog",
        target: 1,
      }),
    ).rejects.toThrowError(/unknown metric/);
  });
});

describe("KEDA metrics-api fallback (HTTP JSON)", () => {
  async function startHttp(): Promise<{
    base: string;
    scaler: Awaited<ReturnType<typeof startKedaExternalScaler>>;
    t: ReturnType<typeof table>;
  }> {
    const t = table();
    t.services.set("orders", { replicas: 3, backlog: 42, utilisation: 0.5 });
    t.services.set("billing v2", { replicas: 1 });
    const scaler = await startKedaExternalScaler({
      port: 0,
      http: { port: 0 },
      signals: t.signals,
      metric: "backlog",
      target: 10,
    });
    return { base: `http://127.0.0.1:${String(scaler.httpPort)}`, scaler, t };
  }

  it("serves GET /keda/<service> as {value}", async () => {
    const { base, scaler } = await startHttp();
    await using _ = scaler;
    const response = await fetch(`${base}/keda/orders`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(await response.json()).toEqual({
      value: 42,
      active: true,
      metric: "backlog",
      target: 10,
    });
    const utilisation = await fetch(`${base}/keda/orders?metric=utilisation&target=0.5`);
    expect(await utilisation.json()).toMatchObject({ value: 1.5, metric: "utilisation" });
    const encoded = await fetch(`${base}/keda/billing%20v2`);
    expect(await encoded.json()).toMatchObject({ value: 0, active: false });
  });

  it("answers bad paths, methods, names and unknown services with JSON errors", async () => {
    const { base, scaler } = await startHttp();
    await using _ = scaler;
    const cases: [string, RequestInit, number, string][] = [
      ["/keda/nope", {}, 404, "NOT_FOUND"],
      ["/keda/", {}, 404, "NOT_FOUND"],
      ["/keda/orders/extra", {}, 404, "NOT_FOUND"],
      ["/metrics", {}, 404, "NOT_FOUND"],
      ["/keda/%E0%A4%A", {}, 400, "INVALID_ARGUMENT"],
      ["/keda/orders?metric=nonsense", {}, 400, "INVALID_ARGUMENT"],
      ["/keda/orders", { method: "POST", body: "{}" }, 405, "UNIMPLEMENTED"],
    ];
    for (const [path, init, status, code] of cases) {
      const response = await fetch(`${base}${path}`, init);
      expect({ path, status: response.status }).toEqual({ path, status });
      expect(await response.json()).toMatchObject({ error: { code } });
    }
  });

  it("is off unless asked for", async () => {
    const t = table();
    await using scaler = await startKedaExternalScaler({
      port: 0,
      signals: t.signals,
      metric: "backlog",
      target: 10,
    });
    expect(scaler.httpPort).toBeUndefined();
  });
});

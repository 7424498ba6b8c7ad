import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { trace } from "@opentelemetry/api";
import type { ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import {
  StrataError,
  createEmbeddedNetwork,
  createEvents,
  createNode,
  defineService,
  openEmbeddedKv,
  openEmbeddedLog,
  type NodeEvent,
  type StrataNode,
} from "@strata/core";
import { waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createLogger } from "./logger.js";
import { startMetrics, type Metrics } from "./metrics.js";
import { TraceCollector, criticalPath, type SpanRecord } from "./traces.js";
import { startTracing, type Tracing } from "./tracing.js";

const echo = defineService({
  name: "echo",
  version: "1.0.0",
  actions: {
    say: { input: z.object({ text: z.string() }), output: z.object({ text: z.string() }) },
    fail: { input: z.object({ code: z.string() }), output: z.object({}) },
  },
});

const echoImpl = echo.implement({
  say: ({ text }) => ({ text }),
  fail: ({ code }) => {
    throw new StrataError(code === "INTERNAL" ? "INTERNAL" : "INVALID_ARGUMENT", `asked to fail`);
  },
});

/** One line of the Prometheus text format: a sample with its labels. */
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A strict parser of the Prometheus text exposition format (0.0.4): throws on any bad line. */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m === null) throw new Error(`bad comment line: ${line}`);
      if (m[1] === "TYPE") {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3] as string)) {
          throw new Error(`bad type: ${line}`);
        }
        types.set(m[2] as string, m[3] as string);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/.exec(line);
    if (m === null) throw new Error(`bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? "";
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
    let consumed = 0;
    for (let l = labelRe.exec(body); l !== null; l = labelRe.exec(body)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, "$1");
      consumed = labelRe.lastIndex;
    }
    if (consumed !== body.length) throw new Error(`bad labels: ${line}`);
    const value = Number(m[4] === "+Inf" ? Infinity : m[4]);
    if (Number.isNaN(value) && m[4] !== "NaN") throw new Error(`bad value: ${line}`);
    samples.push({ name: m[1] as string, labels, value });
  }
  if (types.size === 0) throw new Error("no metric families");
  return samples;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function cluster(
  serverTelemetry: Parameters<typeof createNode>[0]["telemetry"],
  clientTelemetry?: Parameters<typeof createNode>[0]["telemetry"],
): Promise<{ server: StrataNode; client: StrataNode }> {
  const network = createEmbeddedNetwork();
  const server = createNode({
    id: "server",
    transport: network.transport(),
    services: [echoImpl],
    heartbeatIntervalMs: 100,
    ...(serverTelemetry === undefined ? {} : { telemetry: serverTelemetry }),
  });
  const client = createNode({
    id: "client",
    transport: network.transport(),
    heartbeatIntervalMs: 100,
    ...(clientTelemetry === undefined ? {} : { telemetry: clientTelemetry }),
  });
  await server.start();
  await client.start();
  cleanups.push(async () => {
    await client.stop({ drainTimeoutMs: 100 });
    await server.stop({ drainTimeoutMs: 100 });
  });
  await client.waitForService("echo", { timeoutMs: 5_000 });
  return { server, client };
}

async function metricsFor(nodeId: string): Promise<Metrics> {
  const metrics = await startMetrics({ nodeId, port: 0, host: "127.0.0.1" });
  cleanups.push(() => metrics.close());
  return metrics;
}

describe("Prometheus metrics", () => {
  it("serves /metrics per node, in a format that parses, with the documented series", async () => {
    const serverMetrics = await metricsFor("server");
    const clientMetrics = await metricsFor("client");
    const { client } = await cluster(
      {
        meterProvider: serverMetrics.meterProvider,
        slos: [{ name: "echo-say", service: "echo", kind: "availability", objective: 0.99 }],
      },
      { meterProvider: clientMetrics.meterProvider },
    );
    const api = client.client(echo);
    for (let i = 0; i < 20; i++) await api.say({ text: `hello ${i}` });
    await expect(api.fail({ code: "INVALID_ARGUMENT" })).rejects.toThrow();
    await expect(api.fail({ code: "INTERNAL" })).rejects.toThrow();

    const response = await fetch(serverMetrics.url as string);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/text\/plain/);
    const server = parsePrometheus(await response.text());
    const find = (name: string, labels: Record<string, string> = {}): Sample[] =>
      server.filter(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      );
    const ok = find("strata_rpc_server_duration_seconds_count", {
      rpc_service: "echo",
      rpc_method: "say",
      rpc_response_status_code: "OK",
    });
    expect(ok.map((s) => s.value)).toEqual([20]);
    expect(
      find("strata_rpc_server_duration_seconds_count", { rpc_response_status_code: "INTERNAL" })[0]
        ?.value,
    ).toBe(1);
    expect(
      find("strata_rpc_server_duration_seconds_bucket", { rpc_method: "say", le: "+Inf" })[0]
        ?.value,
    ).toBe(20);
    expect(find("strata_rpc_server_in_flight")[0]?.value).toBe(0);
    expect(find("strata_node_info", { strata_node_id: "server" })[0]?.value).toBe(1);
    expect(find("strata_slo_attainment", { slo: "echo-say" }).length).toBe(1);
    expect(find("strata_slo_burn_rate", { slo: "echo-say", window: "5m" }).length).toBe(1);
    expect(find("strata_slo_alert_firing", { slo: "echo-say", severity: "page" })[0]?.value).toBe(
      0,
    );
    expect(find("nodejs_eventloop_delay_p99_seconds").length).toBe(1);
    expect(find("nodejs_heap_size_used_bytes")[0]?.value).toBeGreaterThan(0);
    // The server's endpoint shows the server only: calls it made are not there.
    expect(find("strata_rpc_client_duration_seconds_count", { rpc_method: "say" })).toEqual([]);

    const clientSide = parsePrometheus(await clientMetrics.scrape());
    expect(
      clientSide.find(
        (s) =>
          s.name === "strata_rpc_client_duration_seconds_count" &&
          s.labels.rpc_method === "say" &&
          s.labels.rpc_response_status_code === "OK",
      )?.value,
    ).toBe(20);

    // Hostile scrapes: other paths and methods get clear answers, and the server keeps serving.
    const base = (serverMetrics.url as string).replace(/\/metrics$/, "");
    expect((await fetch(`${base}/secrets`)).status).toBe(404);
    expect((await fetch(serverMetrics.url as string, { method: "POST" })).status).toBe(405);
    expect((await fetch(serverMetrics.url as string)).status).toBe(200);
  });

  it("carries every series docs/observability.md documents", async () => {
    const doc = await readFile(new URL("../../../docs/observability.md", import.meta.url), "utf8");
    const table = doc.slice(doc.indexOf("## Metrics"), doc.indexOf("## Service level objectives"));
    // The first cell of each row of the metrics table names the series (the others, labels).
    const documented = new Set(
      table
        .split("\n")
        .filter((line) => line.startsWith("| `"))
        .flatMap((line) => [
          ...(line.split("|")[1] ?? "").matchAll(/`((?:strata|nodejs)_[a-z0-9_]+)`/g),
        ])
        .map((m) => m[1] as string),
    );
    expect(documented.size).toBeGreaterThan(20);

    const metrics = await metricsFor("everything");
    const telemetry = { meterProvider: metrics.meterProvider };
    const dir = await mkdtemp(join(tmpdir(), "strata-metrics-"));
    const kv = await openEmbeddedKv({ dir: join(dir, "kv"), telemetry });
    const log = await openEmbeddedLog({ dir: join(dir, "log") });
    const events = createEvents({ log, kv, source: "strata://test", telemetry, commitMs: 10 });
    cleanups.push(async () => {
      await events.close();
      await log.close();
      await kv.close();
      await rm(dir, { recursive: true, force: true });
    });
    const shop = defineService({
      name: "shop",
      version: "1.0.0",
      actions: { noop: { input: z.object({}), output: z.object({}) } },
      events: { sold: z.object({ n: z.number() }) },
    });
    let failures = 0;
    await events.subscribe(shop, {
      group: "counting",
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 5 },
      on: {
        sold: (e) => {
          // n = 1 fails once then succeeds (a redelivery); n = 2 always fails (dead letter).
          if (e.data.n === 2 || (e.data.n === 1 && failures++ === 0)) {
            throw new StrataError("UNAVAILABLE", "try again");
          }
        },
      },
    });
    for (const n of [0, 1, 2]) await events.publish(shop, "sold", { n }, { key: `k${n}` });
    await waitFor(async () => (await events.lag(shop, "counting")) === 0, { timeoutMs: 10_000 });

    // A server that serves one call at a time; a client with every policy on.
    const held: Array<() => void> = [];
    const releaseAll = (): void => {
      for (const release of held.splice(0)) release();
    };
    const slow = defineService({
      name: "slow",
      version: "1.0.0",
      actions: { wait: { input: z.object({}), output: z.object({}), idempotent: true } },
    });
    const network = createEmbeddedNetwork();
    const server = createNode({
      id: "shedder",
      transport: network.transport(),
      services: [
        slow.implement({
          wait: () => new Promise<Record<string, never>>((r) => held.push(() => r({}))),
        }),
      ],
      resilience: { serving: { concurrency: { type: "fixed", limit: 1 } } },
      telemetry: {
        ...telemetry,
        slos: [{ name: "slow", service: "slow", kind: "availability", objective: 0.9 }],
      },
      authorizer: { authorize: () => ({ allowed: true }) },
    });
    const client = createNode({
      id: "breaking",
      transport: network.transport(),
      resilience: {
        defaults: {
          retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
          breaker: { strategy: { type: "consecutive", threshold: 1 }, halfOpenAfterMs: 60_000 },
          bulkhead: { maxConcurrent: 1, maxQueue: 0 },
          hedge: { delayMs: 5, maxAttempts: 2 },
        },
      },
      telemetry,
    });
    const holder = createNode({ id: "holder", transport: network.transport() });
    await Promise.all([server.start(), client.start(), holder.start()]);
    cleanups.push(async () => {
      releaseAll();
      await Promise.all([client, holder, server].map((n) => n.stop({ drainTimeoutMs: 100 })));
    });
    await client.waitForService("slow");
    await holder.waitForService("slow");
    const api = client.client(slow);
    // A hedge: the first attempt holds the only slot, the hedged one is shed; a second call
    // meanwhile is refused by the bulkhead.
    const hedged = api.wait({});
    await waitFor(() => client.stats().hedges > 0 && server.stats().shed > 0);
    await expect(api.wait({})).rejects.toThrow(/bulkhead|RESOURCE_EXHAUSTED|full/i);
    releaseAll();
    await hedged;
    // Retries: another node holds the slot, so every attempt is shed.
    const holding = holder.client(slow).wait({});
    await waitFor(() => held.length === 1);
    await expect(api.wait({}, { timeoutMs: 2_000 })).rejects.toThrow();
    expect(client.stats().retries).toBeGreaterThan(0);
    releaseAll();
    await holding;
    // A deadline: the attempt counts against the node and the breaker (threshold 1) opens.
    await expect(api.wait({}, { timeoutMs: 30 })).rejects.toThrow();
    await waitFor(() => client.stats().breakerOpened > 0);
    releaseAll();

    // Lag is read in the background when a collection asks for it: the next scrape has it.
    await waitFor(
      async () =>
        parsePrometheus(await metrics.scrape()).some(
          (sample) => sample.name === "strata_events_consumer_lag",
        ),
      { timeoutMs: 5_000 },
    );
    const samples = parsePrometheus(await metrics.scrape());
    const names = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, "")));
    const missing = [...documented].filter((name) => !names.has(name));
    expect(missing).toEqual([]);
  });

  it("bounds label cardinality: names beyond maxSeries share one series", async () => {
    const serverMetrics = await metricsFor("server");
    const clientMetrics = await metricsFor("client");
    const { client } = await cluster(
      { meterProvider: serverMetrics.meterProvider, maxSeries: 10 },
      { meterProvider: clientMetrics.meterProvider, maxSeries: 10 },
    );
    // Callers can name any action (and any service); neither side may grow a series per name.
    for (let i = 0; i < 100; i++) {
      await expect(client.call("echo", `made-up-${i}`, {})).rejects.toThrow(/no action/);
      await expect(client.call(`made-up-${i}`, "x", {}, { timeoutMs: 50 })).rejects.toThrow();
    }
    for (const [metrics, name] of [
      [serverMetrics, "strata_rpc_server_duration_seconds_count"],
      [clientMetrics, "strata_rpc_client_duration_seconds_count"],
    ] as const) {
      const samples = parsePrometheus(await metrics.scrape()).filter((s) => s.name === name);
      const pairs = new Set(samples.map((s) => `${s.labels.rpc_service}/${s.labels.rpc_method}`));
      expect(pairs.size).toBeLessThanOrEqual(11);
      expect(pairs.has("_other/_other")).toBe(true);
    }
  });

  it("rejects bad options with clear errors", async () => {
    await expect(startMetrics({ port: 70_000 })).rejects.toThrow(/port/);
    await expect(startMetrics({ path: "metrics" })).rejects.toThrow(/path/);
  });
});

describe("SLO burn-rate alerts on a node", () => {
  it("fires on a stream of errors and clears when it stops", async () => {
    const events: NodeEvent[] = [];
    const { server, client } = await cluster({
      slos: [{ name: "echo-fail", service: "echo", kind: "availability", objective: 0.9 }],
      burnRateRules: [{ severity: "page", longMs: 2_000, shortMs: 500, burnRate: 2 }],
      sloEvaluateEveryMs: 50,
    });
    using _ = server.on((e) => events.push(e));
    const api = client.client(echo);
    const alerts = () => events.filter((e) => e.type === "slo");
    // 50% server errors against a 90% objective: burn rate 5, above 2 on both windows.
    await waitFor(
      async () => {
        await api.say({ text: "ok" });
        await api.fail({ code: "INTERNAL" }).catch(() => undefined);
        return alerts().length > 0;
      },
      { timeoutMs: 10_000, intervalMs: 5 },
    );
    expect(alerts()[0]).toMatchObject({ slo: "echo-fail", severity: "page", state: "firing" });
    const status = server.slos.status()[0];
    expect(status?.alerts).toEqual([{ severity: "page", firing: true }]);
    expect(status?.attainment).toBeLessThan(0.9);
    // Only good calls now: the short window clears first and the alert resolves.
    await waitFor(
      async () => {
        await api.say({ text: "ok" });
        return alerts().length > 1;
      },
      { timeoutMs: 10_000, intervalMs: 5 },
    );
    expect(alerts()[1]).toMatchObject({ slo: "echo-fail", severity: "page", state: "resolved" });
    // The snapshot tools read carries the same status.
    const snapshot = server.telemetrySnapshot();
    expect(snapshot.slos[0]?.name).toBe("echo-fail");
    expect(snapshot.actions.find((a) => a.action === "fail")?.errors.INTERNAL).toBeGreaterThan(0);
  });
});

describe("tracing", () => {
  let tracing: Tracing | undefined;
  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  it("exporters that are down, hang or throw neither break nor hold up calls", async () => {
    // An OTLP endpoint that refuses connections, one that accepts and never answers, an exporter
    // that never calls back, and one that throws.
    const hangingServer = createServer(() => undefined);
    await new Promise<void>((resolve) => hangingServer.listen(0, "127.0.0.1", resolve));
    cleanups.push(async () => {
      hangingServer.closeAllConnections();
      await new Promise<void>((resolve) => hangingServer.close(() => resolve()));
    });
    const hangingPort = (hangingServer.address() as AddressInfo).port;
    const never: SpanExporter = { export: () => undefined, shutdown: () => Promise.resolve() };
    const throwing: SpanExporter = {
      export: () => {
        throw new Error("exporter bug");
      },
      shutdown: () => Promise.resolve(),
    };
    const collector = new TraceCollector();
    tracing = startTracing({
      otlpUrl: "http://127.0.0.1:9/v1/traces",
      exporters: [
        never,
        throwing,
        new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter({
          url: `http://127.0.0.1:${hangingPort}/v1/traces`,
        }),
      ],
      processors: [collector],
      maxQueueSize: 64,
      scheduledDelayMs: 10,
      exportTimeoutMs: 60_000,
    });
    const { client } = await cluster(undefined);
    const api = client.client(echo);
    let slowest = 0;
    for (let i = 0; i < 2_000; i++) {
      const started = performance.now();
      await expect(api.say({ text: "x" })).resolves.toEqual({ text: "x" });
      slowest = Math.max(slowest, performance.now() - started);
    }
    // Exports hang for a minute: a call that waited on one would have taken that long.
    expect(slowest).toBeLessThan(5_000);
    // Spans were made all along (the synchronous collector saw them all).
    expect(collector.spans().filter((s) => s.name === "echo/say").length).toBe(4_000);
    // The throwing exporter's failures are counted, not thrown.
    await waitFor(() => (tracing as Tracing).dropped() > 0, { timeoutMs: 5_000 });
  });

  it("samples at the parent-based ratio, and remote children follow the root's decision", async () => {
    const collector = new TraceCollector();
    tracing = startTracing({ processors: [collector], sampleRatio: 0.25 });
    expect(tracing.sampler).toBe("parentbased_traceidratio(0.25)");
    const { client } = await cluster(undefined);
    const api = client.client(echo);
    for (let i = 0; i < 400; i++) await api.say({ text: "x" });
    const spans = collector.spans();
    const clients = spans.filter((s) => s.kind === "client");
    const servers = spans.filter((s) => s.kind === "server");
    // About a quarter of the roots; every sampled root has its server child, and no orphan.
    expect(clients.length).toBeGreaterThan(50);
    expect(clients.length).toBeLessThan(150);
    expect(servers.length).toBe(clients.length);
    const ids = new Set(clients.map((s) => s.spanId));
    for (const s of servers) expect(ids.has(s.parentSpanId ?? "")).toBe(true);
  });

  it("reads OTEL_* variables and refuses unusable ones", () => {
    const off = startTracing({ env: { OTEL_SDK_DISABLED: "true" }, register: false });
    expect(off.provider).toBeUndefined();
    const ratio = startTracing({
      env: { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.01" },
      register: false,
    });
    expect(ratio.sampler).toBe("parentbased_traceidratio(0.01)");
    void ratio.shutdown();
    expect(() =>
      startTracing({ env: { OTEL_TRACES_SAMPLER: "sometimes" }, register: false }),
    ).toThrow(/not supported/);
    expect(() =>
      startTracing({
        env: { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" },
        register: false,
      }),
    ).toThrow(/0 to 1/);
    expect(() => startTracing({ otlpUrl: "ftp://x", register: false })).toThrow(/http/);
    expect(() => startTracing({ otlpUrl: "not a url", register: false })).toThrow(/not a URL/);
  });

  it("carries W3C baggage and tracestate across a call", async () => {
    const collector = new TraceCollector();
    tracing = startTracing({ processors: [collector] });
    const network = createEmbeddedNetwork();
    let seen: { baggage?: string; tracestate?: string } = {};
    const probe = defineService({
      name: "probe",
      version: "1.0.0",
      actions: { look: { input: z.object({}), output: z.object({}) } },
    });
    const server = createNode({
      id: "probe-server",
      transport: network.transport(),
      services: [
        probe.implement({
          look: (_, ctx) => {
            seen = {
              ...(ctx.trace?.baggage === undefined ? {} : { baggage: ctx.trace.baggage }),
              ...(ctx.trace?.tracestate === undefined ? {} : { tracestate: ctx.trace.tracestate }),
            };
            return {};
          },
        }),
      ],
    });
    const client = createNode({ id: "probe-client", transport: network.transport() });
    await server.start();
    await client.start();
    cleanups.push(async () => {
      await client.stop({ drainTimeoutMs: 50 });
      await server.stop({ drainTimeoutMs: 50 });
    });
    await client.waitForService("probe");
    await client.client(probe).look(
      {},
      {
        trace: {
          traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
          tracestate: "vendor=abc",
          baggage: "tenant=acme,region=eu%20west",
        },
      },
    );
    expect(seen.tracestate).toBe("vendor=abc");
    expect(seen.baggage).toBe("tenant=acme,region=eu%20west");
    const spans = collector.spans();
    expect(spans.every((s) => s.traceId === "0af7651916cd43dd8448eb211c80319c")).toBe(true);
    expect(spans.find((s) => s.kind === "client")?.parentSpanId).toBe("b7ad6b7169203331");
  });
});

describe("logs", () => {
  function sink(): { lines: () => Array<Record<string, unknown>>; stream: Writable } {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString("utf8"));
        done();
      },
    });
    return {
      stream,
      lines: () =>
        chunks
          .join("")
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  }

  it("writes JSON with trace ids, node and service fields, redacted secrets and module levels", async () => {
    const out = sink();
    const logger = createLogger({
      destination: out.stream,
      level: "info",
      modules: { events: "debug", noisy: "error" },
      base: { app: "shop" },
    });
    const tracing = startTracing({ processors: [new TraceCollector()] });
    cleanups.push(() => tracing.shutdown());
    const tracer = trace.getTracer("test");
    await tracer.startActiveSpan("work", async (span) => {
      logger
        .child({ node: "n1" })
        .child({ service: "orders" })
        .info(
          {
            password: "hunter2",
            card: { cardNumber: "4111111111111111" },
            headers: { authorization: "Bearer abc" },
          },
          "placed",
        );
      span.end();
      await Promise.resolve();
    });
    logger.debug({}, "root debug is off");
    logger.child({ module: "events" }).debug({}, "events debug is on");
    logger.child({ module: "noisy" }).warn({}, "noisy warn is off");
    const lines = out.lines();
    const placed = lines.find((l) => l.msg === "placed");
    expect(placed).toMatchObject({
      level: "info",
      app: "shop",
      node: "n1",
      service: "orders",
      password: "[redacted]",
      card: { cardNumber: "[redacted]" },
      headers: { authorization: "[redacted]" },
    });
    expect(placed?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(placed?.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(lines)).not.toContain("hunter2");
    expect(lines.map((l) => l.msg)).toEqual(["placed", "events debug is on"]);
  });

  it("refuses unknown levels with a clear error", () => {
    expect(() => createLogger({ level: "loud" as never })).toThrow(/level must be one of/);
    expect(() => createLogger({ env: { STRATA_LOG_LEVELS: "events" } })).toThrow(
      /STRATA_LOG_LEVELS/,
    );
  });
});

describe("critical path", () => {
  const span = (
    id: string,
    parent: string | undefined,
    start: number,
    end: number,
    node?: string,
  ): SpanRecord => ({
    traceId: "t",
    spanId: id,
    parentSpanId: parent,
    name: id,
    kind: "internal",
    startMs: start,
    endMs: end,
    attributes: node === undefined ? {} : { "strata.node.id": node },
    links: [],
    error: false,
  });

  it("follows the child each parent waited for, and accounts for the whole root", () => {
    // root 0-100: c 2-8, then a 10-40 and b 20-90 in parallel (b ends last), b1 inside b.
    const spans = [
      span("root", undefined, 0, 100, "gw"),
      span("a", "root", 10, 40),
      span("b", "root", 20, 90, "n2"),
      span("b1", "b", 30, 80, "n3"),
      span("c", "root", 2, 8),
      span("late", "root", 101, 150), // handed-off work that starts after the root: not waited for
    ];
    const path = criticalPath(spans);
    expect(path.map((p) => p.name)).toEqual(["root", "c", "a", "b", "b1"]);
    const self = Object.fromEntries(path.map((p) => [p.name, p.selfMs]));
    // Walking back from 100: root alone 90-100, b 80-90 and 20-30 around b1 (30-80), a 10-20
    // (before b started), root 8-10, c 2-8, root 0-2.
    expect(self).toEqual({ root: 14, b: 20, b1: 50, a: 10, c: 6 });
    expect(path.find((p) => p.name === "b1")?.node).toBe("n3");
    expect(path.reduce((s, p) => s + p.selfMs, 0)).toBe(100);
    expect(criticalPath([])).toEqual([]);
  });

  it("counts a server that outlived its caller up to the moment the caller gave up", () => {
    const path = criticalPath([span("call", undefined, 0, 50), span("server", "call", 10, 80)]);
    expect(path.map((p) => [p.name, p.selfMs])).toEqual([
      ["call", 10],
      ["server", 40],
    ]);
  });
});

// The exporter interface is used above through the SDK's own type.
export type { ExportResult, ReadableSpan };

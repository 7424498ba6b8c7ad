import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus } from "node:os";
import { startMetrics, startTracing, type Metrics, type Tracing } from "@strata/telemetry";
import { startNatsCluster } from "@strata/test-harness";
import type { NodeTelemetryOptions } from "@strata/core";
import { strataNats } from "./peers/strata-rpc.js";
import { measureGroup, natsSetupOptions, ratiosAgainst, type RpcResults } from "./rpc.js";

/** What `npm run bench -- telemetry` writes to bench/results/telemetry.json. */
export interface TelemetryResults extends Pick<
  RpcResults,
  "when" | "machine" | "rows" | "targets"
> {
  /** Throughput of each set-up over the one with no telemetry, per concurrency. */
  readonly ratios: Readonly<Record<string, number>>;
  readonly exported: { readonly requests: number; readonly bytes: number };
}

const BASE = "no telemetry";
const SETUPS = [BASE, "metrics", "tracing 1%", "tracing 100%", "tracing 100% + metrics"] as const;

/**
 * Call throughput over NATS with telemetry off, with metrics on, and with tracing at 1% and 100%
 * parent-based sampling, spans exported over OTLP/HTTP to a collector stand-in on loopback (it
 * reads and discards the requests). The set-ups take turns for several rounds.
 */
export async function runTelemetryBench(options: {
  readonly quick: boolean;
  readonly log: (line: string) => void;
}): Promise<TelemetryResults> {
  const { quick, log } = options;
  let requests = 0;
  let bytes = 0;
  const collector = createServer((request, response) => {
    requests++;
    request.on("data", (chunk: Buffer) => (bytes += chunk.length));
    request.on("end", () =>
      response.writeHead(200, { "content-type": "application/json" }).end("{}"),
    );
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const otlpUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
  const tracings: Tracing[] = [];
  const metrics: Metrics[] = [];
  await using cluster = await startNatsCluster({ nodes: 1, jetstream: false });
  try {
    const tracer = (ratio: number): NodeTelemetryOptions => {
      const tracing = startTracing({ register: false, sampleRatio: ratio, otlpUrl });
      tracings.push(tracing);
      if (tracing.provider === undefined)
        throw new Error("tracing is disabled (OTEL_SDK_DISABLED)");
      return { tracerProvider: tracing.provider };
    };
    const meters = async (): Promise<NodeTelemetryOptions> => {
      const m = await startMetrics();
      metrics.push(m);
      return { meterProvider: m.meterProvider };
    };
    const setups: Record<(typeof SETUPS)[number], () => Promise<Parameters<typeof strataNats>[2]>> =
      {
        [BASE]: () => Promise.resolve(undefined),
        metrics: async () => ({ server: await meters(), client: await meters() }),
        "tracing 1%": () => Promise.resolve({ server: tracer(0.01), client: tracer(0.01) }),
        "tracing 100%": () => Promise.resolve({ server: tracer(1), client: tracer(1) }),
        "tracing 100% + metrics": async () => ({
          server: { ...tracer(1), ...(await meters()) },
          client: { ...tracer(1), ...(await meters()) },
        }),
      };
    const rows = await measureGroup(
      "nats",
      SETUPS.map((name, i) => ({
        name,
        make: async () => strataNats(cluster.url, "default", await setups[name](), `tel${i}`),
      })),
      natsSetupOptions(quick, log),
    );
    const ratios = ratiosAgainst(rows, BASE);
    const worst = (setup: string): number =>
      Math.min(...[16, 128].map((c) => ratios[`${setup}@${c}`] ?? 0));
    const cost = (setup: string): number => Math.round((1 - worst(setup)) * 1000) / 10;
    const targets = [
      {
        name: "cost of tracing at 100% sampling (worst of c=16, c=128)",
        setup: "tracing 100%",
        max: 15,
      },
      {
        name: "cost of tracing at 1% sampling (worst of c=16, c=128)",
        setup: "tracing 1%",
        max: 3,
      },
    ].map((t) => ({
      name: t.name,
      value: cost(t.setup),
      target: `at most ${t.max}%`,
      met: cost(t.setup) <= t.max,
    }));
    return {
      when: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        node: process.versions.node,
        natsServer: cluster.servers[0]?.version ?? "unknown",
      },
      rows,
      ratios,
      exported: { requests, bytes },
      targets,
    };
  } finally {
    for (const t of tracings) await t.shutdown();
    for (const m of metrics) await m.close();
    collector.closeAllConnections();
    await new Promise<void>((resolve) => collector.close(() => resolve()));
  }
}

export function renderTelemetryMarkdown(r: TelemetryResults, command: string): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  const byConcurrency = [1, 16, 128];
  return [
    `Measured ${r.when.slice(0, 10)} on ${r.machine.cpus} cores, Node ${r.machine.node}, nats-server ${r.machine.natsServer}, with \`${command}\`: the echo call of the RPC table over NATS (two nodes in one process), the set-ups taking turns for three rounds, each row the median round. Tracing uses the OpenTelemetry SDK with parent-based ratio sampling and a batch processor exporting over OTLP/HTTP to a loopback collector stand-in (${n(r.exported.requests)} export requests, ${n(Math.round(r.exported.bytes / 1024 / 1024))} MiB); metrics are the OpenTelemetry metrics SDK with a Prometheus reader per node.`,
    "",
    "| set-up | concurrency | calls/s | vs no telemetry | p50 ms | p99 ms |",
    "|---|---:|---:|---:|---:|---:|",
    ...byConcurrency.flatMap((c) =>
      r.rows
        .filter((row) => row.concurrency === c)
        .map(
          (row) =>
            `| ${row.peer} | ${c} | ${n(row.rps)} | ${row.peer === BASE ? "1x" : `${r.ratios[`${row.peer}@${c}`] ?? "?"}x`} | ${row.p50Ms.toFixed(3)} | ${row.p99Ms.toFixed(3)} |`,
        ),
    ),
    "",
    ...r.targets.map(
      (t) =>
        `Target: ${t.name} ${t.target} — measured ${t.value}% (${t.met ? "met" : "**missed**"}).`,
    ),
  ].join("\n");
}

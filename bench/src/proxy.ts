import { cpus } from "node:os";
import { startNatsCluster, startTcpProxy } from "@strata/test-harness";
import { rawNats } from "./peers/raw-nats-rpc.js";
import { measureGroup, ratiosAgainst, type RpcOptions, type RpcResults } from "./rpc.js";

/** What `npm run bench -- proxy` writes to bench/results/proxy.json. */
export interface ProxyResults extends Pick<RpcResults, "when" | "machine" | "rows"> {
  /** Throughput of each set-up over the direct connection, per concurrency (`set-up@c`). */
  readonly ratios: Readonly<Record<string, number>>;
  /** Bytes the undelayed proxy forwarded, each way, over the whole run. */
  readonly forwarded: { readonly up: number; readonly down: number };
}

const BASE = "direct";
const PROXIED = "through proxy";
const DELAYED = "through proxy, 1 ms delay";
const CONCURRENCIES = [1, 128] as const;

/** Fewer calls at concurrency 1: with 1 ms per crossing, a call there takes at least 4 ms. */
function options(quick: boolean, log: (line: string) => void): RpcOptions {
  return {
    concurrencies: CONCURRENCIES,
    calls: (c) => {
      const base = c === 1 ? 3_000 : 60_000;
      return quick ? Math.max(500, Math.floor(base / 20)) : base;
    },
    warmupCalls: quick ? 200 : 1_000,
    rounds: quick ? 1 : 3,
    log,
  };
}

/**
 * The cost of the test harness's TCP proxy on NATS request/reply: the RPC table's raw nats.js
 * peer (muxed replies, MessagePack echo) against one nats-server directly, through a proxy with
 * no faults, and through a proxy adding 1 ms per chunk. Both the requester's and the responder's
 * connections go through the proxy, so a call crosses it four times. The set-ups take turns for
 * several rounds on the same machine.
 */
export async function runProxyBench(options_: {
  readonly quick: boolean;
  readonly log: (line: string) => void;
}): Promise<ProxyResults> {
  const { quick, log } = options_;
  // One server per set-up: the raw peer's subjects are fixed, and peers sharing a server would
  // answer each other's requests.
  await using direct = await startNatsCluster({ nodes: 1, jetstream: false });
  await using forPlain = await startNatsCluster({ nodes: 1, jetstream: false });
  await using forDelayed = await startNatsCluster({ nodes: 1, jetstream: false });
  const portOf = (c: typeof direct): number => c.servers[0]?.port ?? 0;
  await using plain = await startTcpProxy({ target: { port: portOf(forPlain) }, name: "bench" });
  await using delayed = await startTcpProxy({
    target: { port: portOf(forDelayed) },
    name: "bench-delayed",
  });
  delayed.set({ delayMs: 1 });
  const setups = [
    { name: BASE, url: direct.url },
    { name: PROXIED, url: `nats://${plain.url}` },
    { name: DELAYED, url: `nats://${delayed.url}` },
  ];
  const rows = await measureGroup(
    "nats",
    setups.map((s) => ({ name: s.name, make: () => rawNats(s.url) })),
    options(quick, log),
  );
  const stats = plain.stats();
  return {
    when: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      node: process.versions.node,
      natsServer: direct.servers[0]?.version ?? "unknown",
    },
    rows,
    ratios: ratiosAgainst(rows, BASE),
    forwarded: { up: stats.bytesUp, down: stats.bytesDown },
  };
}

/** The proxy section of docs/BENCHMARKS.md. */
export function renderProxyMarkdown(r: ProxyResults, command: string): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  return [
    `Measured ${r.when.slice(0, 10)} on ${r.machine.cpus} cores, Node ${r.machine.node}, nats-server ${r.machine.natsServer}, with \`${command}\`: raw nats.js request/reply (muxed replies, a ~100-byte MessagePack echo) against a server directly, through the test harness's TCP proxy (\`startTcpProxy\`, no faults), and through a proxy holding each chunk 1 ms (each set-up with a server of its own). The requester and the responder both connect through the proxy, so a call crosses it four times; the proxy runs in the benchmark's own process, sharing its event loop. The set-ups take turns for three rounds; each row is the median round.`,
    "",
    "| set-up | concurrency | calls/s | vs direct | p50 ms | p99 ms |",
    "|---|---:|---:|---:|---:|---:|",
    ...CONCURRENCIES.flatMap((c) =>
      r.rows
        .filter((row) => row.concurrency === c)
        .map(
          (row) =>
            `| ${row.peer} | ${c} | ${n(row.rps)} | ${row.peer === BASE ? "1x" : `${r.ratios[`${row.peer}@${c}`] ?? "?"}x`} | ${row.p50Ms.toFixed(3)} | ${row.p99Ms.toFixed(3)} |`,
        ),
    ),
    "",
    "The proxy is a test instrument: it adds a user-space hop and shares the event loop with the code under test, so a test measuring latency through it measures the proxy too. Faults are the point; raw speed through it is not.",
  ].join("\n");
}

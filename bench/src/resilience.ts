import {
  createEmbeddedNetwork,
  createNode,
  customSchema,
  defineService,
  runLoad,
  runOpenLoad,
  type OpenLoadReport,
  type ResilienceOptions,
} from "@strata/core";
import { startNatsCluster } from "@strata/test-harness";
import {
  strataEmbedded,
  strataNats,
  type PolicyChain,
  type StrataPeer,
} from "./peers/strata-rpc.js";
import { PAYLOAD } from "./rpc.js";

/** One row of the policy-chain cost table. */
export interface ChainRow {
  readonly transport: "embedded" | "nats";
  readonly concurrency: number;
  readonly noPolicies: number;
  readonly defaultChain: number;
  /** defaultChain / noPolicies. */
  readonly ratio: number;
}

/** One row of the overload table. */
export interface OverloadRow {
  readonly shedding: "none" | "aimd" | "gradient";
  readonly offeredRate: number;
  readonly capacity: number;
  readonly goodput: number;
  readonly acceptedP50Ms: number;
  readonly acceptedP99Ms: number;
  readonly failed: Readonly<Record<string, number>>;
  readonly failFastP99Ms: number;
}

/** What `npm run bench -- resilience` writes to bench/results/resilience.json. */
export interface ResilienceResults {
  readonly when: string;
  readonly chain: readonly ChainRow[];
  readonly overload: readonly OverloadRow[];
  readonly sloMs: number;
}

async function throughput(
  make: () => Promise<StrataPeer>,
  concurrency: number,
  calls: number,
): Promise<number> {
  await using peer = await make();
  const report = await runLoad({
    concurrency,
    calls,
    warmupCalls: Math.min(20_000, calls / 5),
    call: () => peer.call(PAYLOAD),
  });
  return Math.round(report.throughput);
}

/** Alternates runs of the two chains and keeps each one's best, to damp the machine's noise. */
async function compareChains(
  make: (chain: PolicyChain) => Promise<StrataPeer>,
  concurrency: number,
  calls: number,
  rounds: number,
): Promise<{ none: number; default: number }> {
  let none = 0;
  let chain = 0;
  for (let i = 0; i < rounds; i++) {
    none = Math.max(none, await throughput(() => make("none"), concurrency, calls));
    chain = Math.max(chain, await throughput(() => make("default"), concurrency, calls));
  }
  return { none, default: chain };
}

const any = customSchema<unknown>((value) => ({ value }));
const work = defineService({
  name: "work",
  version: "1.0.0",
  actions: { run: { input: any, output: any, idempotent: true } },
});

/**
 * A service with a fixed capacity: `slots` workers, each busy `serviceMs` per call (waiting, not
 * burning CPU, so the load generator is not starved). Excess calls queue inside the handler, as in
 * a thread-pool server: without shedding, the queue grows until calls time out.
 */
function capacityLimited(slots: number, serviceMs: number) {
  let busy = 0;
  const queue: Array<() => void> = [];
  const release = (): void => {
    const next = queue.shift();
    if (next !== undefined) next();
    else busy--;
  };
  return work.implement({
    run: async (input) => {
      if (busy < slots) busy++;
      else await new Promise<void>((resolve) => queue.push(resolve));
      await new Promise((resolve) => setTimeout(resolve, serviceMs));
      release();
      return input;
    },
  });
}

async function overload(
  shedding: OverloadRow["shedding"],
  options: { slots: number; serviceMs: number; factor: number; durationMs: number; sloMs: number },
): Promise<OverloadRow> {
  const capacity = (options.slots * 1000) / options.serviceMs;
  const serving: ResilienceOptions["serving"] =
    shedding === "none"
      ? {}
      : shedding === "aimd"
        ? {
            concurrency: {
              type: "aimd",
              initial: options.slots,
              min: 1,
              max: options.slots * 20,
              latencyTargetMs: options.sloMs / 2,
            },
          }
        : {
            concurrency: {
              type: "gradient",
              initial: options.slots,
              min: 1,
              max: options.slots * 20,
            },
          };
  const network = createEmbeddedNetwork();
  await using server = createNode({
    id: "server",
    transport: network.transport(),
    services: [capacityLimited(options.slots, options.serviceMs)],
    resilience: { serving },
  });
  await using client = createNode({
    id: "client",
    transport: network.transport(),
    // The measurement is of the server's protection, so the caller does not retry shed calls.
    resilience: { defaults: { retry: false, breaker: false }, outlier: false },
  });
  await server.start();
  await client.start();
  await client.waitForService("work");
  const c = client.client(work);
  const report: OpenLoadReport = await runOpenLoad({
    rate: capacity * options.factor,
    durationMs: options.durationMs,
    call: () => c.run(PAYLOAD, { timeoutMs: options.sloMs * 4 }),
  });
  return {
    shedding,
    offeredRate: Math.round(capacity * options.factor),
    capacity,
    goodput: Math.round(report.goodput),
    acceptedP50Ms: report.latency.p50,
    acceptedP99Ms: report.latency.p99,
    failed: report.errors,
    failFastP99Ms: report.failureLatency.p99,
  };
}

/** Runs the resilience benchmarks: the default policy chain's cost, and overload with shedding. */
export async function runResilienceBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<ResilienceResults> {
  const chain: ChainRow[] = [];
  const calls = options.quick ? 20_000 : 300_000;
  const rounds = options.quick ? 1 : 3;
  for (const concurrency of [16, 128]) {
    const r = await compareChains((c) => strataEmbedded(c), concurrency, calls, rounds);
    const row = {
      transport: "embedded" as const,
      concurrency,
      noPolicies: r.none,
      defaultChain: r.default,
      ratio: Math.round((r.default / r.none) * 100) / 100,
    };
    options.log(
      `chain    embedded c=${concurrency}: none ${r.none} req/s, default ${r.default} req/s (${row.ratio}x)`,
    );
    chain.push(row);
  }
  {
    await using cluster = await startNatsCluster({ nodes: 1, jetstream: false });
    for (const concurrency of [16, 128]) {
      const r = await compareChains(
        (c) => strataNats(cluster.url, c),
        concurrency,
        options.quick ? 5_000 : 60_000,
        rounds,
      );
      const row = {
        transport: "nats" as const,
        concurrency,
        noPolicies: r.none,
        defaultChain: r.default,
        ratio: Math.round((r.default / r.none) * 100) / 100,
      };
      options.log(
        `chain    nats     c=${concurrency}: none ${r.none} req/s, default ${r.default} req/s (${row.ratio}x)`,
      );
      chain.push(row);
    }
  }
  const sloMs = 100;
  const overloadRows: OverloadRow[] = [];
  for (const shedding of ["none", "aimd", "gradient"] as const) {
    const row = await overload(shedding, {
      slots: 8,
      serviceMs: 10,
      factor: 3,
      durationMs: options.quick ? 2_000 : 8_000,
      sloMs,
    });
    options.log(
      `overload ${shedding.padEnd(8)} offered ${row.offeredRate}/s, capacity ${row.capacity}/s: goodput ${row.goodput}/s, accepted p50 ${row.acceptedP50Ms} ms p99 ${row.acceptedP99Ms} ms, failed ${JSON.stringify(row.failed)} (p99 ${row.failFastP99Ms} ms)`,
    );
    overloadRows.push(row);
  }
  return { when: new Date().toISOString(), chain, overload: overloadRows, sloMs };
}

/** Renders the results as Markdown for docs/BENCHMARKS.md. */
export function renderResilienceMarkdown(results: ResilienceResults, command: string): string {
  const lines: string[] = [];
  lines.push(`Measured ${results.when.slice(0, 10)} with \`${command}\`.`);
  lines.push("");
  lines.push(
    "Cost of the default policy chain (retries for idempotent calls, per-node breakers, retry budget, outlier ejection) against no policies, echo of a ~100-byte object, best of alternating runs:",
  );
  lines.push("");
  lines.push(
    "| transport | concurrency | no policies req/s | default chain req/s | ratio | target |",
  );
  lines.push("|---|---:|---:|---:|---:|---|");
  for (const r of results.chain) {
    lines.push(
      `| ${r.transport} | ${r.concurrency} | ${r.noPolicies.toLocaleString("en-US")} | ${r.defaultChain.toLocaleString("en-US")} | ${r.ratio}x | >= 0.90x ${r.ratio >= 0.9 ? "(met)" : "(**missed**)"} |`,
    );
  }
  lines.push("");
  lines.push(
    `Overload at 3x capacity (8 workers x 10 ms = 800 calls/s; open-loop arrivals; SLO ${results.sloMs} ms; call timeout ${results.sloMs * 4} ms):`,
  );
  lines.push("");
  lines.push(
    "| serving-side shedding | offered/s | goodput/s | accepted p50 ms | accepted p99 ms | failures | failure p99 ms |",
  );
  lines.push("|---|---:|---:|---:|---:|---|---:|");
  for (const r of results.overload) {
    const failures =
      Object.entries(r.failed)
        .map(([code, n]) => `${code} ${n}`)
        .join(", ") || "none";
    lines.push(
      `| ${r.shedding} | ${r.offeredRate} | ${r.goodput} | ${r.acceptedP50Ms} | ${r.acceptedP99Ms} | ${failures} | ${r.failFastP99Ms} |`,
    );
  }
  return lines.join("\n");
}

import { readFile, writeFile } from "node:fs/promises";
import { runLoad, type LoadReport } from "@strata/core";
import { startNatsCluster } from "@strata/test-harness";
import { moleculerLocal, moleculerNats } from "./peers/moleculer-rpc.js";
import { rawNats } from "./peers/raw-nats-rpc.js";
import { strataEmbedded, strataLocal, strataNats } from "./peers/strata-rpc.js";

/** A ~100-byte object (as MessagePack; about 120 bytes as JSON). */
export const PAYLOAD = {
  id: "ord-000042",
  sku: "sku-1234-blue-xl",
  qty: 3,
  priceMinor: 129_900,
  currency: "EUR",
  tags: ["sale", "priority"],
  ok: true,
};

export interface Peer extends AsyncDisposable {
  call(payload: object): Promise<unknown>;
}

/** One measured row of the table. */
export interface RpcRow {
  readonly scenario: "in-process" | "nats";
  readonly peer: string;
  readonly concurrency: number;
  readonly calls: number;
  readonly errors: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** What `npm run bench -- rpc` writes to bench/results/rpc.json. */
export interface RpcResults {
  readonly when: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly natsServer: string };
  readonly rows: readonly RpcRow[];
  readonly ratios: Readonly<Record<string, number>>;
  readonly targets: ReadonlyArray<{
    readonly name: string;
    readonly value: number;
    readonly target: string;
    readonly met: boolean;
  }>;
}

export interface RpcOptions {
  readonly concurrencies: readonly number[];
  /** Measured calls per concurrency level, after warm-up. */
  readonly calls: (concurrency: number, scenario: "in-process" | "nats") => number;
  readonly warmupCalls: number;
  /** Rounds of alternating runs; each row reports its median round. */
  readonly rounds: number;
  readonly log: (line: string) => void;
}

/**
 * The run shape of the suites that compare set-ups of one NATS call (telemetry, mtls): 10 000,
 * 60 000 and 100 000 calls at concurrency 1, 16 and 128, three alternating rounds.
 */
export function natsSetupOptions(quick: boolean, log: (line: string) => void): RpcOptions {
  return {
    concurrencies: [1, 16, 128],
    calls: (c) => {
      const base = c === 1 ? 10_000 : c === 16 ? 60_000 : 100_000;
      return quick ? Math.max(1_000, Math.floor(base / 20)) : base;
    },
    warmupCalls: quick ? 500 : 10_000,
    rounds: quick ? 1 : 3,
    log,
  };
}

/**
 * Each row's throughput over the `base` peer's at the same concurrency, keyed `peer@concurrency`
 * and rounded to three decimals (the base peer itself is left out).
 */
export function ratiosAgainst(rows: readonly RpcRow[], base: string): Record<string, number> {
  const ratios: Record<string, number> = {};
  for (const row of rows) {
    const reference = rows.find((r) => r.peer === base && r.concurrency === row.concurrency);
    if (reference === undefined || row.peer === base || reference.rps === 0) continue;
    ratios[`${row.peer}@${row.concurrency}`] = Math.round((row.rps / reference.rps) * 1000) / 1000;
  }
  return ratios;
}

/**
 * Measures a group of peers that share an engine: every peer stays connected, and the peers take
 * turns, round after round, so drift in the machine's load lands on all of them alike. Each row
 * reports the median round (by throughput) of its peer and concurrency.
 */
export async function measureGroup(
  scenario: RpcRow["scenario"],
  peers: ReadonlyArray<{ readonly name: string; readonly make: () => Promise<Peer> }>,
  options: RpcOptions,
): Promise<RpcRow[]> {
  const open: Array<{ name: string; peer: Peer }> = [];
  try {
    for (const p of peers) open.push({ name: p.name, peer: await p.make() });
    const samples = new Map<string, RpcRow[]>();
    for (let round = 0; round < options.rounds; round++) {
      for (const concurrency of options.concurrencies) {
        for (const { name, peer } of open) {
          // Settle the heap between runs so one peer's garbage does not land on the next.
          (globalThis as { gc?: () => void }).gc?.();
          const report: LoadReport = await runLoad({
            concurrency,
            calls: options.calls(concurrency, scenario),
            warmupCalls: options.warmupCalls,
            call: () => peer.call(PAYLOAD),
          });
          const row: RpcRow = {
            scenario,
            peer: name,
            concurrency,
            calls: report.calls,
            errors: report.calls - report.ok,
            rps: Math.round(report.throughput),
            p50Ms: report.latency.p50,
            p99Ms: report.latency.p99,
          };
          const key = `${name}@${concurrency}`;
          samples.set(key, [...(samples.get(key) ?? []), row]);
        }
      }
    }
    const rows: RpcRow[] = [];
    for (const concurrency of options.concurrencies) {
      for (const { name } of open) {
        const runs = [...(samples.get(`${name}@${concurrency}`) ?? [])].sort(
          (a, b) => a.rps - b.rps,
        );
        const row = runs[Math.floor(runs.length / 2)] as RpcRow;
        options.log(
          `${scenario.padEnd(10)} ${name.padEnd(22)} c=${String(concurrency).padStart(3)}  ${String(row.rps).padStart(8)} req/s  p50 ${row.p50Ms.toFixed(3)} ms  p99 ${row.p99Ms.toFixed(3)} ms  (median of ${runs.length}: ${runs.map((r) => r.rps).join(", ")})${row.errors > 0 ? `  errors ${row.errors}` : ""}`,
        );
        rows.push(row);
      }
    }
    return rows;
  } finally {
    for (const { peer } of open) await peer[Symbol.asyncDispose]();
  }
}

function find(rows: readonly RpcRow[], peer: string, concurrency: number): RpcRow | undefined {
  return rows.find((r) => r.peer === peer && r.concurrency === concurrency);
}

/** Runs every peer side by side in this one process and returns the table with its ratios. */
export async function runRpcBench(options: RpcOptions): Promise<RpcResults> {
  const rows: RpcRow[] = [];
  rows.push(
    ...(await measureGroup(
      "in-process",
      [
        { name: "moleculer local", make: moleculerLocal },
        { name: "strata local", make: () => strataLocal() },
        { name: "strata embedded", make: () => strataEmbedded() },
      ],
      options,
    )),
  );

  await using cluster = await startNatsCluster({ nodes: 1, jetstream: false });
  const url = cluster.url;
  rows.push(
    ...(await measureGroup(
      "nats",
      [
        { name: "raw nats.js (muxed)", make: () => rawNats(url) },
        { name: "moleculer over nats", make: () => moleculerNats(url) },
        { name: "strata over nats", make: () => strataNats(url) },
      ],
      options,
    )),
  );

  const ratios: Record<string, number> = {};
  const targets: Array<RpcResults["targets"][number]> = [];
  const ratio = (a: RpcRow | undefined, b: RpcRow | undefined): number =>
    a === undefined || b === undefined || b.rps === 0
      ? NaN
      : Math.round((a.rps / b.rps) * 100) / 100;
  for (const c of options.concurrencies) {
    ratios[`embedded/moleculer-local@${c}`] = ratio(
      find(rows, "strata embedded", c),
      find(rows, "moleculer local", c),
    );
    ratios[`local/moleculer-local@${c}`] = ratio(
      find(rows, "strata local", c),
      find(rows, "moleculer local", c),
    );
    ratios[`nats/moleculer-nats@${c}`] = ratio(
      find(rows, "strata over nats", c),
      find(rows, "moleculer over nats", c),
    );
    ratios[`nats/raw-nats@${c}`] = ratio(
      find(rows, "strata over nats", c),
      find(rows, "raw nats.js (muxed)", c),
    );
  }
  const top = Math.max(...options.concurrencies);
  const minOver = (prefix: string): number =>
    Math.min(...options.concurrencies.map((c) => ratios[`${prefix}@${c}`] ?? NaN));
  const embedded = minOver("embedded/moleculer-local");
  targets.push({
    name: "embedded calls vs Moleculer local (worst concurrency)",
    value: embedded,
    target: ">= 2.0x",
    met: embedded >= 2,
  });
  const overNats = ratios[`nats/moleculer-nats@${top}`] ?? NaN;
  targets.push({
    name: `calls over NATS vs Moleculer over NATS (c=${top})`,
    value: overNats,
    target: ">= 1.5x",
    met: overNats >= 1.5,
  });
  const strataTop = find(rows, "strata over nats", top);
  const molTop = find(rows, "moleculer over nats", top);
  const p99Ratio =
    strataTop !== undefined && molTop !== undefined
      ? Math.round((strataTop.p99Ms / molTop.p99Ms) * 100) / 100
      : NaN;
  targets.push({
    name: `p99 over NATS vs Moleculer over NATS (c=${top})`,
    value: p99Ratio,
    target: "<= 1.0x",
    met: p99Ratio <= 1,
  });
  const floor = ratios[`nats/raw-nats@${top}`] ?? NaN;
  targets.push({
    name: `calls over NATS vs raw nats.js (c=${top})`,
    value: floor,
    target: ">= 0.9x",
    met: floor >= 0.9,
  });

  return {
    when: new Date().toISOString(),
    machine: {
      cpus: (await import("node:os")).cpus().length,
      node: process.version,
      natsServer: cluster.servers[0]?.version ?? "unknown",
    },
    rows,
    ratios,
    targets,
  };
}

/** Renders the results as the Markdown section of docs/BENCHMARKS.md. */
export function renderRpcMarkdown(results: RpcResults, command: string): string {
  const lines: string[] = [];
  lines.push(
    `Measured ${results.when.slice(0, 10)} on ${results.machine.cpus} cores, Node ${results.machine.node}, nats-server ${results.machine.natsServer}, with \`${command}\`.`,
  );
  lines.push(
    "Every peer runs in the same process against the same nats-server; the peers of a scenario take turns for several rounds and each row is the median round; an echo of a ~100-byte object; fixed call counts after a warm-up.",
  );
  lines.push("");
  lines.push("| scenario | peer | concurrency | req/s | p50 ms | p99 ms | errors |");
  lines.push("|---|---|---:|---:|---:|---:|---:|");
  for (const r of results.rows) {
    lines.push(
      `| ${r.scenario} | ${r.peer} | ${r.concurrency} | ${r.rps.toLocaleString("en-US")} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.errors} |`,
    );
  }
  lines.push("");
  lines.push("| target | measured | goal | met |");
  lines.push("|---|---:|---|---|");
  for (const t of results.targets)
    lines.push(
      `| ${t.name} | ${Number.isNaN(t.value) ? "n/a" : `${t.value}x`} | ${t.target} | ${t.met ? "yes" : "**no**"} |`,
    );
  lines.push("");
  lines.push("Ratios (Strata ÷ peer, throughput):");
  lines.push("");
  for (const [name, value] of Object.entries(results.ratios)) lines.push(`- ${name}: ${value}x`);
  return lines.join("\n");
}

/** Writes the JSON results and replaces the RPC section of docs/BENCHMARKS.md. */
export async function publishRpc(
  results: RpcResults,
  paths: { json: string; markdown: string },
  command: string,
): Promise<void> {
  await publishSection("rpc", "RPC calls", results, renderRpcMarkdown(results, command), paths);
}

/** Writes a suite's JSON results and replaces (or appends) its section of docs/BENCHMARKS.md. */
export async function publishSection(
  suite: string,
  title: string,
  results: unknown,
  markdown: string,
  paths: { json: string; markdown: string },
): Promise<void> {
  await writeFile(paths.json, `${JSON.stringify(results, null, 2)}\n`);
  const start = `<!-- bench:${suite}:start -->`;
  const end = `<!-- bench:${suite}:end -->`;
  let doc: string;
  try {
    doc = await readFile(paths.markdown, "utf8");
  } catch {
    doc = "# Benchmarks\n";
  }
  const section = `${start}\n${markdown}\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  doc =
    i >= 0 && j > i
      ? doc.slice(0, i) + section + doc.slice(j + end.length)
      : `${doc.trimEnd()}\n\n## ${title}\n\n${section}\n`;
  // Written as prettier would: the repository's format check covers docs/.
  const prettier = await import("prettier");
  const options = (await prettier.resolveConfig(paths.markdown)) ?? {};
  await writeFile(
    paths.markdown,
    await prettier.format(doc, { ...options, filepath: paths.markdown }),
  );
}

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { renderAutoscaleMarkdown, runAutoscaleBench } from "./autoscale.js";
import { renderResilienceMarkdown, runResilienceBench } from "./resilience.js";
import { renderCheckerMarkdown, runCheckerBench } from "./checker.js";
import { renderCrdtMarkdown, runCrdtBench } from "./crdt.js";
import { renderStateMarkdown, runStateBench } from "./state.js";
import { renderEventsMarkdown, runEventsBench } from "./events.js";
import { renderGatewayMarkdown, runGatewayBench } from "./gateway.js";
import { renderLedgerMarkdown, runLedgerBench } from "./ledger.js";
import { renderMerkleMarkdown, runMerkleBench } from "./merkle.js";
import { renderMtlsMarkdown, runMtlsBench } from "./mtls.js";
import { renderProxyMarkdown, runProxyBench } from "./proxy.js";
import { publishRpc, publishSection, runRpcBench } from "./rpc.js";
import { renderTelemetryMarkdown, runTelemetryBench } from "./telemetry.js";

const USAGE = `usage: npm run bench -- <suite> [--quick]

suites:
  rpc         Strata vs Moleculer (local and over NATS) vs raw nats.js request/reply
  resilience  cost of the default policy chain; overload at 3x capacity with and without shedding
  state       StrongKV get/put/compare-and-set through Strata vs the raw NATS KV and PostgreSQL clients
  events      publish and delivery through Strata vs raw JetStream (R1, R3); embedded log; consumers
  telemetry   call throughput with tracing off, at 1% and 100% sampling, and with metrics on
  gateway     HTTP requests through the gateway (JWT, Cedar, rate limit, call) vs plain fastify
  ledger      transfers/s (single, concurrent, batched) vs raw appends: embedded, NATS R1 and R3
  merkle      Merkle proofs generated and verified, signed tree heads, frontier memory at 10^6
  mtls        NATS calls in plaintext vs mutual TLS vs mutual TLS with signed call envelopes
  proxy       NATS request/reply directly vs through the test harness's TCP proxy (no faults, 1 ms)
  checker     history checkers: linearizability vs history length and clients; set, bank, counter
  autoscale   scaling policies replayed over the shipped load traces (simulation)

options:
  --quick   fewer calls (a smoke run; results are not written)
  --help    this text`;

/** What a suite's run gives back: results for the JSON file, and its section of BENCHMARKS.md. */
interface SectionRun {
  readonly results: object;
  readonly markdown: (command: string) => string;
  /** Lines printed after the run (targets, ratios). */
  readonly summary?: readonly string[];
}

type Log = (line: string) => void;

const targetLines = (
  targets: ReadonlyArray<{ name: string; value: number; target: string; met: boolean }>,
  unit: string,
): string[] =>
  targets.map(
    (t) => `${t.met ? "met   " : "MISSED"} ${t.name}: ${t.value}${unit} (goal ${t.target})`,
  );

/** Every suite but rpc (which writes its own, older, section): its title and how to run it. */
const SECTIONS: Record<
  string,
  { readonly title: string; run(quick: boolean, log: Log): Promise<SectionRun> }
> = {
  state: {
    title: "State",
    async run(quick, log) {
      const results = await runStateBench({ quick, log });
      const crdt = await runCrdtBench({ quick, log });
      return {
        results: { ...results, crdt },
        markdown: (command) =>
          `${renderStateMarkdown(results, command)}\n${renderCrdtMarkdown(crdt)}`,
      };
    },
  },
  events: {
    title: "Events",
    async run(quick, log) {
      const results = await runEventsBench({ quick, log });
      return { results, markdown: (command) => renderEventsMarkdown(results, command) };
    },
  },
  gateway: {
    title: "Gateway",
    async run(quick, log) {
      const results = await runGatewayBench({ quick, log });
      return {
        results,
        markdown: (command) => renderGatewayMarkdown(results, command),
        summary: Object.entries(results.ratios).map(([name, value]) => `${name}: ${value}x`),
      };
    },
  },
  mtls: {
    title: "Zero-trust transport",
    async run(quick, log) {
      const results = await runMtlsBench({ quick, log });
      return {
        results,
        markdown: (command) => renderMtlsMarkdown(results, command),
        summary: Object.entries(results.ratios).map(([name, value]) => `${name}: ${value}x`),
      };
    },
  },
  proxy: {
    title: "Test harness: TCP proxy",
    async run(quick, log) {
      const results = await runProxyBench({ quick, log });
      return {
        results,
        markdown: (command) => renderProxyMarkdown(results, command),
        summary: Object.entries(results.ratios).map(([name, value]) => `${name}: ${value}x`),
      };
    },
  },
  ledger: {
    title: "Ledger: transfers",
    async run(quick, log) {
      const results = await runLedgerBench({ quick, log });
      return {
        results,
        markdown: (command) => renderLedgerMarkdown(results, command),
        summary: Object.entries(results.ratios).map(([name, value]) => `${name}: ${value}x`),
      };
    },
  },
  merkle: {
    title: "Ledger: Merkle proofs and signed tree heads",
    async run(quick, log) {
      const results = await runMerkleBench({ quick, log });
      return {
        results,
        markdown: (command) => renderMerkleMarkdown(results, command),
        summary: targetLines(results.targets, ""),
      };
    },
  },
  telemetry: {
    title: "Observability",
    async run(quick, log) {
      const results = await runTelemetryBench({ quick, log });
      return {
        results,
        markdown: (command) => renderTelemetryMarkdown(results, command),
        summary: targetLines(results.targets, "%"),
      };
    },
  },
  checker: {
    title: "Verification: history checkers",
    async run(quick, log) {
      const results = await runCheckerBench({ quick, log });
      return { results, markdown: (command) => renderCheckerMarkdown(results, command) };
    },
  },
  autoscale: {
    title: "Elastic scale: policies on load traces",
    async run(quick, log) {
      const results = await runAutoscaleBench({ quick, log });
      return {
        results,
        markdown: (command) => renderAutoscaleMarkdown(results, command),
        summary: targetLines(results.targets, ""),
      };
    },
  },
  resilience: {
    title: "Resilience",
    async run(quick, log) {
      const results = await runResilienceBench({ quick, log });
      return { results, markdown: (command) => renderResilienceMarkdown(results, command) };
    },
  },
};

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { quick: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const [suite] = parsed.positionals;
  if (parsed.values.help === true || suite === undefined) {
    console.log(USAGE);
    return suite === undefined && parsed.values.help !== true ? 2 : 0;
  }
  if (suite !== "rpc" && SECTIONS[suite] === undefined) {
    console.error(`bench: unknown suite "${suite}"\n${USAGE}`);
    return 2;
  }
  const quick = parsed.values.quick === true;
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const markdown = `${root}docs/BENCHMARKS.md`;
  const log = (line: string): void => console.log(line);
  const section = SECTIONS[suite];
  if (section !== undefined) {
    const { results, markdown: text, summary } = await section.run(quick, log);
    for (const line of summary ?? []) console.log(line);
    if (!quick) {
      await publishSection(suite, section.title, results, text(`npm run bench -- ${suite}`), {
        json: `${root}bench/results/${suite}.json`,
        markdown,
      });
      console.log(`wrote bench/results/${suite}.json and docs/BENCHMARKS.md`);
    }
    return 0;
  }
  const results = await runRpcBench({
    concurrencies: [1, 16, 128],
    calls: (c, scenario) => {
      const base =
        scenario === "in-process"
          ? c === 1
            ? 200_000
            : 400_000
          : c === 1
            ? 10_000
            : c === 16
              ? 60_000
              : 120_000;
      return quick ? Math.max(1_000, Math.floor(base / 20)) : base;
    },
    warmupCalls: quick ? 1_000 : 20_000,
    rounds: quick ? 1 : 3,
    log: (line) => console.log(line),
  });
  for (const line of targetLines(results.targets, "x")) console.log(line);
  if (!quick) {
    await publishRpc(
      results,
      { json: `${root}bench/results/rpc.json`, markdown },
      "npm run bench -- rpc",
    );
    console.log("wrote bench/results/rpc.json and docs/BENCHMARKS.md");
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);

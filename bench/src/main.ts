import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { renderResilienceMarkdown, runResilienceBench } from "./resilience.js";
import { renderCrdtMarkdown, runCrdtBench } from "./crdt.js";
import { renderStateMarkdown, runStateBench } from "./state.js";
import { renderEventsMarkdown, runEventsBench } from "./events.js";
import { renderGatewayMarkdown, runGatewayBench } from "./gateway.js";
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

options:
  --quick   fewer calls (a smoke run; results are not written)
  --help    this text`;

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
  if (!["rpc", "resilience", "state", "events", "telemetry", "gateway"].includes(suite)) {
    console.error(`bench: unknown suite "${suite}"\n${USAGE}`);
    return 2;
  }
  const quick = parsed.values.quick === true;
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const markdown = `${root}docs/BENCHMARKS.md`;
  if (suite === "state") {
    const results = await runStateBench({ quick, log: (line) => console.log(line) });
    const crdt = await runCrdtBench({ quick, log: (line) => console.log(line) });
    if (!quick) {
      const command = "npm run bench -- state";
      const markdown2 = renderStateMarkdown(results, command) + "\n" + renderCrdtMarkdown(crdt);
      await publishSection("state", "State", { ...results, crdt }, markdown2, {
        json: `${root}bench/results/state.json`,
        markdown,
      });
      console.log("wrote bench/results/state.json and docs/BENCHMARKS.md");
    }
    return 0;
  }
  if (suite === "events") {
    const results = await runEventsBench({ quick, log: (line) => console.log(line) });
    if (!quick) {
      const command = "npm run bench -- events";
      await publishSection("events", "Events", results, renderEventsMarkdown(results, command), {
        json: `${root}bench/results/events.json`,
        markdown,
      });
      console.log("wrote bench/results/events.json and docs/BENCHMARKS.md");
    }
    return 0;
  }
  if (suite === "gateway") {
    const results = await runGatewayBench({ quick, log: (line) => console.log(line) });
    for (const [name, value] of Object.entries(results.ratios)) console.log(`${name}: ${value}x`);
    if (!quick) {
      const command = "npm run bench -- gateway";
      await publishSection("gateway", "Gateway", results, renderGatewayMarkdown(results, command), {
        json: `${root}bench/results/gateway.json`,
        markdown,
      });
      console.log("wrote bench/results/gateway.json and docs/BENCHMARKS.md");
    }
    return 0;
  }
  if (suite === "telemetry") {
    const results = await runTelemetryBench({ quick, log: (line) => console.log(line) });
    for (const t of results.targets)
      console.log(`${t.met ? "met   " : "MISSED"} ${t.name}: ${t.value}% (goal ${t.target})`);
    if (!quick) {
      const command = "npm run bench -- telemetry";
      await publishSection(
        "telemetry",
        "Observability",
        results,
        renderTelemetryMarkdown(results, command),
        { json: `${root}bench/results/telemetry.json`, markdown },
      );
      console.log("wrote bench/results/telemetry.json and docs/BENCHMARKS.md");
    }
    return 0;
  }
  if (suite === "resilience") {
    const results = await runResilienceBench({ quick, log: (line) => console.log(line) });
    if (!quick) {
      const command = "npm run bench -- resilience";
      await publishSection(
        "resilience",
        "Resilience",
        results,
        renderResilienceMarkdown(results, command),
        { json: `${root}bench/results/resilience.json`, markdown },
      );
      console.log("wrote bench/results/resilience.json and docs/BENCHMARKS.md");
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
  for (const t of results.targets)
    console.log(`${t.met ? "met   " : "MISSED"} ${t.name}: ${t.value}x (goal ${t.target})`);
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

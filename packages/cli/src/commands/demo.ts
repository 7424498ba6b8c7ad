import { EXPERIMENTS, runExperiment, type ExperimentReport } from "@strata/chaos";
import { runDemo } from "@strata/example-commerce";
import { findNatsServer } from "@strata/test-harness/engines";
import { parse, positiveInt, positiveNumber } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const DEMO_HELP = `usage: strata demo [--duration <seconds>] [--concurrency <n>] [--json] [--no-faults] [--data <dir>]
                   [--otlp <url>] [--metrics-port <port>] [--chaos [--chaos-out <dir>]]

Runs the commerce reference system on an embedded cluster (no servers needed): catalog and
inventory on three nodes in two regions, a gateway driving traffic, an inventory fault injected
in the middle of the run, and a summary with the invariants checked at the end, SLO attainment,
the burn-rate alerts raised, and the critical path of the slowest order's trace.

  --duration <seconds>   how long the traffic runs (default 20)
  --concurrency <n>      calls kept in flight (default 32)
  --json                 print one JSON object with the report on stdout, nothing else
  --no-faults            run without the injected fault
  --data <dir>           keep the durable state in <dir> (default: a temporary folder)
  --otlp <url>           also export traces over OTLP/HTTP, e.g. http://localhost:4318/v1/traces
                         (or set OTEL_EXPORTER_OTLP_ENDPOINT)
  --metrics-port <port>  serve each service node's Prometheus /metrics on <port>, <port>+1, <port>+2
  --chaos                after the demo, run its building blocks (stock registers on the strong
                         KV, payments on the ledger, order events, carts and counters as CRDTs)
                         on three Strata node processes and three NATS servers, kill a node,
                         partition the regions, and print the checkers' verdicts (needs
                         nats-server >= 2.10: npm run setup:engines)
  --chaos-out <dir>      where the chaos report goes (default ./chaos-reports/demo-<time>)
  -h, --help             this text

Exit code: 0 when every invariant holds (and, with --chaos, every checker verdict is valid), 1 otherwise.`;

export async function demoCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    duration: { type: "string" },
    concurrency: { type: "string" },
    json: { type: "boolean" },
    "no-faults": { type: "boolean" },
    data: { type: "string" },
    otlp: { type: "string" },
    "metrics-port": { type: "string" },
    chaos: { type: "boolean" },
    "chaos-out": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${DEMO_HELP}\n`);
    return EXIT.ok;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument "${positionals[0] as string}"`);
  const otlp = values.otlp;
  if (otlp !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(otlp);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
      throw new UsageError(`--otlp must be an http(s) URL, got "${otlp}"`);
    }
  }
  const metricsPort =
    values["metrics-port"] === undefined
      ? undefined
      : positiveInt("metrics-port", values["metrics-port"], 9464, 65_533);
  const chaos = values.chaos === true;
  if (values["chaos-out"] !== undefined && !chaos)
    throw new UsageError("--chaos-out needs --chaos");
  if (chaos) {
    try {
      await findNatsServer();
    } catch (error) {
      throw new UsageError(
        `--chaos needs nats-server >= 2.10 (run npm run setup:engines): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  const report = await runDemo({
    durationSeconds: positiveNumber("duration", values.duration, 20, 86_400),
    concurrency: positiveInt("concurrency", values.concurrency, 32, 10_000),
    json: values.json === true,
    faults: values["no-faults"] !== true,
    ...(values.data === undefined ? {} : { dataDir: values.data }),
    ...(otlp === undefined ? {} : { otlpUrl: otlp }),
    ...(metricsPort === undefined ? {} : { metricsPort }),
    ...(io.signal === undefined ? {} : { signal: io.signal }),
    out: io.out,
    err: io.err,
  });
  const demoOk = Object.values(report.verdicts).every(Boolean);
  if (!chaos) return demoOk ? EXIT.ok : EXIT.failed;
  // Then the same building blocks on separate processes, under a killed node and a partition
  // between the regions (run after the embedded demo: on a small machine the two together
  // would starve each other of CPU and measure that instead).
  const stream = values.json === true ? io.err : io.out;
  stream.write("\nchaos: starting three NATS servers and three Strata node processes\n");
  let chaosReport: ExperimentReport;
  try {
    chaosReport = await runExperiment(
      EXPERIMENTS["demo"] as NonNullable<(typeof EXPERIMENTS)["demo"]>,
      {
        out:
          values["chaos-out"] ??
          `chaos-reports/demo-${new Date().toISOString().replace(/[:.]/g, "-")}`,
        log: (line) => void io.err.write(`chaos | ${line}\n`),
        ...(io.signal === undefined ? {} : { signal: io.signal }),
      },
    );
  } catch (error) {
    io.err.write(
      `chaos: the experiment could not run: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return EXIT.failed;
  }
  stream.write(`\nchaos: ${chaosReport.description}\n`);
  for (const f of chaosReport.faults)
    stream.write(`  fault at ${(f.start / 1_000).toFixed(1)}s: ${f.detail}\n`);
  for (const v of chaosReport.verdicts) {
    stream.write(`  ${v.valid ? "valid  " : "ANOMALY"} ${v.workload.padEnd(9)} ${v.summary}\n`);
  }
  stream.write(`  outcome: ${chaosReport.outcome}\n`);
  return demoOk && chaosReport.valid ? EXIT.ok : EXIT.failed;
}

import { EXPERIMENTS, runExperiment, type ExperimentReport } from "@strata/chaos";
import { runDemo } from "@strata/example-commerce";
import { findNatsServer } from "@strata/test-harness/engines";
import { parse, positiveInt, positiveNumber } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const DEMO_HELP = `usage: strata demo [--duration <seconds>] [--rate <n>] [--json] [--no-faults] [--data <dir>]
                   [--report <file>] [--otlp <url>] [--metrics-port <port>]
                   [--engines nats,postgres [--nats-url <url>] [--postgres-url <url>]]
                   [--chaos [--chaos-out <dir>]]

Runs the commerce reference system: two regions (eu: n1, n2; us: n3, n4) of service nodes
(catalog, inventory, payments on a ledger, orders as sagas with events, carts as CRDTs) and a
gateway per region, records behind Cedar policies, invoices rendered by a function on object-store
events, and an autoscaled availability service. About a minute of traffic with a Black-Friday
spike, an inventory fault, a partition between the regions and a consumer handover; then every
invariant is checked and reported, in the terminal and as an HTML page.

  --duration <seconds>   how long the traffic runs (default 60)
  --rate <n>             browsing calls a second (default 1500, 150 with --engines; twice that
                         in the spike)
  --json                 print one JSON object with the report on stdout, nothing else
  --no-faults            run without the injected inventory fault
  --data <dir>           keep the durable state in <dir> (default: a temporary folder)
  --report <file>        write the HTML report here (default strata-demo-report.html)
  --no-report            write no HTML report
  --otlp <url>           also export traces over OTLP/HTTP, e.g. http://localhost:4318/v1/traces
                         (or set OTEL_EXPORTER_OTLP_ENDPOINT)
  --metrics-port <port>  serve each service node's Prometheus /metrics on <port> and the next
                         three ports (embedded profile)
  --engines nats,postgres
                         run every service node as a process of its own on a NATS JetStream
                         cluster (>= 2.10) and PostgreSQL, started locally in a temporary folder
                         (npm run setup:engines provides nats-server) — or reached by URL:
  --nats-url <urls>      comma-separated NATS URLs of a running cluster (no partitions then)
  --postgres-url <url>   a PostgreSQL database to use
  --chaos                embedded: after the demo, run its building blocks (stock registers on
                         the strong KV, payments on the ledger, order events, carts and counters
                         as CRDTs) on three Strata node processes and three NATS servers, kill a
                         node, partition the regions, and print the checkers' verdicts (needs
                         nats-server >= 2.10: npm run setup:engines). With --engines: real
                         nemeses on the demo's own node processes instead (n3 killed with
                         kill -9 and started again, n1 paused with SIGSTOP), judged by the same
                         verdicts
  --chaos-out <dir>      where the chaos report goes (default ./chaos-reports/demo-<time>)
  -h, --help             this text

Exit code: 0 when every invariant holds (and, with --chaos, every checker verdict is valid), 1 otherwise.`;

export async function demoCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    duration: { type: "string" },
    rate: { type: "string" },
    json: { type: "boolean" },
    "no-faults": { type: "boolean" },
    data: { type: "string" },
    otlp: { type: "string" },
    "metrics-port": { type: "string" },
    chaos: { type: "boolean" },
    "chaos-out": { type: "string" },
    report: { type: "string" },
    "no-report": { type: "boolean" },
    engines: { type: "string" },
    "nats-url": { type: "string" },
    "postgres-url": { type: "string" },
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
  const engines = parseEngines(values.engines, values["nats-url"], values["postgres-url"]);
  if (values.report !== undefined && values["no-report"] === true)
    throw new UsageError("--report and --no-report exclude each other");
  const reportFile =
    values["no-report"] === true ? undefined : (values.report ?? "strata-demo-report.html");
  if (reportFile !== undefined && (reportFile === "" || reportFile.endsWith("/")))
    throw new UsageError(`--report needs a file name, got "${reportFile}"`);
  const chaos = values.chaos === true;
  if (values["chaos-out"] !== undefined && !chaos)
    throw new UsageError("--chaos-out needs --chaos");
  if (values["chaos-out"] !== undefined && engines !== undefined)
    throw new UsageError("--chaos-out is for the embedded --chaos experiment, not --engines");
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
    durationSeconds: positiveNumber("duration", values.duration, 60, 86_400),
    ...(values.rate === undefined
      ? {}
      : { browseRate: positiveInt("rate", values.rate, 1_500, 100_000) }),
    json: values.json === true,
    faults: values["no-faults"] !== true,
    ...(values.data === undefined ? {} : { dataDir: values.data }),
    ...(otlp === undefined ? {} : { otlpUrl: otlp }),
    ...(metricsPort === undefined ? {} : { metricsPort }),
    ...(engines === undefined ? {} : { engines, nemeses: chaos }),
    ...(reportFile === undefined ? {} : { reportFile }),
    ...(io.signal === undefined ? {} : { signal: io.signal }),
    out: io.out,
    err: io.err,
  });
  const demoOk = Object.values(report.verdicts).every(Boolean);
  // With --engines the nemeses ran on the demo's own processes, judged by its verdicts.
  if (!chaos || engines !== undefined) return demoOk ? EXIT.ok : EXIT.failed;
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

/** The --engines list (exactly nats and postgres, for now) and the URLs of engines to reach. */
function parseEngines(
  list: string | undefined,
  natsUrl: string | undefined,
  postgresUrl: string | undefined,
): { nats: { urls?: readonly string[] }; postgres: { url?: string } } | undefined {
  if (list === undefined) {
    if (natsUrl !== undefined || postgresUrl !== undefined)
      throw new UsageError("--nats-url and --postgres-url need --engines nats,postgres");
    return undefined;
  }
  const names = list.split(",").map((n) => n.trim());
  const known = new Set(["nats", "postgres"]);
  for (const name of names) {
    if (!known.has(name))
      throw new UsageError(`--engines takes nats,postgres; "${name}" is not an engine`);
  }
  if (!names.includes("nats") || !names.includes("postgres") || names.length !== 2)
    throw new UsageError("--engines needs both: --engines nats,postgres");
  const urls = natsUrl?.split(",").map((u) => u.trim());
  for (const url of urls ?? []) {
    if (!/^(nats|tls):\/\/[^\s/]+$/.test(url))
      throw new UsageError(`--nats-url takes nats://host:port URLs, got "${url}"`);
  }
  if (postgresUrl !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(postgresUrl))
    throw new UsageError(`--postgres-url takes a postgres:// URL, got "${postgresUrl}"`);
  return {
    nats: urls === undefined ? {} : { urls },
    postgres: postgresUrl === undefined ? {} : { url: postgresUrl },
  };
}

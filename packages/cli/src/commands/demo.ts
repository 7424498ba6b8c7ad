import { runDemo } from "@strata/example-commerce";
import { parse, positiveInt, positiveNumber } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const DEMO_HELP = `usage: strata demo [--duration <seconds>] [--concurrency <n>] [--json] [--no-faults] [--data <dir>]
                   [--otlp <url>] [--metrics-port <port>]

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
  -h, --help             this text

Exit code: 0 when every invariant holds, 1 otherwise.`;

export async function demoCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    duration: { type: "string" },
    concurrency: { type: "string" },
    json: { type: "boolean" },
    "no-faults": { type: "boolean" },
    data: { type: "string" },
    otlp: { type: "string" },
    "metrics-port": { type: "string" },
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
  return Object.values(report.verdicts).every(Boolean) ? EXIT.ok : EXIT.failed;
}

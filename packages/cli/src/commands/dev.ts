import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createNode, type AnyServiceImplementation } from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import { createLogger, startMetrics, startTracing, type Metrics } from "@strata/telemetry";
import { natsUrl, parse, positiveInt } from "../args.js";
import { embeddedNetwork } from "../cluster.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const DEV_HELP = `usage: strata dev <module> [--nats <url>] [--id <node-id>] [--region <region>] [--cluster <name>]
                         [--metrics-port <port>] [--log-level <level>]

Runs a node that serves every service implementation the module exports (the values returned by
contract.implement(...)). Without --nats the node runs embedded, alone in this process; with it,
it joins the cluster on that NATS server. Ctrl-C (or SIGTERM) drains and stops it.

  --nats <url>        NATS server(s), comma-separated (default: $STRATA_NATS_URL, else embedded)
  --id <node-id>      node id (default: a random one)
  --region <region>   region, for region-affine routing (default "default")
  --cluster <name>    Strata cluster name on the NATS system (default "default")
  --metrics-port <p>  serve Prometheus metrics at http://127.0.0.1:<p>/metrics
  --log-level <level> log JSON lines (pino) to stderr at this level: trace, debug, info, warn,
                      error (default: $STRATA_LOG_LEVEL, else no logs)
  -h, --help          this text

Traces are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose
the sampling, OTEL_SERVICE_NAME the service name.`;

function isImplementation(value: unknown): value is AnyServiceImplementation {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const contract = v["contract"] as Record<string, unknown> | undefined;
  return (
    typeof contract === "object" &&
    contract !== null &&
    typeof contract["name"] === "string" &&
    typeof v["handlers"] === "object" &&
    typeof v["hooks"] === "object"
  );
}

/** The service implementations a module exports (directly, or in an exported array). */
export async function loadImplementations(path: string): Promise<AnyServiceImplementation[]> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(
      `cannot load module ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const found: AnyServiceImplementation[] = [];
  for (const value of Object.values(module)) {
    if (isImplementation(value)) found.push(value);
    else if (Array.isArray(value))
      for (const item of value) if (isImplementation(item)) found.push(item);
  }
  if (found.length === 0) {
    throw new UsageError(
      `module ${path} exports no service implementations (export the result of contract.implement(...))`,
    );
  }
  return found;
}

export async function devCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    id: { type: "string" },
    region: { type: "string" },
    cluster: { type: "string" },
    "metrics-port": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${DEV_HELP}\n`);
    return EXIT.ok;
  }
  const [path, ...extra] = positionals;
  if (path === undefined) throw new UsageError("missing <module>");
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  const implementations = await loadImplementations(path);
  const url = natsUrl(values.nats, io.env);
  const metricsPort =
    values["metrics-port"] === undefined
      ? undefined
      : positiveInt("metrics-port", values["metrics-port"], 9464, 65_535);
  const level = values["log-level"] ?? io.env.STRATA_LOG_LEVEL;
  let logger;
  try {
    logger =
      level === undefined
        ? undefined
        : createLogger({ level: level as "info", env: io.env, destination: process.stderr });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const exportsTraces =
    (io.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? io.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? "") !== "";
  let tracing;
  try {
    tracing = exportsTraces ? startTracing({ env: io.env }) : undefined;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const metrics: Metrics | undefined =
    metricsPort === undefined
      ? undefined
      : await startMetrics({ port: metricsPort, host: "127.0.0.1" });
  const node = createNode({
    ...(logger === undefined ? {} : { logger }),
    ...(metrics === undefined ? {} : { telemetry: { meterProvider: metrics.meterProvider } }),
    ...(values.id === undefined ? {} : { id: values.id }),
    ...(values.region === undefined ? {} : { region: values.region }),
    transport:
      url === undefined
        ? embeddedNetwork().transport()
        : createNatsTransport({
            servers: url,
            ...(values.cluster === undefined ? {} : { cluster: values.cluster }),
          }),
    services: implementations,
    validateOutput: true,
  });
  await node.start();
  io.out.write(
    `node ${node.id} (${node.region}) on ${url === undefined ? "the embedded transport" : url}\n`,
  );
  for (const impl of implementations) {
    io.out.write(
      `  serving ${impl.contract.name}@${impl.contract.version}: ${Object.keys(impl.contract.actions).join(", ")}\n`,
    );
  }
  if (metrics?.url !== undefined) io.out.write(`  metrics at ${metrics.url}\n`);
  if (tracing !== undefined) io.out.write(`  traces exported (${tracing.sampler})\n`);
  io.out.write("Ctrl-C drains and stops.\n");
  await new Promise<void>((resolveStop) => {
    if (io.signal === undefined || io.signal.aborted) {
      resolveStop();
      return;
    }
    io.signal.addEventListener("abort", () => resolveStop(), { once: true });
  });
  io.out.write(`draining ${node.id}…\n`);
  await node.stop();
  await metrics?.close();
  await tracing?.shutdown();
  io.out.write("stopped\n");
  return EXIT.ok;
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { StrataError } from "@strata/core";

/** Options of {@link startMetrics}. */
export interface MetricsOptions {
  /** `service.name` on `target_info` (`OTEL_SERVICE_NAME`; default `strata`). */
  readonly serviceName?: string;
  /** Identifies the node in `target_info` (`service.instance.id`). */
  readonly nodeId?: string;
  /**
   * Serve `/metrics` on this port (0: any free port). Absent: no server; read the text with
   * `scrape()` or mount `handler` on a server of your own.
   */
  readonly port?: number;
  /** Interface to listen on; default `0.0.0.0`. */
  readonly host?: string;
  /** Path of the endpoint; default `/metrics`. */
  readonly path?: string;
}

/** A node's metrics pipeline: pass `meterProvider` to the node, scrape `/metrics`. */
export interface Metrics extends AsyncDisposable {
  readonly meterProvider: MeterProvider;
  /** `http://host:port/metrics` once listening; undefined without a server. */
  readonly url: string | undefined;
  /** Answers a Prometheus scrape (mount it on your own HTTP server if you like). */
  handler(request: IncomingMessage, response: ServerResponse): void;
  /** The Prometheus text exposition, as a scrape would get it. */
  scrape(): Promise<string>;
  close(): Promise<void>;
}

/**
 * One metrics pipeline (OpenTelemetry metrics SDK, Prometheus exposition). Give each node its own,
 * so that `/metrics` of a node shows that node only, even with several nodes in one process.
 *
 * @example
 * const metrics = await startMetrics({ nodeId: "n1", port: 9464 });
 * const node = createNode({ transport, telemetry: { meterProvider: metrics.meterProvider } });
 */
export async function startMetrics(options: MetricsOptions = {}): Promise<Metrics> {
  const path = options.path ?? "/metrics";
  if (!path.startsWith("/")) {
    throw new StrataError("INVALID_ARGUMENT", `metrics path must start with "/": ${path}`);
  }
  if (
    options.port !== undefined &&
    (!Number.isInteger(options.port) || options.port < 0 || options.port > 65_535)
  ) {
    throw new StrataError("INVALID_ARGUMENT", `metrics port must be 0-65535, got ${options.port}`);
  }
  const exporter = new PrometheusExporter({ preventServerStart: true, endpoint: path });
  const meterProvider = new MeterProvider({
    resource: resourceFromAttributes({
      "service.name": options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? "strata",
      ...(options.nodeId === undefined ? {} : { "service.instance.id": options.nodeId }),
    }),
    readers: [exporter],
  });
  const handler = (request: IncomingMessage, response: ServerResponse): void => {
    const url = request.url ?? "/";
    const pathname = url.split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (pathname !== path) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    exporter.getMetricsRequestHandler(request, response);
  };
  let server: Server | undefined;
  let url: string | undefined;
  if (options.port !== undefined) {
    const s = createServer(handler);
    server = s;
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(options.port, options.host ?? "0.0.0.0", () => {
        s.off("error", reject);
        resolve();
      });
    });
    const address = s.address() as AddressInfo;
    const host = options.host ?? "127.0.0.1";
    url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${address.port}${path}`;
  }
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      if (server !== undefined) {
        const s = server;
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
      await meterProvider.shutdown().catch(() => undefined);
    })();
    return closed;
  };
  return {
    meterProvider,
    url,
    handler,
    scrape: () => scrapeText(exporter),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Runs the exporter's request handler against an in-memory response. */
function scrapeText(exporter: PrometheusExporter): Promise<string> {
  return new Promise<string>((resolve) => {
    let body = "";
    const response = {
      statusCode: 200,
      setHeader: () => response,
      writeHead: () => response,
      write: (chunk: string | Uint8Array) => {
        body += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
        return true;
      },
      end: (chunk?: string | Uint8Array) => {
        if (chunk !== undefined) response.write(chunk);
        resolve(body);
        return response;
      },
    };
    exporter.getMetricsRequestHandler(
      { url: "/metrics", headers: {} } as IncomingMessage,
      response as unknown as ServerResponse,
    );
  });
}

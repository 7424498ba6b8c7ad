/**
 * A KEDA external scaler: serves Strata's load signals to KEDA so that KEDA (through the HPA it
 * manages) scales the Deployments, for users who run KEDA already.
 *
 * KEDA speaks gRPC to external scalers (`proto/externalscaler.proto`, served with `@grpc/grpc-js`,
 * the gRPC project's own Node implementation, and `@grpc/proto-loader`, which reads the .proto at
 * start-up so no generated code is checked in). The same numbers are also offered as JSON over
 * HTTP for KEDA's `metrics-api` scaler, which needs no gRPC at all.
 *
 * KEDA's HPA divides a metric by its target to get replicas (`AverageValue`), so every metric is
 * served as a total over the replicas: backlog and calls per second already are; utilisation and
 * CPU, which the runtime reports as means, are multiplied by the replica count ("busy replicas").
 * A target of 0.7 utilisation then asks for ceil(0.9 × 10 / 0.7) = 13 replicas when ten run at
 * 0.9, which is target tracking.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { load } from "@grpc/proto-loader";
import {
  StrataError,
  httpStatus,
  isStrataError,
  systemClock,
  type Clock,
  type Timer,
} from "@strata/core";
import type { ServiceSignals } from "../types.js";

/** The signal a scaler serves. */
export type KedaMetric = "backlog" | "requestsPerSecond" | "utilisation" | "cpu";

/** Options for {@link startKedaExternalScaler}. */
export interface KedaExternalScalerOptions {
  /** gRPC port; 0 picks a free one (see {@link KedaExternalScaler.port}). */
  readonly port: number;
  /** gRPC interface. Default `127.0.0.1`; use `0.0.0.0` in a pod so KEDA can reach it. */
  readonly host?: string;
  /**
   * Current signals of a service. Must reject with a `NOT_FOUND` StrataError for a service it
   * does not know, and resolve (with zero replicas) for a known service scaled to zero.
   */
  readonly signals: (service: string, signal: AbortSignal) => Promise<ServiceSignals>;
  /** Default metric; a trigger's `metric` metadata overrides it. */
  readonly metric: KedaMetric;
  /** Default per-replica target of the metric (> 0); a trigger's `target` overrides it. */
  readonly target: number;
  /** Also serve `GET /keda/<service>` → `{"value": n}` for KEDA's `metrics-api` scaler. */
  readonly http?: { readonly port: number; readonly host?: string };
  /** gRPC server credentials. Default insecure (plain HTTP/2). */
  readonly credentials?: grpc.ServerCredentials;
  /** How often an open `StreamIsActive` re-reads the signals (ms). Default 5 000. */
  readonly pollIntervalMs?: number;
  /** Deadline for one `signals` call (ms). Default 5 000. */
  readonly signalsTimeoutMs?: number;
  /** Timers. Default `systemClock()`. */
  readonly clock?: Clock;
}

/** A running external scaler. */
export interface KedaExternalScaler extends AsyncDisposable {
  /** The gRPC port bound. */
  readonly port: number;
  /** The HTTP port bound, when `http` was given. */
  readonly httpPort: number | undefined;
  /** Ends open streams and stops both servers. */
  close(): Promise<void>;
}

/** What the scaler answers for one service, computed from its signals. */
export interface KedaReading {
  readonly metric: KedaMetric;
  readonly metricName: string;
  readonly value: number;
  readonly target: number;
  /** Work is waiting or in flight: KEDA keeps (or brings back) at least one replica. */
  readonly active: boolean;
}

const METRICS: Readonly<
  Record<KedaMetric, { readonly slug: string; readonly of: (s: ServiceSignals) => number }>
> = {
  backlog: { slug: "backlog", of: (s) => s.backlog },
  requestsPerSecond: { slug: "requests-per-second", of: (s) => s.requestsPerSecond },
  utilisation: { slug: "utilisation", of: (s) => s.utilisation * s.replicas },
  cpu: { slug: "cpu", of: (s) => s.cpu * s.replicas },
};

/** Default HTTP path prefix of the `metrics-api` fallback. */
export const KEDA_HTTP_PREFIX = "/keda/";

const PROTO_PATH = fileURLToPath(new URL("../../proto/externalscaler.proto", import.meta.url));
const SERVICE_NAME = "externalscaler.ExternalScaler";
const MAX_SERVICE_LENGTH = 253;
const DEFAULT_POLL_MS = 5_000;
const DEFAULT_SIGNALS_TIMEOUT_MS = 5_000;
const SHUTDOWN_GRACE_MS = 2_000;

/**
 * Computes the scaler's answer from a service's signals.
 *
 * @example
 * kedaReading(signals, "utilisation", 0.7); // { value: 9 (0.9 × 10 replicas), target: 0.7, … }
 */
export function kedaReading(
  signals: ServiceSignals,
  metric: KedaMetric,
  target: number,
): KedaReading {
  for (const field of ["backlog", "requestsPerSecond", "utilisation", "cpu", "replicas"] as const) {
    const value = signals[field];
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new StrataError(
        "INTERNAL",
        `signals of service "${signals.service}" have an invalid ${field}`,
      );
    }
  }
  const definition = METRICS[metric];
  return {
    metric,
    metricName: `strata-${definition.slug}-${slug(signals.service)}`,
    value: definition.of(signals),
    target,
    active: signals.backlog > 0 || signals.requestsPerSecond > 0 || signals.utilisation > 0,
  };
}

/**
 * Starts a KEDA external scaler (gRPC) and, optionally, its HTTP JSON fallback.
 *
 * @example
 * await using scaler = await startKedaExternalScaler({
 *   port: 9090, host: "0.0.0.0", metric: "backlog", target: 100,
 *   signals: (service) => autoscaler.signals(service),
 * });
 */
export async function startKedaExternalScaler(
  options: KedaExternalScalerOptions,
): Promise<KedaExternalScaler> {
  checkTarget(options.target, "target");
  if (!(options.metric in METRICS)) {
    throw new StrataError("INVALID_ARGUMENT", `unknown metric "${String(options.metric)}"`);
  }
  const clock = options.clock ?? systemClock();
  const pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  const signalsTimeoutMs = options.signalsTimeoutMs ?? DEFAULT_SIGNALS_TIMEOUT_MS;
  const streams = new Set<() => void>();

  /** Resolves one request's service, metric and target, and reads the signals. */
  const read = async (
    metadata: Readonly<Record<string, string>> | undefined,
    cancel: AbortSignal,
  ): Promise<KedaReading> => {
    const query = parseQuery(metadata, options.metric, options.target);
    const controller = new AbortController();
    const timer = clock.setTimer(
      () =>
        controller.abort(
          new StrataError(
            "DEADLINE_EXCEEDED",
            `signals of "${query.service}" took over ${signalsTimeoutMs} ms`,
          ),
        ),
      signalsTimeoutMs,
    );
    const onCancel = (): void => controller.abort(cancel.reason);
    cancel.addEventListener("abort", onCancel, { once: true });
    try {
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener(
          "abort",
          () => {
            const reason: unknown = controller.signal.reason;
            reject(reason instanceof Error ? reason : new StrataError("CANCELLED", "cancelled"));
          },
          { once: true },
        );
      });
      aborted.catch(() => undefined);
      const signals = await Promise.race([
        options.signals(query.service, controller.signal),
        aborted,
      ]);
      return kedaReading(signals, query.metric, query.target);
    } finally {
      timer.clear();
      cancel.removeEventListener("abort", onCancel);
    }
  };

  const unary = <Req, Res>(
    metadataOf: (request: Req) => Readonly<Record<string, string>> | undefined,
    answer: (reading: KedaReading, request: Req) => Res,
  ): grpc.handleUnaryCall<Req, Res> => {
    return (call, callback) => {
      const cancel = new AbortController();
      call.on("cancelled", () => cancel.abort());
      Promise.resolve()
        .then(() => read(metadataOf(call.request), cancel.signal))
        .then(
          (reading) => callback(null, answer(reading, call.request)),
          (error: unknown) => callback(toGrpcError(error)),
        );
    };
  };

  const streamIsActive: grpc.handleServerStreamingCall<ScaledObjectRef, IsActiveResponse> = (
    call,
  ) => {
    const cancel = new AbortController();
    let timer: Timer | undefined;
    let last: boolean | undefined;
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      timer?.clear();
      cancel.abort();
      streams.delete(end);
    };
    const end = (): void => {
      stop();
      call.end();
    };
    streams.add(end);
    call.on("cancelled", stop);
    const tick = (): void => {
      read(call.request.scalerMetadata, cancel.signal).then(
        (reading) => {
          if (stopped) return;
          if (reading.active !== last) {
            last = reading.active;
            call.write({ result: reading.active });
          }
          timer = clock.setTimer(tick, pollMs);
        },
        (error: unknown) => {
          if (stopped) return;
          stop();
          // grpc-js turns an "error" event on a server stream into the call's final status.
          call.emit("error", toGrpcError(error));
        },
      );
    };
    tick();
  };

  const implementation: ExternalScalerHandlers = {
    IsActive: unary<ScaledObjectRef, IsActiveResponse>(
      (ref) => ref.scalerMetadata,
      (reading) => ({ result: reading.active }),
    ),
    StreamIsActive: streamIsActive,
    GetMetricSpec: unary<ScaledObjectRef, GetMetricSpecResponse>(
      (ref) => ref.scalerMetadata,
      (reading) => ({
        metricSpecs: [
          {
            metricName: reading.metricName,
            targetSize: wholeNumber(reading.target),
            targetSizeFloat: reading.target,
          },
        ],
      }),
    ),
    GetMetrics: unary<GetMetricsRequest, GetMetricsResponse>(
      (request) => {
        if (request.scaledObjectRef === null || request.scaledObjectRef === undefined) {
          throw new StrataError("INVALID_ARGUMENT", "GetMetrics without scaledObjectRef");
        }
        return request.scaledObjectRef.scalerMetadata;
      },
      (reading, request) => ({
        metricValues: [
          {
            // KEDA asks by the name GetMetricSpec gave; answer under the name it asked for.
            metricName: request.metricName === "" ? reading.metricName : request.metricName,
            metricValue: wholeNumber(reading.value),
            metricValueFloat: reading.value,
          },
        ],
      }),
    ),
  };

  const definition = await load(PROTO_PATH, {
    keepCase: true,
    longs: Number,
    defaults: true,
  });
  const service = definition[SERVICE_NAME] as grpc.ServiceDefinition | undefined;
  if (service === undefined) {
    throw new StrataError("INTERNAL", `${PROTO_PATH} does not define ${SERVICE_NAME}`);
  }
  const server = new grpc.Server();
  server.addService(service, implementation as unknown as grpc.UntypedServiceImplementation);
  const host = options.host ?? "127.0.0.1";
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${host.includes(":") ? `[${host}]` : host}:${options.port}`,
      options.credentials ?? grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error === null ? resolve(bound) : reject(error)),
    );
  }).catch((error: unknown) => {
    server.forceShutdown();
    throw new StrataError("UNAVAILABLE", `cannot bind the KEDA scaler to ${host}:${options.port}`, {
      cause: error,
    });
  });

  let http: Server | undefined;
  let httpPort: number | undefined;
  if (options.http !== undefined) {
    const httpHost = options.http.host ?? host;
    http = createServer((req, res) => serveHttp(req, res, read));
    const listening = http;
    try {
      await new Promise<void>((resolve, reject) => {
        listening.once("error", reject);
        listening.listen(options.http?.port, httpHost, () => resolve());
      });
    } catch (error) {
      server.forceShutdown();
      throw new StrataError(
        "UNAVAILABLE",
        `cannot bind the KEDA HTTP endpoint to ${httpHost}:${options.http.port}`,
        { cause: error },
      );
    }
    httpPort = (listening.address() as AddressInfo).port;
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const end of [...streams]) end();
      const grpcDone = new Promise<void>((resolve) => {
        const timer = clock.setTimer(() => {
          server.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        server.tryShutdown(() => {
          timer.clear();
          resolve();
        });
      });
      const httpDone =
        http === undefined
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              http.closeAllConnections();
              http.close(() => resolve());
            });
      await Promise.all([grpcDone, httpDone]);
    })();
    return closing;
  };

  return { port, httpPort, close, [Symbol.asyncDispose]: close };
}

/** The wire shapes of the messages (proto-loader with `keepCase`, `longs: Number`). */
interface ScaledObjectRef {
  readonly name: string;
  readonly namespace: string;
  readonly scalerMetadata: Readonly<Record<string, string>>;
}
interface IsActiveResponse {
  readonly result: boolean;
}
interface GetMetricSpecResponse {
  readonly metricSpecs: readonly {
    readonly metricName: string;
    readonly targetSize: number;
    readonly targetSizeFloat: number;
  }[];
}
interface GetMetricsRequest {
  readonly scaledObjectRef: ScaledObjectRef | null | undefined;
  readonly metricName: string;
}
interface GetMetricsResponse {
  readonly metricValues: readonly {
    readonly metricName: string;
    readonly metricValue: number;
    readonly metricValueFloat: number;
  }[];
}
interface ExternalScalerHandlers {
  readonly IsActive: grpc.handleUnaryCall<ScaledObjectRef, IsActiveResponse>;
  readonly StreamIsActive: grpc.handleServerStreamingCall<ScaledObjectRef, IsActiveResponse>;
  readonly GetMetricSpec: grpc.handleUnaryCall<ScaledObjectRef, GetMetricSpecResponse>;
  readonly GetMetrics: grpc.handleUnaryCall<GetMetricsRequest, GetMetricsResponse>;
}

interface Query {
  readonly service: string;
  readonly metric: KedaMetric;
  readonly target: number;
}

/** Reads `service` (required), `metric` and `target` (optional) from a trigger's metadata. */
function parseQuery(
  metadata: Readonly<Record<string, string>> | undefined,
  metric: KedaMetric,
  target: number,
): Query {
  const service = metadata?.["service"];
  if (typeof service !== "string" || service.trim() === "") {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "the trigger's metadata needs `service`: the Strata service to scale",
    );
  }
  if (service.length > MAX_SERVICE_LENGTH) {
    throw new StrataError("INVALID_ARGUMENT", "`service` is too long");
  }
  const metricText = metadata?.["metric"];
  let chosen = metric;
  if (metricText !== undefined && metricText !== "") {
    if (!Object.hasOwn(METRICS, metricText)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `unknown metric "${metricText.slice(0, 64)}"; use one of ${Object.keys(METRICS).join(", ")}`,
      );
    }
    chosen = metricText as KedaMetric;
  }
  const targetText = metadata?.["target"];
  let chosenTarget = target;
  if (targetText !== undefined && targetText !== "") {
    chosenTarget = Number(targetText);
    checkTarget(chosenTarget, "metadata target");
  }
  return { service, metric: chosen, target: chosenTarget };
}

function checkTarget(target: number, what: string): void {
  if (!Number.isFinite(target) || target <= 0) {
    throw new StrataError("INVALID_ARGUMENT", `${what} must be a positive number, got ${target}`);
  }
}

/** The int64 fields, for KEDA versions that predate the float ones. */
function wholeNumber(value: number): number {
  return Math.min(Number.MAX_SAFE_INTEGER, Math.round(value));
}

function slug(service: string): string {
  return service
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 200);
}

/** A StrataError becomes the gRPC status of the same name; anything else a generic INTERNAL. */
function toGrpcError(error: unknown): grpc.ServerErrorResponse {
  const failure = isStrataError(error)
    ? error
    : new StrataError("INTERNAL", "internal error in the KEDA scaler");
  const result = new Error(failure.message) as grpc.ServerErrorResponse;
  result.code = grpc.status[failure.code];
  result.details = failure.message;
  return result;
}

function serveHttp(
  req: IncomingMessage,
  res: ServerResponse,
  read: (metadata: Readonly<Record<string, string>>, cancel: AbortSignal) => Promise<KedaReading>,
): void {
  const fail = (error: StrataError): void => {
    sendJson(res, httpStatus(error.code), {
      error: { code: error.code, message: error.message },
    });
  };
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    sendJson(res, 405, {
      error: { code: "UNIMPLEMENTED", message: `${req.method ?? "?"} is not supported` },
    });
    return;
  }
  const url = new URL(req.url ?? "/", "http://scaler");
  const rest = url.pathname.startsWith(KEDA_HTTP_PREFIX)
    ? url.pathname.slice(KEDA_HTTP_PREFIX.length)
    : undefined;
  if (rest === undefined || rest === "" || rest.includes("/")) {
    fail(new StrataError("NOT_FOUND", `no such path; use ${KEDA_HTTP_PREFIX}<service>`));
    return;
  }
  let service: string;
  try {
    service = decodeURIComponent(rest);
  } catch {
    fail(new StrataError("INVALID_ARGUMENT", "malformed service name in the path"));
    return;
  }
  const metadata: Record<string, string> = { service };
  for (const key of ["metric", "target"]) {
    const value = url.searchParams.get(key);
    if (value !== null) metadata[key] = value;
  }
  const cancel = new AbortController();
  res.on("close", () => cancel.abort());
  read(metadata, cancel.signal).then(
    (reading) =>
      sendJson(res, 200, {
        value: reading.value,
        active: reading.active,
        metric: reading.metric,
        target: reading.target,
      }),
    (error: unknown) =>
      fail(
        isStrataError(error)
          ? error
          : new StrataError("INTERNAL", "internal error in the KEDA scaler"),
      ),
  );
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

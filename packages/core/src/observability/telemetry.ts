import {
  INVALID_SPAN_CONTEXT,
  INVALID_TRACEID,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  metrics,
  trace,
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type Span,
  type SpanOptions,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import type { ErrorCode } from "../errors/index.js";
import { isServerFault } from "./slo.js";

/** Name and version of the instrumentation scope every Strata span and metric is reported under. */
export const INSTRUMENTATION_SCOPE = "@strata/core";
export const INSTRUMENTATION_VERSION = "0.1.0";

/**
 * Where a part of Strata sends its telemetry. Both default to the global providers of the
 * OpenTelemetry API: nothing is recorded until the host program (or `@strata/telemetry`) installs
 * an SDK. The tracer follows a provider installed later; meters are bound when the part is
 * created, so install a meter provider first (or pass one here, as a per-node one).
 */
export interface TelemetryOptions {
  readonly tracerProvider?: TracerProvider;
  readonly meterProvider?: MeterProvider;
  /**
   * Most distinct (service, action) pairs that get their own metric series; later pairs share
   * the series `_other`/`_other`. Default 200.
   */
  readonly maxSeries?: number;
}

/** Histogram bucket boundaries (seconds) for call and state durations. */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export function tracerOf(options?: TelemetryOptions): Tracer {
  return (options?.tracerProvider ?? trace.getTracerProvider()).getTracer(
    INSTRUMENTATION_SCOPE,
    INSTRUMENTATION_VERSION,
  );
}

export function meterOf(options?: TelemetryOptions): Meter {
  return (options?.meterProvider ?? metrics.getMeterProvider()).getMeter(
    INSTRUMENTATION_SCOPE,
    INSTRUMENTATION_VERSION,
  );
}

/**
 * Starts a span under `parent` (default: the active context). Sampling is parent-based: when the
 * parent is known and not sampled, the child is not either, and the SDK is not asked (it would
 * only draw ids and consult its sampler for a span nobody records). The child then stands for
 * its parent, which keeps the trace id and the unsampled flag travelling on.
 */
export function startSpan(
  tracer: Tracer,
  name: string,
  options: SpanOptions,
  parent: Context = context.active(),
): Span {
  const parentContext = trace.getSpanContext(parent);
  if (
    parentContext !== undefined &&
    (parentContext.traceFlags & TraceFlags.SAMPLED) === 0 &&
    parentContext.traceId !== INVALID_TRACEID
  ) {
    return trace.wrapSpanContext(parentContext);
  }
  return tracer.startSpan(name, options, parent);
}

/** Runs telemetry code; whatever it throws stays here (telemetry never breaks the host program). */
export function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A misbehaving exporter, processor or instrument must not reach the caller.
  }
}

/** A span that starts and ends at once, for a decision such as a retry, a shed or a breaker change. */
export function decisionSpan(
  tracer: Tracer,
  name: string,
  parent: Context,
  attributes: Attributes,
  error = false,
): void {
  safely(() => {
    const span = startSpan(tracer, name, { kind: SpanKind.INTERNAL, attributes }, parent);
    if (error) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
}

/** Metric attributes of one (service, action), built once and reused for every call. */
export class RpcSeries {
  readonly spanName: string;
  readonly attributes: Attributes;
  /** Attribute sets built so far, by status code or `key\u0000value`. */
  private readonly extended = new Map<string, Attributes>();

  constructor(service: string, action: string) {
    this.spanName = `${service}/${action}`;
    this.attributes = { "rpc.system": "strata", "rpc.service": service, "rpc.method": action };
  }

  /** The attributes plus `rpc.response.status_code` (cached per code). */
  withCode(code: ErrorCode | "OK"): Attributes {
    return this.cached(code, "rpc.response.status_code", code);
  }

  /** The attributes plus another one (cached: reasons and decisions are few). */
  with(key: string, value: string): Attributes {
    return this.cached(`${key}\u0000${value}`, key, value);
  }

  private cached(id: string, key: string, value: string): Attributes {
    let attributes = this.extended.get(id);
    if (attributes === undefined) {
      attributes = { ...this.attributes, [key]: value };
      this.extended.set(id, attributes);
    }
    return attributes;
  }
}

/** RPC instruments of one node: client and server spans, durations and policy counters. */
export class RpcTelemetry {
  readonly tracer: Tracer;
  readonly meter: Meter;
  private readonly series = new Map<string, RpcSeries>();
  private readonly maxSeries: number;
  private readonly other = new RpcSeries("_other", "_other");
  private readonly clientDuration: Histogram;
  private readonly serverDuration: Histogram;
  readonly retries: Counter;
  readonly hedges: Counter;
  readonly rejected: Counter;
  readonly shed: Counter;
  readonly breakerTransitions: Counter;
  readonly authorizations: Counter;
  /**
   * False while metrics go to the API's no-op provider: the call path then skips the clock read
   * that only the client-side duration histogram needs.
   */
  readonly timesClientCalls: boolean;

  constructor(options: TelemetryOptions | undefined) {
    this.tracer = tracerOf(options);
    this.meter = meterOf(options);
    const provider = options?.meterProvider ?? metrics.getMeterProvider();
    this.timesClientCalls = provider.constructor.name !== "NoopMeterProvider";
    this.maxSeries = options?.maxSeries ?? 200;
    const advice = { explicitBucketBoundaries: [...DURATION_BUCKETS_S] };
    this.clientDuration = this.meter.createHistogram("strata.rpc.client.duration_seconds", {
      description: "Duration of calls this node made (all attempts), by outcome",
      unit: "s",
      advice,
    });
    this.serverDuration = this.meter.createHistogram("strata.rpc.server.duration_seconds", {
      description: "Duration of calls this node served, by outcome",
      unit: "s",
      advice,
    });
    this.retries = this.meter.createCounter("strata.rpc.client.retries", {
      description: "Retries the retry policy made",
    });
    this.hedges = this.meter.createCounter("strata.rpc.client.hedges", {
      description: "Hedged attempts sent",
    });
    this.rejected = this.meter.createCounter("strata.rpc.client.rejected", {
      description: "Calls refused on the calling side (bulkhead, open circuit, retry budget)",
    });
    this.shed = this.meter.createCounter("strata.rpc.server.shed", {
      description: "Calls shed on the serving side (concurrency limit, rate limit)",
    });
    this.breakerTransitions = this.meter.createCounter("strata.breaker.transitions", {
      description: "Circuit breaker state changes",
    });
    this.authorizations = this.meter.createCounter("strata.authz.decisions", {
      description: "Authorization decisions on calls served, allowed or denied",
    });
  }

  /** The series of (service, action); `_other` once `maxSeries` pairs have their own. */
  seriesOf(service: string, action: string): RpcSeries {
    const key = `${service}\u0000${action}`;
    let series = this.series.get(key);
    if (series === undefined) {
      if (this.series.size >= this.maxSeries) return this.other;
      series = new RpcSeries(service, action);
      this.series.set(key, series);
    }
    return series;
  }

  startClient(series: RpcSeries, parent: Context, nodeId: string): Span {
    try {
      const span = startSpan(
        this.tracer,
        series.spanName,
        { kind: SpanKind.CLIENT, attributes: series.attributes },
        parent,
      );
      if (span.isRecording()) span.setAttribute("strata.node.id", nodeId);
      return span;
    } catch {
      return trace.wrapSpanContext(trace.getSpanContext(parent) ?? INVALID_SPAN_CONTEXT);
    }
  }

  startServer(series: RpcSeries, parent: Context, nodeId: string, caller: string): Span {
    try {
      const span = startSpan(
        this.tracer,
        series.spanName,
        { kind: SpanKind.SERVER, attributes: series.attributes },
        parent,
      );
      if (span.isRecording()) {
        span.setAttribute("strata.node.id", nodeId);
        span.setAttribute("strata.caller.node", caller);
      }
      return span;
    } catch {
      return trace.wrapSpanContext(trace.getSpanContext(parent) ?? INVALID_SPAN_CONTEXT);
    }
  }

  endClient(span: Span, series: RpcSeries, code: ErrorCode | "OK", seconds: number): void {
    this.end(span, this.clientDuration, series, code, code !== "OK", seconds);
  }

  endServer(span: Span, series: RpcSeries, code: ErrorCode | "OK", seconds: number): void {
    this.end(span, this.serverDuration, series, code, isServerFault(code), seconds);
  }

  /** Runs for every call: no closure allocated, failures kept from the caller. */
  private end(
    span: Span,
    histogram: Histogram,
    series: RpcSeries,
    code: ErrorCode | "OK",
    error: boolean,
    seconds: number,
  ): void {
    try {
      if (code !== "OK") {
        span.setAttribute("rpc.response.status_code", code);
        if (error) span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
      histogram.record(seconds, series.withCode(code));
    } catch {
      // A misbehaving span processor or instrument must not reach the caller.
    }
  }
}

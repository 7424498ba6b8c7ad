import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
  ExportResultCode,
  type ExportResult,
} from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { StrataError } from "@strata/core";

/** Options of {@link startTracing}; each falls back to the standard `OTEL_*` variable. */
export interface TracingOptions {
  /** `service.name` of the spans (`OTEL_SERVICE_NAME`; default `strata`). */
  readonly serviceName?: string;
  /** More resource attributes, for example `{ "service.instance.id": nodeId }`. */
  readonly resource?: Readonly<Record<string, string | number | boolean>>;
  /**
   * OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`
   * (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`).
   * Without one, spans go only to `exporters` and `processors`.
   */
  readonly otlpUrl?: string;
  readonly otlpHeaders?: Readonly<Record<string, string>>;
  /**
   * Fraction of new traces sampled, parent-based: a span follows its parent's decision; roots
   * are sampled at this ratio (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`; default 1).
   */
  readonly sampleRatio?: number;
  /** A sampler of your own (overrides `sampleRatio` and the variables). */
  readonly sampler?: Sampler;
  /** More exporters (each behind its own bounded batch processor), e.g. an in-memory one. */
  readonly exporters?: readonly SpanExporter[];
  /** Span processors used as they are (synchronous ones see every span as it ends). */
  readonly processors?: readonly SpanProcessor[];
  /**
   * Spans queued per exporter before new ones are dropped (default 4096): an exporter that is
   * down or hangs costs memory up to this bound, never time on the call path.
   */
  readonly maxQueueSize?: number;
  /** Longest an export may take before it is abandoned (ms); default 10 000. */
  readonly exportTimeoutMs?: number;
  /** How often queued spans are exported (ms); default 1 000. */
  readonly scheduledDelayMs?: number;
  /**
   * Install as the global tracer provider, with an AsyncLocalStorage context manager and the W3C
   * propagators (default true). Strata's spans and the host program's then share one trace.
   */
  readonly register?: boolean;
  /** Where `OTEL_*` variables are read (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** A running tracing set-up. */
export interface Tracing extends AsyncDisposable {
  /** The provider (undefined when `OTEL_SDK_DISABLED` is true or sampling is off). */
  readonly provider: BasicTracerProvider | undefined;
  /** The sampler in use, described (e.g. `parentbased_traceidratio(0.01)`). */
  readonly sampler: string;
  /** Spans an exporter failed to deliver (it was down, timed out or threw). */
  dropped(): number;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Installs the OpenTelemetry tracing SDK: parent-based ratio sampling, bounded batch export to
 * OTLP/HTTP and any exporters given. The library itself depends only on the OpenTelemetry API;
 * this is the opt-in half.
 *
 * @example
 * const tracing = startTracing({ serviceName: "shop", otlpUrl: "http://localhost:4318/v1/traces" });
 * // ... create nodes; calls, events, sagas and state operations are traced
 * await tracing.shutdown();
 */
export function startTracing(options: TracingOptions = {}): Tracing {
  const env = options.env ?? process.env;
  if (isTrue(env.OTEL_SDK_DISABLED)) return disabled("disabled by OTEL_SDK_DISABLED");
  const { sampler, description } =
    options.sampler === undefined
      ? samplerOf(options.sampleRatio, env)
      : { sampler: options.sampler, description: options.sampler.toString() };
  const serviceName = options.serviceName ?? env.OTEL_SERVICE_NAME ?? "strata";
  const maxQueueSize = positiveInt("maxQueueSize", options.maxQueueSize, 4096);
  const exportTimeoutMillis = positiveInt("exportTimeoutMs", options.exportTimeoutMs, 10_000);
  const scheduledDelayMillis = positiveInt("scheduledDelayMs", options.scheduledDelayMs, 1_000);
  const exporters: SpanExporter[] = [...(options.exporters ?? [])];
  const otlpUrl = options.otlpUrl ?? otlpUrlFromEnv(env);
  if (otlpUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(otlpUrl);
    } catch {
      throw new StrataError("INVALID_ARGUMENT", `OTLP endpoint is not a URL: ${otlpUrl}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new StrataError("INVALID_ARGUMENT", `OTLP endpoint must be http(s): ${otlpUrl}`);
    }
    exporters.push(
      new OTLPTraceExporter({
        url: url.toString(),
        timeoutMillis: exportTimeoutMillis,
        ...(options.otlpHeaders === undefined ? {} : { headers: { ...options.otlpHeaders } }),
      }),
    );
  }
  let dropped = 0;
  const processors: SpanProcessor[] = [
    ...(options.processors ?? []),
    ...exporters.map(
      (exporter) =>
        new BatchSpanProcessor(new GuardedExporter(exporter, maxQueueSize, (n) => (dropped += n)), {
          maxQueueSize,
          maxExportBatchSize: Math.min(512, maxQueueSize),
          scheduledDelayMillis,
          exportTimeoutMillis,
        }),
    ),
  ];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": serviceName, ...options.resource }),
    sampler,
    spanProcessors: processors,
  });
  if (options.register !== false) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(
      new CompositePropagator({
        propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
      }),
    );
    trace.setGlobalTracerProvider(provider);
  }
  let stopped: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopped ??= (async () => {
      await provider.shutdown().catch(() => undefined);
      if (options.register !== false) {
        trace.disable();
        context.disable();
        propagation.disable();
      }
    })();
    return stopped;
  };
  return {
    provider,
    sampler: description,
    dropped: () => dropped,
    forceFlush: () => provider.forceFlush().catch(() => undefined),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

/**
 * Keeps an exporter from hurting the program: a synchronous throw becomes a failed export, and
 * a batch that a full queue would drop is counted.
 */
class GuardedExporter implements SpanExporter {
  private readonly inner: SpanExporter;
  private readonly maxQueueSize: number;
  private readonly onDropped: (n: number) => void;

  constructor(inner: SpanExporter, maxQueueSize: number, onDropped: (n: number) => void) {
    this.inner = inner;
    this.maxQueueSize = maxQueueSize;
    this.onDropped = onDropped;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    let answered = false;
    const once = (result: ExportResult): void => {
      if (answered) return;
      answered = true;
      if (result.code !== ExportResultCode.SUCCESS) this.onDropped(spans.length);
      resultCallback(result);
    };
    try {
      this.inner.export(spans, once);
    } catch (error) {
      once({
        code: ExportResultCode.FAILED,
        error: error instanceof Error ? error : new Error(String(error)),
      });
    }
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
      .then(() => this.inner.shutdown())
      .catch(() => undefined);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve()
      .then(() => this.inner.forceFlush?.())
      .catch(() => undefined);
  }

  toString(): string {
    return `GuardedExporter(queue ${this.maxQueueSize})`;
  }
}

function disabled(reason: string): Tracing {
  const done = (): Promise<void> => Promise.resolve();
  return {
    provider: undefined,
    sampler: reason,
    dropped: () => 0,
    forceFlush: done,
    shutdown: done,
    [Symbol.asyncDispose]: done,
  };
}

function samplerOf(
  ratio: number | undefined,
  env: Readonly<Record<string, string | undefined>>,
): { sampler: Sampler; description: string } {
  if (ratio !== undefined) return parentBasedRatio(checkRatio(ratio, "sampleRatio"));
  const name = (env.OTEL_TRACES_SAMPLER ?? "parentbased_always_on").trim().toLowerCase();
  const arg = env.OTEL_TRACES_SAMPLER_ARG;
  const argRatio = (): number =>
    arg === undefined ? 1 : checkRatio(Number(arg), "OTEL_TRACES_SAMPLER_ARG");
  switch (name) {
    case "always_on":
      return { sampler: new AlwaysOnSampler(), description: "always_on" };
    case "always_off":
      return { sampler: new AlwaysOffSampler(), description: "always_off" };
    case "traceidratio": {
      const r = argRatio();
      return { sampler: new TraceIdRatioBasedSampler(r), description: `traceidratio(${r})` };
    }
    case "parentbased_always_on":
      return parentBasedRatio(1);
    case "parentbased_always_off":
      return {
        sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }),
        description: "parentbased_always_off",
      };
    case "parentbased_traceidratio":
      return parentBasedRatio(argRatio());
    default:
      throw new StrataError(
        "INVALID_ARGUMENT",
        `OTEL_TRACES_SAMPLER=${name} is not supported (use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio)`,
      );
  }
}

function parentBasedRatio(ratio: number): { sampler: Sampler; description: string } {
  return {
    sampler: new ParentBasedSampler({
      root: ratio >= 1 ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(ratio),
    }),
    description: ratio >= 1 ? "parentbased_always_on" : `parentbased_traceidratio(${ratio})`,
  };
}

function checkRatio(ratio: number, what: string): number {
  if (typeof ratio !== "number" || !Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new StrataError("INVALID_ARGUMENT", `${what} must be a number from 0 to 1`);
  }
  return ratio;
}

function positiveInt(what: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new StrataError("INVALID_ARGUMENT", `${what} must be a positive integer`);
  }
  return value;
}

function otlpUrlFromEnv(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (traces !== undefined && traces !== "") return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (base === undefined || base === "") return undefined;
  return `${base.replace(/\/+$/, "")}/v1/traces`;
}

function isTrue(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === "true";
}

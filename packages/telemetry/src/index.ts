/**
 * The opt-in half of Strata's observability: the OpenTelemetry SDK set-up (trace export over
 * OTLP/HTTP, parent-based sampling), a Prometheus `/metrics` pipeline per node, pino logs that
 * carry trace ids, and trace analysis (critical path) for reports. `@strata/core` itself depends
 * on the OpenTelemetry API only.
 */
export { startTracing } from "./tracing.js";
export type { Tracing, TracingOptions } from "./tracing.js";
export { startMetrics } from "./metrics.js";
export type { Metrics, MetricsOptions } from "./metrics.js";
export { createLogger, DEFAULT_REDACT } from "./logger.js";
export type { LoggerOptions } from "./logger.js";
export { TraceCollector, criticalPath, toSpanRecord } from "./traces.js";
export type { CriticalStep, SpanRecord, TraceCollectorOptions } from "./traces.js";
export {
  AlwaysOnSampler,
  InMemorySpanExporter,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
export type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace-base";

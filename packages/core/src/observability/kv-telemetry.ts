import { SpanKind, SpanStatusCode, type Attributes } from "@opentelemetry/api";
import { toStrataError } from "../errors/index.js";
import type { StrongKV } from "../ports/strong-kv.js";
import {
  DURATION_BUCKETS_S,
  meterOf,
  safely,
  startSpan,
  tracerOf,
  type TelemetryOptions,
} from "./telemetry.js";

/** The StrongKV operations that get a span and a latency sample (watch is long-lived: not one). */
const OPERATIONS = [
  "get",
  "put",
  "create",
  "compareAndSet",
  "delete",
  "list",
  "grantLease",
  "keepAlive",
  "revokeLease",
  "revision",
  "transaction",
] as const;

/**
 * Instruments a StrongKV: every operation becomes a client span with `db.*` attributes and a
 * sample of `strata.state.operation.duration_seconds`. The adapter's own members stay reachable
 * (the result is a proxy of `kv`).
 */
export function instrumentKv<T extends StrongKV>(kv: T, options?: TelemetryOptions): T {
  const tracer = tracerOf(options);
  const duration = meterOf(options).createHistogram("strata.state.operation.duration_seconds", {
    description: "Duration of StrongKV operations, by system, operation and outcome",
    unit: "s",
    advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_S] },
  });
  const system = kv.name;
  const wrapped = new Map<string | symbol, unknown>();
  for (const operation of OPERATIONS) {
    const original = (kv[operation] as (...args: unknown[]) => Promise<unknown>).bind(kv);
    const base: Attributes = { "db.system.name": system, "db.operation.name": operation };
    const ok = { ...base, outcome: "ok" };
    const failed = { ...base, outcome: "error" };
    const name = `${operation} ${system}`;
    wrapped.set(operation, function (this: unknown, ...args: unknown[]): Promise<unknown> {
      const start = performance.now();
      let span;
      try {
        span = startSpan(tracer, name, { kind: SpanKind.CLIENT, attributes: base });
      } catch {
        span = undefined;
      }
      const finish = (error: unknown): void => {
        safely(() => {
          duration.record((performance.now() - start) / 1000, error === undefined ? ok : failed);
          if (span === undefined) return;
          if (error !== undefined) {
            span.setStatus({ code: SpanStatusCode.ERROR });
            span.setAttribute("error.type", toStrataError(error).code);
          }
          span.end();
        });
      };
      let result: Promise<unknown>;
      try {
        result = original(...args);
      } catch (error) {
        finish(error);
        throw error;
      }
      return result.then(
        (value) => {
          finish(undefined);
          return value;
        },
        (error: unknown) => {
          finish(error);
          throw error;
        },
      );
    });
  }
  // Other members are read from the adapter itself, and its methods bound to it, so that private
  // fields and getters behave as on the unwrapped object.
  const bound = new Map<string | symbol, unknown>();
  return new Proxy(kv, {
    get(target, property) {
      const own = wrapped.get(property);
      if (own !== undefined) return own;
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      let fn = bound.get(property);
      if (fn === undefined) {
        fn = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(property, fn);
      }
      return fn;
    },
  });
}

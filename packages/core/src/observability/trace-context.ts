import {
  INVALID_SPANID,
  INVALID_TRACEID,
  ROOT_CONTEXT,
  TraceFlags,
  baggageEntryMetadataFromString,
  createTraceState,
  propagation,
  trace,
  type Baggage,
  type BaggageEntry,
  type Context,
  type Span,
  type SpanContext,
} from "@opentelemetry/api";
import type { TraceContext } from "../ports/index.js";

/**
 * W3C Trace Context and Baggage, read and written by Strata itself rather than through the global
 * propagator, so that trace context crosses calls and events the same way whatever SDK (or none)
 * the host program configured.
 */

/** W3C limits: tracestate up to 512 characters, baggage up to 8192 bytes. */
export const MAX_TRACESTATE = 512;
export const MAX_BAGGAGE = 8192;
const MAX_BAGGAGE_ENTRIES = 180;

/** The span context a W3C traceparent describes, or undefined when it is not one. */
export function parseTraceparent(
  traceparent: string,
  tracestate?: string,
): SpanContext | undefined {
  // Checked by hand rather than with a regular expression: this runs for every call served.
  if (traceparent.length !== 55 || traceparent.charCodeAt(0) !== 48 /* 0 */) return undefined;
  if (traceparent.charCodeAt(1) !== 48 || traceparent.charCodeAt(2) !== 45 /* - */)
    return undefined;
  if (traceparent.charCodeAt(35) !== 45 || traceparent.charCodeAt(52) !== 45) return undefined;
  if (!lowerHex(traceparent, 3, 35) || !lowerHex(traceparent, 36, 52)) return undefined;
  if (!lowerHex(traceparent, 53, 55)) return undefined;
  const traceId = traceparent.slice(3, 35);
  const spanId = traceparent.slice(36, 52);
  if (traceId === INVALID_TRACEID || spanId === INVALID_SPANID) return undefined;
  const spanContext: SpanContext = {
    traceId,
    spanId,
    traceFlags: parseInt(traceparent.slice(53, 55), 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (tracestate !== undefined && tracestate.length > 0 && tracestate.length <= MAX_TRACESTATE) {
    try {
      return { ...spanContext, traceState: createTraceState(tracestate) };
    } catch {
      return spanContext;
    }
  }
  return spanContext;
}

function lowerHex(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Formats a span context as a W3C traceparent. */
export function formatTraceparent(spanContext: SpanContext): string {
  const flags = spanContext.traceFlags & TraceFlags.SAMPLED ? "01" : "00";
  return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
}

/**
 * The OpenTelemetry context a carried trace context stands for: its span as a remote parent and
 * its baggage. Malformed parts are ignored (a call never fails over its telemetry).
 */
export function contextFromTrace(carried: TraceContext | undefined, base = ROOT_CONTEXT): Context {
  if (carried === undefined) return base;
  let ctx = base;
  const spanContext = parseTraceparent(carried.traceparent, carried.tracestate);
  if (spanContext !== undefined) ctx = trace.setSpanContext(ctx, spanContext);
  if (carried.baggage !== undefined) {
    const baggage = parseBaggage(carried.baggage);
    if (baggage !== undefined) ctx = propagation.setBaggage(ctx, baggage);
  }
  return ctx;
}

/**
 * `ctx` with `span` active. A span that only stands for its parent (what the no-op tracer returns
 * when no SDK is installed) or has no valid context adds nothing, and `ctx` is returned as it is:
 * the call path then allocates no context.
 */
export function withSpan(ctx: Context, span: Span): Context {
  const spanContext = span.spanContext();
  // (Ids are checked by identity and against the invalid id only: the full check runs regexes.)
  if (spanContext === trace.getSpanContext(ctx) || spanContext.traceId === INVALID_TRACEID) {
    return ctx;
  }
  return trace.setSpan(ctx, span);
}

/** The trace context to carry for the span (and baggage) active in `ctx`, if it has a valid one. */
export function traceFromContext(ctx: Context): TraceContext | undefined {
  const spanContext = trace.getSpanContext(ctx);
  // Ids come from the SDK or from parseTraceparent, both well-formed: only the invalid (all-zero)
  // ids need ruling out.
  if (spanContext === undefined || spanContext.traceId === INVALID_TRACEID) return undefined;
  if (spanContext.spanId === INVALID_SPANID) return undefined;
  const tracestate = spanContext.traceState?.serialize();
  const baggage = serializeBaggage(propagation.getBaggage(ctx));
  const out: { traceparent: string; tracestate?: string; baggage?: string } = {
    traceparent: formatTraceparent(spanContext),
  };
  if (tracestate !== undefined && tracestate.length > 0) out.tracestate = tracestate;
  if (baggage !== undefined) out.baggage = baggage;
  return out;
}

/** W3C Baggage header value to a Baggage, or undefined when empty, oversized or unreadable. */
export function parseBaggage(header: string): Baggage | undefined {
  if (header.length === 0 || header.length > MAX_BAGGAGE) return undefined;
  const entries: Record<string, BaggageEntry> = {};
  let count = 0;
  for (const member of header.split(",")) {
    if (++count > MAX_BAGGAGE_ENTRIES) break;
    const [pair, ...props] = member.split(";");
    if (pair === undefined) continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    if (key.length === 0 || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(key)) continue;
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      continue;
    }
    const metadata = props.length > 0 ? baggageEntryMetadataFromString(props.join(";")) : undefined;
    entries[key] = metadata === undefined ? { value } : { value, metadata };
  }
  return Object.keys(entries).length === 0 ? undefined : propagation.createBaggage(entries);
}

/** A Baggage as a W3C Baggage header value, or undefined when there is none. */
export function serializeBaggage(baggage: Baggage | undefined): string | undefined {
  if (baggage === undefined) return undefined;
  const parts: string[] = [];
  let size = 0;
  for (const [key, entry] of baggage.getAllEntries()) {
    let part = `${key}=${encodeURIComponent(entry.value)}`;
    const metadata = entry.metadata?.toString();
    if (metadata !== undefined && metadata.length > 0) part += `;${metadata}`;
    if (size + part.length + 1 > MAX_BAGGAGE) break;
    size += part.length + 1;
    parts.push(part);
  }
  return parts.length === 0 ? undefined : parts.join(",");
}

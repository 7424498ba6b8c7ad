import { StrataError } from "../errors/index.js";
import { MAX_BAGGAGE } from "../observability/trace-context.js";
import type { LogRecord } from "../ports/log.js";

/**
 * CloudEvents 1.0 in binary content mode: the event's attributes travel as `ce-` headers of the
 * log record and its data is the record's payload (JSON). Binary mode keeps the payload the
 * event's data alone, so tools that do not speak CloudEvents still read it, and the attributes
 * cost no parsing of the body. Trace context rides beside them as W3C `traceparent`/`tracestate`.
 */
export interface CloudEvent<T = unknown> {
  readonly specversion: "1.0";
  /** Unique per event; consumers de-duplicate on it. */
  readonly id: string;
  /** Who produced it (a URI reference: the node or service). */
  readonly source: string;
  /** `<service>.<event>`, e.g. `orders.placed`. */
  readonly type: string;
  /** The partition key: events with the same subject are delivered in order. */
  readonly subject: string;
  /** When it was produced (RFC 3339). */
  readonly time: string;
  readonly datacontenttype: "application/json";
  readonly data: T;
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** W3C Baggage, carried beside the trace context. */
  readonly baggage?: string;
}

const CONTENT_TYPE = "application/json";
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** The record headers and payload of an event. */
export function encodeEvent(event: CloudEvent): {
  headers: Record<string, string>;
  payload: Uint8Array;
} {
  const headers: Record<string, string> = {
    "ce-specversion": event.specversion,
    "ce-id": event.id,
    "ce-source": event.source,
    "ce-type": event.type,
    "ce-subject": event.subject,
    "ce-time": event.time,
    "content-type": event.datacontenttype,
  };
  if (event.traceparent !== undefined) headers.traceparent = event.traceparent;
  if (event.tracestate !== undefined) headers.tracestate = event.tracestate;
  if (event.baggage !== undefined) headers.baggage = event.baggage;
  let json: string | undefined;
  try {
    json = JSON.stringify(event.data);
  } catch (error) {
    throw new StrataError("INVALID_ARGUMENT", "event data cannot be encoded as JSON", {
      cause: error,
    });
  }
  if (json === undefined) {
    throw new StrataError("INVALID_ARGUMENT", "event data cannot be encoded as JSON");
  }
  return { headers, payload: enc.encode(json) };
}

/** Why a record is not a well-formed event (the reason recorded on the dead-letter stream). */
function malformed(reason: string, cause?: unknown): StrataError {
  return new StrataError(
    "INVALID_ARGUMENT",
    `malformed event: ${reason}`,
    cause === undefined ? {} : { cause },
  );
}

/**
 * Reads an event from a record; throws INVALID_ARGUMENT with the reason when a required
 * attribute is missing or invalid, or the data is not JSON. Never trusts the record: whatever a
 * foreign producer wrote to the stream ends here as an event or as a clear reason.
 */
export function decodeEvent(record: LogRecord): CloudEvent {
  const h = record.headers;
  const required = (name: string): string => {
    const value = h[name];
    if (value === undefined || value.length === 0) throw malformed(`no ${name} header`);
    return value;
  };
  const specversion = required("ce-specversion");
  if (specversion !== "1.0") {
    throw malformed(`unsupported specversion ${JSON.stringify(specversion)}`);
  }
  const id = required("ce-id");
  const source = required("ce-source");
  const type = required("ce-type");
  const time = h["ce-time"] ?? new Date(record.time).toISOString();
  if (Number.isNaN(Date.parse(time))) throw malformed(`invalid time ${time}`);
  const contentType = h["content-type"] ?? CONTENT_TYPE;
  if (!contentType.startsWith(CONTENT_TYPE)) {
    throw malformed(`unsupported content type ${JSON.stringify(contentType)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(dec.decode(record.payload));
  } catch (error) {
    throw malformed("data is not UTF-8 JSON", error);
  }
  const traceparent = h.traceparent;
  return {
    specversion: "1.0",
    id,
    source,
    type,
    subject: h["ce-subject"] ?? record.key,
    time,
    datacontenttype: CONTENT_TYPE,
    data,
    ...(traceparent !== undefined && TRACEPARENT.test(traceparent) ? { traceparent } : {}),
    ...(h.tracestate !== undefined && traceparent !== undefined
      ? { tracestate: h.tracestate }
      : {}),
    ...(h.baggage !== undefined && traceparent !== undefined && h.baggage.length <= MAX_BAGGAGE
      ? { baggage: h.baggage }
      : {}),
  };
}

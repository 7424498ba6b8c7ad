import { Packr } from "msgpackr";
import { StrataError, fromWireError, type WireError } from "../errors/index.js";
import type {
  CallReply,
  CallRequest,
  ControlMessage,
  NodeAnnouncement,
  NodeStatus,
  TraceContext,
} from "../ports/index.js";
import { MAX_BAGGAGE, MAX_TRACESTATE } from "../observability/trace-context.js";
import type { Principal } from "../runtime/context.js";

/** Version tag at the head of every frame; a peer speaking another version is refused clearly. */
export const WIRE_VERSION = 1;

/** Longest call budget a peer may ask for: one day. */
const MAX_BUDGET_MS = 86_400_000;

/** Default frame size limit: 1 MiB, the NATS server's default `max_payload`. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/** Options for {@link createCodec}. */
export interface CodecOptions {
  /** Frames larger than this are refused on encode and on decode. */
  readonly maxFrameBytes?: number;
}

/**
 * Encodes and decodes Strata's wire frames with MessagePack (msgpackr). Every decode validates the
 * frame's shape; anything malformed throws a {@link StrataError} with code `INVALID_ARGUMENT`
 * (`DATA_LOSS` is reserved for storage), and oversized frames throw `RESOURCE_EXHAUSTED`.
 */
export interface Codec {
  readonly maxFrameBytes: number;
  encodeRequest(request: CallRequest): Uint8Array;
  decodeRequest(frame: Uint8Array): CallRequest;
  encodeReply(reply: CallReply): Uint8Array;
  decodeReply(frame: Uint8Array): CallReply;
  encodeControl(message: ControlMessage): Uint8Array;
  decodeControl(frame: Uint8Array): ControlMessage;
  /** Encodes any value (for example a CLI payload) under the same limits. */
  encode(value: unknown): Uint8Array;
  decode(frame: Uint8Array): unknown;
}

/** Longest traceparent kept (a W3C one is 55 characters); tracestate and baggage: W3C limits. */
const MAX_TRACEPARENT = 128;

const KIND_REQUEST = 1;
const KIND_REPLY_OK = 2;
const KIND_REPLY_ERROR = 3;
const KIND_CONTROL = 4;

function malformed(what: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `malformed frame: ${what}`);
}

function isStatus(value: unknown): value is NodeStatus {
  return value === "ready" || value === "unready" || value === "draining";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringRecord(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw malformed(`${what} must be a map of strings`);
  for (const key in value) {
    if (typeof value[key] !== "string") throw malformed(`${what}.${key} must be a string`);
  }
  return value as Record<string, string>;
}

function readTrace(value: unknown): TraceContext | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || typeof value[0] !== "string") throw malformed("trace context");
  const [traceparent, tracestate, baggage] = value as unknown[];
  if (tracestate !== undefined && tracestate !== null && typeof tracestate !== "string") {
    throw malformed("tracestate");
  }
  if (baggage !== undefined && baggage !== null && typeof baggage !== "string") {
    throw malformed("baggage");
  }
  // Oversized trace context is dropped, not refused: a call never fails over its telemetry.
  if ((traceparent as string).length > MAX_TRACEPARENT) return undefined;
  const out: { traceparent: string; tracestate?: string; baggage?: string } = {
    traceparent: traceparent as string,
  };
  if (typeof tracestate === "string" && tracestate.length <= MAX_TRACESTATE) {
    out.tracestate = tracestate;
  }
  if (typeof baggage === "string" && baggage.length <= MAX_BAGGAGE) out.baggage = baggage;
  return out;
}

function readPrincipal(value: unknown): Principal | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw malformed("principal");
  const short = (v: unknown): v is string =>
    typeof v === "string" && v.length > 0 && v.length <= 1_024;
  if (value.kind === "user") {
    if (!short(value.subject) || !isRecord(value.claims)) throw malformed("user principal");
    return { kind: "user", subject: value.subject, claims: value.claims };
  }
  if (value.kind === "workload" || value.kind === "node") {
    if (!short(value.id)) throw malformed(`${value.kind} principal`);
    return { kind: value.kind, id: value.id };
  }
  throw malformed("principal kind");
}

function readAnnouncement(value: unknown): NodeAnnouncement {
  if (!isRecord(value)) throw malformed("node announcement");
  const { id, region, incarnation, status, inFlight, startedAt, transport, services } = value;
  if (typeof id !== "string" || id.length === 0 || id.length > 256) throw malformed("node id");
  if (typeof region !== "string") throw malformed("region");
  if (typeof incarnation !== "number") throw malformed("incarnation");
  if (!isStatus(status)) throw malformed("status");
  if (typeof inFlight !== "number" || typeof startedAt !== "number") throw malformed("counters");
  if (typeof transport !== "string") throw malformed("transport");
  if (!Array.isArray(services)) throw malformed("services");
  for (const service of services as unknown[]) {
    if (!isRecord(service)) throw malformed("service");
    if (typeof service["name"] !== "string" || typeof service["version"] !== "string") {
      throw malformed("service name or version");
    }
    const actions = service["actions"];
    if (!Array.isArray(actions)) throw malformed("service actions");
    for (const action of actions as unknown[]) {
      if (!isRecord(action) || typeof action["name"] !== "string") throw malformed("action");
      if (typeof action["idempotent"] !== "boolean") throw malformed("action idempotent flag");
    }
  }
  return value as unknown as NodeAnnouncement;
}

/**
 * Creates a codec with the given limits.
 *
 * @example
 * const codec = createCodec({ maxFrameBytes: 256 * 1024 });
 * const bytes = codec.encodeRequest(request);
 */
export function createCodec(options: CodecOptions = {}): Codec {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 64) {
    throw new StrataError("INVALID_ARGUMENT", `codec: maxFrameBytes must be an integer >= 64`);
  }
  // "auto": 64-bit integers within ±2^53 decode as numbers, larger ones as bigint (msgpackr
  // supports it; its type declarations lag behind).
  const packr = new Packr({
    useRecords: false,
    mapsAsObjects: true,
    int64AsType: "auto" as "bigint",
  });

  const pack = (value: unknown, what: string): Uint8Array => {
    let bytes: Uint8Array;
    try {
      bytes = packr.pack(value);
    } catch (error) {
      throw new StrataError("INVALID_ARGUMENT", `cannot encode ${what}: ${String(error)}`, {
        cause: error,
      });
    }
    if (bytes.length > maxFrameBytes) {
      throw new StrataError(
        "RESOURCE_EXHAUSTED",
        `${what} is ${bytes.length} bytes, over the ${maxFrameBytes}-byte limit`,
        { retryable: false, details: { size: bytes.length, limit: maxFrameBytes } },
      );
    }
    return bytes;
  };

  const unpack = (frame: Uint8Array, what: string): unknown => {
    if (!(frame instanceof Uint8Array)) throw malformed(`${what} is not bytes`);
    if (frame.length > maxFrameBytes) {
      throw new StrataError(
        "RESOURCE_EXHAUSTED",
        `${what} is ${frame.length} bytes, over the ${maxFrameBytes}-byte limit`,
        { retryable: false, details: { size: frame.length, limit: maxFrameBytes } },
      );
    }
    if (frame.length === 0) throw malformed(`empty ${what}`);
    try {
      return packr.unpack(frame);
    } catch (error) {
      throw new StrataError("INVALID_ARGUMENT", `malformed frame: ${what} does not decode`, {
        cause: error,
      });
    }
  };

  const head = (value: unknown, kind: number, what: string): unknown[] => {
    if (!Array.isArray(value)) throw malformed(`${what} is not a frame`);
    if (value[0] !== WIRE_VERSION) {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `unsupported wire version ${String(value[0])}; this node speaks ${WIRE_VERSION}`,
      );
    }
    if (kind !== 0 && value[1] !== kind) throw malformed(`${what} has the wrong kind`);
    return value;
  };

  return {
    maxFrameBytes,
    encodeRequest(request) {
      const frame: unknown[] = [
        WIRE_VERSION,
        KIND_REQUEST,
        request.id,
        request.from,
        request.service,
        request.version,
        request.action,
        request.input,
        request.timeoutMs,
        request.trace === undefined
          ? null
          : request.trace.baggage === undefined
            ? [request.trace.traceparent, request.trace.tracestate ?? null]
            : [request.trace.traceparent, request.trace.tracestate ?? null, request.trace.baggage],
        request.meta ?? null,
        request.idempotencyKey ?? null,
        request.principal ?? null,
      ];
      // Optional trailing fields that are absent are left off the wire.
      while (frame.length > 9 && frame[frame.length - 1] === null) frame.pop();
      return pack(frame, "request");
    },
    decodeRequest(frame) {
      const f = head(unpack(frame, "request"), KIND_REQUEST, "request");
      const [, , id, from, service, version, action, input, timeoutMs, trace, meta, key, who] = f;
      if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) throw malformed("call id");
      if (typeof from !== "string" || from.length === 0) throw malformed("caller");
      if (typeof service !== "string" || service.length === 0) throw malformed("service");
      if (typeof version !== "string") throw malformed("version");
      if (typeof action !== "string" || action.length === 0) throw malformed("action");
      if (typeof timeoutMs !== "number" || !(timeoutMs >= 0 && timeoutMs <= MAX_BUDGET_MS)) {
        throw malformed("timeout (a budget of 0 to 86400000 ms)");
      }
      if (key !== null && key !== undefined && typeof key !== "string") {
        throw malformed("idempotency key");
      }
      return {
        id,
        from,
        service,
        version,
        action,
        input,
        timeoutMs,
        trace: readTrace(trace),
        meta: stringRecord(meta, "meta"),
        idempotencyKey: typeof key === "string" ? key : undefined,
        principal: readPrincipal(who),
      };
    },
    encodeReply(reply) {
      if (reply.ok) return pack([WIRE_VERSION, KIND_REPLY_OK, reply.output], "reply");
      const e = reply.error;
      return pack(
        [WIRE_VERSION, KIND_REPLY_ERROR, [e.code, e.message, e.retryable, e.details]],
        "error reply",
      );
    },
    decodeReply(frame) {
      const f = head(unpack(frame, "reply"), 0, "reply");
      if (f[1] === KIND_REPLY_OK) return { ok: true, output: f[2] };
      if (f[1] !== KIND_REPLY_ERROR || !Array.isArray(f[2])) throw malformed("reply kind");
      const [code, message, retryable, details] = f[2] as unknown[];
      const error: WireError = fromWireError({ code, message, retryable, details }).toWire();
      return { ok: false, error };
    },
    encodeControl(message) {
      return pack([WIRE_VERSION, KIND_CONTROL, message], "control message");
    },
    decodeControl(frame) {
      const f = head(unpack(frame, "control message"), KIND_CONTROL, "control message");
      const m = f[2];
      if (!isRecord(m)) throw malformed("control message body");
      switch (m["t"]) {
        case "hello":
          return { t: "hello", node: readAnnouncement(m["node"]) };
        case "heartbeat": {
          const { id, status, inFlight, incarnation } = m;
          if (typeof id !== "string" || !isStatus(status)) {
            throw malformed("heartbeat");
          }
          if (typeof inFlight !== "number" || typeof incarnation !== "number") {
            throw malformed("heartbeat counters");
          }
          return { t: "heartbeat", id, status, inFlight, incarnation };
        }
        case "bye":
          if (typeof m["id"] !== "string" || typeof m["incarnation"] !== "number") {
            throw malformed("bye");
          }
          return { t: "bye", id: m["id"], incarnation: m["incarnation"] };
        case "discover":
          if (typeof m["id"] !== "string") throw malformed("discover");
          return { t: "discover", id: m["id"] };
        default:
          throw malformed(`unknown control message ${String(m["t"])}`);
      }
    },
    encode: (value) => pack(value, "payload"),
    decode: (frame) => unpack(frame, "payload"),
  };
}

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StrataError, isStrataError } from "../errors/index.js";
import type { CallReply, CallRequest, ControlMessage, NodeAnnouncement } from "../ports/index.js";
import { DEFAULT_MAX_FRAME_BYTES, WIRE_VERSION, createCodec, type Codec } from "./index.js";

const codec = createCodec();

/** Calls `fn`, which must throw a StrataError, and returns it. */
function thrown(fn: () => unknown): StrataError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StrataError);
    return error as StrataError;
  }
  throw new Error("expected a StrataError, nothing was thrown");
}

/** A raw frame: any array packed with the codec's own MessagePack settings. */
function frame(...items: unknown[]): Uint8Array {
  return codec.encode(items);
}

// ---- arbitraries ----------------------------------------------------------------------------

const text = fc.string({ unit: "grapheme", maxLength: 12 });
const nonEmpty = fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 });
const key = fc.string({ unit: "grapheme", maxLength: 8 }).filter((k) => k !== "__proto__");
/** Doubles as they survive MessagePack: -0 comes back as 0. */
const double = fc.double({ noNaN: true }).map((d) => (Object.is(d, -0) ? 0 : d));
/** Integers beyond 2^53 in both directions, within MessagePack's 64-bit range. */
const bigInteger = fc.oneof(
  fc.bigInt({ min: 2n ** 53n + 1n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: -(2n ** 63n), max: -(2n ** 53n) - 1n }),
);

const { json } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    double,
    text,
    bigInteger,
    fc.array(tie("json"), { maxLength: 4 }),
    fc.dictionary(key, tie("json"), { maxKeys: 4, noNullPrototype: true }),
  ),
}));

const request: fc.Arbitrary<CallRequest> = fc.record(
  {
    id: fc.maxSafeNat(),
    from: nonEmpty,
    service: nonEmpty,
    version: text,
    action: nonEmpty,
    input: json,
    timeoutMs: fc.double({ min: 0, max: 86_400_000, noNaN: true }).map((d) => (d === 0 ? 0 : d)),
    trace: fc.record(
      { traceparent: text, tracestate: text, baggage: text },
      { requiredKeys: ["traceparent"], noNullPrototype: true },
    ),
    meta: fc.dictionary(key, text, { maxKeys: 4, noNullPrototype: true }),
    idempotencyKey: text,
  },
  { requiredKeys: ["id", "from", "service", "version", "action", "input", "timeoutMs"] },
);

const announcement: fc.Arbitrary<NodeAnnouncement> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 64 }),
  region: text,
  incarnation: fc.maxSafeNat(),
  status: fc.constantFrom("ready" as const, "draining" as const),
  inFlight: fc.nat(),
  startedAt: fc.maxSafeNat(),
  transport: text,
  services: fc.array(
    fc.record({
      name: nonEmpty,
      version: text,
      actions: fc.array(fc.record({ name: nonEmpty, idempotent: fc.boolean() }), { maxLength: 3 }),
    }),
    { maxLength: 3 },
  ),
});

const control: fc.Arbitrary<ControlMessage> = fc.oneof(
  announcement.map((node) => ({ t: "hello" as const, node })),
  fc.record({
    t: fc.constant("heartbeat" as const),
    id: nonEmpty,
    status: fc.constantFrom("ready" as const, "draining" as const),
    inFlight: fc.nat(),
    incarnation: fc.maxSafeNat(),
  }),
  fc.record({ t: fc.constant("bye" as const), id: nonEmpty, incarnation: fc.maxSafeNat() }),
  fc.record({ t: fc.constant("discover" as const), id: nonEmpty }),
);

const decoders = (c: Codec): Array<[string, (bytes: Uint8Array) => unknown]> => [
  ["request", (b) => c.decodeRequest(b)],
  ["reply", (b) => c.decodeReply(b)],
  ["control", (b) => c.decodeControl(b)],
  ["payload", (b) => c.decode(b)],
];

/** Decoding may succeed or throw a StrataError; anything else is a bug. */
function decodesOrRefuses(bytes: Uint8Array): void {
  for (const [what, decode] of decoders(codec)) {
    try {
      decode(bytes);
    } catch (error) {
      if (!isStrataError(error, "INVALID_ARGUMENT", "FAILED_PRECONDITION")) {
        throw new Error(`decoding a ${what} threw ${String(error)}`, { cause: error });
      }
    }
  }
}

const sample: CallRequest = {
  id: 7,
  from: "node-a",
  service: "catalog",
  version: "1.2.0",
  action: "get",
  input: { id: "p-1", qty: 2 },
  timeoutMs: 1500,
  trace: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
  meta: { tenant: "acme" },
  idempotencyKey: "k-1",
};

// ---- round trips ------------------------------------------------------------------------------

describe("codec round trips", () => {
  it("round-trips generated requests, bigints and nested inputs included", () => {
    fc.assert(
      fc.property(request, (original) => {
        const decoded = codec.decodeRequest(codec.encodeRequest(original));
        expect(decoded).toEqual(original);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps bigints beyond 2^53 exact and safe integers as numbers", () => {
    const input = { big: 2n ** 60n + 1n, negative: -(2n ** 62n), safe: 2 ** 53 - 1, small: 12n };
    const decoded = codec.decodeRequest(codec.encodeRequest({ ...sample, input }));
    expect(decoded.input).toEqual({
      big: 2n ** 60n + 1n,
      negative: -(2n ** 62n),
      safe: 2 ** 53 - 1,
      small: 12,
    });
  });

  it("leaves absent optional fields absent", () => {
    const bare: CallRequest = {
      id: 1,
      from: "a",
      service: "s",
      version: "",
      action: "x",
      input: undefined,
      timeoutMs: 10,
    };
    const bytes = codec.encodeRequest(bare);
    expect(bytes.length).toBeLessThan(codec.encodeRequest(sample).length);
    const decoded = codec.decodeRequest(bytes);
    expect(decoded).toEqual(bare);
    expect(decoded.trace).toBeUndefined();
    expect(decoded.meta).toBeUndefined();
    expect(decoded.idempotencyKey).toBeUndefined();
  });

  it("round-trips ok replies with any output", () => {
    fc.assert(
      fc.property(json, (output) => {
        const reply: CallReply = { ok: true, output };
        expect(codec.decodeReply(codec.encodeReply(reply))).toEqual(reply);
      }),
      { numRuns: 200 },
    );
  });

  it("round-trips error replies", () => {
    const error = new StrataError("NOT_FOUND", "product p-1 not found", {
      details: { id: "p-1", tries: [1, 2] },
    }).toWire();
    expect(codec.decodeReply(codec.encodeReply({ ok: false, error }))).toEqual({
      ok: false,
      error,
    });
  });

  it("round-trips control messages", () => {
    fc.assert(
      fc.property(control, (message) => {
        expect(codec.decodeControl(codec.encodeControl(message))).toEqual(message);
      }),
      { numRuns: 200 },
    );
  });

  it("round-trips free-form payloads", () => {
    expect(codec.decode(codec.encode({ a: [1, "two", null] }))).toEqual({ a: [1, "two", null] });
  });
});

// ---- hostile input ----------------------------------------------------------------------------

describe("codec against malformed frames", () => {
  it("answers random bytes only with StrataErrors", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 96 }), decodesOrRefuses), {
      numRuns: 2_000,
    });
  });

  it("answers random bytes behind a valid header only with StrataErrors", () => {
    const heads = [
      Uint8Array.of(0x9c, WIRE_VERSION, 1), // array of 12: request
      Uint8Array.of(0x93, WIRE_VERSION, 2), // ok reply
      Uint8Array.of(0x93, WIRE_VERSION, 3), // error reply
      Uint8Array.of(0x93, WIRE_VERSION, 4), // control message
    ];
    fc.assert(
      fc.property(fc.constantFrom(...heads), fc.uint8Array({ maxLength: 64 }), (head, tail) => {
        const bytes = new Uint8Array(head.length + tail.length);
        bytes.set(head);
        bytes.set(tail, head.length);
        decodesOrRefuses(bytes);
      }),
      { numRuns: 2_000 },
    );
  });

  it("answers well-formed MessagePack of the wrong shape only with StrataErrors", () => {
    const anything = fc.oneof(json, fc.constant(undefined), fc.constant(Number.NaN));
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 3, 4, 9),
        fc.array(anything, { maxLength: 12 }),
        (kind, rest) => decodesOrRefuses(frame(WIRE_VERSION, kind, ...rest)),
      ),
      { numRuns: 1_000 },
    );
  });

  it("answers corrupted valid frames only with StrataErrors", () => {
    const valid = codec.encodeRequest(sample);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.nat({ max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (flips) => {
          const bytes = valid.slice();
          for (const [at, value] of flips) bytes[at] = value;
          decodesOrRefuses(bytes);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("refuses every truncation of a valid frame with INVALID_ARGUMENT", () => {
    const frames = [
      codec.encodeRequest(sample),
      codec.encodeReply({ ok: true, output: { a: 1 } }),
      codec.encodeControl({ t: "discover", id: "n1" }),
    ];
    for (const valid of frames) {
      for (let length = 0; length < valid.length; length++) {
        const error = thrown(() => codec.decodeRequest(valid.subarray(0, length)));
        expect(error.code).toBe("INVALID_ARGUMENT");
      }
    }
  });

  it("refuses an empty frame and non-bytes", () => {
    const empty = thrown(() => codec.decodeRequest(new Uint8Array(0)));
    expect(empty.code).toBe("INVALID_ARGUMENT");
    expect(empty.message).toMatch(/empty request/);
    expect(thrown(() => codec.decode(new Uint8Array(0))).code).toBe("INVALID_ARGUMENT");
    const notBytes = thrown(() => codec.decodeReply("hello" as unknown as Uint8Array));
    expect(notBytes.code).toBe("INVALID_ARGUMENT");
  });

  it("refuses another wire version with FAILED_PRECONDITION that names both versions", () => {
    const error = thrown(() =>
      codec.decodeRequest(frame(2, 1, 7, "a", "s", "1.0.0", "x", null, 100)),
    );
    expect(error.code).toBe("FAILED_PRECONDITION");
    expect(error.message).toMatch(/unsupported wire version 2.*speaks 1/);
    expect(thrown(() => codec.decodeControl(frame("1", 4, { t: "discover", id: "a" }))).code).toBe(
      "FAILED_PRECONDITION",
    );
  });

  it("refuses a frame that is not an array, or of the wrong kind", () => {
    expect(thrown(() => codec.decodeRequest(codec.encode({ v: 1 }))).message).toMatch(
      /not a frame/,
    );
    const reply = codec.encodeReply({ ok: true, output: 1 });
    expect(thrown(() => codec.decodeRequest(reply)).message).toMatch(/wrong kind/);
    expect(thrown(() => codec.decodeControl(reply)).message).toMatch(/wrong kind/);
    expect(thrown(() => codec.decodeReply(codec.encodeRequest(sample))).message).toMatch(
      /reply kind/,
    );
  });

  it("refuses request fields of the wrong type, naming the field", () => {
    const good = [WIRE_VERSION, 1, 7, "a", "svc", "1.0.0", "act", { x: 1 }, 100] as const;
    const cases: Array<[index: number, value: unknown, message: RegExp]> = [
      [2, "7", /call id/],
      [2, 1.5, /call id/],
      [2, 2 ** 60, /call id/],
      [3, "", /caller/],
      [3, 5, /caller/],
      [4, "", /service/],
      [4, null, /service/],
      [5, 1, /version/],
      [6, "", /action/],
      [8, -1, /timeout/],
      [8, "100", /timeout/],
      [8, Number.NaN, /timeout/],
    ];
    for (const [index, value, message] of cases) {
      const fields: unknown[] = [...good];
      fields[index] = value;
      const error = thrown(() => codec.decodeRequest(frame(...fields)));
      expect(error.code, `field ${index} = ${String(value)}`).toBe("INVALID_ARGUMENT");
      expect(error.message).toMatch(message);
    }
    const optional: Array<[value: unknown[], message: RegExp]> = [
      [["not-a-trace"], /trace context/],
      [[[1]], /trace context/],
      [[["tp", 5]], /tracestate/],
      [[null, "tenant=acme"], /meta must be a map/],
      [[null, { tenant: 5 }], /meta\.tenant must be a string/],
      [[null, ["a"]], /meta must be a map/],
      [[null, null, 42], /idempotency key/],
    ];
    for (const [tail, message] of optional) {
      const error = thrown(() => codec.decodeRequest(frame(...good, ...tail)));
      expect(error.code).toBe("INVALID_ARGUMENT");
      expect(error.message).toMatch(message);
    }
  });

  it("refuses control messages of the wrong shape", () => {
    const bad: unknown[] = [
      "hello",
      { t: "shout" },
      { t: "hello", node: { id: "" } },
      { t: "hello", node: { id: "a", region: "r", incarnation: "1" } },
      { t: "heartbeat", id: "a", status: "sleeping", inFlight: 0, incarnation: 1 },
      { t: "heartbeat", id: "a", status: "ready", inFlight: "0", incarnation: 1 },
      { t: "bye", id: 3, incarnation: 1 },
      { t: "discover" },
    ];
    for (const body of bad) {
      const error = thrown(() => codec.decodeControl(frame(WIRE_VERSION, 4, body)));
      expect(error.code, JSON.stringify(body)).toBe("INVALID_ARGUMENT");
    }
    const node: NodeAnnouncement = {
      id: "a",
      region: "eu",
      incarnation: 1,
      status: "ready",
      inFlight: 0,
      startedAt: 1,
      transport: "embedded",
      services: [{ name: "s", version: "1.0.0", actions: [{ name: "x", idempotent: false }] }],
    };
    const mutations: Array<Partial<Record<keyof NodeAnnouncement, unknown>>> = [
      { id: "x".repeat(257) },
      { status: "gone" },
      { services: "all" },
      { services: [{ name: "s", version: 1, actions: [] }] },
      { services: [{ name: "s", version: "1.0.0", actions: [{ name: "x" }] }] },
      { services: [{ name: "s", version: "1.0.0" }] },
      { transport: null },
    ];
    for (const change of mutations) {
      const error = thrown(() =>
        codec.decodeControl(frame(WIRE_VERSION, 4, { t: "hello", node: { ...node, ...change } })),
      );
      expect(error.code, JSON.stringify(change)).toBe("INVALID_ARGUMENT");
    }
  });

  it("rebuilds hostile error replies into safe StrataError shapes", () => {
    const reply = codec.decodeReply(
      frame(WIRE_VERSION, 3, ["TEAPOT", "x".repeat(10_000), "yes", [1, 2]]),
    );
    expect(reply.ok).toBe(false);
    if (reply.ok) return;
    expect(reply.error.code).toBe("UNKNOWN");
    expect(reply.error.message.length).toBe(2048);
    expect(reply.error.retryable).toBe(false);
    expect(reply.error.details).toEqual({});
    expect(thrown(() => codec.decodeReply(frame(WIRE_VERSION, 3, "oops"))).code).toBe(
      "INVALID_ARGUMENT",
    );
  });

  it("does not let __proto__ keys pollute prototypes", () => {
    const hostile = JSON.parse(
      '{"__proto__": {"polluted": true, "isAdmin": true}, "ok": 1}',
    ) as Record<string, unknown>;
    const bytes = frame(WIRE_VERSION, 1, 7, "a", "svc", "1.0.0", "act", hostile, 100, null, {
      tenant: "acme",
    });
    const decoded = codec.decodeRequest(bytes);
    const input = decoded.input as Record<string, unknown>;
    expect(Object.getPrototypeOf(input)).toBe(Object.prototype);
    expect(input["polluted"]).toBeUndefined();
    expect(input["isAdmin"]).toBeUndefined();
    expect(input["ok"]).toBe(1);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();

    const metaAttack = JSON.parse('{"__proto__": {"role": "admin"}}') as unknown;
    const error = thrown(() =>
      codec.decodeRequest(
        frame(WIRE_VERSION, 1, 7, "a", "svc", "1.0.0", "act", null, 100, null, metaAttack),
      ),
    );
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(({} as Record<string, unknown>)["role"]).toBeUndefined();

    const control = codec.decodeControl(
      frame(WIRE_VERSION, 4, JSON.parse('{"t": "discover", "id": "a", "__proto__": {"x": 1}}')),
    );
    expect(control).toEqual({ t: "discover", id: "a" });
    expect(Object.getPrototypeOf(control)).toBe(Object.prototype);
  });
});

// ---- limits -----------------------------------------------------------------------------------

describe("codec size limits", () => {
  it("defaults to 1 MiB and refuses silly limits", () => {
    expect(codec.maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(1024 * 1024);
    for (const maxFrameBytes of [0, 63, 1.5, Number.NaN, -1]) {
      const error = thrown(() => createCodec({ maxFrameBytes }));
      expect(error.code).toBe("INVALID_ARGUMENT");
      expect(error.message).toMatch(/maxFrameBytes/);
    }
  });

  it("refuses to encode frames over the limit with RESOURCE_EXHAUSTED", () => {
    const small = createCodec({ maxFrameBytes: 256 });
    const error = thrown(() => small.encodeRequest({ ...sample, input: "x".repeat(300) }));
    expect(error.code).toBe("RESOURCE_EXHAUSTED");
    expect(error.retryable).toBe(false);
    expect(error.details).toMatchObject({ limit: 256 });
    expect(error.details["size"]).toBeGreaterThan(256);
    expect(thrown(() => small.encodeReply({ ok: true, output: "x".repeat(300) })).code).toBe(
      "RESOURCE_EXHAUSTED",
    );
    expect(thrown(() => small.encode(new Uint8Array(300))).code).toBe("RESOURCE_EXHAUSTED");
    // A frame right at the limit still goes through.
    // (A str8 header takes two bytes.)
    const fits = small.encode("x".repeat(254));
    expect(fits.length).toBe(256);
    expect(small.decode(fits)).toBe("x".repeat(254));
    expect(thrown(() => small.encode("x".repeat(255))).code).toBe("RESOURCE_EXHAUSTED");
  });

  it("refuses to decode frames over the limit before parsing them", () => {
    const big = codec.encodeRequest({ ...sample, input: "x".repeat(10_000) });
    const small = createCodec({ maxFrameBytes: 1024 });
    const error = thrown(() => small.decodeRequest(big));
    expect(error.code).toBe("RESOURCE_EXHAUSTED");
    expect(error.details).toEqual({ size: big.length, limit: 1024 });
  });

  it("refuses values MessagePack cannot carry with INVALID_ARGUMENT", () => {
    const error = thrown(() => codec.encodeRequest({ ...sample, input: 2n ** 64n }));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toMatch(/cannot encode request/);
  });
});

describe("codec budget and id limits", () => {
  it("refuses an infinite, oversized or negative budget and a negative call id", () => {
    const codec = createCodec();
    const base = {
      id: 1,
      from: "a",
      service: "s",
      version: "1.0.0",
      action: "x",
      input: null,
      timeoutMs: 10,
    };
    for (const bad of [
      { timeoutMs: Infinity },
      { timeoutMs: 86_400_001 },
      { timeoutMs: -1 },
      { id: -3 },
    ]) {
      expect(() => codec.decodeRequest(codec.encodeRequest({ ...base, ...bad }))).toThrow(
        /malformed frame/,
      );
    }
    expect(codec.decodeRequest(codec.encodeRequest(base)).timeoutMs).toBe(10);
  });
});

describe("codec trace context", () => {
  it("carries baggage, drops oversized trace context rather than the call, and refuses wrong types", () => {
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const withBaggage = codec.decodeRequest(
      codec.encodeRequest({ ...sample, trace: { traceparent: tp, baggage: "tenant=acme" } }),
    );
    expect(withBaggage.trace).toEqual({ traceparent: tp, baggage: "tenant=acme" });
    const oversized = codec.decodeRequest(
      codec.encodeRequest({
        ...sample,
        trace: {
          traceparent: tp,
          tracestate: "a=".padEnd(600, "x"),
          baggage: "b=".padEnd(9_000, "y"),
        },
      }),
    );
    expect(oversized.trace).toEqual({ traceparent: tp });
    const longParent = codec.decodeRequest(
      codec.encodeRequest({ ...sample, trace: { traceparent: "x".repeat(200) } }),
    );
    expect(longParent.trace).toBeUndefined();
    expect(longParent.input).toEqual(sample.input);
    const frame = codec.encodeRequest({
      ...sample,
      trace: { traceparent: tp, baggage: 42 as unknown as string },
    });
    expect(() => codec.decodeRequest(frame)).toThrow(/baggage/);
  });
});

describe("codec principal", () => {
  it("carries a principal and refuses a malformed one", () => {
    const user = { kind: "user", subject: "alice", claims: { roles: ["nurse"], n: 1 } } as const;
    expect(
      codec.decodeRequest(codec.encodeRequest({ ...sample, principal: user })).principal,
    ).toEqual(user);
    const workload = { kind: "workload", id: "spiffe://shop.example/ns/prod/svc/orders" } as const;
    expect(
      codec.decodeRequest(codec.encodeRequest({ ...sample, principal: workload })).principal,
    ).toEqual(workload);
    for (const bad of [
      { kind: "admin", id: "x" },
      { kind: "user", subject: "", claims: {} },
      { kind: "user", subject: "a", claims: [] },
      { kind: "node", id: "x".repeat(2_000) },
      "root",
    ]) {
      const frame = codec.encodeRequest({ ...sample, principal: bad as never });
      expect(() => codec.decodeRequest(frame), JSON.stringify(bad).slice(0, 40)).toThrow(
        /principal/,
      );
    }
  });
});

import { ROOT_CONTEXT, propagation, trace } from "@opentelemetry/api";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  contextFromTrace,
  formatTraceparent,
  parseBaggage,
  parseTraceparent,
  serializeBaggage,
  traceFromContext,
} from "./trace-context.js";

// The example header of the W3C Trace Context recommendation, section 3.2.
const W3C_EXAMPLE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("W3C traceparent", () => {
  it("reads the recommendation's example and writes it back", () => {
    const sc = parseTraceparent(W3C_EXAMPLE);
    expect(sc).toMatchObject({
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
    });
    expect(formatTraceparent(sc as NonNullable<typeof sc>)).toBe(W3C_EXAMPLE);
  });

  it("refuses what is not a version-00 traceparent", () => {
    for (const bad of [
      "",
      W3C_EXAMPLE.toUpperCase(),
      W3C_EXAMPLE.replace("00-", "ff-"),
      W3C_EXAMPLE.replace("00-", "01-"),
      `${W3C_EXAMPLE}-extra`,
      W3C_EXAMPLE.slice(0, 54),
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz",
    ]) {
      expect(parseTraceparent(bad), bad).toBeUndefined();
    }
  });

  it("round-trips every well-formed traceparent", () => {
    const hex = (n: number) =>
      fc
        .array(fc.constantFrom(..."0123456789abcdef"), { minLength: n, maxLength: n })
        .map((a) => a.join(""))
        .filter((s) => !/^0+$/.test(s));
    fc.assert(
      fc.property(hex(32), hex(16), fc.boolean(), (traceId, spanId, sampled) => {
        const text = `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
        const sc = parseTraceparent(text);
        expect(sc).toBeDefined();
        expect(formatTraceparent(sc as NonNullable<typeof sc>)).toBe(text);
      }),
    );
  });

  it("carries tracestate and baggage through a context and back", () => {
    const ctx = contextFromTrace({
      traceparent: W3C_EXAMPLE,
      tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
      baggage: "userId=alice,serverNode=DF%2028,isProduction=false;ttl=60",
    });
    expect(trace.getSpanContext(ctx)?.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(propagation.getBaggage(ctx)?.getEntry("serverNode")?.value).toBe("DF 28");
    expect(traceFromContext(ctx)).toEqual({
      traceparent: W3C_EXAMPLE,
      tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
      baggage: "userId=alice,serverNode=DF%2028,isProduction=false;ttl=60",
    });
    expect(traceFromContext(ROOT_CONTEXT)).toBeUndefined();
    // A malformed traceparent is ignored, not an error: the call starts a new trace.
    expect(trace.getSpanContext(contextFromTrace({ traceparent: "garbage" }))).toBeUndefined();
  });
});

describe("W3C baggage", () => {
  it("skips malformed members and bounds the size", () => {
    const b = parseBaggage("good=1, =novalue,bad key=2,noequals,pct=%E0%A4%A,ok=%41");
    expect(b?.getAllEntries().map(([k, e]) => [k, e.value])).toEqual([
      ["good", "1"],
      ["ok", "A"],
    ]);
    expect(parseBaggage("x".repeat(9_000))).toBeUndefined();
    expect(parseBaggage("")).toBeUndefined();
    expect(serializeBaggage(undefined)).toBeUndefined();
  });
});

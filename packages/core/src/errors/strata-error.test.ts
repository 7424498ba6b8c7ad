import { describe, expect, it } from "vitest";
import {
  ERROR_CODES,
  StrataError,
  defaultRetryable,
  ensureError,
  fromWireError,
  httpStatus,
  isErrorCode,
  isStrataError,
  toStrataError,
  type ErrorCode,
} from "./index.js";

describe("error codes", () => {
  it("is the gRPC status set without OK", () => {
    expect([...ERROR_CODES].sort()).toEqual(
      [
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
      ].sort(),
    );
    expect(isErrorCode("OK")).toBe(false);
    expect(isErrorCode("not_found")).toBe(false);
    expect(isErrorCode(5)).toBe(false);
    for (const code of ERROR_CODES) expect(isErrorCode(code)).toBe(true);
  });

  it("marks only transient failures retryable by default", () => {
    const retryable = ERROR_CODES.filter((code) => defaultRetryable(code));
    expect(retryable.sort()).toEqual(["ABORTED", "RESOURCE_EXHAUSTED", "UNAVAILABLE"]);
  });

  it("maps every code to the HTTP status gRPC gateways use", () => {
    const expected: Record<ErrorCode, number> = {
      CANCELLED: 499,
      UNKNOWN: 500,
      INVALID_ARGUMENT: 400,
      DEADLINE_EXCEEDED: 504,
      NOT_FOUND: 404,
      ALREADY_EXISTS: 409,
      PERMISSION_DENIED: 403,
      RESOURCE_EXHAUSTED: 429,
      FAILED_PRECONDITION: 400,
      ABORTED: 409,
      OUT_OF_RANGE: 400,
      UNIMPLEMENTED: 501,
      INTERNAL: 500,
      UNAVAILABLE: 503,
      DATA_LOSS: 500,
      UNAUTHENTICATED: 401,
    };
    for (const code of ERROR_CODES) expect(httpStatus(code), code).toBe(expected[code]);
  });
});

describe("StrataError", () => {
  it("carries code, retryable flag, details and cause", () => {
    const cause = new Error("socket reset");
    const error = new StrataError("UNAVAILABLE", "catalog is down", {
      details: { node: "n1" },
      cause,
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("StrataError");
    expect(error.code).toBe("UNAVAILABLE");
    expect(error.retryable).toBe(true);
    expect(error.details).toEqual({ node: "n1" });
    expect(error.cause).toBe(cause);
    expect(new StrataError("NOT_FOUND", "x").details).toEqual({});
  });

  it("lets the thrower override retryability", () => {
    expect(new StrataError("UNAVAILABLE", "x", { retryable: false }).retryable).toBe(false);
    expect(new StrataError("INTERNAL", "x", { retryable: true }).retryable).toBe(true);
  });

  it("puts no stack and no cause on the wire", () => {
    const error = new StrataError("NOT_FOUND", "product p-1 not found", {
      details: { id: "p-1" },
      cause: new Error("row missing in shard 3"),
    });
    const wire = error.toWire();
    expect(wire).toEqual({
      code: "NOT_FOUND",
      message: "product p-1 not found",
      retryable: false,
      details: { id: "p-1" },
    });
    expect(Object.keys(wire).sort()).toEqual(["code", "details", "message", "retryable"]);
    expect(JSON.stringify(wire)).not.toMatch(/stack|shard 3|at .*\.ts/);
  });

  it("is recognised by isStrataError, optionally by code", () => {
    const error = new StrataError("ABORTED", "conflict");
    expect(isStrataError(error)).toBe(true);
    expect(isStrataError(error, "ABORTED", "UNAVAILABLE")).toBe(true);
    expect(isStrataError(error, "NOT_FOUND")).toBe(false);
    expect(isStrataError(new Error("x"))).toBe(false);
    expect(isStrataError({ code: "ABORTED", message: "look-alike" })).toBe(false);
  });
});

describe("ensureError", () => {
  it("keeps errors and wraps anything else", () => {
    const error = new TypeError("boom");
    expect(ensureError(error)).toBe(error);
    expect(ensureError("text").message).toBe("non-error thrown: text");
    expect(ensureError({ a: 1 }).message).toBe('non-error thrown: {"a":1}');
    expect(ensureError(undefined)).toBeInstanceOf(Error);
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    expect(ensureError(cyclic).message).toBe("non-error thrown: [object Object]");
    expect(ensureError(10n).message).toBe("non-error thrown: 10");
    expect(ensureError("text").cause).toBe("text");
  });
});

describe("toStrataError", () => {
  it("returns Strata errors unchanged", () => {
    const error = new StrataError("NOT_FOUND", "missing");
    expect(toStrataError(error)).toBe(error);
  });

  it("hides internals behind a generic INTERNAL error and keeps the cause locally", () => {
    const secret = new Error("password=hunter2 at db.internal:5432");
    const error = toStrataError(secret, "orders.place");
    expect(error.code).toBe("INTERNAL");
    expect(error.message).toBe("orders.place: internal error");
    expect(error.retryable).toBe(false);
    expect(error.details).toEqual({});
    expect(error.cause).toBe(secret);
    expect(JSON.stringify(error.toWire())).not.toContain("hunter2");
  });

  it("wraps non-errors before keeping them as the cause", () => {
    const error = toStrataError("a string", "call");
    expect(error.code).toBe("INTERNAL");
    expect(error.cause).toBeInstanceOf(Error);
    expect(error.message).not.toContain("a string");
  });

  it("maps abort and timeout reasons onto CANCELLED and DEADLINE_EXCEEDED", () => {
    expect(toStrataError(new DOMException("stop", "AbortError"), "x").code).toBe("CANCELLED");
    expect(toStrataError(new DOMException("late", "TimeoutError"), "x").code).toBe(
      "DEADLINE_EXCEEDED",
    );
    const controller = new AbortController();
    controller.abort();
    expect(toStrataError(controller.signal.reason).code).toBe("CANCELLED");
  });
});

describe("fromWireError", () => {
  it("rebuilds a wire error faithfully", () => {
    const original = new StrataError("FAILED_PRECONDITION", "stock too low", {
      details: { sku: "s-1", left: 2 },
      retryable: true,
    });
    const rebuilt = fromWireError(original.toWire());
    expect(rebuilt).toBeInstanceOf(StrataError);
    expect(rebuilt.toWire()).toEqual(original.toWire());
    expect(rebuilt.cause).toBeUndefined();
  });

  it("answers non-objects with a malformed-error INTERNAL", () => {
    for (const hostile of [null, undefined, 42, "UNAVAILABLE", true, 10n]) {
      const error = fromWireError(hostile);
      expect(error.code).toBe("INTERNAL");
      expect(error.message).toBe("malformed error from peer");
    }
  });

  it("turns unknown codes into UNKNOWN with that code's retryability", () => {
    const error = fromWireError({ code: "TEAPOT", message: "short and stout" });
    expect(error.code).toBe("UNKNOWN");
    expect(error.retryable).toBe(false);
    expect(error.message).toBe("short and stout");
    expect(fromWireError({ code: 14, message: "numeric" }).code).toBe("UNKNOWN");
    expect(fromWireError({ code: "toString" }).code).toBe("UNKNOWN");
    expect(fromWireError({ code: "__proto__" }).code).toBe("UNKNOWN");
  });

  it("truncates huge messages and replaces non-string ones", () => {
    const error = fromWireError({ code: "INTERNAL", message: "x".repeat(1_000_000) });
    expect(error.message.length).toBe(2048);
    expect(fromWireError({ code: "INTERNAL", message: { evil: true } }).message).toBe(
      "error from peer",
    );
  });

  it("ignores details that are not a plain map", () => {
    expect(fromWireError({ code: "NOT_FOUND", message: "m", details: [1, 2, 3] }).details).toEqual(
      {},
    );
    expect(fromWireError({ code: "NOT_FOUND", message: "m", details: "text" }).details).toEqual({});
    expect(fromWireError({ code: "NOT_FOUND", message: "m", details: null }).details).toEqual({});
  });

  it("takes the retryable flag only when it is a boolean", () => {
    expect(fromWireError({ code: "UNAVAILABLE", message: "m", retryable: "no" }).retryable).toBe(
      true,
    );
    expect(fromWireError({ code: "UNAVAILABLE", message: "m", retryable: false }).retryable).toBe(
      false,
    );
  });

  it("never carries a stack from the peer into its own message", () => {
    const error = fromWireError({
      code: "INTERNAL",
      message: "m",
      stack: "Error: secret\n    at handler (/srv/app.ts:1:1)",
    });
    expect(error.stack).not.toContain("/srv/app.ts");
    expect(error.toWire()).not.toHaveProperty("stack");
  });
});

import { isStrataError } from "@strata/core";
import { describe, expect, it } from "vitest";
import { BUILTIN_TRACES, MAX_TRACE_BYTES, loadTrace, parseTrace } from "./trace.js";

describe("parseTrace", () => {
  it("reads seconds and requests per second, skipping a header, comments and blank lines", () => {
    expect(parseTrace("# a comment\nseconds,rps\n\n0,100\n60, 120.5\r\n120,0\n")).toEqual([
      { second: 0, rps: 100 },
      { second: 60, rps: 120.5 },
      { second: 120, rps: 0 },
    ]);
  });

  it.each([
    ["0,100\n60,abc\n", 'trace line 2: rps must be a non-negative number, got "abc"'],
    ["0,100\n60,-5\n", 'trace line 2: rps must be a non-negative number, got "-5"'],
    ["0,100\n60,NaN\n", 'trace line 2: rps must be a non-negative number, got "NaN"'],
    ["0,100\n60,Infinity\n", 'trace line 2: rps must be a non-negative number, got "Infinity"'],
    ["0,100\n-60,5\n", 'trace line 2: seconds must be a non-negative number, got "-60"'],
    ["0,100\n60,5\n30,5\n", "trace line 3: seconds must increase, got 30 after 60"],
    ["0,100\n0,5\n", "trace line 2: seconds must increase, got 0 after 0"],
    ["0,100\n60,5,7\n", 'trace line 2: expected "seconds,rps", got 3 fields'],
    ["0,100\n60\n", 'trace line 2: expected "seconds,rps", got 1 fields'],
    ["0,1e10\n60,5\n", "trace line 1: rps must be at most 1000000000, got 1e10"],
    ["0,1\n99999999999,5\n", "trace line 2: seconds must be at most 7776000, got 99999999999"],
    ["0,100\n", "trace needs at least two points, got 1"],
    ["", "trace needs at least two points, got 0"],
  ])("rejects %j", (csv, message) => {
    expect(() => parseTrace(csv)).toThrow(message);
  });

  it("refuses a huge input before splitting it", () => {
    const huge = "0,1\n".repeat(MAX_TRACE_BYTES / 4 + 1);
    expect(() => parseTrace(huge)).toThrow(`trace is larger than ${MAX_TRACE_BYTES} bytes`);
  });

  it("throws INVALID_ARGUMENT", () => {
    let caught: unknown;
    try {
      parseTrace("x");
    } catch (error) {
      caught = error;
    }
    expect(isStrataError(caught, "INVALID_ARGUMENT")).toBe(true);
  });

  it("loads every shipped trace", async () => {
    for (const name of BUILTIN_TRACES) {
      const trace = await loadTrace(name);
      expect(trace.length).toBeGreaterThan(1000);
      expect(trace[0]?.second).toBe(0);
    }
  });

  it("names a missing file", async () => {
    await expect(loadTrace("/nonexistent/trace.csv")).rejects.toThrow(
      "cannot read trace /nonexistent/trace.csv (ENOENT)",
    );
  });
});

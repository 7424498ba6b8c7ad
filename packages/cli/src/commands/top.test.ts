import { Writable } from "node:stream";
import { StrataError, type NodeAnnouncement } from "@strata/core";
import { describe, expect, it } from "vitest";
import { main } from "../main.js";
import type { Io } from "../io.js";
import {
  collectFrame,
  parseSnapshot,
  renderTop,
  type ActionSnapshot,
  type SloStatus,
  type TelemetrySnapshot,
  type TopFrame,
  type TopSource,
} from "./top.js";

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const streams: Io & { out: Capture; err: Capture } = {
    out: new Capture(),
    err: new Capture(),
    env,
  };
  const code = await main(argv, streams);
  return { code, out: streams.out.text, err: streams.err.text };
}

function action(over: Partial<ActionSnapshot> & Pick<ActionSnapshot, "service" | "action">) {
  return {
    count: 100,
    requestsPerSecond: 1,
    errors: {},
    errorsPerSecond: 0,
    p50Ms: 1,
    p99Ms: 2,
    maxMs: 3,
    ...over,
  } satisfies ActionSnapshot;
}

const checkoutSlo: SloStatus = {
  name: "checkout-availability",
  service: "orders",
  action: "checkout",
  kind: "availability",
  objective: 0.999,
  total: 10_000,
  good: 9_950,
  attainment: 0.995,
  errorBudgetRemaining: -4,
  burnRates: { "5m": 14.4, "1h": 6.2 },
  alerts: [
    { severity: "page", firing: true },
    { severity: "ticket", firing: false },
  ],
};

function snapshot(over: Partial<TelemetrySnapshot> & Pick<TelemetrySnapshot, "node">) {
  return {
    region: "eu-west",
    status: "ready",
    inFlight: 0,
    windowSeconds: 60,
    actions: [],
    breakers: [],
    slos: [],
    heapUsedBytes: 64 * 1_048_576,
    eventLoopDelayP99Ms: 1.5,
    ...over,
  } satisfies TelemetrySnapshot;
}

const a = snapshot({
  node: "a",
  inFlight: 3,
  actions: [
    action({
      service: "catalog",
      action: "getProduct",
      requestsPerSecond: 10,
      p99Ms: 12,
      errors: { UNAVAILABLE: 2 },
      errorsPerSecond: 0.5,
    }),
    // The view's own polling must not show up as traffic.
    action({ service: "strata-admin", action: "telemetry", requestsPerSecond: 1_000 }),
  ],
  breakers: [{ scope: "node", target: "c", state: { type: "closed" } }],
  slos: [checkoutSlo],
});

const b = snapshot({
  node: "b",
  region: "us-east",
  actions: [
    action({
      service: "catalog",
      action: "getProduct",
      requestsPerSecond: 15,
      p99Ms: 40,
      errors: { UNAVAILABLE: 1, DEADLINE_EXCEEDED: 4 },
      errorsPerSecond: 1,
    }),
    action({ service: "orders", action: "checkout", requestsPerSecond: 2.5, p99Ms: 250 }),
  ],
  breakers: [{ scope: "action", target: "inventory.reserve", state: { type: "open" } }],
  slos: [{ ...checkoutSlo, alerts: [{ severity: "page", firing: false }] }],
});

const frame: TopFrame = {
  at: new Date("2025-03-01T12:34:56.789Z"),
  nodes: [
    { id: "a", snapshot: a },
    { id: "b", snapshot: b },
    { id: "c", error: "unreachable DEADLINE_EXCEEDED" },
  ],
};

/** The line of `text` that starts with `prefix` (cells are separated by two or more spaces). */
function row(text: string, prefix: string): string[] {
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  expect(line, `no line starting with ${JSON.stringify(prefix)} in\n${text}`).toBeDefined();
  return (line as string).trim().split(/\s{2,}/);
}

describe("renderTop", () => {
  const text = renderTop(frame, Infinity);

  it("heads the frame with the time and cluster totals, leaving out the admin service", () => {
    const header = text.split("\n")[0];
    expect(header).toContain("12:34:56Z");
    expect(header).toContain("nodes 3 (1 not answering)");
    expect(header).toContain("req/s 27.5"); // 10 + 15 + 2.5; strata-admin's 1000 left out
    expect(header).toContain("err/s 1.5");
  });

  it("adds up an action's req/s and errors over nodes and takes the highest p99", () => {
    expect(row(text, "catalog.getProduct")).toEqual([
      "catalog.getProduct",
      "2",
      "25.0",
      "40.0",
      "1.5",
      "DEADLINE_EXCEEDED:4 UNAVAILABLE:3",
    ]);
    expect(text).not.toMatch(/^strata-admin/m);
  });

  it("lists each node, the unreachable one with its error code", () => {
    expect(row(text, "a ")).toEqual([
      "a",
      "eu-west",
      "ready",
      "3",
      "10.0",
      "12.0",
      "0.5",
      "64.0",
      "1.5",
      "0",
    ]);
    expect(row(text, "b ")).toEqual([
      "b",
      "us-east",
      "ready",
      "0",
      "17.5",
      "250",
      "1.0",
      "64.0",
      "1.5",
      "1",
    ]);
    expect(row(text, "c ")).toEqual([
      "c",
      "-",
      "unreachable DEADLINE_EXCEEDED",
      ...Array(7).fill("-"),
    ]);
  });

  it("shows open breakers only, and marks firing SLO alerts", () => {
    const breakers = text.slice(text.indexOf("BREAKERS"), text.indexOf("SLOS"));
    expect(breakers).toMatch(/^b\s+action\s+inventory\.reserve\s+open$/m);
    expect(breakers).not.toContain("closed\n");
    const sloA = text.split("\n").find((l) => /^a\s+checkout-availability/.test(l));
    expect(sloA).toMatch(/99\.90%\s+99\.50%\s+-400\.00%\s+14\.4x\s+6\.2x\s+FIRING page$/);
    const sloB = text.split("\n").find((l) => /^b\s+checkout-availability/.test(l));
    expect(sloB).toMatch(/\sok$/);
  });

  it("fits every line in the width and keeps terminal escapes from the wire out", () => {
    const narrow = renderTop(
      {
        at: frame.at,
        nodes: [...frame.nodes, { id: "d", snapshot: snapshot({ node: "d", region: "\x1b[2Jx" }) }],
      },
      40,
    );
    for (const line of narrow.trimEnd().split("\n")) expect(line.length).toBeLessThanOrEqual(40);
    expect(narrow).not.toContain("\x1b");
  });

  it("says so when there is nothing to show", () => {
    const empty = renderTop({ at: frame.at, nodes: [] }, 80);
    expect(empty).toContain("no nodes answered");
    expect(empty).toContain("no traffic");
  });
});

describe("parseSnapshot", () => {
  it("accepts a well-formed snapshot and copies only the known fields", () => {
    expect(parseSnapshot(a)).toEqual(a);
    expect(parseSnapshot(JSON.parse(JSON.stringify(b)))).toEqual(b);
    const withExtra = parseSnapshot({ ...a, secret: "x", actions: [{ ...a.actions[0], y: 1 }] });
    expect(withExtra).not.toHaveProperty("secret");
    expect(withExtra?.actions[0]).not.toHaveProperty("y");
    // An SLO over every action may arrive with its action missing or null.
    const { action: _dropped, ...anyAction } = checkoutSlo;
    expect(parseSnapshot({ ...a, slos: [anyAction] })?.slos[0]?.action).toBeUndefined();
    expect(
      parseSnapshot({ ...a, slos: [{ ...checkoutSlo, action: null }] })?.slos[0]?.action,
    ).toBeUndefined();
  });

  it("rejects malformed answers", () => {
    const bad: Array<[string, unknown]> = [
      ["null", null],
      ["undefined", undefined],
      ["a number", 42],
      ["a string", "snapshot"],
      ["an array", [a]],
      ["an empty object", {}],
      ["a string count", { ...a, inFlight: "3" }],
      ["NaN", { ...a, heapUsedBytes: Number.NaN }],
      ["Infinity", { ...a, eventLoopDelayP99Ms: Number.POSITIVE_INFINITY }],
      ["a negative rate", { ...a, actions: [{ ...a.actions[0], requestsPerSecond: -1 }] }],
      ["actions not an array", { ...a, actions: { 0: a.actions[0] } }],
      ["a null action", { ...a, actions: [null] }],
      ["an error count as a string", { ...a, actions: [{ ...a.actions[0], errors: { X: "1" } }] }],
      ["errors as an array", { ...a, actions: [{ ...a.actions[0], errors: [1] }] }],
      ["a huge region", { ...a, region: "x".repeat(1_000_000) }],
      [
        "a huge error code",
        { ...a, actions: [{ ...a.actions[0], errors: { ["E".repeat(10_000)]: 1 } }] },
      ],
      ["a huge list", { ...a, breakers: Array.from({ length: 20_000 }, () => b.breakers[0]) }],
      [
        "an unknown breaker scope",
        { ...a, breakers: [{ scope: "cluster", target: "x", state: { type: "open" } }] },
      ],
      ["a breaker without state", { ...a, breakers: [{ scope: "node", target: "x" }] }],
      ["an unknown SLO kind", { ...a, slos: [{ ...checkoutSlo, kind: "vibes" }] }],
      ["an objective over 1", { ...a, slos: [{ ...checkoutSlo, objective: 99.9 }] }],
      [
        "firing as a string",
        { ...a, slos: [{ ...checkoutSlo, alerts: [{ severity: "page", firing: "yes" }] }] },
      ],
      [
        "an unknown severity",
        { ...a, slos: [{ ...checkoutSlo, alerts: [{ severity: "sms", firing: true }] }] },
      ],
    ];
    for (const [what, value] of bad) expect(parseSnapshot(value), what).toBeUndefined();
  });
});

describe("collectFrame", () => {
  it("shows a node that fails as unreachable with its code and a malformed answer as bad answer", async () => {
    const answers: Record<string, () => Promise<unknown>> = {
      a: () => Promise.resolve(a),
      b: () => Promise.reject(new StrataError("DEADLINE_EXCEEDED", "no answer in 1000 ms")),
      c: () => Promise.resolve({ node: "c", region: 7 }),
      d: () => Promise.resolve({ ...a }), // a well-formed answer, but about node a
      e: () => Promise.reject(new Error("boom")),
    };
    const asked: Array<{ service: string; action: string; node: string | undefined }> = [];
    const source: TopSource = {
      id: "cli-1",
      nodes: () =>
        ["cli-1", "e", "d", "c", "b", "a"].map((id) => ({ id })) as unknown as NodeAnnouncement[],
      call: (service, act, _input, options) => {
        asked.push({ service, action: act, node: options?.node });
        const answer = answers[options?.node ?? ""];
        return answer === undefined ? Promise.reject(new Error("unexpected")) : answer();
      },
    };
    const collected = await collectFrame(source);
    expect(asked.map((q) => q.node).sort()).toEqual(["a", "b", "c", "d", "e"]);
    expect(asked.every((q) => q.service === "strata-admin" && q.action === "telemetry")).toBe(true);
    expect(collected.nodes).toEqual([
      { id: "a", snapshot: a },
      { id: "b", error: "unreachable DEADLINE_EXCEEDED" },
      { id: "c", error: "bad answer" },
      { id: "d", error: "bad answer" },
      { id: "e", error: "unreachable INTERNAL" },
    ]);
    const text = renderTop(collected, Infinity);
    expect(row(text, "c ")[2]).toBe("bad answer");
    expect(row(text, "b ")[2]).toBe("unreachable DEADLINE_EXCEEDED");
  });
});

describe("strata top: command line", () => {
  it("prints its help", async () => {
    const r = await run(["top", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("usage: strata top");
    expect(r.out).toContain("highest of the nodes' p99s");
    expect((await run(["--help"])).out).toMatch(/^ {2}top\s/m);
  });

  it("answers unusable command lines with a clear message and exit code 2", async () => {
    const nats = ["--nats", "nats://127.0.0.1:1"];
    const cases: Array<[string[], RegExp]> = [
      [
        ["top", ...nats, "--interval", "50"],
        /--interval must be a whole number of milliseconds from 200/,
      ],
      [["top", ...nats, "--interval", "abc"], /--interval must be .* got "abc"/],
      [["top", ...nats, "--interval", "1e3"], /--interval must be/],
      [["top", ...nats, "--interval"], /--interval/],
      [["top", ...nats, "--iterations", "0"], /--iterations must be an integer/],
      [["top", ...nats, "--once", "--iterations", "3"], /--once or --iterations, not both/],
      [["top", ...nats, "--bogus"], /Unknown option '--bogus'/],
      [["top", ...nats, "now"], /unexpected argument "now"/],
      [["top"], /strata top needs a cluster to talk to: pass --nats <url> or set STRATA_NATS_URL/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err, argv.join(" ")).toMatch(message);
      expect(r.err, argv.join(" ")).toContain("usage: strata top");
    }
  });
});

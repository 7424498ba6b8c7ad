import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { startNatsCluster, waitFor, type NatsCluster, TextCapture } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "./index.js";

function io(
  env: Record<string, string> = {},
  signal?: AbortSignal,
): Io & { out: TextCapture; err: TextCapture } {
  return {
    out: new TextCapture(),
    err: new TextCapture(),
    env,
    ...(signal === undefined ? {} : { signal }),
  };
}

async function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const streams = io(env);
  const code = await main(argv, streams);
  return { code, out: streams.out.text, err: streams.err.text };
}

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../test-fixtures/${name}`, import.meta.url));

describe("strata CLI: help and bad command lines", () => {
  it("prints help for the tool and every command", async () => {
    expect((await run(["--help"])).out).toContain("usage: strata <command>");
    for (const command of ["demo", "dev", "nodes", "call", "fault", "bench", "check"]) {
      const r = await run([command, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`usage: strata ${command}`);
    }
  });

  it("answers unusable command lines with a clear message and exit code 2", async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /usage: strata <command>/],
      [["launch"], /unknown command "launch"/],
      [["demo", "--bogus"], /Unknown option '--bogus'/],
      [["demo", "--duration", "abc"], /--duration must be a number/],
      [["demo", "--duration", "0"], /--duration must be a number/],
      [["demo", "--rate", "-3"], /--rate|Option '--rate/],
      [["demo", "--concurrency", "8"], /Unknown option '--concurrency'/],
      [["demo", "now"], /unexpected argument "now"/],
      [["demo", "--otlp", "ftp://collector"], /--otlp must be an http\(s\) URL/],
      [["demo", "--otlp", "not a url"], /--otlp must be an http\(s\) URL/],
      [["demo", "--metrics-port", "0"], /--metrics-port must be an integer/],
      [["demo", "--engines", "redis"], /"redis" is not an engine/],
      [["demo", "--engines", "nats"], /--engines needs both/],
      [["demo", "--engines", "nats,postgres,nats"], /--engines needs both/],
      [["demo", "--nats-url", "nats://127.0.0.1:4222"], /need --engines nats,postgres/],
      [
        ["demo", "--engines", "nats,postgres", "--nats-url", "http://x"],
        /--nats-url takes nats:\/\/host:port/,
      ],
      [
        ["demo", "--engines", "nats,postgres", "--postgres-url", "mysql://x"],
        /--postgres-url takes a postgres:\/\/ URL/,
      ],
      [["demo", "--report", "r.html", "--no-report"], /exclude each other/],
      [["demo", "--report", "out/"], /--report needs a file name/],
      [["top", "--interval", "50"], /--interval/],
      [["policy"], /missing policy command/],
      [["ca"], /missing ca command/],
      [["ca", "init"], /needs --dir/],
      [["ca", "init", "--dir", "/tmp/strata-ca-unused"], /needs --trust-domain/],
      [
        ["ca", "init", "--dir", "/tmp/strata-ca-unused", "--trust-domain", "BAD DOMAIN"],
        /trust domain/,
      ],
      [
        [
          "ca",
          "issue",
          "--dir",
          "/nonexistent-ca",
          "--namespace",
          "p",
          "--service",
          "s",
          "--out",
          "/tmp/x",
        ],
        /no CA in/,
      ],
      [["policy", "test"], /missing <dir>/],
      [["policy", "test", "/nonexistent-policies"], /no such folder/],
      [["nodes", "all"], /unexpected argument "all"/],
      [["call"], /missing <service>.<action>/],
      [["call", "catalog"], /is not <service>.<action>/],
      [["call", "catalog.getProduct", "{nope"], /not valid JSON/],
      [["call", "catalog.getProduct", "{}"], /needs a cluster to talk to/],
      [["nodes"], /needs a cluster to talk to/],
      [["dev"], /missing <module>/],
      [["dev", fixture("nothing.mjs")], /exports no service implementations/],
      [["dev", fixture("missing.mjs")], /cannot load module/],
      [["fault", "inject", "--fail", "UNAVAILABLE"], /needs --node/],
      [["fault", "inject", "--node", "n1"], /exactly one effect/],
      [
        ["fault", "inject", "--node", "n1", "--fail", "UNAVAILABLE", "--black-hole"],
        /exactly one effect/,
      ],
      [["fault", "explode"], /unknown fault command/],
      [["bench"], /missing suite/],
      [["bench", "rpc", "--concurrency", "1,x"], /--concurrency must be an integer/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out + r.err, argv.join(" ")).toMatch(message);
    }
  });
});

describe("strata check linearizable", () => {
  it("exits 0 for a linearizable history, 1 for a violation with a counterexample, 2 for unusable input", async () => {
    const { writeFile } = await import("node:fs/promises");
    const dir = await mkdtemp(join(tmpdir(), "strata-check-"));
    try {
      const good = join(dir, "good.edn");
      await writeFile(
        good,
        "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n{:process 1, :type :invoke, :f :read, :value nil}\n{:process 1, :type :ok, :f :read, :value 1}\n",
      );
      const bad = join(dir, "bad.log");
      await writeFile(
        bad,
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\nINFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\tnil\n",
      );
      const garbage = join(dir, "garbage.json");
      await writeFile(garbage, "{not json");
      const ok = await run(["check", "linearizable", good]);
      expect(ok.code).toBe(0);
      expect(ok.out).toMatch(/^linearizable: 2 operations/);
      const violation = await run(["check", "linearizable", bad, "--format", "jepsen-log"]);
      expect(violation.code).toBe(1);
      expect(violation.out).toMatch(/NOT linearizable/);
      expect(violation.out).toMatch(/cannot be placed next:\n {2}process 1 read/);
      expect(
        (await run(["check", "linearizable", bad, "--initial", "null", "--json"])).out,
      ).toMatch(/"result":"not-linearizable"/);
      expect((await run(["check", "linearizable", garbage])).code).toBe(2);
      expect((await run(["check", "linearizable", join(dir, "missing.json")])).code).toBe(2);
      expect((await run(["check", "linearizable", good, "--initial", "{bad"])).code).toBe(2);
      expect((await run(["check", "sequential", good])).code).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("strata demo", () => {
  it("prints one JSON report whose invariants hold", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-demo-report-"));
    const html = join(dir, "report.html");
    // A third of the default browsing rate: the other test files run beside this one.
    const r = await run(["demo", "--duration", "2", "--rate", "500", "--json", "--report", html]);
    const page = await readFile(html, "utf8");
    await rm(dir, { recursive: true, force: true });
    expect(page).toMatch(/Every invariant held/);
    expect(page).toContain("Carts (CRDTs across regions)");
    const lines = r.out.trim().split("\n");
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0] as string) as {
      calls: { total: number; errors: Record<string, number> };
      inventory: { oversold: number; stockConserved: boolean };
      resilience: { successRateDuringFault: number; faultHits: number };
      events: {
        orders: { confirmed: number; cancelled: number };
        published: number;
        notifications: number;
        duplicateEffects: number;
        sagas: { completed: number; unfinished: number; failed: number };
      };
      observability: {
        slos: Array<{ name: string; total: number; attainment: number }>;
        slowestOrder: {
          nodes: string[];
          criticalPath: Array<{ name: string; node: string | null; selfMs: number }>;
        } | null;
        alerts: Array<{ slo: string; state: string }>;
      };
      security: {
        requests: number;
        allowed: number;
        denied: number;
        unauthenticated: Record<string, number>;
        unexpected: number;
        deniedByReason: Record<string, number>;
      };
      autoscale: {
        minReplicas: number;
        timeline: Array<{ second: number; replicas: number; rps: number }>;
        checks: { ok: number };
        predictiveGain: { reactive: { violationMinutes: number } } | null;
      };
      verdicts: Record<string, boolean>;
    };
    // Name the verdicts that failed (the exit code alone would not say which).
    expect(Object.entries(report.verdicts).filter(([, ok]) => !ok)).toEqual([]);
    expect(r.code).toBe(0);
    expect(report.calls.total).toBeGreaterThan(100);
    // The availability service ran under the autoscaler (a 2 s run is too short for the spike
    // to be met; the autoscale leg's own test runs one that is).
    expect(report.autoscale.checks.ok).toBeGreaterThan(0);
    expect(report.autoscale.timeline[0]?.replicas).toBeGreaterThanOrEqual(
      report.autoscale.minReplicas,
    );
    expect(report.autoscale.predictiveGain?.reactive.violationMinutes).toBeGreaterThanOrEqual(0);
    // SLO attainment for every declared objective, measured over real traffic.
    const slos = Object.fromEntries(report.observability.slos.map((s) => [s.name, s]));
    expect(Object.keys(slos).sort()).toEqual([
      "catalog-latency",
      "checkout-availability",
      "checkout-latency",
      "inventory-availability",
    ]);
    expect(slos["catalog-latency"]?.total).toBeGreaterThan(0);
    // The injected fault fails every inventory call on one node: its budget burns.
    expect(slos["inventory-availability"]?.attainment).toBeLessThan(0.999);
    expect(report.observability.alerts.some((a) => a.slo === "inventory-availability")).toBe(true);
    // Patient records through the gateway: tokens verified, Cedar decides, nothing unintended.
    const sec = report.security;
    expect(sec.requests).toBeGreaterThan(10);
    expect(sec.allowed).toBeGreaterThan(0);
    expect(sec.denied).toBeGreaterThan(0);
    expect(sec.unexpected).toBe(0);
    expect(Object.values(sec.deniedByReason).reduce((a, b) => a + b, 0)).toBe(sec.denied);
    // The slowest order is one trace, starting at the gateway's call.
    const slowest = report.observability.slowestOrder;
    expect(slowest?.nodes).toContain("gateway-eu");
    expect(slowest?.criticalPath.some((step) => step.name === "orders/place")).toBe(true);
    expect(report.inventory.oversold).toBe(0);
    expect(report.inventory.stockConserved).toBe(true);
    expect(report.calls.errors["INTERNAL"]).toBeUndefined();
    expect(report.resilience.faultHits).toBeGreaterThan(0);
    // A soft objective, not an invariant: in a 2 s run the fault window is 0.8 s at the start.
    // A loaded CI machine sheds calls then too (as low as 0.37 of all calls succeeded with the
    // other test files and a build beside it); the rate leaves shed calls out, since they
    // measure the machine. Of the calls admitted, most succeed; the verdicts are the hard checks.
    expect(report.resilience.successRateDuringFault).toBeGreaterThan(0.5);
    // Checkouts ran as sagas; every order's outcome was published once and notified once.
    const orders = report.events.orders.confirmed + report.events.orders.cancelled;
    expect(orders).toBeGreaterThan(10);
    expect(report.events.published).toBe(orders);
    expect(report.events.notifications).toBe(orders);
    expect(report.events.duplicateEffects).toBe(0);
    expect(report.events.sagas.completed).toBe(report.events.orders.confirmed);
    expect(report.events.sagas.unfinished + report.events.sagas.failed).toBe(0);
    expect(report.verdicts).toMatchObject({
      eventsExactlyOnce: true,
      projectionConsistent: true,
      poisonDeadLettered: true,
      sagasSettled: true,
    });
    expect(Object.values(report.verdicts).every(Boolean)).toBe(true);
  });

  it("runs as `strata demo` from the installed bin, end to end", async () => {
    const bin = fileURLToPath(new URL("../bin/strata.js", import.meta.url));
    const child = spawn(
      process.execPath,
      [bin, "demo", "--duration", "2", "--json", "--no-report"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code, stdout).toBe(0);
    const report = JSON.parse(stdout) as { verdicts: Record<string, boolean> };
    expect(report.verdicts["noOversell"]).toBe(true);
  });
});

describe("strata dev, embedded", () => {
  it("keeps serving until SIGINT, then drains and exits 0", async () => {
    // The embedded transport holds no socket and the core's timers are unref'd: the CLI itself
    // must keep the process alive, or `strata dev` would exit as soon as it printed its banner.
    const bin = fileURLToPath(new URL("../bin/strata.js", import.meta.url));
    const child = spawn(process.execPath, [bin, "dev", fixture("services.mjs"), "--id", "d1"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await waitFor(() => stdout.includes("Ctrl-C drains and stops."), {
      timeoutMs: 10_000,
      message: "dev did not start",
    });
    // Still up 300 ms later: nothing but the CLI holds the event loop open.
    const early = await Promise.race([exited, delay(300, "still running" as const)]);
    expect(early).toBe("still running");
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(stdout).toContain("serving catalog@1.0.0");
    expect(stdout).toMatch(/draining d1…\nstopped\n$/);
  });
});

describe("strata against a NATS cluster", () => {
  let cluster: NatsCluster;
  const stopDev = new AbortController();
  let dev: Promise<number>;
  let devIo: ReturnType<typeof io>;

  beforeAll(async () => {
    cluster = await startNatsCluster({ nodes: 1, jetstream: false });
    devIo = io({}, stopDev.signal);
    dev = main(["dev", fixture("services.mjs"), "--nats", cluster.url, "--id", "dev1"], devIo);
    await waitFor(() => devIo.out.text.includes("serving catalog@1.0.0"), {
      timeoutMs: 10_000,
      message: "dev did not start",
    });
  });

  afterAll(async () => {
    stopDev.abort();
    await dev;
    await cluster.stop();
  });

  it("lists the dev node with its services", async () => {
    const table = await run(["nodes", "--wait", "800"], { STRATA_NATS_URL: cluster.url });
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/dev1\s+default\s+ready\s+\d+\s+catalog@1\.0\.0/);
    const json = await run(["nodes", "--nats", cluster.url, "--wait", "800", "--json"]);
    const nodes = JSON.parse(json.out) as Array<{ id: string }>;
    expect(nodes.map((n) => n.id)).toContain("dev1");
  });

  it("shows the cluster in strata top: nodes, traffic per action, SLO status", async () => {
    await run(["call", "catalog.getProduct", '{"id":"p-0001"}', "--nats", cluster.url]);
    const frame = await run(["top", "--nats", cluster.url, "--once"]);
    expect(frame.code).toBe(0);
    expect(frame.out).toMatch(/NODES/);
    expect(frame.out).toMatch(/dev1/);
    expect(frame.out).toMatch(/catalog/);
    const json = await run(["top", "--nats", cluster.url, "--once", "--json"]);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.out.trim().split("\n")[0] as string) as {
      nodes: Array<{
        id: string;
        snapshot?: { actions: Array<{ action: string; count: number }> };
      }>;
    };
    const dev = parsed.nodes.find((n) => n.id === "dev1");
    expect(dev?.snapshot?.actions.find((a) => a.action === "getProduct")?.count).toBeGreaterThan(0);
  });

  it("calls an action and prints the result, or a readable error with field paths", async () => {
    const ok = await run([
      "call",
      "catalog.getProduct",
      '{"id":"p-0001"}',
      "--nats",
      cluster.url,
      "--json",
    ]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ id: "p-0001", currency: "EUR" });
    const invalid = await run([
      "call",
      "catalog.listProducts",
      '{"limit":1000}',
      "--nats",
      cluster.url,
    ]);
    expect(invalid.code).toBe(1);
    expect(invalid.err).toMatch(/error: INVALID_ARGUMENT/);
    expect(invalid.err).toMatch(/limit:/);
    const missing = await run([
      "call",
      "catalog.getProduct",
      '{"id":"p-9999"}',
      "--nats",
      cluster.url,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/error: NOT_FOUND: no product p-9999/);
    const unknown = await run([
      "call",
      "nosuch.thing",
      "{}",
      "--nats",
      cluster.url,
      "--wait",
      "300",
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/error: UNAVAILABLE/);
  });

  it("injects, lists and clears a fault at run time", async () => {
    const injected = await run([
      "fault",
      "inject",
      "--node",
      "dev1",
      "--fail",
      "UNAVAILABLE",
      "--service",
      "catalog",
      "--nats",
      cluster.url,
    ]);
    expect(injected.code).toBe(0);
    expect(injected.out).toMatch(/dev1: injected fault-\d+/);
    const failing = await run([
      "call",
      "catalog.getProduct",
      '{"id":"p-0001"}',
      "--nats",
      cluster.url,
    ]);
    expect(failing.code).toBe(1);
    expect(failing.err).toMatch(/UNAVAILABLE/);
    const listed = await run(["fault", "list", "--nats", cluster.url]);
    expect(listed.out).toMatch(/dev1: fault-\d+ \{"type":"fail","code":"UNAVAILABLE"\}/);
    const bad = await run([
      "fault",
      "inject",
      "--node",
      "dev1",
      "--fail",
      "NOPE",
      "--nats",
      cluster.url,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/known error code/);
    const cleared = await run(["fault", "clear", "--node", "dev1", "--nats", cluster.url]);
    expect(cleared.out).toMatch(/dev1: cleared 1/);
    expect(
      (await run(["call", "catalog.getProduct", '{"id":"p-0001"}', "--nats", cluster.url])).code,
    ).toBe(0);
  });

  it("measures its own call path over NATS", async () => {
    const r = await run([
      "bench",
      "rpc",
      "--nats",
      cluster.url,
      "--concurrency",
      "4",
      "--calls",
      "500",
      "--json",
    ]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as Array<{ rps: number; errors: number }>;
    expect(rows[0]?.rps).toBeGreaterThan(0);
    expect(rows[0]?.errors).toBe(0);
  });
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "@strata/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runChaosCommand, loadExperiment } from "./command.js";
import { defineExperiment, serves, totalOutage, type Experiment } from "./experiment.js";
import { EXPERIMENTS } from "./experiments/index.js";
import { kill } from "./faults.js";
import { Metrics } from "./metrics.js";
import { skewedClock } from "./clock.js";
import { renderHtmlReport } from "./report.js";
import type { ExperimentReport } from "./runner.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "strata-chaos-unit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const valid: Experiment = {
  name: "ok",
  description: "d",
  durationMs: 1_000,
  hypothesis: [serves()],
  method: [{ at: 0, fault: kill("node-1"), for: 500 }],
};

function capture() {
  let out = "";
  let err = "";
  return {
    io: { out: { write: (t: string) => (out += t) }, err: { write: (t: string) => (err += t) } },
    out: () => out,
    err: () => err,
  };
}

describe("defineExperiment", () => {
  it("accepts a well-formed experiment and every built-in one", () => {
    expect(defineExperiment(valid)).toBe(valid);
    for (const e of Object.values(EXPERIMENTS)) expect(defineExperiment(e)).toBe(e);
  });

  it.each([
    ["a bad name", { name: "Bad Name!" }, /name must match/],
    ["no duration", { durationMs: 0 }, /durationMs/],
    ["a step after the end", { method: [{ at: 5_000, fault: kill("x") }] }, /method\[0\]\.at/],
    [
      "a step lasting no time",
      { method: [{ at: 0, fault: kill("x"), for: -1 }] },
      /method\[0\]\.for/,
    ],
    ["a step without a fault", { method: [{ at: 0, fault: {} }] }, /not a fault/],
    ["no hypothesis", { hypothesis: [] }, /hypothesis/],
    ["an unknown workload", { workloads: ["queue"] }, /unknown workload "queue"/],
    ["too many clients", { clients: 1_000 }, /clients/],
  ])("refuses %s with a clear error", (_, change, message) => {
    expect(() => defineExperiment({ ...valid, ...(change as Partial<Experiment>) })).toThrow(
      message,
    );
  });
});

describe("loadExperiment", () => {
  it("finds built-in experiments by name", async () => {
    expect((await loadExperiment("partition-regions")).name).toBe("partition-regions");
  });

  it("loads an experiment module and checks what it exports", async () => {
    const good = join(dir, "good.mjs");
    await writeFile(
      good,
      `export default { name: "mine", description: "x", durationMs: 100, hypothesis: [{ name: "h", holds: () => true }], method: [] };\n`,
    );
    expect((await loadExperiment(good)).name).toBe("mine");
    const nothing = join(dir, "nothing.mjs");
    await writeFile(nothing, "export const x = 1;\n");
    await expect(loadExperiment(nothing)).rejects.toThrow(/exports no experiment/);
    const bad = join(dir, "bad.mjs");
    await writeFile(bad, `export default { name: "x y", durationMs: -1, method: "no" };\n`);
    await expect(loadExperiment(bad)).rejects.toThrow(/name must match.*durationMs/);
    const broken = join(dir, "broken.mjs");
    await writeFile(broken, "export default {{{\n");
    await expect(loadExperiment(broken)).rejects.toThrow(/cannot load/);
    await expect(loadExperiment(join(dir, "missing.mjs"))).rejects.toThrow(/cannot load/);
    await expect(loadExperiment("no-such-experiment")).rejects.toThrow(/unknown experiment/);
  });
});

describe("strata chaos", () => {
  it.each([
    [[], /missing run or list/],
    [["explode"], /unknown chaos command "explode"/],
    [["run"], /missing the experiment/],
    [["run", "kill-node", "extra"], /unexpected argument "extra"/],
    [["run", "kill-node", "--seed", "1.5"], /--seed must be an integer/],
    [["run", "kill-node", "--time-scale", "0"], /--time-scale/],
    [["run", "kill-node", "--time-scale", "NaN"], /--time-scale/],
    [["run", "no-such-thing"], /unknown experiment "no-such-thing"/],
    [["run", "kill-node", "--bogus"], /Unknown option '--bogus'/],
  ])("exits 2 with a clear message for %j", async (argv, message) => {
    const c = capture();
    expect(await runChaosCommand(argv, c.io)).toBe(2);
    expect(c.err()).toMatch(message);
    expect(c.err()).toContain("usage: strata chaos");
    expect(c.err()).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("lists the built-in experiments and prints its help", async () => {
    const c = capture();
    expect(await runChaosCommand(["list"], c.io)).toBe(0);
    for (const name of Object.keys(EXPERIMENTS)) expect(c.out()).toContain(name);
    const h = capture();
    expect(await runChaosCommand(["--help"], h.io)).toBe(0);
    expect(h.out()).toContain("exit status");
  });
});

describe("metrics", () => {
  it("computes window statistics and a timeline from completions", () => {
    let now = 0;
    const m = new Metrics(() => now);
    for (let i = 0; i < 100; i++) {
      const started = now;
      now += 10;
      m.record(started, i % 10 === 0 ? "info" : "ok");
    }
    expect(m.window(1_000)).toMatchObject({ ops: 100, errorRate: 0.1, p50: 10, p99: 10 });
    expect(m.window(1_000).throughput).toBeCloseTo(100, 5);
    const timeline = m.timeline(500);
    expect(timeline.reduce((s, p) => s + p.ok + p.info + p.fail, 0)).toBe(100);
    expect(timeline[0]).toMatchObject({ t: 0, ok: 44, info: 5 });
    expect(m.between(2_000, 3_000).ops).toBe(0);
  });

  it("judges the usual hypothesis and abort condition", () => {
    const h = serves({ minThroughput: 10, maxErrorRate: 0.1 });
    expect(h.holds({ ops: 100, throughput: 50, errorRate: 0.05, p50: 1, p99: 2 })).toBe(true);
    expect(h.holds({ ops: 100, throughput: 5, errorRate: 0, p50: 1, p99: 2 })).toBe(false);
    expect(h.holds({ ops: 100, throughput: 50, errorRate: 0.2, p50: 1, p99: 2 })).toBe(false);
    const outage = totalOutage();
    expect(outage.when({ ops: 10, throughput: 1, errorRate: 1, p50: 1, p99: 1 })).toBe(true);
    expect(outage.when({ ops: 0, throughput: 0, errorRate: 0, p50: 0, p99: 0 })).toBe(false);
  });
});

describe("the node's clock port", () => {
  it("moves wall-clock time by the skew and leaves monotonic time alone", () => {
    const base = systemClock(1);
    const skew = { ms: 0 };
    const clock = skewedClock(base, skew);
    const m0 = clock.monotonic();
    skew.ms = 60_000;
    expect(clock.now() - Date.now()).toBeGreaterThanOrEqual(59_000);
    expect(clock.monotonic() - m0).toBeLessThan(60_000);
    skew.ms = -60_000;
    expect(Date.now() - clock.now()).toBeGreaterThanOrEqual(59_000);
  });
});

describe("the HTML report", () => {
  it("escapes every name it shows, and draws the timeline with the faults", () => {
    const hostile = `<script>alert("x")</script>`;
    const report: ExperimentReport = {
      experiment: "x",
      description: hostile,
      startedAt: "2026-01-01T00:00:00.000Z",
      seed: 1,
      cluster: { servers: ["n1"], nodes: [{ name: hostile, region: "eu" }] },
      phases: { methodStart: 1_000, methodEnd: 5_000, rollbackEnd: 5_100, end: 8_000 },
      faults: [{ name: hostile, detail: hostile, start: 2_000, end: 3_000 }],
      hypothesis: {
        before: [
          {
            name: hostile,
            holds: true,
            stats: { ops: 1, throughput: 1, errorRate: 0, p50: 1, p99: 1 },
          },
        ],
        after: [],
      },
      timeline: [
        { t: 0, ok: 10, fail: 1, info: 2, p50: 1, p99: 5 },
        { t: 500, ok: 8, fail: 0, info: 0, p50: 2, p99: 4 },
      ],
      verdicts: [
        {
          workload: "register",
          valid: false,
          summary: hostile,
          operations: { ok: 1, fail: 0, info: 0 },
          errors: {},
          errorExamples: {},
          details: {},
        },
      ],
      outcome: "anomaly",
      valid: false,
    };
    const html = renderHtmlReport(report);
    expect(html).not.toContain("<script>");
    expect(html).toContain("&#60;script&#62;");
    expect(html).toContain('class="fault f0"');
    expect(html).toContain("ANOMALY");
    expect(html.match(/<svg/g)?.length).toBe(2);
  });
});

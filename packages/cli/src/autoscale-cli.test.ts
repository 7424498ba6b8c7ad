import { TextCapture } from "@strata/test-harness";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "./index.js";

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io: Io & { out: TextCapture; err: TextCapture } = {
    out: new TextCapture(),
    err: new TextCapture(),
    env: {},
  };
  const code = await main(argv, io);
  return { code, out: io.out.text, err: io.err.text };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "strata-autoscale-"));
  const lines = ["seconds,rps"];
  for (let m = 0; m <= 30; m++) lines.push(`${m * 60},${m >= 10 && m < 20 ? 1500 : 300}`);
  await writeFile(join(dir, "spike.csv"), `${lines.join("\n")}\n`);
  await writeFile(join(dir, "bad.csv"), "seconds,rps\n0,100\n60,-1\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("strata autoscale", () => {
  it.each([
    [[], "needs a subcommand: simulate"],
    [["replay"], 'unknown subcommand "replay"'],
    [["simulate"], "needs --trace <file|name>"],
    [["simulate", "--trace"], "--trace"],
    [["simulate", "--trace", "diurnal", "--policy", "magic"], 'unknown: "magic"'],
    [
      ["simulate", "--trace", "diurnal", "--capacity", "0"],
      '--capacity must be a number greater than 0 and at most 1000000000, got "0"',
    ],
    [
      ["simulate", "--trace", "diurnal", "--startup", "soon"],
      '--startup must be a number greater than 0 and at most 86400, got "soon"',
    ],
    [
      ["simulate", "--trace", "diurnal", "--max-replicas", "2.5"],
      '--max-replicas must be an integer, got "2.5"',
    ],
    [["simulate", "--trace", "diurnal", "--frobnicate"], "Unknown option '--frobnicate'"],
    [["simulate", "extra", "--trace", "diurnal"], 'unexpected argument "extra"'],
  ])("%j is a usage error (exit 2) with a clear message and no stack", async (argv, message) => {
    const { code, err, out } = await run(["autoscale", ...argv]);
    expect(code).toBe(2);
    expect(err).toContain(message);
    expect(err).toContain("usage: strata autoscale simulate");
    expect(err).not.toMatch(/\n\s+at /);
    expect(out).toBe("");
  });

  it("exits 1 naming the line of a bad trace", async () => {
    const { code, err } = await run(["autoscale", "simulate", "--trace", join(dir, "bad.csv")]);
    expect(code).toBe(1);
    expect(err).toContain("trace line 3: rps must be a non-negative number");
    expect(err).not.toMatch(/\n\s+at /);
  });

  it("exits 1 for a missing trace file", async () => {
    const { code, err } = await run(["autoscale", "simulate", "--trace", join(dir, "nope.csv")]);
    expect(code).toBe(1);
    expect(err).toContain("cannot read trace");
  });

  it("prints the policies side by side", async () => {
    const { code, out } = await run([
      "autoscale",
      "simulate",
      "--trace",
      join(dir, "spike.csv"),
      "--startup",
      "60",
    ]);
    expect(code).toBe(0);
    expect(out).toMatch(/policy\s+SLO-violation min\s+replica-minutes/);
    for (const policy of ["threshold", "target-tracking", "predictive"])
      expect(out).toContain(policy);
  });

  it("prints JSON with the decisions", async () => {
    const { code, out } = await run([
      "autoscale",
      "simulate",
      "--trace",
      join(dir, "spike.csv"),
      "--policy",
      "target-tracking",
      "--json",
    ]);
    expect(code).toBe(0);
    const parsed = JSON.parse(out) as { results: Array<{ policy: string; decisions: unknown[] }> };
    expect(parsed.results.map((r) => r.policy)).toEqual(["target-tracking"]);
    expect(parsed.results[0]?.decisions.length).toBeGreaterThan(0);
  });

  it("is listed in the top-level help", async () => {
    const { out } = await run(["--help"]);
    expect(out).toContain("autoscale");
  });
});

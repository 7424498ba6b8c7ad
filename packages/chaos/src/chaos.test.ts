import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, type TempDir } from "@strata/test-harness";
import { checkLinearizable, parseJsonHistory } from "@strata/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runChaosCommand } from "./command.js";
import type { ExperimentReport } from "./runner.js";

let dir: TempDir;
beforeAll(async () => {
  dir = await tempDir("strata-chaos-");
});
afterAll(async () => {
  await dir?.[Symbol.asyncDispose]();
});

/**
 * The harness judged by its own effect: a store that acknowledges writes before making them runs
 * on real processes, and the run must end in an anomaly that the checker can show again from the
 * history file.
 */
describe("strata chaos run", () => {
  it("catches a store that acknowledges writes before it makes them", async () => {
    const out = join(dir.path, "broken-register");
    let text = "";
    const io = {
      out: { write: (t: string) => (text += t) },
      err: { write: (t: string) => (text += t) },
    };
    const code = await runChaosCommand(
      ["run", "broken-register", "--out", out, "--time-scale", "0.7"],
      io,
    );
    expect(code, text.slice(-3_000)).toBe(1);
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as ExperimentReport;
    expect(report.outcome).toBe("anomaly");
    expect(report.cluster.breakage).toBe("ack-before-write");
    const register = report.verdicts.find((v) => v.workload === "register");
    expect(register?.valid).toBe(false);
    expect(register?.summary).toMatch(/NOT linearizable/);
    const history = parseJsonHistory(await readFile(join(out, "history-register.json"), "utf8"));
    const verdict = checkLinearizable(history);
    expect(verdict.result).toBe("not-linearizable");
    if (verdict.result === "not-linearizable") {
      // A minimal witness: a handful of operations, not the whole history.
      expect(verdict.counterexample.operations.length).toBeLessThan(20);
    }
  }, 180_000);
});

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, type TempDir, TextCapture } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "./index.js";

let dir: TempDir;
beforeAll(async () => {
  dir = await tempDir("strata-demo-chaos-");
});
afterAll(async () => {
  await dir?.[Symbol.asyncDispose]();
});

/**
 * `strata demo --chaos`: after the embedded demo, its building blocks run on three Strata node
 * processes and three NATS servers while a node is killed and the regions are partitioned, and
 * the checkers' verdicts are printed. The histories it writes are checked again by `strata check`.
 */
describe("strata demo --chaos", () => {
  it("kills a node, partitions the regions, and prints valid checker verdicts", async () => {
    const out = join(dir.path, "chaos");
    const io: Io & { out: TextCapture; err: TextCapture } = {
      out: new TextCapture(),
      err: new TextCapture(),
      env: {},
    };
    const code = await main(
      ["demo", "--duration", "2", "--no-faults", "--no-report", "--chaos", "--chaos-out", out],
      io,
    );
    expect(code, io.err.text.slice(-3_000)).toBe(0);
    for (const workload of ["register", "bank", "set", "crdt", "counter"]) {
      expect(io.out.text).toMatch(new RegExp(`valid +${workload} `));
    }
    expect(io.out.text).toContain("outcome: passed");
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as {
      outcome: string;
      faults: Array<{ detail: string; end?: number }>;
      verdicts: Array<{ workload: string; valid: boolean; operations: { ok: number } }>;
      timeline: unknown[];
    };
    expect(report.outcome).toBe("passed");
    expect(report.faults.map((f) => f.detail)).toEqual([
      "kill -9 node-3",
      expect.stringMatching(/^partition n1,node-1,node-3 \| n2,n3,node-2,client$/) as unknown,
    ]);
    for (const f of report.faults) expect(f.end).toBeGreaterThan(0);
    for (const v of report.verdicts) expect(v.operations.ok, v.workload).toBeGreaterThan(10);
    expect(report.timeline.length).toBeGreaterThan(10);
    const html = await readFile(join(out, "report.html"), "utf8");
    expect(html).toContain("<svg");
    expect(html).toContain("kill -9 node-3");
    // The recorded register history, checked again from its file by the CLI.
    const check = { out: new TextCapture(), err: new TextCapture(), env: {} };
    expect(await main(["check", "linearizable", join(out, "history-register.json")], check)).toBe(
      0,
    );
    expect(check.out.text).toMatch(/linearizable/i);
  }, 240_000);
});

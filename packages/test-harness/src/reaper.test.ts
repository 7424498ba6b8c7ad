import { spawn } from "node:child_process";
import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WATCHDOG_SOURCE } from "./reaper.js";
import { waitFor } from "./wait-for.js";

/** True while `pid` is a live process (a zombie counts as dead). */
async function running(pid: number): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const state = /\) (\w) /.exec(text)?.[1];
  return state !== undefined && state !== "Z";
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe("reaper watchdog", () => {
  it("kills registered children and removes folders when its parent is SIGKILLed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-reaper-test-"));
    // A stand-in for a test process: it starts the watchdog and a long-lived child, registers
    // both the child and the folder, reports the child's pid, then dies without any exit hook.
    const parent = spawn(
      process.execPath,
      [
        "-e",
        `
        const { spawn } = require("node:child_process");
        const watchdog = spawn(process.execPath, ["-e", process.env.WATCHDOG], {
          stdio: ["pipe", "ignore", "ignore"], detached: true,
        });
        const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1e6)"], { stdio: "ignore" });
        watchdog.stdin.write("+p " + child.pid + "\\n+d " + process.env.DIR + "\\n", () => {
          process.stdout.write(child.pid + "\\n", () => process.kill(process.pid, "SIGKILL"));
        });
        `,
      ],
      {
        env: { ...process.env, WATCHDOG: WATCHDOG_SOURCE, DIR: dir },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let output = "";
    parent.stdout.setEncoding("utf8");
    parent.stdout.on("data", (chunk: string) => (output += chunk));
    await new Promise((resolve) => parent.once("exit", resolve));
    const pid = Number(output.trim());
    expect(pid).toBeGreaterThan(0);
    await waitFor(async () => !(await running(pid)), {
      timeoutMs: 5_000,
      message: "the orphaned child is still running",
    });
    await waitFor(async () => !(await exists(dir)), {
      timeoutMs: 5_000,
      message: "the registered folder is still there",
    });
  });
});

import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import type { Socket } from "node:net";

// Engines started by the harness must never outlive the test process. A process 'exit' hook covers
// a normal exit, but test runners often end a worker with a signal (vitest's forks pool does when a
// test times out), and then no hook runs. So a small watchdog process, spawned once, holds the read
// end of a pipe from us: when we die, however we die, the pipe closes and the watchdog kills the
// children and removes the folders we had registered and not yet released.
/** The watchdog's program (internal; exported for its test). */
export const WATCHDOG_SOURCE = `
const pids = new Set();
const dirs = new Set();
let buffer = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  for (let i = buffer.indexOf("\\n"); i >= 0; i = buffer.indexOf("\\n")) {
    const line = buffer.slice(0, i);
    buffer = buffer.slice(i + 1);
    const value = line.slice(3);
    if (line.startsWith("+p ")) pids.add(Number(value));
    else if (line.startsWith("-p ")) pids.delete(Number(value));
    else if (line.startsWith("+d ")) dirs.add(value);
    else if (line.startsWith("-d ")) dirs.delete(value);
  }
});
const reap = () => {
  for (const pid of pids) {
    try { process.kill(pid, "SIGCONT"); process.kill(pid, "SIGKILL"); } catch {}
  }
  for (const dir of dirs) {
    try { require("node:fs").rmSync(dir, { recursive: true, force: true, maxRetries: 5 }); } catch {}
  }
  process.exit(0);
};
process.stdin.on("end", reap);
process.stdin.on("error", reap);
`;

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let watchdog: ChildProcess | undefined;
let installed = false;

function tell(line: string): void {
  const stdin = watchdog?.stdin;
  if (stdin === null || stdin === undefined || stdin.destroyed) return;
  stdin.write(`${line}\n`);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", () => {
    for (const child of children) {
      try {
        child.kill("SIGCONT");
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  // Detached: a Ctrl-C sent to our process group must not take the watchdog down before it acts.
  const child = spawn(process.execPath, ["-e", WATCHDOG_SOURCE], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true,
  });
  child.on("error", () => undefined);
  child.stdin.on("error", () => undefined);
  // Neither the watchdog nor its pipe may keep our event loop alive.
  child.unref();
  (child.stdin as unknown as Socket).unref();
  watchdog = child;
}

/** Kills `child` when this process exits or dies, unless it has exited by then. */
export function reapOnExit(child: ChildProcess): void {
  install();
  const pid = child.pid;
  if (pid === undefined) return;
  children.add(child);
  tell(`+p ${pid}`);
  child.once("exit", () => {
    children.delete(child);
    tell(`-p ${pid}`);
  });
}

/** Removes `dir` when this process exits or dies, unless {@link releaseDir} was called first. */
export function removeOnExit(dir: string): void {
  install();
  dirs.add(dir);
  tell(`+d ${dir}`);
}

/** Forgets a folder registered with {@link removeOnExit} (it has been removed already). */
export function releaseDir(dir: string): void {
  dirs.delete(dir);
  tell(`-d ${dir}`);
}

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { StrataError } from "@strata/core";
import { reapOnExit } from "@strata/test-harness/engines";
import { NODE_CONFIG_ENV, type EngineNodeConfig, type NodeCommand } from "./node-config.js";

/** The node program: next to this module once built; from the sources, the built copy. */
const NODE_MAIN = ((): string => {
  const here = fileURLToPath(new URL("./node-main.js", import.meta.url));
  return existsSync(here)
    ? here
    : fileURLToPath(new URL("../../../dist/demo/engines/node-main.js", import.meta.url));
})();

/** How long a node may take to drain and stop before it is killed. */
const STOP_GRACE_MS = 10_000;

/**
 * A commerce node process: started with its config, ready once it says so, commanded through
 * stdin. Its stderr goes to `node.log` in its folder.
 */
export class NodeProcess {
  readonly id: string;
  readonly region: string;
  private config: EngineNodeConfig;
  private child: ChildProcess | undefined;
  private lines: Interface | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(config: EngineNodeConfig) {
    this.config = config;
    this.id = config.id;
    this.region = config.region;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get logFile(): string {
    return join(this.config.dir, "node.log");
  }

  /**
   * Spawns the process. Started with `hold`, it loads and waits for {@link serve}; otherwise it
   * goes on to open its stores and serve (wait for that with {@link serve} too).
   */
  async spawn(): Promise<void> {
    await mkdir(this.config.dir, { recursive: true });
    const log = await open(this.logFile, "a");
    const child = spawn(process.execPath, [NODE_MAIN], {
      env: { ...process.env, [NODE_CONFIG_ENV]: JSON.stringify(this.config) },
      stdio: ["pipe", "pipe", log.fd],
    });
    await log.close();
    reapOnExit(child);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    child.stdin?.on("error", () => undefined);
    this.lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  }

  /** Tells a held node to serve, and waits for its `ready` line. */
  async serve(options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const ready = this.expect((line) => line["ready"] === true, {
      what: "start",
      timeoutMs: options.timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    if (this.config.hold === true) this.send({ serve: true });
    await ready;
  }

  /** Makes the node's order consumers and projection leave their groups; resolves once they have. */
  async stopConsuming(timeoutMs = 10_000): Promise<void> {
    const answered = this.expect((line) => "stoppedConsuming" in line, {
      what: "stop consuming",
      timeoutMs,
    });
    this.send({ stopConsuming: true });
    const line = await answered;
    if (line["stoppedConsuming"] !== true) {
      throw new StrataError(
        "INTERNAL",
        `${this.id} could not stop consuming: ${String(line["error"])}`,
      );
    }
  }

  /** kill -9: the process ends at once, mid-write, without closing anything. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill("SIGKILL");
    await this.exited;
    this.lines?.close();
  }

  /** Starts the process again after it died (it serves at once) and waits until it does. */
  async restart(options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (this.running) throw new StrataError("FAILED_PRECONDITION", `${this.id} is running`);
    this.config = { ...this.config, hold: false };
    await this.spawn();
    await this.serve(options);
  }

  /** SIGSTOP (`true`) or SIGCONT (`false`): a paused process holds its connections and answers nothing. */
  pause(paused: boolean): void {
    if (this.running) this.child?.kill(paused ? "SIGSTOP" : "SIGCONT");
  }

  /** SIGTERM (the node drains and closes its stores), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill("SIGCONT"); // a paused process cannot drain
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
    this.lines?.close();
  }

  private send(command: NodeCommand): void {
    if (!this.running) {
      throw new StrataError("UNAVAILABLE", `node process ${this.id} is not running`);
    }
    this.child?.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  /** The first line on the node's stdout that `match`es; fails if the process exits first. */
  private expect(
    match: (line: Record<string, unknown>) => boolean,
    options: { what: string; timeoutMs: number; signal?: AbortSignal },
  ): Promise<Record<string, unknown>> {
    const child = this.child;
    const lines = this.lines;
    if (child === undefined || lines === undefined || !this.running) {
      return Promise.reject(
        new StrataError("UNAVAILABLE", `node process ${this.id} is not running`),
      );
    }
    return new Promise((resolve, reject) => {
      const done = (error: Error | undefined, line?: Record<string, unknown>): void => {
        clearTimeout(timer);
        child.off("exit", onExit);
        lines.off("line", onLine);
        options.signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve(line ?? {});
        else reject(error);
      };
      const timer = setTimeout(() => {
        done(
          new StrataError(
            "DEADLINE_EXCEEDED",
            `node ${this.id} did not ${options.what} in ${options.timeoutMs} ms; see ${this.logFile}`,
          ),
        );
      }, options.timeoutMs);
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        void readFile(this.logFile, "utf8")
          .catch(() => "")
          .then((text) =>
            done(
              new StrataError(
                "UNAVAILABLE",
                `node ${this.id} exited (${code ?? signal ?? "?"}) before it could ${options.what}:\n${text.slice(-2_000)}`,
              ),
            ),
          );
      };
      const onLine = (text: string): void => {
        let line: unknown;
        try {
          line = JSON.parse(text);
        } catch {
          return;
        }
        if (typeof line === "object" && line !== null && match(line as Record<string, unknown>)) {
          done(undefined, line as Record<string, unknown>);
        }
      };
      const onAbort = (): void => done(options.signal?.reason as Error);
      child.once("exit", onExit);
      lines.on("line", onLine);
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

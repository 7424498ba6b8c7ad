import { ensureError } from "../errors/index.js";
import type { Clock } from "../ports/index.js";

/** A dependency check that decides (when `required`) whether the node is ready for traffic. */
export interface HealthCheck {
  readonly name: string;
  /** When true (the default), a failing check makes the node unready. */
  readonly required?: boolean;
  /** Resolves true when healthy; a throw, false, or a timeout counts as unhealthy. */
  readonly check: (signal: AbortSignal) => boolean | Promise<boolean>;
  /** Longest a check may take (ms); default 1 000. */
  readonly timeoutMs?: number;
}

/** The last result of one check. */
export interface CheckResult {
  readonly name: string;
  readonly required: boolean;
  readonly ok: boolean;
  readonly error?: string;
  /** Wall-clock time of the result (ms since the epoch). */
  readonly at: number;
}

/** Liveness and readiness of a node. */
export interface HealthReport {
  /** The process is up and its node running or draining. */
  readonly live: boolean;
  /** The node takes new calls: running, and every required check passes. */
  readonly ready: boolean;
  readonly state: string;
  readonly checks: readonly CheckResult[];
}

/** Runs a node's health checks on each heartbeat and remembers the results. */
export class Health {
  private readonly clock: Clock;
  private readonly checks = new Map<string, HealthCheck>();
  private readonly results = new Map<string, CheckResult>();
  private running = false;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  add(check: HealthCheck): void {
    if (typeof check.name !== "string" || check.name.length === 0) {
      throw new TypeError("a health check needs a name");
    }
    this.checks.set(check.name, check);
  }

  remove(name: string): void {
    this.checks.delete(name);
    this.results.delete(name);
  }

  /** True when every required check passed last time (checks not run yet count as passing). */
  requiredPass(): boolean {
    for (const [name, check] of this.checks) {
      if (check.required === false) continue;
      if (this.results.get(name)?.ok === false) return false;
    }
    return true;
  }

  failing(): string[] {
    return [...this.results.values()].filter((r) => !r.ok && r.required).map((r) => r.name);
  }

  all(): CheckResult[] {
    return [...this.results.values()];
  }

  /** Runs every check once (skipped while a previous round is still running). */
  async runAll(): Promise<void> {
    if (this.running || this.checks.size === 0) return;
    this.running = true;
    try {
      await Promise.all([...this.checks.values()].map((check) => this.runOne(check)));
    } finally {
      this.running = false;
    }
  }

  private async runOne(check: HealthCheck): Promise<void> {
    const controller = new AbortController();
    const timeoutMs = check.timeoutMs ?? 1_000;
    let timer: { clear(): void } | undefined;
    const timeout = new Promise<boolean>((_, reject) => {
      timer = this.clock.setTimer(() => {
        controller.abort();
        reject(new Error(`timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    });
    let ok = false;
    let error: string | undefined;
    try {
      ok =
        (await Promise.race([
          Promise.resolve().then(() => check.check(controller.signal)),
          timeout,
        ])) === true;
      if (!ok) error = "check returned false";
    } catch (failure) {
      error = ensureError(failure).message;
    } finally {
      timer?.clear();
    }
    const result: CheckResult =
      error === undefined
        ? { name: check.name, required: check.required !== false, ok, at: this.clock.now() }
        : { name: check.name, required: check.required !== false, ok, error, at: this.clock.now() };
    this.results.set(check.name, result);
  }
}

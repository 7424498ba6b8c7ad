import { spawn } from "node:child_process";
import { StrataError, systemClock, type Clock, type Logger, type Timer } from "@strata/core";
import type { Actuator } from "../types.js";

/** A running replica, as a launcher hands it to the supervisor. */
export interface Replica {
  /** A name for logs (`inventory-3`, a pid). */
  readonly id: string;
  /** Settles when the replica ends, on its own or after `stop`. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: string | null }>;
  /** Asks it to stop (drain, then end); the supervisor does not restart it. */
  stop(): Promise<void>;
}

/** Starts one replica of a service: a process, or a node in this process. */
export type Launcher = (service: string, index: number) => Promise<Replica>;

/** Options of {@link createLocalActuator}. */
export interface LocalActuatorOptions {
  /** How each service's replicas are started. */
  readonly launchers: Readonly<Record<string, Launcher>>;
  /** First restart delay after a crash (ms); doubles per crash in a row, up to `maxBackoffMs`. */
  readonly backoffMs?: number;
  /** Longest restart delay (ms); default 30 000. */
  readonly maxBackoffMs?: number;
  /** A replica that ran this long (ms) resets its crash streak; default 60 000. */
  readonly stableMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** What the supervisor knows about one service. */
export interface SupervisedService {
  readonly service: string;
  readonly desired: number;
  readonly running: number;
  readonly restarts: number;
  readonly crashes: number;
  /** Restarts waiting for their backoff. */
  readonly pendingRestarts: number;
}

/** The local actuator: a supervisor of replicas on this machine. */
export interface LocalActuator extends Actuator, AsyncDisposable {
  status(): SupervisedService[];
  /** Stops every replica (in parallel) and stops supervising. */
  stop(): Promise<void>;
}

interface Slot {
  replica: Replica | undefined;
  startedAt: number;
  streak: number;
  restartTimer: Timer | undefined;
  stopping: boolean;
}

interface State {
  desired: number;
  slots: Slot[];
  restarts: number;
  crashes: number;
  next: number;
}

/**
 * A supervisor that runs each service's replicas on this machine and carries out scaling
 * decisions: `scale` starts or stops replicas (newest first) to reach the count; a replica that
 * ends without being asked is restarted after a backoff that doubles with each crash in a row
 * (reset once it has run `stableMs`). Launchers decide what a replica is: {@link processLauncher}
 * for a node process, or a function that makes a node in this process.
 *
 * @example
 * const local = createLocalActuator({
 *   launchers: { inventory: processLauncher(process.execPath, ["node_modules/.bin/strata", "dev", "./inventory.js", "--nats", url]) },
 * });
 * await local.scale("inventory", 3);
 */
export function createLocalActuator(options: LocalActuatorOptions): LocalActuator {
  const clock = options.clock ?? systemClock();
  const backoffMs = options.backoffMs ?? 250;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const stableMs = options.stableMs ?? 60_000;
  for (const [what, value] of [
    ["backoffMs", backoffMs],
    ["maxBackoffMs", maxBackoffMs],
    ["stableMs", stableMs],
  ] as const) {
    if (!(Number.isFinite(value) && value > 0)) {
      throw new StrataError("INVALID_ARGUMENT", `local actuator ${what} must be a positive number`);
    }
  }
  const services = new Map<string, State>();
  let closed = false;

  const stateOf = (service: string): State => {
    if (options.launchers[service] === undefined) {
      throw new StrataError(
        "NOT_FOUND",
        `the local actuator has no launcher for service "${service}" (known: ${Object.keys(options.launchers).join(", ")})`,
      );
    }
    let state = services.get(service);
    if (state === undefined) {
      state = { desired: 0, slots: [], restarts: 0, crashes: 0, next: 1 };
      services.set(service, state);
    }
    return state;
  };

  const launch = async (service: string, state: State, slot: Slot): Promise<void> => {
    const launcher = options.launchers[service] as Launcher;
    let replica: Replica;
    try {
      replica = await launcher(service, state.next++);
    } catch (error) {
      options.logger?.warn(
        { service, error: error instanceof Error ? error.message : String(error) },
        `could not start a replica of ${service}`,
      );
      onEnd(service, state, slot);
      return;
    }
    if (slot.stopping || closed) {
      await replica.stop().catch(() => undefined);
      return;
    }
    slot.replica = replica;
    slot.startedAt = clock.monotonic();
    void replica.exited.then(() => {
      if (slot.replica === replica) onEnd(service, state, slot);
    });
  };

  /** A replica ended without being asked to: restart it after the backoff. */
  const onEnd = (service: string, state: State, slot: Slot): void => {
    slot.replica = undefined;
    if (slot.stopping || closed || !state.slots.includes(slot)) return;
    state.crashes++;
    if (clock.monotonic() - slot.startedAt >= stableMs) slot.streak = 0;
    const delay = Math.min(maxBackoffMs, backoffMs * 2 ** slot.streak);
    slot.streak++;
    options.logger?.warn(
      { service, delayMs: delay },
      `a replica of ${service} ended; restarting in ${delay} ms`,
    );
    slot.restartTimer = clock.setTimer(() => {
      slot.restartTimer = undefined;
      if (slot.stopping || closed) return;
      state.restarts++;
      void launch(service, state, slot);
    }, delay);
  };

  const stopSlot = async (slot: Slot): Promise<void> => {
    slot.stopping = true;
    slot.restartTimer?.clear();
    const replica = slot.replica;
    slot.replica = undefined;
    await replica?.stop().catch(() => undefined);
  };

  return {
    name: "local",
    replicas(service) {
      return Promise.resolve(stateOf(service).desired);
    },
    async scale(service, replicas) {
      if (closed) throw new StrataError("FAILED_PRECONDITION", "the local actuator is stopped");
      if (!(Number.isInteger(replicas) && replicas >= 0 && replicas <= 1_000)) {
        throw new StrataError(
          "INVALID_ARGUMENT",
          `replicas must be an integer in 0..1000, got ${replicas}`,
        );
      }
      const state = stateOf(service);
      state.desired = replicas;
      while (state.slots.length < replicas) {
        const slot: Slot = {
          replica: undefined,
          startedAt: clock.monotonic(),
          streak: 0,
          restartTimer: undefined,
          stopping: false,
        };
        state.slots.push(slot);
        void launch(service, state, slot);
      }
      const extra = state.slots.splice(replicas);
      await Promise.all(extra.reverse().map(stopSlot));
    },
    status() {
      return [...services].map(([service, state]) => ({
        service,
        desired: state.desired,
        running: state.slots.filter((s) => s.replica !== undefined).length,
        restarts: state.restarts,
        crashes: state.crashes,
        pendingRestarts: state.slots.filter((s) => s.restartTimer !== undefined).length,
      }));
    },
    async stop() {
      closed = true;
      const all = [...services.values()].flatMap((s) => s.slots.splice(0));
      await Promise.all(all.map(stopSlot));
    },
    async [Symbol.asyncDispose]() {
      await this.stop();
    },
  };
}

/**
 * A launcher that runs each replica as a child process (`command args…`), with
 * `STRATA_REPLICA=<service>-<n>` in its environment. Stopping sends SIGTERM, then SIGKILL after
 * `graceMs` (default 10 000).
 */
export function processLauncher(
  command: string,
  args: readonly string[],
  options: {
    readonly env?: Readonly<Record<string, string>>;
    readonly graceMs?: number;
    readonly cwd?: string;
  } = {},
): Launcher {
  return (service, index) => {
    const child = spawn(command, [...args], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, ...options.env, STRATA_REPLICA: `${service}-${index}` },
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", () => resolve({ code: null, signal: null }));
    });
    return new Promise<Replica>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () =>
        resolve({
          id: `${service}-${index} (pid ${child.pid ?? "?"})`,
          exited,
          async stop() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill("SIGTERM");
            const grace = setTimeout(() => child.kill("SIGKILL"), options.graceMs ?? 10_000);
            await exited;
            clearTimeout(grace);
          },
        }),
      );
    });
  };
}

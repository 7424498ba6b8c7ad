import { waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { createLocalActuator, processLauncher, type LocalActuator } from "./local.js";

const forever = processLauncher(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
  graceMs: 2_000,
});
const crashing = processLauncher(process.execPath, ["-e", "process.exit(3)"]);

let actuator: LocalActuator | undefined;
afterEach(async () => {
  await actuator?.stop();
  actuator = undefined;
});

describe("the local actuator (a supervisor of processes)", () => {
  it("starts and stops processes to reach the count", async () => {
    const pids: Array<{ stop: () => Promise<void> }> = [];
    actuator = createLocalActuator({
      launchers: {
        inventory: async (service, index) => {
          const replica = await forever(service, index);
          pids.push(replica);
          return replica;
        },
      },
    });
    await actuator.scale("inventory", 3);
    await waitFor(() => actuator?.status()[0]?.running === 3);
    expect(await actuator.replicas("inventory")).toBe(3);
    await actuator.scale("inventory", 1);
    expect(actuator.status()[0]).toMatchObject({ desired: 1, running: 1, crashes: 0 });
    await actuator.scale("inventory", 0);
    expect(actuator.status()[0]).toMatchObject({ desired: 0, running: 0, restarts: 0 });
    expect(pids).toHaveLength(3);
  });

  it("replaces a replica killed with SIGKILL", async () => {
    const replicas: Array<{ id: string }> = [];
    actuator = createLocalActuator({
      backoffMs: 50,
      launchers: {
        orders: async (service, index) => {
          const replica = await forever(service, index);
          replicas.push(replica);
          return replica;
        },
      },
    });
    await actuator.scale("orders", 2);
    await waitFor(() => actuator?.status()[0]?.running === 2);
    const victim = /pid (\d+)/.exec(replicas[0]?.id ?? "")?.[1];
    expect(victim).toBeDefined();
    process.kill(Number(victim), "SIGKILL");
    await waitFor(
      () => actuator?.status()[0]?.restarts === 1 && actuator.status()[0]?.running === 2,
      {
        timeoutMs: 10_000,
      },
    );
    expect(actuator.status()[0]).toMatchObject({ crashes: 1, desired: 2 });
    expect(replicas).toHaveLength(3);
  });

  it("backs off a replica that keeps crashing, doubling the delay", async () => {
    const starts: number[] = [];
    actuator = createLocalActuator({
      backoffMs: 40,
      maxBackoffMs: 1_000,
      launchers: {
        broken: async (service, index) => {
          starts.push(performance.now());
          return crashing(service, index);
        },
      },
    });
    await actuator.scale("broken", 1);
    await waitFor(() => starts.length >= 5, { timeoutMs: 15_000 });
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    // Each restart waits at least the doubled backoff (40, 80, 160, 320 ms).
    gaps.slice(0, 4).forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(40 * 2 ** i));
    expect(actuator.status()[0]?.crashes).toBeGreaterThanOrEqual(4);
  });

  it("refuses bad input with clear errors", async () => {
    actuator = createLocalActuator({ launchers: { a: forever } });
    await expect(actuator.scale("nope", 1)).rejects.toThrow(/no launcher for service "nope"/);
    await expect(actuator.scale("a", -1)).rejects.toThrow(/replicas must be an integer/);
    await expect(actuator.scale("a", 1.5)).rejects.toThrow(/replicas must be an integer/);
    expect(() => createLocalActuator({ launchers: {}, backoffMs: 0 })).toThrow(/backoffMs/);
    await actuator.stop();
    await expect(actuator.scale("a", 1)).rejects.toThrow(/stopped/);
  });

  it("does not restart a replica whose launcher keeps failing faster than the backoff", async () => {
    let attempts = 0;
    actuator = createLocalActuator({
      backoffMs: 30,
      launchers: {
        flaky: () => {
          attempts++;
          return Promise.reject(new Error("cannot start"));
        },
      },
    });
    await actuator.scale("flaky", 1);
    await waitFor(() => attempts >= 3, { timeoutMs: 5_000 });
    expect(actuator.status()[0]?.running).toBe(0);
  });
});

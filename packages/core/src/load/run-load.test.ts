import { describe, expect, it } from "vitest";
import { z } from "zod";
import { StrataError } from "../errors/index.js";
import { manualClock } from "../ports/index.js";
import { defineService } from "../service/define-service.js";
import { createTestCluster } from "../test-support/cluster.js";
import { runLoad, type LoadProgress } from "./run-load.js";

/** Lets other workers run, so that calls genuinely overlap. */
const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("runLoad", () => {
  it("counts calls, successes and errors by code", async () => {
    const report = await runLoad({
      concurrency: 4,
      calls: 100,
      clock: manualClock(),
      call: async (i) => {
        await Promise.resolve();
        if (i % 10 === 0) throw new StrataError("NOT_FOUND", "missing");
        if (i % 25 === 1) throw new Error("not a Strata error");
        if (i === 99) throw new StrataError("UNAVAILABLE", "down");
      },
    });
    expect(report.calls).toBe(100);
    expect(report.ok).toBe(85);
    expect(report.errors).toEqual({ NOT_FOUND: 10, UNKNOWN: 4, UNAVAILABLE: 1 });
  });

  it("keeps exactly `concurrency` calls in flight, never more", async () => {
    let active = 0;
    let peak = 0;
    const report = await runLoad({
      concurrency: 8,
      calls: 200,
      call: async () => {
        active++;
        peak = Math.max(peak, active);
        await yieldTurn();
        active--;
      },
    });
    expect(report.calls).toBe(200);
    expect(peak).toBe(8);
    expect(active).toBe(0);
  });

  it("makes no more calls than asked when they are fewer than the workers", async () => {
    let made = 0;
    const report = await runLoad({
      concurrency: 16,
      calls: 3,
      call: () => {
        made++;
        return Promise.resolve();
      },
    });
    expect(made).toBe(3);
    expect(report.calls).toBe(3);
  });

  it("warms up first without counting the warm-up calls", async () => {
    const seen: number[] = [];
    const report = await runLoad({
      concurrency: 4,
      calls: 50,
      warmupCalls: 10,
      call: async (i) => {
        seen.push(i);
        await Promise.resolve();
        if (i < 10) throw new StrataError("INTERNAL", "cold");
      },
    });
    expect(report.calls).toBe(50);
    expect(report.errors).toEqual({});
    expect(seen.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it("runs for a duration on the clock it is given and measures latency", async () => {
    const clock = manualClock();
    const progress: LoadProgress[] = [];
    const report = await runLoad({
      concurrency: 1,
      durationMs: 100,
      clock,
      progressIntervalMs: 50,
      onProgress: (p) => progress.push(p),
      call: async () => {
        await Promise.resolve();
        clock.advance(10);
      },
    });
    expect(report.calls).toBe(10);
    expect(report.durationMs).toBe(100);
    expect(report.throughput).toBe(100);
    for (const value of [report.latency.p50, report.latency.p99, report.latency.max]) {
      expect(value).toBeGreaterThan(9.9);
      expect(value).toBeLessThan(10.1);
    }
    expect(progress.map((p) => p.calls)).toEqual([4, 9]);
    expect(progress[0]?.rate).toBeGreaterThan(0);
    expect(clock.pending()).toBe(0);
  });

  it("stops when its signal aborts", async () => {
    const controller = new AbortController();
    let made = 0;
    const report = await runLoad({
      concurrency: 2,
      calls: 1_000,
      signal: controller.signal,
      call: async () => {
        made++;
        if (made === 10) controller.abort();
        await Promise.resolve();
      },
    });
    expect(report.calls).toBeGreaterThanOrEqual(10);
    expect(report.calls).toBeLessThanOrEqual(11);
  });

  it("reports zeros when nothing ran", async () => {
    const report = await runLoad({
      concurrency: 1,
      calls: 0,
      call: () => Promise.resolve(),
    });
    expect(report).toMatchObject({ calls: 0, ok: 0, errors: {} });
    expect(report.latency).toEqual({ p50: 0, p90: 0, p99: 0, max: 0, mean: 0 });
  });

  it("refuses a bad concurrency and a run with no end", async () => {
    const call = () => Promise.resolve();
    await expect(runLoad({ concurrency: 0, calls: 1, call })).rejects.toThrowError(RangeError);
    await expect(runLoad({ concurrency: 1.5, calls: 1, call })).rejects.toThrowError(
      /concurrency must be a positive integer/,
    );
    await expect(runLoad({ concurrency: 1, call })).rejects.toThrowError(
      /needs calls or durationMs/,
    );
  });

  it("tallies the codes of real calls across the wire", async () => {
    await using cluster = createTestCluster({ serialize: true });
    const stock = defineService({
      name: "stock",
      version: "1.0.0",
      actions: { get: { input: z.object({ n: z.number() }), output: z.number() } },
    });
    await cluster.add({
      id: "a",
      services: [
        stock.implement({
          get: ({ n }) => {
            if (n % 4 === 0) throw new StrataError("NOT_FOUND", `item ${n}`);
            return n;
          },
        }),
      ],
    });
    const caller = await cluster.add({ id: "caller" });
    const client = caller.client(stock);
    const report = await runLoad({
      concurrency: 4,
      calls: 40,
      clock: cluster.clock,
      call: (i) =>
        i % 10 === 9 ? client.get({ n: "bad" as unknown as number }) : client.get({ n: i }),
    });
    expect(report.calls).toBe(40);
    expect(report.errors).toEqual({ NOT_FOUND: 10, INVALID_ARGUMENT: 4 });
    expect(report.ok).toBe(26);
  });
});

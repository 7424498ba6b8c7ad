import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isStrataError, type ErrorCode } from "../errors/index.js";
import { manualClock, type ManualClock } from "../ports/index.js";
import {
  DEFAULT_BURN_RATE_RULES,
  SloMonitor,
  checkSloSpec,
  type SloAlertEvent,
  type SloSpec,
  type SloStatus,
} from "./slo.js";

/** A manual clock whose monotonic time starts at `start`. */
function clockAt(start: number): ManualClock {
  const clock = manualClock();
  clock.advance(start);
  return clock;
}

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

const ORDERS: SloSpec = {
  name: "orders-availability",
  service: "orders",
  kind: "availability",
  objective: 0.999,
};

function statusOf(monitor: SloMonitor, name: string): SloStatus {
  const found = monitor.status().find((s) => s.name === name);
  if (found === undefined) throw new Error(`no SLO ${name}`);
  return found;
}

function firing(monitor: SloMonitor, severity: "page" | "ticket"): boolean {
  return statusOf(monitor, ORDERS.name).alerts.some((a) => a.severity === severity && a.firing);
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * Drives a steady stream of calls to orders.place, `perSecond` a second, evaluating every 10 s as
 * the owner's timer would; `code(n)` decides the outcome of the n-th call of this stretch.
 * `tick` runs after each evaluation with the time elapsed in this stretch.
 */
function stream(
  clock: ManualClock,
  monitor: SloMonitor,
  options: {
    readonly ms: number;
    readonly perSecond: number;
    readonly code: (n: number) => "OK" | ErrorCode;
    readonly tick?: (elapsed: number) => void;
  },
): void {
  const gap = SECOND / options.perSecond;
  let n = 0;
  for (let elapsed = 0; elapsed < options.ms; elapsed += gap) {
    monitor.record("orders", "place", options.code(n++), 20);
    clock.advance(gap);
    if ((elapsed + gap) % (10 * SECOND) === 0) {
      monitor.evaluate();
      options.tick?.(elapsed + gap);
    }
  }
}

describe("SloMonitor alerts", () => {
  it("does not fire when errors spend the budget exactly as planned (burn rate 1)", () => {
    const clock = manualClock();
    const events: SloAlertEvent[] = [];
    const monitor = new SloMonitor(clock, [ORDERS], { onAlert: (e) => events.push(e) });
    stream(clock, monitor, {
      ms: 7 * HOUR,
      perSecond: 5,
      code: (n) => (n % 1000 === 999 ? "UNAVAILABLE" : "OK"),
    });
    expect(events).toEqual([]);
    const status = statusOf(monitor, ORDERS.name);
    // One error every 200 s: a window holds its share give or take one error.
    for (const window of ["1h", "6h"]) {
      expect(status.burnRates[window]).toBeGreaterThan(0.9);
      expect(status.burnRates[window]).toBeLessThan(1.1);
    }
    expect(Object.keys(status.burnRates).sort()).toEqual(["1h", "30m", "5m", "6h"]);
  });

  it("pages within about 5 minutes at burn rate 200, resolves once 5 minutes are clean", () => {
    const clock = clockAt(987_654);
    const events: SloAlertEvent[] = [];
    const monitor = new SloMonitor(clock, [ORDERS], { onAlert: (e) => events.push(e) });
    stream(clock, monitor, { ms: HOUR, perSecond: 5, code: () => "OK" });
    expect(events).toEqual([]);

    // 20% errors after an hour of clean traffic: the 1 h burn rate reaches 14.4 after 4.32 min.
    let pagedAt = -1;
    let ticketAt = -1;
    stream(clock, monitor, {
      ms: 10 * MINUTE,
      perSecond: 5,
      code: (n) => (n % 5 === 0 ? "INTERNAL" : "OK"),
      tick(elapsed) {
        if (pagedAt < 0 && firing(monitor, "page")) pagedAt = elapsed;
        if (ticketAt < 0 && firing(monitor, "ticket")) ticketAt = elapsed;
      },
    });
    expect(pagedAt).toBeGreaterThan(4 * MINUTE);
    expect(pagedAt).toBeLessThanOrEqual(5 * MINUTE);
    expect(ticketAt).toBeGreaterThan(0);
    expect(ticketAt).toBeLessThanOrEqual(5 * MINUTE);

    // Errors stop: the short window clears the page within 5 min + a slot, not before ~4.5 min.
    let resolvedAt = -1;
    stream(clock, monitor, {
      ms: 6 * MINUTE,
      perSecond: 5,
      code: () => "OK",
      tick(elapsed) {
        if (elapsed <= 4.5 * MINUTE) expect(firing(monitor, "page")).toBe(true);
        if (resolvedAt < 0 && !firing(monitor, "page")) resolvedAt = elapsed;
      },
    });
    expect(resolvedAt).toBeGreaterThan(4.5 * MINUTE);
    expect(resolvedAt).toBeLessThanOrEqual(5 * MINUTE + 10 * SECOND);
    expect(firing(monitor, "ticket")).toBe(true);

    // The ticket's short window (30 min) clears later.
    stream(clock, monitor, { ms: 30 * MINUTE, perSecond: 5, code: () => "OK" });
    expect(firing(monitor, "ticket")).toBe(false);
    expect(events.map((e) => `${e.severity}:${e.state}`)).toEqual([
      "ticket:firing",
      "page:firing",
      "page:resolved",
      "ticket:resolved",
    ]);
    const [ticket, page] = events;
    expect(ticket?.slo).toBe(ORDERS.name);
    expect(ticket?.type).toBe("slo");
    expect(page?.burnRates.long).toBeGreaterThan(14.4);
    expect(page?.burnRates.short).toBeGreaterThan(14.4);
    expect(page?.burnRates.short).toBeLessThanOrEqual(200);
  });

  it("swallows exceptions thrown by onAlert", () => {
    const clock = manualClock();
    let calls = 0;
    const monitor = new SloMonitor(clock, [ORDERS], {
      onAlert: () => {
        calls++;
        throw new Error("hook failed");
      },
    });
    stream(clock, monitor, { ms: 10 * MINUTE, perSecond: 5, code: () => "DATA_LOSS" });
    expect(calls).toBe(2);
    expect(firing(monitor, "page")).toBe(true);
  });

  it("lets onAlert read status() without disturbing the evaluation under way", () => {
    const clock = manualClock();
    const events: SloAlertEvent[] = [];
    const monitor = new SloMonitor(
      clock,
      [
        { ...ORDERS, name: "failing", service: "failing" },
        { ...ORDERS, name: "healthy", service: "healthy" },
      ],
      {
        onAlert: (e) => {
          events.push(e);
          monitor.status();
        },
      },
    );
    for (let i = 0; i < 100; i++) {
      monitor.record("failing", "x", "INTERNAL", 1);
      monitor.record("healthy", "x", "OK", 1);
    }
    monitor.evaluate();
    expect(events.map((e) => `${e.slo}:${e.severity}:${e.state}`)).toEqual([
      "failing:page:firing",
      "failing:ticket:firing",
    ]);
  });

  it("uses custom rules and labels their windows", () => {
    const clock = manualClock();
    const events: SloAlertEvent[] = [];
    const monitor = new SloMonitor(clock, [ORDERS], {
      slotMs: SECOND,
      rules: [{ severity: "page", longMs: 90 * SECOND, shortMs: 1_500, burnRate: 100 }],
      onAlert: (e) => events.push(e),
    });
    monitor.record("orders", "place", "UNAVAILABLE", 1);
    monitor.evaluate();
    expect(Object.keys(statusOf(monitor, ORDERS.name).burnRates)).toEqual(["2s", "90s"]);
    expect(events.map((e) => e.state)).toEqual(["firing"]);
  });
});

describe("SloMonitor accounting", () => {
  it("counts client errors as good and server failures as bad", () => {
    const clock = manualClock();
    const monitor = new SloMonitor(clock, [ORDERS]);
    const good: ErrorCode[] = ["CANCELLED", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"];
    const bad: ErrorCode[] = [
      "UNKNOWN",
      "DEADLINE_EXCEEDED",
      "RESOURCE_EXHAUSTED",
      "UNIMPLEMENTED",
    ];
    bad.push("INTERNAL", "UNAVAILABLE", "DATA_LOSS");
    for (const code of good) monitor.record("orders", "place", code, 1);
    for (const code of bad) monitor.record("orders", "place", code, 1);
    monitor.record("orders", "place", "OK", 1);
    const status = statusOf(monitor, ORDERS.name);
    expect(status.total).toBe(12);
    expect(status.good).toBe(5);
  });

  it("gives exact attainment and error budget on a hand-computed example", () => {
    const clock = manualClock();
    const spec: SloSpec = { name: "exact", service: "s", kind: "availability", objective: 0.75 };
    const monitor = new SloMonitor(clock, [spec]);
    // 1 bad in 8: attainment 7/8, budget spent (1/8)/(1/4) = 1/2.
    for (let i = 0; i < 7; i++) monitor.record("s", "a", "OK", 1);
    monitor.record("s", "a", "INTERNAL", 1);
    let status = statusOf(monitor, "exact");
    expect(status.attainment).toBe(0.875);
    expect(status.errorBudgetRemaining).toBe(0.5);
    // Two more bad ones (3 in 10 -> (3/10)/(1/4) = 1.2): the budget goes negative.
    monitor.record("s", "a", "UNAVAILABLE", 1);
    monitor.record("s", "a", "UNAVAILABLE", 1);
    status = statusOf(monitor, "exact");
    expect(status.attainment).toBe(0.7);
    expect(status.errorBudgetRemaining).toBeCloseTo(-0.2, 12);
    // An SLO that saw nothing is whole.
    const empty = new SloMonitor(clock, [spec]).status()[0];
    expect(empty).toMatchObject({ total: 0, good: 0, attainment: 1, errorBudgetRemaining: 1 });
    expect(empty?.burnRates).toEqual({ "5m": 0, "30m": 0, "1h": 0, "6h": 0 });
  });

  it("counts slow successes as bad for a latency SLO", () => {
    const clock = manualClock();
    const spec: SloSpec = {
      name: "fast",
      service: "s",
      action: "get",
      kind: "latency",
      objective: 0.99,
      thresholdMs: 100,
    };
    const monitor = new SloMonitor(clock, [spec]);
    monitor.record("s", "get", "OK", 50); // good
    monitor.record("s", "get", "OK", 100); // good: at the threshold
    monitor.record("s", "get", "OK", 150); // bad: slow
    monitor.record("s", "get", "NOT_FOUND", 20); // good: client error, fast
    monitor.record("s", "get", "INTERNAL", 10); // bad: fast but failed
    monitor.record("s", "put", "OK", 500); // other action: not counted
    monitor.record("t", "get", "OK", 500); // other service: not counted
    const status = statusOf(monitor, "fast");
    expect(status).toMatchObject({ total: 5, good: 3, action: "get", kind: "latency" });
  });

  it("matches service-wide and per-action SLOs", () => {
    const clock = manualClock();
    const monitor = new SloMonitor(clock, [
      { name: "all", service: "s", kind: "availability", objective: 0.9 },
      { name: "one", service: "s", action: "a", kind: "availability", objective: 0.9 },
    ]);
    monitor.add({
      name: "also-one",
      service: "s",
      action: "a",
      kind: "availability",
      objective: 0.9,
    });
    monitor.record("s", "a", "OK", 1);
    monitor.record("s", "b", "OK", 1);
    expect(monitor.status().map((s) => `${s.name}:${s.total}:${String(s.action)}`)).toEqual([
      "all:2:undefined",
      "one:1:a",
      "also-one:1:a",
    ]);
  });

  it("forgets calls older than the budget period", () => {
    const clock = manualClock();
    const spec: SloSpec = { ...ORDERS, periodMs: 2 * HOUR };
    const monitor = new SloMonitor(clock, [spec]);
    monitor.record("orders", "place", "INTERNAL", 1);
    clock.advance(HOUR);
    monitor.record("orders", "place", "OK", 1);
    expect(statusOf(monitor, ORDERS.name).total).toBe(2);
    clock.advance(HOUR);
    expect(statusOf(monitor, ORDERS.name)).toMatchObject({ total: 1, good: 1 });
    clock.advance(HOUR);
    expect(statusOf(monitor, ORDERS.name)).toMatchObject({ total: 0, attainment: 1 });
  });
});

describe("checkSloSpec", () => {
  it("accepts and copies a valid spec", () => {
    const input = { ...ORDERS, action: "place", extra: "dropped" };
    const spec = checkSloSpec(input);
    expect(spec).toEqual({ ...ORDERS, action: "place" });
    expect(Object.isFrozen(spec)).toBe(true);
  });

  it("rejects hostile specs with INVALID_ARGUMENT", () => {
    const hostile: unknown[] = [
      null,
      "spec",
      [],
      { ...ORDERS, objective: 1 },
      { ...ORDERS, objective: 0 },
      { ...ORDERS, objective: Number.NaN },
      { ...ORDERS, objective: "0.999" },
      { ...ORDERS, objective: 1.5 },
      { ...ORDERS, name: 42 },
      { ...ORDERS, name: "Upper Case" },
      { ...ORDERS, name: "x".repeat(65) },
      { ...ORDERS, name: "" },
      { ...ORDERS, service: "" },
      { ...ORDERS, service: { toString: () => "orders" } },
      { ...ORDERS, action: 7 },
      { ...ORDERS, kind: "throughput" },
      { ...ORDERS, thresholdMs: 100 },
      { ...ORDERS, kind: "latency" },
      { ...ORDERS, kind: "latency", thresholdMs: -5 },
      { ...ORDERS, kind: "latency", thresholdMs: Number.NaN },
      { ...ORDERS, kind: "latency", thresholdMs: Infinity },
      { ...ORDERS, periodMs: 0 },
      { ...ORDERS, periodMs: 1_000 },
      { ...ORDERS, periodMs: Infinity },
    ];
    for (const spec of hostile) {
      expect(
        isStrataError(
          thrown(() => checkSloSpec(spec)),
          "INVALID_ARGUMENT",
        ),
      ).toBe(true);
      const clock = manualClock();
      expect(
        isStrataError(
          thrown(() => new SloMonitor(clock, [spec as SloSpec])),
          "INVALID_ARGUMENT",
        ),
      ).toBe(true);
    }
  });

  it("rejects duplicate names, in the constructor and in add()", () => {
    const clock = manualClock();
    const error = thrown(() => new SloMonitor(clock, [ORDERS, { ...ORDERS, service: "other" }]));
    expect(isStrataError(error, "INVALID_ARGUMENT")).toBe(true);
    expect((error as Error).message).toMatch(/orders-availability.*already in use/);
    const monitor = new SloMonitor(clock, [ORDERS]);
    expect(
      isStrataError(
        thrown(() => monitor.add(ORDERS)),
        "INVALID_ARGUMENT",
      ),
    ).toBe(true);
    expect(monitor.status()).toHaveLength(1);
  });

  it("rejects bad monitor options", () => {
    const clock = manualClock();
    const rule = DEFAULT_BURN_RATE_RULES[0];
    const badOptions: unknown[] = [
      { slotMs: 0 },
      { slotMs: Number.NaN },
      { rules: "page" },
      { rules: [{ ...rule, severity: "email" }] },
      { rules: [{ ...rule, burnRate: -1 }] },
      { rules: [{ ...rule, shortMs: 2 * HOUR }] },
      { rules: [null] },
      { slotMs: 1, rules: [{ ...rule, longMs: 7 * 24 * HOUR }] },
    ];
    for (const options of badOptions) {
      const error = thrown(() => new SloMonitor(clock, [], options as never));
      expect(isStrataError(error, "INVALID_ARGUMENT"), JSON.stringify(options)).toBe(true);
    }
  });
});

describe("SloMonitor property", () => {
  it("burn rates, period totals and alerts equal a naive recomputation", () => {
    const slotMs = SECOND;
    const objective = 0.9;
    const spans = { "5s": 5, "1m": 60 } as const;
    const event = fc.record({ gap: fc.integer({ min: 0, max: 20_000 }), bad: fc.boolean() });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.array(event, { maxLength: 120 }),
        (start, events) => {
          const clock = clockAt(start);
          const monitor = new SloMonitor(
            clock,
            [{ name: "p", service: "s", kind: "availability", objective, periodMs: 2 * HOUR }],
            { slotMs, rules: [{ severity: "page", longMs: MINUTE, shortMs: 5_000, burnRate: 2 }] },
          );
          const seen: { t: number; bad: boolean }[] = [];
          const naive = (slots: number, size: number) => {
            const current = Math.floor(clock.monotonic() / size);
            const inside = seen.filter((e) => Math.floor(e.t / size) > current - slots);
            const bad = inside.filter((e) => e.bad).length;
            return { total: inside.length, bad };
          };
          const naiveBurn = (slots: number): number => {
            const { total, bad } = naive(slots, slotMs);
            return total === 0 ? 0 : bad / total / (1 - objective);
          };
          for (const { gap, bad } of events) {
            clock.advance(gap);
            monitor.record("s", "x", bad ? "UNAVAILABLE" : "OK", 1);
            seen.push({ t: clock.monotonic(), bad });
            monitor.evaluate();
            const [status] = monitor.status();
            expect(status?.burnRates["5s"]).toBe(naiveBurn(spans["5s"]));
            expect(status?.burnRates["1m"]).toBe(naiveBurn(spans["1m"]));
            const period = naive(2, HOUR);
            expect(status?.total).toBe(period.total);
            expect(status?.good).toBe(period.total - period.bad);
            const fire = naiveBurn(spans["1m"]) > 2 && naiveBurn(spans["5s"]) > 2;
            expect(status?.alerts[0]?.firing).toBe(fire);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

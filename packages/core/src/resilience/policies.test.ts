import { describe, expect, it } from "vitest";
import { manualClock } from "../ports/index.js";
import { fullJitterBackoff } from "./backoff.js";
import { Bulkhead } from "./bulkhead.js";
import { CircuitBreaker, type BreakerState } from "./circuit-breaker.js";
import { ConcurrencyLimit } from "./concurrency-limit.js";
import { FaultInjector, parseFaultSpec } from "./faults.js";
import { OutlierDetector, type OutlierEvent } from "./outlier-detector.js";
import { checkResilienceOptions, resolvePolicies, DEFAULT_POLICIES } from "./policy.js";
import { RateLimiter } from "./rate-limiter.js";
import { RetryBudget } from "./retry-budget.js";

/** The gradient limit most tests here use: 50 to start, between 1 and 200. */
function gradientLimit(): ConcurrencyLimit {
  return new ConcurrencyLimit(manualClock(), { type: "gradient", initial: 50, min: 1, max: 200 });
}

describe("fullJitterBackoff", () => {
  it("stays within [0, min(max, base * 2^attempt))", () => {
    const clock = manualClock({ seed: 3 });
    for (let attempt = 0; attempt < 12; attempt++) {
      for (let i = 0; i < 200; i++) {
        const d = fullJitterBackoff(attempt, { baseMs: 10, maxMs: 500 }, clock.random);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.min(500, 10 * 2 ** attempt));
      }
    }
  });
});

describe("RetryBudget", () => {
  it("holds retries near the ratio under a 100% failure storm", () => {
    const clock = manualClock();
    const budget = new RetryBudget(clock, { ratio: 0.1, minPerSecond: 0 });
    let retries = 0;
    const calls = 20_000;
    for (let i = 0; i < calls; i++) {
      budget.deposit();
      // Every call fails and asks for up to 3 retries.
      for (let r = 0; r < 3; r++) if (budget.tryWithdraw()) retries++;
      if (i % 100 === 0) clock.advance(50);
    }
    expect(retries / calls).toBeLessThanOrEqual(0.1);
    expect(retries / calls).toBeGreaterThan(0.09);
  });

  it("allows a minimum rate of retries to a quiet caller, and deposits expire", () => {
    const clock = manualClock();
    const budget = new RetryBudget(clock, { ratio: 0.1, minPerSecond: 1, ttlMs: 10_000 });
    let allowed = 0;
    for (let i = 0; i < 100; i++) if (budget.tryWithdraw()) allowed++;
    expect(allowed).toBe(10); // 1/s over the 10 s window
    for (let i = 0; i < 1_000; i++) budget.deposit();
    expect(budget.tryWithdraw()).toBe(true);
    clock.advance(11_000);
    let after = 0;
    for (let i = 0; i < 100; i++) if (budget.tryWithdraw()) after++;
    expect(after).toBe(10); // the old deposits expired; only the minimum is left
  });
});

describe("CircuitBreaker", () => {
  it("opens after consecutive failures, probes once when half-open, and closes on success", () => {
    const clock = manualClock();
    const states: BreakerState["type"][] = [];
    const breaker = new CircuitBreaker(
      clock,
      { strategy: { type: "consecutive", threshold: 3 }, halfOpenAfterMs: 1_000 },
      (s) => states.push(s.type),
    );
    breaker.failure();
    breaker.failure();
    breaker.success(); // resets the streak
    breaker.failure();
    breaker.failure();
    expect(breaker.state.type).toBe("closed");
    breaker.failure();
    expect(breaker.state.type).toBe("open");
    expect(breaker.allow()).toBe(false);
    clock.advance(999);
    expect(breaker.allow()).toBe(false);
    clock.advance(1);
    expect(breaker.state.type).toBe("half-open");
    expect(breaker.allow()).toBe(true); // the probe
    expect(breaker.allow()).toBe(false); // only one at a time
    expect(breaker.admits()).toBe(false);
    breaker.success();
    expect(breaker.state.type).toBe("closed");
    expect(states).toEqual(["open", "half-open", "closed"]);
  });

  it("reopens for the same period when the probe fails, or for longer when asked to", () => {
    const clock = manualClock();
    const openFor = (breaker: CircuitBreaker): number => {
      const state = breaker.state;
      return state.type === "open" ? state.until - clock.monotonic() : -1;
    };
    const probeFails = (breaker: CircuitBreaker, wait: number): void => {
      clock.advance(wait);
      expect(breaker.allow()).toBe(true);
      breaker.failure();
    };
    const constant = new CircuitBreaker(clock, {
      strategy: { type: "consecutive", threshold: 1 },
      halfOpenAfterMs: 100,
    });
    constant.failure();
    for (let i = 0; i < 4; i++) {
      probeFails(constant, 100);
      expect(openFor(constant)).toBe(100);
    }
    const growing = new CircuitBreaker(clock, {
      strategy: { type: "consecutive", threshold: 1 },
      halfOpenAfterMs: 100,
      maxHalfOpenAfterMs: 300,
    });
    growing.failure();
    expect(openFor(growing)).toBe(100);
    probeFails(growing, 100);
    expect(openFor(growing)).toBe(200);
    probeFails(growing, 200);
    expect(openFor(growing)).toBe(300); // 400, capped
    probeFails(growing, 300);
    expect(openFor(growing)).toBe(300);
    // A successful probe starts over from the shortest period.
    clock.advance(300);
    expect(growing.allow()).toBe(true);
    growing.success();
    growing.failure();
    expect(openFor(growing)).toBe(100);
  });

  it("trips on the failure rate over a window of calls", () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker(clock, {
      strategy: { type: "failure-rate", threshold: 0.5, window: 10, minimumCalls: 10 },
      halfOpenAfterMs: 100,
    });
    for (let i = 0; i < 5; i++) {
      breaker.success();
      breaker.failure();
    }
    expect(breaker.state.type).toBe("closed"); // exactly 50% is not over the threshold
    breaker.failure();
    expect(breaker.state.type).toBe("open");
  });
});

describe("Bulkhead", () => {
  it("runs up to maxConcurrent, queues up to maxQueue, and rejects the rest with RESOURCE_EXHAUSTED", async () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 2, maxQueue: 1 });
    expect(bulkhead.tryAcquire()).toBe(true);
    expect(bulkhead.tryAcquire()).toBe(true);
    const queued = bulkhead.acquire("svc.act");
    await expect(bulkhead.acquire("svc.act")).rejects.toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    bulkhead.release();
    await queued;
    expect(bulkhead.active).toBe(2);
    bulkhead.release();
    bulkhead.release();
    expect(bulkhead.active).toBe(0);
  });

  it("takes a cancelled waiter out of the queue", async () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    bulkhead.tryAcquire();
    const controller = new AbortController();
    const waiting = bulkhead.acquire("svc.act", controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: "CANCELLED" });
    expect(bulkhead.queued).toBe(0);
  });
});

describe("RateLimiter", () => {
  it("allows the burst, then the sustained rate, per key", () => {
    const clock = manualClock();
    const limiter = new RateLimiter(clock, { perSecond: 10, burst: 5 });
    let ok = 0;
    for (let i = 0; i < 20; i++) if (limiter.tryTake("alice")) ok++;
    expect(ok).toBe(5);
    expect(limiter.tryTake("bob")).toBe(true); // other keys have their own bucket
    expect(limiter.retryAfterMs("alice")).toBeGreaterThan(0);
    clock.advance(1_000);
    ok = 0;
    for (let i = 0; i < 20; i++) if (limiter.tryTake("alice")) ok++;
    expect(ok).toBe(5); // refilled to the burst, not beyond
  });

  it("forgets the least recently used keys beyond maxKeys", () => {
    const clock = manualClock();
    const limiter = new RateLimiter(clock, { perSecond: 1, burst: 1, maxKeys: 2 });
    expect(limiter.tryTake("a")).toBe(true);
    expect(limiter.tryTake("b")).toBe(true);
    expect(limiter.tryTake("c")).toBe(true); // evicts a
    expect(limiter.tryTake("a")).toBe(true); // a starts full again
    expect(limiter.tryTake("c")).toBe(false);
  });
});

describe("ConcurrencyLimit", () => {
  it("sheds beyond a fixed limit", () => {
    const limit = new ConcurrencyLimit(manualClock(), { type: "fixed", limit: 2 });
    expect(limit.tryAcquire()).toBe(true);
    expect(limit.tryAcquire()).toBe(true);
    expect(limit.tryAcquire()).toBe(false);
    limit.release(1, false);
    expect(limit.tryAcquire()).toBe(true);
  });

  it("AIMD grows while latency is on target and backs off on overload", () => {
    const limit = new ConcurrencyLimit(manualClock(), {
      type: "aimd",
      initial: 10,
      min: 2,
      max: 50,
      latencyTargetMs: 20,
    });
    for (let i = 0; i < 200; i++) {
      limit.tryAcquire();
      limit.release(5, false);
    }
    const grown = limit.limit;
    expect(grown).toBeGreaterThan(10);
    for (let i = 0; i < 10; i++) {
      limit.tryAcquire();
      limit.release(100, false);
    }
    expect(limit.limit).toBeLessThan(grown);
    expect(limit.limit).toBeGreaterThanOrEqual(2);
  });

  it("gradient shrinks the limit when latency rises above the floor", () => {
    const limit = gradientLimit();
    for (let i = 0; i < 100; i++) {
      limit.tryAcquire();
      limit.release(2, false);
    }
    const before = limit.limit;
    for (let i = 0; i < 100; i++) {
      limit.tryAcquire();
      limit.release(40, false);
    }
    expect(limit.limit).toBeLessThan(before);
  });

  it("gradient does not measure calls that failed fast: a decline is not the action's floor", () => {
    const limit = gradientLimit();
    // Charges take 40 ms when they succeed; one in five is declined at once (1 ms).
    for (let i = 0; i < 300; i++) {
      limit.tryAcquire();
      const declined = i % 5 === 0;
      limit.release(declined ? 1 : 40, false, "payments/charge", !declined);
    }
    expect(limit.limit).toBeGreaterThanOrEqual(50);
    expect(limit.active).toBe(0);
    // Measured, the declines would have set a 1 ms floor and collapsed the limit.
    const measured = gradientLimit();
    for (let i = 0; i < 300; i++) {
      measured.tryAcquire();
      measured.release(i % 5 === 0 ? 1 : 40, false, "payments/charge");
    }
    expect(measured.limit).toBeLessThan(10);
  });

  it("gradient keeps a floor per action: slow durable writes beside fast reads are not queueing", () => {
    const limit = gradientLimit();
    // A steady mix: reads at 1 ms, writes at 8 ms (an fsync). Neither is slower than usual.
    for (let i = 0; i < 300; i++) {
      limit.tryAcquire();
      limit.release(i % 2 === 0 ? 1 : 8, false, i % 2 === 0 ? "catalog/get" : "inventory/reserve");
    }
    const steady = limit.limit;
    expect(steady).toBeGreaterThanOrEqual(50);
    // Now the writes queue: 10x their own floor. The limit shrinks.
    for (let i = 0; i < 300; i++) {
      limit.tryAcquire();
      limit.release(i % 2 === 0 ? 1 : 80, false, i % 2 === 0 ? "catalog/get" : "inventory/reserve");
    }
    expect(limit.limit).toBeLessThan(steady);
  });
});

describe("OutlierDetector", () => {
  it("ejects a node with a high error rate, never more than half the pool, and readmits it later", () => {
    const clock = manualClock();
    const events: OutlierEvent[] = [];
    const detector = new OutlierDetector(
      clock,
      { minimumCalls: 10, intervalMs: 100, baseEjectionMs: 1_000 },
      (e) => events.push(e),
    );
    for (let i = 0; i < 20; i++) {
      detector.record("good", 1, false, clock.monotonic());
      detector.record("bad", 1, true, clock.monotonic());
      detector.record("worse", 1, true, clock.monotonic());
    }
    clock.advance(100);
    detector.record("good", 1, false, clock.monotonic());
    expect(detector.isEjected("bad") !== detector.isEjected("worse")).toBe(true); // only one of 3
    expect(detector.isEjected("good")).toBe(false);
    clock.advance(1_000);
    expect(detector.isEjected("bad")).toBe(false);
    expect(detector.isEjected("worse")).toBe(false);
    expect(events.map((e) => e.type)).toEqual(["ejected", "readmitted"]);
  });

  it("ejects a node much slower than its peers", () => {
    const clock = manualClock();
    const detector = new OutlierDetector(clock, {
      minimumCalls: 5,
      intervalMs: 100,
      latencyFactor: 5,
    });
    for (let i = 0; i < 10; i++) {
      for (const node of ["a", "b", "c"]) detector.record(node, 2, false, clock.monotonic());
      detector.record("slow", 50, false, clock.monotonic());
    }
    clock.advance(100);
    detector.record("a", 2, false, clock.monotonic());
    expect(detector.isEjected("slow")).toBe(true);
    expect(detector.isEjected("a")).toBe(false);
  });
});

describe("fault specs", () => {
  it("validates untrusted specs with clear messages", () => {
    expect(
      parseFaultSpec({ effect: { type: "fail", code: "UNAVAILABLE" }, probability: 0.5 }),
    ).toEqual({
      effect: { type: "fail", code: "UNAVAILABLE" },
      probability: 0.5,
      scope: {},
    });
    const bad: Array<[unknown, RegExp]> = [
      [null, /expected an object/],
      [{}, /effect is required/],
      [{ effect: { type: "explode" } }, /effect.type must be one of/],
      [{ effect: { type: "fail", code: "NOPE" } }, /known error code/],
      [{ effect: { type: "latency", ms: -1 } }, /latency ms/],
      [{ effect: { type: "drop-reply" }, probability: 0 }, /probability/],
      [{ effect: { type: "drop-reply" }, probability: 2 }, /probability/],
      [{ effect: { type: "black-hole" }, scope: { host: "x" } }, /unknown scope field host/],
      [{ effect: { type: "black-hole" }, scope: { node: 5 } }, /scope.node/],
    ];
    for (const [spec, message] of bad) {
      expect(() => parseFaultSpec(spec)).toThrow(message);
    }
  });

  it("matches by scope and probability, and costs nothing when empty", () => {
    const clock = manualClock({ seed: 9 });
    const faults = new FaultInjector(clock.random);
    expect(faults.active).toBe(false);
    const rule = faults.inject({
      effect: { type: "black-hole" },
      scope: { node: "n1", service: "inventory" },
    });
    expect(faults.active).toBe(true);
    expect(faults.match("n1", "inventory", "reserve")).toEqual({ type: "black-hole" });
    expect(faults.match("n2", "inventory", "reserve")).toBeUndefined();
    expect(faults.match("n1", "catalog", "get")).toBeUndefined();
    faults.inject({
      effect: { type: "fail", code: "INTERNAL" },
      probability: 0.25,
      scope: { service: "catalog" },
    });
    let hits = 0;
    for (let i = 0; i < 4_000; i++) if (faults.match("n3", "catalog", "get") !== undefined) hits++;
    expect(hits / 4_000).toBeGreaterThan(0.2);
    expect(hits / 4_000).toBeLessThan(0.3);
    expect(faults.clear(rule.id)).toBe(1);
    expect(faults.list()).toHaveLength(1);
    expect(faults.clear()).toBe(1);
    expect(faults.active).toBe(false);
  });
});

describe("resilience configuration", () => {
  it("rejects unknown policies and bad values at start-up with a clear message", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ defaults: { retires: {} } }, /unknown policy "retires"/],
      [{ defaults: { timeoutMs: -5 } }, /timeoutMs must be a positive number, got -5/],
      [{ defaults: { retry: { maxAttempts: 0 } } }, /retry.maxAttempts/],
      [{ defaults: { retry: { on: ["NOPE"] } } }, /retry.on/],
      [{ defaults: { breaker: { strategy: { type: "sometimes" } } } }, /breaker.strategy.type/],
      [{ defaults: { breaker: { scope: "everywhere" } } }, /breaker.scope/],
      [{ defaults: { breaker: { maxHalfOpenAfterMs: -1 } } }, /breaker.maxHalfOpenAfterMs/],
      [
        { defaults: { breaker: { halfOpenAfterMs: 2_000, maxHalfOpenAfterMs: 1_000 } } },
        /maxHalfOpenAfterMs must be at least breaker.halfOpenAfterMs/,
      ],
      [
        { defaults: { breaker: { strategy: { type: "failure-rate", threshold: 2, window: 10 } } } },
        /threshold/,
      ],
      [
        { services: { inventory: { actions: { reserve: { bulkhead: { maxConcurrent: 0 } } } } } },
        /services.inventory.actions.reserve: bulkhead.maxConcurrent/,
      ],
      [{ defaults: { hedge: { delayMs: "p99" } } }, /hedge.delayMs/],
      [{ retryBudget: { ratio: -1, minPerSecond: 1 } }, /retryBudget.ratio/],
      [{ outlier: { errorRate: 3 } }, /outlier.errorRate/],
      [{ serving: { concurrency: { type: "magic" } } }, /serving.concurrency.type/],
      [{ serving: { rateLimit: { perUser: {} } } }, /unknown option serving.rateLimit.perUser/],
      [{ unknown: true }, /unknown option resilience.unknown/],
    ];
    for (const [options, message] of bad) {
      expect(() => checkResilienceOptions(options as never)).toThrow(message);
    }
    expect(() =>
      checkResilienceOptions({
        defaults: { timeoutMs: 500, retry: { maxAttempts: 4 } },
        services: { inventory: { bulkhead: { maxConcurrent: 10, maxQueue: 5 } } },
        serving: {
          concurrency: { type: "gradient" },
          rateLimit: { perCaller: { perSecond: 100 } },
        },
      }),
    ).not.toThrow();
  });

  it("merges layers, later ones winning, and false switching a policy off", () => {
    const resolved = resolvePolicies([
      DEFAULT_POLICIES,
      { retry: { maxAttempts: 5 } },
      { breaker: false },
    ]);
    expect(resolved.retry?.maxAttempts).toBe(5);
    expect(resolved.breaker).toBeUndefined();
    expect(resolved.retry?.on.has("UNAVAILABLE")).toBe(true);
    expect(resolved.retry?.on.has("INVALID_ARGUMENT")).toBe(false);
    const defaults = resolvePolicies([DEFAULT_POLICIES]);
    expect(defaults.breaker?.scope).toBe("node");
    expect(defaults.bulkhead).toBeUndefined();
    expect(defaults.hedge).toBeUndefined();
  });
});

import { StrataError, isErrorCode, type ErrorCode } from "../errors/index.js";
import type { BreakerStrategy } from "./circuit-breaker.js";
import type { ConcurrencyLimitOptions } from "./concurrency-limit.js";
import type { OutlierOptions } from "./outlier-detector.js";
import type { RateLimitOptions } from "./rate-limiter.js";
import type { RetryBudgetOptions } from "./retry-budget.js";

/** Retries with exponential backoff and full jitter. */
export interface RetryPolicy {
  /** Attempts in all, the first included; default 3. */
  readonly maxAttempts?: number;
  /** Backoff base (ms); default 25. */
  readonly baseDelayMs?: number;
  /** Backoff cap (ms); default 1 000. */
  readonly maxDelayMs?: number;
  /** Codes worth retrying; default the retryable ones (UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED). */
  readonly on?: readonly ErrorCode[];
}

/**
 * Circuit breakers. `node` breakers (the default) guard each target node, so one bad node is
 * routed around; an `action` breaker guards an action across all nodes (use it for a dependency
 * that fails as a whole), and fails calls fast while open.
 */
export interface BreakerPolicy {
  readonly scope?: "node" | "action" | "both";
  readonly strategy?: BreakerStrategy;
  /** Open period before a probe (ms); default 5 000. */
  readonly halfOpenAfterMs?: number;
  /**
   * Longest open period (ms): each failed probe doubles the period, up to this. Default
   * `halfOpenAfterMs`, a constant period: a probe is one call, and a node whose shared dependency
   * (a store, a quorum) was down for a while should be back in use within one period of its
   * recovery, not after a wait that grew through the outage.
   */
  readonly maxHalfOpenAfterMs?: number;
}

/** Max concurrent calls from this node to an action, with a bounded queue. */
export interface BulkheadPolicy {
  readonly maxConcurrent: number;
  /** Default 0: reject as soon as every slot is taken. */
  readonly maxQueue?: number;
}

/** A second attempt on another node when the first is slow (idempotent actions only). */
export interface HedgePolicy {
  /** Fixed delay (ms), or "p95" for the action's observed 95th percentile latency. */
  readonly delayMs: number | "p95";
  /** Attempts in flight at most, the first included; default 2. */
  readonly maxAttempts?: number;
}

/** The policies of the call path; any of them can be set per node, service, action or call. */
export interface CallPolicies {
  /** Time budget for the whole call, all attempts included (ms). */
  readonly timeoutMs?: number;
  readonly retry?: RetryPolicy | false;
  readonly breaker?: BreakerPolicy | false;
  readonly bulkhead?: BulkheadPolicy | false;
  readonly hedge?: HedgePolicy | false;
  /** Produces a value when the call fails for good (after retries). */
  readonly fallback?: ((error: StrataError) => unknown) | false;
}

/** Policies for one service, with per-action overrides. */
export interface ServicePolicies extends CallPolicies {
  readonly actions?: Readonly<Record<string, CallPolicies>>;
}

/** Protection on the serving side of a node. */
export interface ServingPolicies {
  /** Adaptive (or fixed) limit on calls in flight; excess calls are shed with RESOURCE_EXHAUSTED. */
  readonly concurrency?: ConcurrencyLimitOptions | false;
  /** Token buckets per calling principal (or calling node) and per action. */
  readonly rateLimit?: {
    readonly perCaller?: RateLimitOptions;
    readonly perAction?: RateLimitOptions;
  };
}

/** Everything resilience-related a node is configured with. */
export interface ResilienceOptions {
  /** Policies for every call this node makes (merged under service and action ones). */
  readonly defaults?: CallPolicies;
  readonly services?: Readonly<Record<string, ServicePolicies>>;
  /** Caps retries across all calls of this node; default 10% extra plus 10/s. */
  readonly retryBudget?: RetryBudgetOptions | false;
  /** Outlier ejection in the router; on by default. */
  readonly outlier?: OutlierOptions | false;
  readonly serving?: ServingPolicies;
}

/** The policies in force for one action after merging, with defaults filled in. */
export interface ResolvedPolicies {
  readonly timeoutMs: number | undefined;
  readonly retry:
    (Required<Omit<RetryPolicy, "on">> & { readonly on: ReadonlySet<ErrorCode> }) | undefined;
  readonly breaker:
    | {
        readonly scope: "node" | "action" | "both";
        readonly strategy: BreakerStrategy;
        readonly halfOpenAfterMs: number;
        readonly maxHalfOpenAfterMs: number;
      }
    | undefined;
  readonly bulkhead: { readonly maxConcurrent: number; readonly maxQueue: number } | undefined;
  readonly hedge: { readonly delayMs: number | "p95"; readonly maxAttempts: number } | undefined;
  readonly fallback: ((error: StrataError) => unknown) | undefined;
}

/** The default call path: retries (for idempotent calls) and breakers on; the rest opt-in. */
export const DEFAULT_POLICIES: CallPolicies = {
  retry: { maxAttempts: 3, baseDelayMs: 25, maxDelayMs: 1_000 },
  breaker: { strategy: { type: "consecutive", threshold: 5 }, halfOpenAfterMs: 5_000 },
};

const CALL_KEYS = new Set(["timeoutMs", "retry", "breaker", "bulkhead", "hedge", "fallback"]);
const RETRYABLE: readonly ErrorCode[] = ["UNAVAILABLE", "ABORTED", "RESOURCE_EXHAUSTED"];

function fail(where: string, why: string): never {
  throw new StrataError("INVALID_ARGUMENT", `resilience${where}: ${why}`);
}

function positiveNumber(where: string, name: string, value: unknown, integer = false): void {
  if (value === undefined) return;
  if (
    typeof value !== "number" ||
    !Number.isFinite(value) ||
    value <= 0 ||
    (integer && !Number.isInteger(value))
  ) {
    fail(
      where,
      `${name} must be a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(value) ?? typeof value}`,
    );
  }
}

function objectOf(
  where: string,
  name: string,
  value: unknown,
  keys: readonly string[],
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(where, `${name} must be an object or false`);
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key))
      fail(where, `unknown option ${name}.${key} (known: ${keys.join(", ")})`);
  }
  return value as Record<string, unknown>;
}

/** Checks one set of call policies; throws INVALID_ARGUMENT naming the bad option. */
export function checkCallPolicies(policies: unknown, where: string): void {
  if (policies === undefined) return;
  if (typeof policies !== "object" || policies === null) fail(where, "policies must be an object");
  for (const key of Object.keys(policies)) {
    if (key === "actions") continue;
    if (!CALL_KEYS.has(key))
      fail(where, `unknown policy "${key}" (known: ${[...CALL_KEYS].join(", ")})`);
  }
  const p = policies as Record<string, unknown>;
  positiveNumber(where, "timeoutMs", p["timeoutMs"]);
  if (p["retry"] !== undefined && p["retry"] !== false) {
    const r = objectOf(where, "retry", p["retry"], [
      "maxAttempts",
      "baseDelayMs",
      "maxDelayMs",
      "on",
    ]);
    positiveNumber(where, "retry.maxAttempts", r["maxAttempts"], true);
    positiveNumber(where, "retry.baseDelayMs", r["baseDelayMs"]);
    positiveNumber(where, "retry.maxDelayMs", r["maxDelayMs"]);
    if (r["on"] !== undefined && (!Array.isArray(r["on"]) || !r["on"].every(isErrorCode))) {
      fail(where, "retry.on must be a list of error codes");
    }
  }
  if (p["breaker"] !== undefined && p["breaker"] !== false) {
    const b = objectOf(where, "breaker", p["breaker"], [
      "scope",
      "strategy",
      "halfOpenAfterMs",
      "maxHalfOpenAfterMs",
    ]);
    const scope = b["scope"];
    if (scope !== undefined && scope !== "node" && scope !== "action" && scope !== "both") {
      fail(where, `breaker.scope must be "node", "action" or "both"`);
    }
    positiveNumber(where, "breaker.halfOpenAfterMs", b["halfOpenAfterMs"]);
    positiveNumber(where, "breaker.maxHalfOpenAfterMs", b["maxHalfOpenAfterMs"]);
    const max = b["maxHalfOpenAfterMs"];
    if (typeof max === "number" && max < ((b["halfOpenAfterMs"] as number | undefined) ?? 5_000)) {
      fail(where, "breaker.maxHalfOpenAfterMs must be at least breaker.halfOpenAfterMs");
    }
    if (b["strategy"] !== undefined) {
      const s = objectOf(where, "breaker.strategy", b["strategy"], [
        "type",
        "threshold",
        "window",
        "minimumCalls",
      ]);
      if (s["type"] === "consecutive")
        positiveNumber(where, "breaker.strategy.threshold", s["threshold"] ?? 0, true);
      else if (s["type"] === "failure-rate") {
        const t = s["threshold"];
        if (typeof t !== "number" || !(t > 0 && t < 1))
          fail(where, "breaker.strategy.threshold must be in (0, 1)");
        positiveNumber(where, "breaker.strategy.window", s["window"] ?? 0, true);
        positiveNumber(where, "breaker.strategy.minimumCalls", s["minimumCalls"], true);
        if (typeof s["minimumCalls"] === "number" && s["minimumCalls"] > (s["window"] as number)) {
          fail(where, "breaker.strategy.minimumCalls must not exceed window");
        }
      } else fail(where, `breaker.strategy.type must be "consecutive" or "failure-rate"`);
    }
  }
  if (p["bulkhead"] !== undefined && p["bulkhead"] !== false) {
    const b = objectOf(where, "bulkhead", p["bulkhead"], ["maxConcurrent", "maxQueue"]);
    positiveNumber(where, "bulkhead.maxConcurrent", b["maxConcurrent"] ?? 0, true);
    const q = b["maxQueue"];
    if (q !== undefined && (typeof q !== "number" || !Number.isInteger(q) || q < 0)) {
      fail(where, "bulkhead.maxQueue must be a non-negative integer");
    }
  }
  if (p["hedge"] !== undefined && p["hedge"] !== false) {
    const h = objectOf(where, "hedge", p["hedge"], ["delayMs", "maxAttempts"]);
    if (h["delayMs"] !== "p95") positiveNumber(where, "hedge.delayMs", h["delayMs"] ?? 0);
    positiveNumber(where, "hedge.maxAttempts", h["maxAttempts"], true);
  }
  if (
    p["fallback"] !== undefined &&
    p["fallback"] !== false &&
    typeof p["fallback"] !== "function"
  ) {
    fail(where, "fallback must be a function or false");
  }
}

/** Checks a node's whole resilience configuration at start-up. */
export function checkResilienceOptions(options: ResilienceOptions | undefined): void {
  if (options === undefined) return;
  objectOf("", "resilience", options, [
    "defaults",
    "services",
    "retryBudget",
    "outlier",
    "serving",
  ]);
  checkCallPolicies(options.defaults, ".defaults");
  for (const [service, policies] of Object.entries(options.services ?? {})) {
    checkCallPolicies(policies, `.services.${service}`);
    for (const [action, p] of Object.entries(policies.actions ?? {})) {
      checkCallPolicies(p, `.services.${service}.actions.${action}`);
    }
  }
  if (options.retryBudget !== undefined && options.retryBudget !== false) {
    const b = objectOf("", "retryBudget", options.retryBudget, ["ratio", "minPerSecond", "ttlMs"]);
    const ratio = b["ratio"];
    if (typeof ratio !== "number" || !(ratio >= 0 && ratio <= 10))
      fail("", "retryBudget.ratio must be in [0, 10]");
    const min = b["minPerSecond"];
    if (typeof min !== "number" || !(min >= 0)) fail("", "retryBudget.minPerSecond must be >= 0");
    positiveNumber("", "retryBudget.ttlMs", b["ttlMs"]);
  }
  if (options.outlier !== undefined && options.outlier !== false) {
    const o = objectOf("", "outlier", options.outlier, [
      "errorRate",
      "latencyFactor",
      "minimumCalls",
      "intervalMs",
      "baseEjectionMs",
      "maxEjectedFraction",
    ]);
    for (const key of ["latencyFactor", "minimumCalls", "intervalMs", "baseEjectionMs"]) {
      positiveNumber("", `outlier.${key}`, o[key]);
    }
    for (const key of ["errorRate", "maxEjectedFraction"]) {
      const v = o[key];
      if (v !== undefined && (typeof v !== "number" || !(v > 0 && v <= 1)))
        fail("", `outlier.${key} must be in (0, 1]`);
    }
  }
  const serving = options.serving;
  if (serving !== undefined) {
    objectOf("", "serving", serving, ["concurrency", "rateLimit"]);
    const c = serving.concurrency;
    if (c !== undefined && c !== false) {
      const o = objectOf("", "serving.concurrency", c, [
        "type",
        "initial",
        "min",
        "max",
        "latencyTargetMs",
        "backoff",
        "queueSize",
        "tolerance",
        "limit",
      ]);
      if (o["type"] === "fixed")
        positiveNumber("", "serving.concurrency.limit", o["limit"] ?? 0, true);
      else if (o["type"] === "aimd")
        positiveNumber("", "serving.concurrency.latencyTargetMs", o["latencyTargetMs"] ?? 0);
      else if (o["type"] !== "gradient")
        fail("", `serving.concurrency.type must be "aimd", "gradient" or "fixed"`);
      for (const key of ["initial", "min", "max"])
        positiveNumber("", `serving.concurrency.${key}`, o[key], true);
    }
    const r = serving.rateLimit;
    if (r !== undefined) {
      objectOf("", "serving.rateLimit", r, ["perCaller", "perAction"]);
      for (const key of ["perCaller", "perAction"] as const) {
        const limit = r[key];
        if (limit === undefined) continue;
        const l = objectOf("", `serving.rateLimit.${key}`, limit, [
          "perSecond",
          "burst",
          "maxKeys",
        ]);
        positiveNumber("", `serving.rateLimit.${key}.perSecond`, l["perSecond"] ?? 0);
        positiveNumber("", `serving.rateLimit.${key}.burst`, l["burst"]);
        positiveNumber("", `serving.rateLimit.${key}.maxKeys`, l["maxKeys"], true);
      }
    }
  }
}

/** Merges layers (later wins; `false` switches a policy off) and fills in defaults. */
export function resolvePolicies(layers: ReadonlyArray<CallPolicies | undefined>): ResolvedPolicies {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (layer === undefined) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (key === "actions" || value === undefined) continue;
      merged[key] = value;
    }
  }
  const m = merged as CallPolicies;
  const retry = m.retry === false || m.retry === undefined ? undefined : m.retry;
  const breaker = m.breaker === false || m.breaker === undefined ? undefined : m.breaker;
  const bulkhead = m.bulkhead === false || m.bulkhead === undefined ? undefined : m.bulkhead;
  const hedge = m.hedge === false || m.hedge === undefined ? undefined : m.hedge;
  return {
    timeoutMs: m.timeoutMs,
    retry:
      retry === undefined
        ? undefined
        : {
            maxAttempts: retry.maxAttempts ?? 3,
            baseDelayMs: retry.baseDelayMs ?? 25,
            maxDelayMs: retry.maxDelayMs ?? 1_000,
            on: new Set(retry.on ?? RETRYABLE),
          },
    breaker:
      breaker === undefined
        ? undefined
        : {
            scope: breaker.scope ?? "node",
            strategy: breaker.strategy ?? { type: "consecutive", threshold: 5 },
            halfOpenAfterMs: breaker.halfOpenAfterMs ?? 5_000,
            maxHalfOpenAfterMs: breaker.maxHalfOpenAfterMs ?? breaker.halfOpenAfterMs ?? 5_000,
          },
    bulkhead:
      bulkhead === undefined
        ? undefined
        : { maxConcurrent: bulkhead.maxConcurrent, maxQueue: bulkhead.maxQueue ?? 0 },
    hedge:
      hedge === undefined
        ? undefined
        : { delayMs: hedge.delayMs, maxAttempts: hedge.maxAttempts ?? 2 },
    fallback: m.fallback === false || m.fallback === undefined ? undefined : m.fallback,
  };
}

export { fullJitterBackoff } from "./backoff.js";
export { Bulkhead } from "./bulkhead.js";
export type { BulkheadOptions } from "./bulkhead.js";
export { CircuitBreaker } from "./circuit-breaker.js";
export type { BreakerState, BreakerStrategy, CircuitBreakerOptions } from "./circuit-breaker.js";
export { ConcurrencyLimit } from "./concurrency-limit.js";
export type { ConcurrencyLimitOptions } from "./concurrency-limit.js";
export { FaultInjector, parseFaultSpec } from "./faults.js";
export type { FaultEffect, FaultRule, FaultScope, FaultSpec } from "./faults.js";
export { OutlierDetector } from "./outlier-detector.js";
export type { OutlierEvent, OutlierOptions } from "./outlier-detector.js";
export {
  DEFAULT_POLICIES,
  checkCallPolicies,
  checkResilienceOptions,
  resolvePolicies,
} from "./policy.js";
export type {
  BreakerPolicy,
  BulkheadPolicy,
  CallPolicies,
  HedgePolicy,
  ResilienceOptions,
  ResolvedPolicies,
  RetryPolicy,
  ServicePolicies,
  ServingPolicies,
} from "./policy.js";
export { RateLimiter } from "./rate-limiter.js";
export type { RateLimitOptions } from "./rate-limiter.js";
export { RetryBudget } from "./retry-budget.js";
export type { RetryBudgetOptions } from "./retry-budget.js";

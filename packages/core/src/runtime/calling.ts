import { context as otelContext, type Context, type Span } from "@opentelemetry/api";
import { StrataError, fromWireError, toStrataError, type ErrorCode } from "../errors/index.js";
import {
  decisionSpan,
  safely,
  startSpan,
  type RpcSeries,
  type RpcTelemetry,
} from "../observability/telemetry.js";
import { contextFromTrace, traceFromContext, withSpan } from "../observability/trace-context.js";
import type {
  CallReply,
  CallRequest,
  CallTarget,
  Clock,
  Timer,
  Transport,
} from "../ports/index.js";
import { fullJitterBackoff } from "../resilience/backoff.js";
import { Bulkhead } from "../resilience/bulkhead.js";
import { CircuitBreaker, type BreakerState } from "../resilience/circuit-breaker.js";
import { OutlierDetector } from "../resilience/outlier-detector.js";
import {
  DEFAULT_POLICIES,
  checkCallPolicies,
  resolvePolicies,
  type CallPolicies,
  type ResilienceOptions,
  type ResolvedPolicies,
} from "../resilience/policy.js";
import { RetryBudget } from "../resilience/retry-budget.js";
import type { Client, ClientOptions } from "../service/client.js";
import type { ServiceContract, ServiceContractSpec } from "../service/define-service.js";
import type { CallOptions, Principal, RoutingStrategy } from "./context.js";
import { ADMIN_SERVICE } from "./admin.js";
import { DeadlineQueue, type DeadlineItem } from "./deadline-queue.js";
import type { NodeStats, ResilienceEvent } from "./events.js";
import type { Member, Membership } from "./membership.js";
import { checkRange, type RouteSpec, type Router } from "./router.js";
import type { ServerCall } from "./server-call.js";

/** What the calling side needs from its node. */
export interface CallingHost {
  readonly id: string;
  readonly clock: Clock;
  readonly transport: Transport;
  readonly membership: Membership;
  readonly router: Router;
  readonly counters: NodeStats;
  readonly telemetry: RpcTelemetry;
  /** True while the node may make calls (running or draining). */
  canCall(): boolean;
  describeState(): string;
  /** Serves a call on this very node; returns the callee's context unless it was refused. */
  serveLocal(
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
    now: number,
  ): ServerCall | undefined;
  emit(event: ResilienceEvent): void;
}

/** Options for {@link Calling}. */
export interface CallingOptions {
  readonly defaultTimeoutMs: number;
  readonly routing: {
    readonly strategy: RoutingStrategy;
    readonly preferLocal: boolean;
    readonly regionAffinity: boolean;
  };
  readonly resilience: ResilienceOptions | undefined;
}

/** Client-wide choices plus per-service policies for the calls of one client. */
export interface ClientPolicyOptions extends ClientOptions {
  readonly policies?: CallPolicies;
  /**
   * Who the client's calls act for, when no call being served says otherwise: what a gateway
   * sets after verifying a user's token. Only code holding the node can set it.
   */
  readonly principal?: Principal;
}

interface Binding extends RouteSpec {
  /** `service.action`, for messages and per-action state. */
  readonly what: string;
  readonly service: string;
  readonly action: string;
  readonly timeoutMs: number | undefined;
  readonly shardKey: ((input: never) => string) | undefined;
  readonly idempotent: boolean;
  /** Policy layers, lowest first, for merging per-call overrides. */
  readonly layers: ReadonlyArray<CallPolicies | undefined>;
  readonly policies: ResolvedPolicies;
  readonly shared: ActionState;
}

/** State shared by every client of one action on this node. */
interface ActionState {
  /** Metric attributes and span name of the action. */
  readonly series: RpcSeries;
  breaker: CircuitBreaker | undefined;
  bulkhead: Bulkhead | undefined;
  latency: LatencyWindow | undefined;
}

/** One logical call: survives retries and hedges; settles exactly once. */
interface LogicalCall extends DeadlineItem {
  readonly binding: Binding;
  readonly policies: ResolvedPolicies;
  readonly input: unknown;
  readonly shardKey: string | undefined;
  /** Explicit target node (`options.node`), bypassing the router. */
  readonly targetNode: string | undefined;
  /** Sent to the service's queue group (`options.via === "group"`). */
  readonly viaGroup: boolean;
  readonly budget: number;
  readonly retryable: boolean;
  readonly trace: CallRequest["trace"];
  readonly meta: CallRequest["meta"];
  readonly idempotencyKey: string | undefined;
  readonly principal: Principal | undefined;
  /** Monotonic time the call began, for its duration. */
  readonly startedAt: number;
  /** The call's client span, and the context it is active in (parent of policy spans). */
  readonly span: Span;
  readonly otelContext: Context;
  /** The span of a retry's backoff, while it waits. */
  backoff: Span | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  attempts: number;
  live: Attempt | undefined;
  /** Hedged attempts beyond `live`, only when hedging. */
  others: Attempt[] | undefined;
  tried: string[] | undefined;
  timer: Timer | undefined;
  holdsBulkhead: boolean;
  settled: boolean;
}

/** One attempt of a logical call, sent to one node. */
interface Attempt {
  readonly id: number;
  readonly call: LogicalCall;
  readonly member: Member | undefined;
  readonly startedAt: number;
  /** The transport's interruption count when the attempt was sent. */
  readonly interruptions: number;
  /** Breakers whose half-open probe this attempt holds or that judge it. */
  readonly nodeBreaker: CircuitBreaker | undefined;
  server: ServerCall | undefined;
  settled: boolean;
}

/** Recent latencies of one action, for hedging at the observed p95. */
class LatencyWindow {
  private readonly samples = new Float64Array(128);
  private count = 0;
  private cached = Infinity;

  record(ms: number): void {
    this.samples[this.count % this.samples.length] = ms;
    this.count++;
    if (this.count % 32 === 0) {
      const n = Math.min(this.count, this.samples.length);
      const sorted = Array.from(this.samples.subarray(0, n)).sort((a, b) => a - b);
      this.cached = sorted[Math.floor(n * 0.95)] ?? Infinity;
    }
  }

  /** The 95th percentile, or `fallback` until enough calls were seen. */
  p95(fallback: number): number {
    return this.count < 32 ? fallback : this.cached;
  }
}

/** A W3C traceparent: version 00, a non-zero trace id and parent id, and flags. */
const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * A refusal made before an attempt was sent (no node, an open circuit) says the call did not
 * happen only when no earlier attempt went out: on a retry it names the attempts already sent,
 * whose outcome is unknown.
 */
function afterAttempts(call: LogicalCall, error: StrataError): StrataError {
  if (call.attempts === 0) return error;
  return new StrataError(error.code, `${error.message} (after ${call.attempts} sent attempts)`, {
    details: { ...error.details, attempts: call.attempts },
    retryable: error.retryable,
    cause: error,
  });
}

function guardsNode(policies: ResolvedPolicies): boolean {
  return policies.breaker !== undefined && policies.breaker.scope !== "action";
}

function guardsAction(policies: ResolvedPolicies): boolean {
  return policies.breaker !== undefined && policies.breaker.scope !== "node";
}

/** Codes that say something about the health of the node that answered (or did not). */
function countsAgainstNode(code: ErrorCode): boolean {
  switch (code) {
    case "UNAVAILABLE":
    case "DEADLINE_EXCEEDED":
    case "INTERNAL":
    case "UNKNOWN":
    case "RESOURCE_EXHAUSTED":
    case "DATA_LOSS":
      return true;
    case "CANCELLED":
    case "INVALID_ARGUMENT":
    case "NOT_FOUND":
    case "ALREADY_EXISTS":
    case "PERMISSION_DENIED":
    case "FAILED_PRECONDITION":
    case "ABORTED":
    case "OUT_OF_RANGE":
    case "UNIMPLEMENTED":
    case "UNAUTHENTICATED":
      return false;
  }
}

/**
 * The calling half of a node: bindings (one per client action), routing, attempts, deadlines,
 * cancellation, and the resilience policies on the call path — retries with backoff and a
 * budget, breakers per node and per action, bulkheads, hedging, fallback, outlier ejection.
 */
export class Calling {
  private readonly host: CallingHost;
  private readonly clock: Clock;
  private readonly options: CallingOptions;
  private readonly pending = new Map<number, Attempt>();
  private readonly deadlines: DeadlineQueue<LogicalCall>;
  private readonly actions = new Map<string, ActionState>();
  private readonly budget: RetryBudget | undefined;
  private readonly outlier: OutlierDetector | undefined;
  private readonly nodeBreakerPolicy: ResolvedPolicies["breaker"];
  private readonly nodeBreakers = new Map<string, CircuitBreaker>();
  /** Nodes with a breaker not closed or an ejection in force; routing filters only when > 0. */
  private unhealthy = new Set<string>();
  private nextId = 1;
  private latencySamples = 0;

  constructor(host: CallingHost, options: CallingOptions) {
    this.host = host;
    this.clock = host.clock;
    this.options = options;
    this.deadlines = new DeadlineQueue(this.clock, (call) => this.expire(call));
    const resilience = options.resilience;
    const budget = resilience?.retryBudget;
    this.budget =
      budget === false
        ? undefined
        : new RetryBudget(this.clock, budget ?? { ratio: 0.1, minPerSecond: 10 });
    const outlier = resilience?.outlier;
    this.outlier =
      outlier === false
        ? undefined
        : new OutlierDetector(this.clock, outlier ?? {}, (event) => {
            if (event.type === "ejected") {
              this.unhealthy.add(event.node);
              this.host.counters.ejections++;
              this.host.emit({
                type: "ejected",
                node: event.node,
                reason: event.reason,
                forMs: event.untilMs,
              });
            } else {
              this.refreshHealth(event.node);
              this.host.emit({ type: "readmitted", node: event.node });
            }
          });
    this.nodeBreakerPolicy = resolvePolicies([DEFAULT_POLICIES, resilience?.defaults]).breaker;
  }

  // ---- clients ---------------------------------------------------------------------------------

  makeClient<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options: ClientPolicyOptions | undefined,
    parent: ServerCall | undefined,
  ): Client<S> {
    if (options?.policies !== undefined)
      checkCallPolicies(options.policies, ` (client of ${contract.name})`);
    const client: Record<string, (input: unknown, options?: CallOptions) => Promise<unknown>> = {};
    for (const [action, spec] of Object.entries(contract.actions)) {
      const binding = this.bind(contract.name, action, options, {
        range: `^${contract.version}`,
        shardKey: spec.shardKey?.bind(spec),
        idempotent: spec.idempotent === true,
      });
      const principal = options?.principal;
      client[action] = (input, callOptions) =>
        this.invoke(binding, input, callOptions, parent, principal);
    }
    return client as Client<S>;
  }

  call(
    service: string,
    action: string,
    input: unknown,
    options: ClientPolicyOptions & CallOptions,
  ): Promise<unknown> {
    let binding: Binding;
    try {
      binding = this.bind(service, action, options, {
        range: "*",
        shardKey: undefined,
        idempotent: false,
      });
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
    return this.invoke(binding, input, options, undefined, options.principal);
  }

  private bind(
    service: string,
    action: string,
    options: ClientPolicyOptions | undefined,
    spec: { range: string; shardKey: ((input: never) => string) | undefined; idempotent: boolean },
  ): Binding {
    if (
      options?.timeoutMs !== undefined &&
      !(typeof options.timeoutMs === "number" && options.timeoutMs > 0)
    ) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `timeoutMs must be a positive number, got ${String(options.timeoutMs)}`,
      );
    }
    const strategy = options?.strategy ?? this.options.routing.strategy;
    if (strategy !== "p2c" && strategy !== "round-robin") {
      throw new StrataError("INVALID_ARGUMENT", `unknown routing strategy "${String(strategy)}"`);
    }
    const what = `${service}.${action}`;
    const resilience = this.options.resilience;
    const servicePolicies = resilience?.services?.[service];
    const layers = [
      DEFAULT_POLICIES,
      resilience?.defaults,
      servicePolicies,
      servicePolicies?.actions?.[action],
      options?.policies,
    ];
    const policies = resolvePolicies(layers);
    let shared = this.actions.get(what);
    if (shared === undefined) {
      shared = {
        series: this.host.telemetry.seriesOf(service, action),
        breaker: undefined,
        bulkhead: undefined,
        latency: undefined,
      };
      this.actions.set(what, shared);
    }
    // The first binding of an action sets up its shared breaker and bulkhead.
    const breakerPolicy = policies.breaker;
    if (
      breakerPolicy !== undefined &&
      breakerPolicy.scope !== "node" &&
      shared.breaker === undefined
    ) {
      shared.breaker = this.newBreaker("action", what, breakerPolicy);
    }
    if (policies.bulkhead !== undefined && shared.bulkhead === undefined) {
      shared.bulkhead = new Bulkhead(policies.bulkhead);
    }
    if (policies.hedge !== undefined && shared.latency === undefined)
      shared.latency = new LatencyWindow();
    return {
      what,
      service,
      action,
      range: checkRange(options?.version ?? spec.range, service),
      strategy,
      preferLocal: options?.preferLocal ?? this.options.routing.preferLocal,
      regionAffinity: options?.regionAffinity ?? this.options.routing.regionAffinity,
      timeoutMs: options?.timeoutMs,
      shardKey: spec.shardKey,
      idempotent: spec.idempotent,
      layers,
      policies,
      shared,
      cache: undefined,
    };
  }

  private newBreaker(
    scope: "node" | "action",
    target: string,
    policy: NonNullable<ResolvedPolicies["breaker"]>,
  ): CircuitBreaker {
    return new CircuitBreaker(this.clock, policy, (state: BreakerState) => {
      const stats = this.host.counters;
      if (state.type === "open") stats.breakerOpened++;
      else if (state.type === "half-open") stats.breakerHalfOpened++;
      else stats.breakerClosed++;
      if (scope === "node") this.refreshHealth(target);
      const telemetry = this.host.telemetry;
      const attributes = { "strata.breaker.scope": scope, "strata.breaker.target": target };
      decisionSpan(telemetry.tracer, `breaker ${state.type}`, otelContext.active(), attributes);
      safely(() => telemetry.breakerTransitions.add(1, { scope, target, state: state.type }));
      this.host.emit({ type: "breaker", scope, target, state });
    });
  }

  /** The breaker guarding calls to `node`, created on first use. */
  private breakerFor(member: Member): CircuitBreaker | undefined {
    const policy = this.nodeBreakerPolicy;
    if (policy === undefined || member.local) return undefined;
    let breaker = this.nodeBreakers.get(member.id);
    if (breaker === undefined) {
      breaker = this.newBreaker("node", member.id, policy);
      this.nodeBreakers.set(member.id, breaker);
    }
    return breaker;
  }

  private refreshHealth(node: string): void {
    const breaker = this.nodeBreakers.get(node);
    const bad =
      (breaker !== undefined && breaker.state.type !== "closed") ||
      this.outlier?.isEjected(node) === true;
    if (bad) this.unhealthy.add(node);
    else this.unhealthy.delete(node);
  }

  // ---- one call --------------------------------------------------------------------------------

  private invoke(
    binding: Binding,
    input: unknown,
    options: CallOptions | undefined,
    parent: ServerCall | undefined,
    principal?: Principal,
  ): Promise<unknown> {
    const host = this.host;
    if (!host.canCall()) {
      return Promise.reject(
        new StrataError(
          "UNAVAILABLE",
          `node ${host.id} is ${host.describeState()}; it cannot make calls`,
        ),
      );
    }
    let policies = binding.policies;
    if (options?.policies !== undefined) {
      try {
        checkCallPolicies(options.policies, ` (call to ${binding.what})`);
      } catch (error) {
        return Promise.reject(toStrataError(error));
      }
      policies = resolvePolicies([...binding.layers, options.policies]);
    }
    const now = this.clock.monotonic();
    const budget =
      options?.timeoutMs ??
      policies.timeoutMs ??
      binding.timeoutMs ??
      this.options.defaultTimeoutMs;
    if (!(budget > 0)) {
      return Promise.reject(
        new StrataError("INVALID_ARGUMENT", `timeoutMs must be positive, got ${String(budget)}`),
      );
    }
    let deadline = now + budget;
    if (parent !== undefined && parent.deadline < deadline) deadline = parent.deadline;
    const what = binding.what;
    if (deadline <= now) {
      return Promise.reject(
        new StrataError("DEADLINE_EXCEEDED", `${what}: no time left in the caller's deadline`),
      );
    }
    let signal = options?.signal;
    if (parent !== undefined)
      signal = signal === undefined ? parent.signal : AbortSignal.any([signal, parent.signal]);
    if (signal?.aborted === true) {
      return Promise.reject(new StrataError("CANCELLED", `${what}: cancelled before it was sent`));
    }
    if (options?.trace !== undefined && !TRACEPARENT.test(options.trace.traceparent)) {
      return Promise.reject(
        new StrataError(
          "INVALID_ARGUMENT",
          `${what}: trace.traceparent is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)`,
        ),
      );
    }
    let shardKey = options?.shardKey;
    if (shardKey === undefined && binding.shardKey !== undefined && options?.node === undefined) {
      try {
        shardKey = binding.shardKey(input as never);
      } catch (error) {
        return Promise.reject(
          new StrataError(
            "INVALID_ARGUMENT",
            `${what}: cannot derive the shard key from the input`,
            { cause: error },
          ),
        );
      }
    }
    const parentMeta = parent?.request.meta;
    const meta =
      parentMeta === undefined
        ? options?.meta
        : options?.meta === undefined
          ? parentMeta
          : { ...parentMeta, ...options.meta };
    const idempotencyKey = options?.idempotencyKey ?? parent?.request.idempotencyKey;
    // The call's span is a child of the trace it was given, of the call being served, or of
    // whatever span is active; its context travels with every attempt.
    const parentContext =
      options?.trace !== undefined
        ? contextFromTrace(options.trace, otelContext.active())
        : (parent?.otelContext ?? otelContext.active());
    const span = host.telemetry.startClient(binding.shared.series, parentContext, host.id);
    const callContext = withSpan(parentContext, span);
    this.host.counters.calls++;
    return new Promise<unknown>((resolve, reject) => {
      const call: LogicalCall = {
        binding,
        policies,
        input,
        shardKey,
        targetNode: options?.node,
        viaGroup: options?.via === "group",
        budget: deadline - now,
        deadline,
        heapIndex: -1,
        retryable: binding.idempotent || idempotencyKey !== undefined,
        trace: traceFromContext(callContext),
        meta,
        idempotencyKey,
        principal: parent?.principal ?? principal,
        startedAt: now,
        span,
        otelContext: callContext,
        backoff: undefined,
        resolve,
        reject,
        signal,
        onAbort: undefined,
        attempts: 0,
        live: undefined,
        others: undefined,
        tried: undefined,
        timer: undefined,
        holdsBulkhead: false,
        settled: false,
      };
      this.deadlines.push(call);
      if (signal !== undefined) {
        call.onAbort = () =>
          this.fail(call, new StrataError("CANCELLED", `${what}: cancelled by the caller`), false);
        signal.addEventListener("abort", call.onAbort, { once: true });
      }
      const bulkhead = binding.shared.bulkhead;
      if (policies.bulkhead === undefined || bulkhead === undefined) {
        this.dispatch(call, now);
      } else if (bulkhead.tryAcquire()) {
        call.holdsBulkhead = true;
        this.dispatch(call, now);
      } else {
        bulkhead.acquire(what, signal).then(
          () => {
            call.holdsBulkhead = true;
            if (call.settled) this.releaseBulkhead(call);
            else this.dispatch(call);
          },
          (error: unknown) => {
            this.host.counters.bulkheadRejected++;
            this.rejectedSpan(call, "bulkhead");
            this.host.emit({
              type: "rejected",
              service: binding.service,
              action: binding.action,
              reason: "bulkhead",
            });
            this.fail(call, toStrataError(error), true);
          },
        );
      }
    });
  }

  /** Chooses a node and sends one attempt (`now`: the caller's monotonic time, when it has it). */
  private dispatch(call: LogicalCall, now = this.clock.monotonic()): void {
    const binding = call.binding;
    const actionBreaker = guardsAction(call.policies) ? binding.shared.breaker : undefined;
    if (actionBreaker !== undefined && !actionBreaker.allow()) {
      this.host.counters.circuitRejected++;
      this.rejectedSpan(call, "circuit-open");
      this.host.emit({
        type: "rejected",
        service: binding.service,
        action: binding.action,
        reason: "circuit-open",
      });
      this.fail(
        call,
        afterAttempts(
          call,
          new StrataError("UNAVAILABLE", `${binding.what}: circuit open`, {
            details: { reason: "circuit-open", scope: "action" },
          }),
        ),
        true,
      );
      return;
    }
    let member: Member | undefined;
    let target: CallTarget;
    let version: string;
    let nodeBreaker: CircuitBreaker | undefined;
    try {
      if (call.targetNode !== undefined) {
        member = this.host.membership.get(call.targetNode);
        const served = member?.announcement.services.find((s) => s.name === binding.service);
        if (member === undefined || served === undefined) {
          throw new StrataError(
            "UNAVAILABLE",
            `node ${call.targetNode} is not known to serve ${binding.service}`,
            {
              details: { reason: "unknown-node", node: call.targetNode },
            },
          );
        }
        target = member.target;
        version = served.version;
      } else if (call.viaGroup) {
        target = { kind: "group", group: groupOf(binding.service, binding.range) };
        version = "";
      } else {
        const filtered = this.unhealthy.size > 0 || call.tried !== undefined;
        const instance = this.host.router.pick(
          binding,
          call.shardKey,
          filtered ? (m: Member) => this.avoid(m, call.tried) : undefined,
        );
        member = instance.member;
        target = member.target;
        version = instance.version;
      }
      // The admin service is not guarded by the node's breaker: an operator must reach a node
      // whose services fail (to read and clear the faults that make them fail).
      if (member !== undefined && guardsNode(call.policies) && binding.service !== ADMIN_SERVICE) {
        nodeBreaker = this.breakerFor(member);
        if (nodeBreaker !== undefined && !nodeBreaker.allow()) {
          this.host.counters.circuitRejected++;
          this.rejectedSpan(call, "circuit-open");
          throw new StrataError(
            "UNAVAILABLE",
            `${binding.what}: circuit open for node ${member.id}`,
            {
              details: { reason: "circuit-open", scope: "node", node: member.id },
            },
          );
        }
      }
    } catch (error) {
      actionBreaker?.release();
      this.fail(call, afterAttempts(call, toStrataError(error, binding.what)), true);
      return;
    }

    const id = this.nextId++;
    const attempt: Attempt = {
      id,
      call,
      member,
      startedAt: now,
      interruptions: this.host.transport.interruptions ?? 0,
      nodeBreaker,
      server: undefined,
      settled: false,
    };
    call.attempts++;
    this.host.counters.attempts++;
    if (call.attempts === 1) this.budget?.deposit(now);
    if (call.live === undefined) call.live = attempt;
    else (call.others ??= []).push(attempt);
    if (member !== undefined) member.outstanding++;
    this.pending.set(id, attempt);
    const request: CallRequest = {
      id,
      from: this.host.id,
      service: binding.service,
      version,
      action: binding.action,
      input: call.input,
      timeoutMs: call.deadline - now,
      trace: call.trace,
      meta: call.meta,
      idempotencyKey: call.idempotencyKey,
      principal: call.principal,
    };
    this.scheduleHedge(call);
    if (member?.local === true) {
      attempt.server = this.host.serveLocal(
        request,
        (reply) => this.onAttempt(attempt, reply),
        call.principal,
        call.deadline,
        now,
      );
    } else {
      this.host.transport.send(target, request);
    }
  }

  private scheduleHedge(call: LogicalCall): void {
    const hedge = call.policies.hedge;
    if (hedge === undefined || !call.retryable || call.attempts >= hedge.maxAttempts) return;
    if (call.targetNode !== undefined || call.shardKey !== undefined) return;
    const delay =
      hedge.delayMs === "p95"
        ? (call.binding.shared.latency?.p95(call.budget / 4) ?? call.budget / 4)
        : hedge.delayMs;
    if (this.clock.monotonic() + delay >= call.deadline) return;
    call.timer?.clear();
    call.timer = this.clock.setTimer(() => {
      call.timer = undefined;
      if (call.settled || this.inFlight(call) === 0) return;
      this.remember(call, call.live);
      if (call.others !== undefined)
        for (const attempt of call.others) this.remember(call, attempt);
      this.host.counters.hedges++;
      const telemetry = this.host.telemetry;
      const series = call.binding.shared.series;
      decisionSpan(telemetry.tracer, "hedge", call.otelContext, {
        "strata.attempt": call.attempts + 1,
      });
      safely(() => telemetry.hedges.add(1, series.attributes));
      this.host.emit({
        type: "hedge",
        service: call.binding.service,
        action: call.binding.action,
        attempt: call.attempts + 1,
      });
      this.dispatch(call);
    }, delay);
  }

  /** A reply (or transport failure) for an attempt, by id. */
  onReply(id: number, reply: CallReply): void {
    const attempt = this.pending.get(id);
    if (attempt !== undefined) this.onAttempt(attempt, reply);
  }

  private inFlight(call: LogicalCall): number {
    let n = call.live !== undefined && !call.live.settled ? 1 : 0;
    if (call.others !== undefined) for (const a of call.others) if (!a.settled) n++;
    return n;
  }

  /** Ends an attempt: records what it says about the node, then settles, retries or waits. */
  private onAttempt(attempt: Attempt, reply: CallReply): void {
    if (attempt.settled) return;
    // The clock is read only when something will use the latency: outlier statistics of a remote
    // node, or the latency window that hedging reads.
    // Outlier statistics time one remote attempt in eight: error rates count them all.
    const sampled =
      this.outlier !== undefined &&
      attempt.member !== undefined &&
      !attempt.member.local &&
      (++this.latencySamples & 7) === 0;
    const timed = sampled || attempt.call.binding.shared.latency !== undefined;
    const now = timed ? this.clock.monotonic() : 0;
    // A node that sheds or rate-limits answered fast and is healthy: neither success nor failure.
    const rejected =
      !reply.ok &&
      (reply.error.details["reason"] === "shed" || reply.error.details["reason"] === "rate-limit");
    this.endAttempt(
      attempt,
      reply.ok ? undefined : rejected ? "CANCELLED" : reply.error.code,
      sampled ? now : undefined,
    );
    const call = attempt.call;
    if (call.settled) return;
    if (reply.ok) {
      call.binding.shared.latency?.record(now - attempt.startedAt);
      this.succeed(call, reply.output);
      return;
    }
    const error = fromWireError(reply.error);
    if (this.inFlight(call) > 0) return; // a hedged sibling may still succeed
    this.remember(call, attempt);
    if (!this.retry(call, error)) this.fail(call, error, true);
  }

  /** Notes the node an attempt went to, so a retry or hedge prefers another. */
  private remember(call: LogicalCall, attempt: Attempt | undefined): void {
    const id = attempt?.member?.id;
    if (id === undefined || call.tried?.includes(id) === true) return;
    (call.tried ??= []).push(id);
  }

  /** Whether routing should steer around a node: breaker not admitting, ejected, or already tried. */
  private avoid(member: Member, tried: readonly string[] | undefined): boolean {
    if (tried?.includes(member.id) === true) return true;
    if (!this.unhealthy.has(member.id)) return false;
    const breaker = this.nodeBreakers.get(member.id);
    if (breaker !== undefined && !breaker.admits()) return true;
    if (this.outlier?.isEjected(member.id) === true) return true;
    this.refreshHealth(member.id);
    return false;
  }

  /** Bookkeeping for an attempt that is over: pending map, load, breakers, outlier stats. */
  private endAttempt(attempt: Attempt, code: ErrorCode | undefined, now: number | undefined): void {
    attempt.settled = true;
    this.pending.delete(attempt.id);
    const member = attempt.member;
    if (member !== undefined) member.outstanding--;
    // A failure while this node's own connection was down says nothing about the target node.
    const interrupted =
      code !== undefined && (this.host.transport.interruptions ?? 0) !== attempt.interruptions;
    if (code === "CANCELLED" || interrupted) {
      attempt.nodeBreaker?.release();
      return;
    }
    const failed = code !== undefined && countsAgainstNode(code);
    if (attempt.nodeBreaker !== undefined) {
      if (failed) attempt.nodeBreaker.failure();
      else attempt.nodeBreaker.success();
    }
    const actionBreaker = guardsAction(attempt.call.policies)
      ? attempt.call.binding.shared.breaker
      : undefined;
    if (actionBreaker !== undefined) {
      if (failed) actionBreaker.failure();
      else actionBreaker.success();
    }
    if (member !== undefined && !member.local && this.outlier !== undefined) {
      this.outlier.record(
        member.id,
        now === undefined ? undefined : now - attempt.startedAt,
        failed,
        now,
      );
    }
  }

  /** Schedules another attempt when policy, idempotency, budget and deadline all allow it. */
  private retry(call: LogicalCall, error: StrataError): boolean {
    const policy = call.policies.retry;
    if (policy === undefined || !call.retryable || call.attempts >= policy.maxAttempts)
      return false;
    if (!policy.on.has(error.code) || error.details["reason"] === "circuit-open") return false;
    if (call.targetNode !== undefined) return false;
    const delay = fullJitterBackoff(
      call.attempts - 1,
      { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs },
      () => this.clock.random(),
    );
    if (this.clock.monotonic() + delay >= call.deadline) return false;
    if (this.budget !== undefined && !this.budget.tryWithdraw()) {
      this.host.counters.budgetExhausted++;
      this.rejectedSpan(call, "retry-budget");
      this.host.emit({
        type: "rejected",
        service: call.binding.service,
        action: call.binding.action,
        reason: "retry-budget",
      });
      return false;
    }
    this.host.counters.retries++;
    const telemetry = this.host.telemetry;
    safely(() => {
      telemetry.retries.add(1, call.binding.shared.series.attributes);
      // The backoff is a span of its own: on the critical path it shows as time spent waiting.
      call.backoff = startSpan(
        telemetry.tracer,
        "retry backoff",
        {
          attributes: {
            "strata.attempt": call.attempts + 1,
            "strata.retry.code": error.code,
            "strata.retry.delay_ms": Math.round(delay),
          },
        },
        call.otelContext,
      );
    });
    this.host.emit({
      type: "retry",
      service: call.binding.service,
      action: call.binding.action,
      attempt: call.attempts + 1,
      code: error.code,
      delayMs: delay,
    });
    call.live = undefined;
    call.others = undefined;
    call.timer?.clear();
    call.timer = this.clock.setTimer(() => {
      call.timer = undefined;
      this.endBackoff(call);
      if (!call.settled) this.dispatch(call);
    }, delay);
    return true;
  }

  private endBackoff(call: LogicalCall): void {
    const backoff = call.backoff;
    if (backoff === undefined) return;
    call.backoff = undefined;
    safely(() => backoff.end());
  }

  /** A policy refused the call (or its retry): a span and a counter say which. */
  private rejectedSpan(
    call: LogicalCall,
    reason: "bulkhead" | "circuit-open" | "retry-budget",
  ): void {
    const telemetry = this.host.telemetry;
    decisionSpan(
      telemetry.tracer,
      `rejected ${reason}`,
      call.otelContext,
      { "strata.reason": reason },
      true,
    );
    safely(() => telemetry.rejected.add(1, call.binding.shared.series.with("reason", reason)));
  }

  /** Ends the call's span and records its duration. */
  private observe(call: LogicalCall, code: ErrorCode | "OK"): void {
    this.endBackoff(call);
    const telemetry = this.host.telemetry;
    const seconds = telemetry.timesClientCalls
      ? (this.clock.monotonic() - call.startedAt) / 1000
      : 0;
    telemetry.endClient(call.span, call.binding.shared.series, code, seconds);
  }

  private succeed(call: LogicalCall, output: unknown): void {
    this.settle(call);
    this.observe(call, "OK");
    this.host.counters.succeeded++;
    call.resolve(output);
  }

  /** Fails a call for good (with the fallback when `useFallback` and one is configured). */
  private fail(call: LogicalCall, error: StrataError, useFallback: boolean): void {
    if (call.settled) return;
    this.settle(call);
    this.observe(call, error.code);
    const fallback = useFallback ? call.policies.fallback : undefined;
    if (fallback !== undefined) {
      this.host.counters.fallbacks++;
      let value: unknown;
      try {
        value = fallback(error);
      } catch (failure) {
        this.host.counters.failed++;
        call.reject(toStrataError(failure, `${call.binding.what} fallback`));
        return;
      }
      this.host.counters.succeeded++;
      call.resolve(value);
      return;
    }
    this.host.counters.failed++;
    call.reject(error);
  }

  /** Marks a call settled, frees its resources and tells in-flight attempts' callees to stop. */
  private settle(call: LogicalCall): void {
    call.settled = true;
    this.deadlines.remove(call);
    call.timer?.clear();
    if (call.onAbort !== undefined) call.signal?.removeEventListener("abort", call.onAbort);
    this.releaseBulkhead(call);
    this.abandonAttempts(call);
  }

  private releaseBulkhead(call: LogicalCall): void {
    if (!call.holdsBulkhead) return;
    call.holdsBulkhead = false;
    call.binding.shared.bulkhead?.release();
  }

  /** Tells the callees of attempts still out that nobody waits for them any more. */
  private abandonAttempts(call: LogicalCall): void {
    if (this.inFlight(call) === 0) return;
    const reason = new StrataError("CANCELLED", `${call.binding.what}: the caller no longer waits`);
    const attempts = call.others === undefined ? [call.live] : [call.live, ...call.others];
    for (const attempt of attempts) {
      if (attempt === undefined || attempt.settled) continue;
      this.endAttempt(attempt, "CANCELLED", undefined);
      if (attempt.server !== undefined) {
        const server = attempt.server;
        queueMicrotask(() => server.abort(reason));
      } else if (attempt.member !== undefined && !attempt.member.local) {
        this.host.transport.cancel(attempt.member.id, attempt.id);
      }
    }
  }

  private expire(call: LogicalCall): void {
    // Attempts still out when the deadline passes count against their nodes.
    const attempts = call.others === undefined ? [call.live] : [call.live, ...call.others];
    for (const attempt of attempts) {
      if (attempt === undefined || attempt.settled) continue;
      this.endAttempt(attempt, "DEADLINE_EXCEEDED", this.clock.monotonic());
      if (attempt.server !== undefined) {
        const server = attempt.server;
        const reason = new StrataError(
          "DEADLINE_EXCEEDED",
          `${call.binding.what}: deadline exceeded`,
        );
        queueMicrotask(() => server.abort(reason));
      } else if (attempt.member !== undefined && !attempt.member.local) {
        this.host.transport.cancel(attempt.member.id, attempt.id);
      }
    }
    const budget = Math.round(call.budget);
    this.fail(
      call,
      new StrataError(
        "DEADLINE_EXCEEDED",
        `${call.binding.what}: deadline of ${budget} ms exceeded`,
        {
          details: {
            timeoutMs: budget,
            attempts: call.attempts,
            node: call.live?.member?.id ?? null,
          },
        },
      ),
      true,
    );
  }

  /** A node left: its attempts fail with UNAVAILABLE (outcome unknown) and may be retried. */
  memberLeft(node: string, reason: string): void {
    for (const attempt of [...this.pending.values()]) {
      if (attempt.member?.id !== node) continue;
      this.onAttempt(attempt, {
        ok: false,
        error: new StrataError(
          "UNAVAILABLE",
          `node ${node} left (${reason}) during ${attempt.call.binding.what}`,
          {
            details: { node, reason, outcome: "unknown" },
          },
        ).toWire(),
      });
    }
    this.nodeBreakers.delete(node);
    this.outlier?.forget(node);
    this.unhealthy.delete(node);
  }

  /** Fails every call in flight (the node stopped). */
  stopAll(error: StrataError): void {
    for (const call of this.deadlines.items()) this.fail(call, error, false);
    this.deadlines.stop();
  }

  /** Breaker states of the nodes this node has called, for tools. */
  breakers(): Array<{ scope: "node" | "action"; target: string; state: BreakerState }> {
    const out: Array<{ scope: "node" | "action"; target: string; state: BreakerState }> = [];
    for (const [target, breaker] of this.nodeBreakers)
      out.push({ scope: "node", target, state: breaker.state });
    for (const [target, shared] of this.actions) {
      if (shared.breaker !== undefined)
        out.push({ scope: "action", target, state: shared.breaker.state });
    }
    return out;
  }
}

/** The queue group a service joins: one per service and major version. */
export function groupOf(service: string, versionOrRange: string): string {
  const major = /^[\^~]?(\d+)/.exec(versionOrRange)?.[1] ?? "any";
  return `${service}.v${major}`;
}

import { ROOT_CONTEXT, context as otelContext, trace } from "@opentelemetry/api";
import { StrataError, toStrataError, type ErrorCode } from "../errors/index.js";
import {
  decisionSpan,
  safely,
  type RpcSeries,
  type RpcTelemetry,
} from "../observability/telemetry.js";
import { contextFromTrace, withSpan } from "../observability/trace-context.js";
import type {
  Authorizer,
  CallReply,
  CallRequest,
  Clock,
  Logger,
  ServiceAnnouncement,
} from "../ports/index.js";
import { ConcurrencyLimit } from "../resilience/concurrency-limit.js";
import type { FaultEffect, FaultInjector } from "../resilience/faults.js";
import type { ServingPolicies } from "../resilience/policy.js";
import { RateLimiter } from "../resilience/rate-limiter.js";
import type { ActionContract, AnyServiceImplementation } from "../service/define-service.js";
import { validate } from "../service/schema.js";
import type { CallContext, Principal } from "./context.js";
import { DeadlineQueue } from "./deadline-queue.js";
import type { NodeStats, ResilienceEvent } from "./events.js";
import { ServerCall, type ServerCallHost } from "./server-call.js";
import { ADMIN_SERVICE } from "./admin.js";

interface HostedAction {
  readonly contract: ActionContract;
  readonly what: string;
  /** Labels for validation messages, built once. */
  readonly inputLabel: string;
  readonly outputLabel: string;
  readonly series: RpcSeries;
  readonly handler: (input: unknown, context: CallContext) => unknown;
}

interface HostedService {
  readonly implementation: AnyServiceImplementation;
  readonly version: string;
  readonly actions: Map<string, HostedAction>;
}

/** What the serving side needs from its node. */
export interface ServingHost extends ServerCallHost {
  /** True while the node takes calls. */
  accepting(): boolean;
  /** Why it does not, for the error message. */
  refusal(): string;
  readonly faults: FaultInjector;
  readonly counters: NodeStats;
  readonly telemetry: RpcTelemetry;
  /** Whether every peer that can send to this node was authenticated (see Transport). */
  peersAuthenticated(): boolean;
  emit(event: ResilienceEvent): void;
  /** Every call this node answered (or refused), for the call window and SLOs. */
  served(service: string, action: string, code: ErrorCode | "OK", durationMs: number): void;
}

/** Options for {@link Serving}. */
export interface ServingOptions {
  readonly validateOutput: boolean;
  readonly policies: ServingPolicies | undefined;
  readonly authorizer?: Authorizer | undefined;
}

/**
 * The serving half of a node: hosted services, admission (faults, rate limits, load shedding),
 * input validation, running handlers, answering, and the registry that lets callers cancel.
 */
export class Serving {
  private readonly host: ServingHost;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly validateOutput: boolean;
  private readonly authorizer: Authorizer | undefined;
  private readonly services = new Map<string, HostedService>();
  /** In-flight calls from other nodes, by calling node and call id, so cancels can find them. */
  private readonly remote = new Map<string, Map<number, ServerCall>>();
  /** In-flight calls from this very node (cancelled directly, listed for drain). */
  private readonly local = new Set<ServerCall>();
  private readonly deadlines: DeadlineQueue<ServerCall>;
  private readonly limit: ConcurrencyLimit | undefined;
  private readonly perCaller: RateLimiter | undefined;
  private readonly perAction: RateLimiter | undefined;
  private idleWaiters: Array<() => void> = [];
  inFlight = 0;

  constructor(host: ServingHost, options: ServingOptions) {
    this.host = host;
    this.clock = host.clock;
    this.logger = host.logger;
    this.validateOutput = options.validateOutput;
    this.authorizer = options.authorizer;
    this.deadlines = new DeadlineQueue(this.clock, (call) =>
      call.abort(
        new StrataError("DEADLINE_EXCEEDED", `${call.service}.${call.action}: deadline exceeded`),
      ),
    );
    const policies = options.policies;
    const concurrency = policies?.concurrency;
    this.limit =
      concurrency === undefined || concurrency === false
        ? undefined
        : new ConcurrencyLimit(this.clock, concurrency);
    const rate = policies?.rateLimit;
    this.perCaller =
      rate?.perCaller === undefined ? undefined : new RateLimiter(this.clock, rate.perCaller);
    this.perAction =
      rate?.perAction === undefined ? undefined : new RateLimiter(this.clock, rate.perAction);
  }

  /** The current serving-side concurrency limit, when one is configured. */
  get concurrencyLimit(): number | undefined {
    return this.limit?.limit;
  }

  has(service: string): boolean {
    return this.services.has(service);
  }

  add(implementation: AnyServiceImplementation): void {
    const contract = implementation.contract;
    if (this.services.has(contract.name)) {
      throw new StrataError(
        "ALREADY_EXISTS",
        `node ${this.host.id} already serves ${contract.name}`,
      );
    }
    const actions = new Map<string, HostedAction>();
    const handlers = implementation.handlers as unknown as Record<string, HostedAction["handler"]>;
    for (const [name, action] of Object.entries(contract.actions)) {
      const handler = handlers[name];
      if (handler === undefined) {
        throw new StrataError(
          "INVALID_ARGUMENT",
          `service ${contract.name}: no handler for ${name}`,
        );
      }
      actions.set(name, {
        contract: action,
        handler,
        what: `${contract.name}.${name}`,
        inputLabel: `${contract.name}.${name} input`,
        outputLabel: `${contract.name}.${name} output`,
        series: this.host.telemetry.seriesOf(contract.name, name),
      });
    }
    this.services.set(contract.name, { implementation, version: contract.version, actions });
  }

  implementations(): AnyServiceImplementation[] {
    return [...this.services.values()].map((s) => s.implementation);
  }

  announcements(): ServiceAnnouncement[] {
    return [...this.services.values()].map((s) => ({
      name: s.implementation.contract.name,
      version: s.version,
      actions: [...s.actions].map(([name, a]) => ({
        name,
        idempotent: a.contract.idempotent === true,
      })),
    }));
  }

  /**
   * A request from another node. Its principal is believed only when the transport says every
   * peer was authenticated, or when a verified envelope names the calling workload: that
   * workload is then the principal, unless it vouches for an end user. Otherwise the call is
   * anonymous.
   */
  handleRemote(request: CallRequest, respond: (reply: CallReply) => void): void {
    const now = this.clock.monotonic();
    const principal = remotePrincipal(request, this.host.peersAuthenticated());
    const call = this.handle(request, respond, principal, now + request.timeoutMs, now);
    if (call === undefined || call.done) return;
    call.remote = true;
    let calls = this.remote.get(request.from);
    if (calls === undefined) {
      calls = new Map<number, ServerCall>();
      this.remote.set(request.from, calls);
    }
    calls.set(request.id, call);
  }

  /** A request from this node itself; the caller keeps the context to cancel it directly. */
  handleLocal(
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
    now: number,
  ): ServerCall | undefined {
    const call = this.handle(request, respond, principal, deadline, now);
    if (call !== undefined && !call.done) this.local.add(call);
    return call;
  }

  cancel(from: string, id: number): void {
    const call = this.remote.get(from)?.get(id);
    call?.abort(
      new StrataError("CANCELLED", `${call.service}.${call.action}: cancelled by the caller`),
    );
  }

  /** Drops the cancel registry of a node that left (its calls can no longer be cancelled). */
  forgetCaller(node: string): void {
    this.remote.delete(node);
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`. */
  waitIdle(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        timer.clear();
        resolve();
      });
    });
  }

  /** Aborts and answers every call still in flight (the node is stopping). */
  abortAll(nodeId: string): void {
    const stragglers: ServerCall[] = [...this.local];
    for (const calls of this.remote.values())
      for (const call of calls.values()) stragglers.push(call);
    for (const call of stragglers) {
      if (call.done) continue;
      const error = new StrataError(
        "UNAVAILABLE",
        `node ${nodeId} stopped before ${call.service}.${call.action} finished`,
        { details: { node: nodeId, outcome: "unknown" } },
      );
      call.abort(error);
      this.finish(call, undefined, { ok: false, error: error.toWire() });
    }
  }

  stop(): void {
    this.deadlines.stop();
  }

  watchDeadline(call: ServerCall): void {
    this.deadlines.push(call);
  }

  /** Answers a call that was not admitted; it still gets a server span and counts as served. */
  private refuse(
    request: CallRequest,
    respond: (reply: CallReply) => void,
    error: StrataError,
    series: RpcSeries | undefined,
  ): undefined {
    const telemetry = this.host.telemetry;
    const s = series ?? telemetry.seriesOf(request.service, request.action);
    const parent = contextFromTrace(request.trace, ROOT_CONTEXT);
    const span = telemetry.startServer(s, parent, this.host.id, request.from);
    const reason = error.details["reason"];
    if (reason === "shed" || reason === "rate-limit") {
      const why = reason === "shed" ? "concurrency" : "rate-limit";
      decisionSpan(telemetry.tracer, `shed ${why}`, trace.setSpan(parent, span), {
        "strata.reason": why,
      });
      safely(() => telemetry.shed.add(1, s.with("reason", why)));
    }
    telemetry.endServer(span, s, error.code, 0);
    this.host.served(
      s.attributes["rpc.service"] as string,
      s.attributes["rpc.method"] as string,
      error.code,
      0,
    );
    respond({ ok: false, error: error.toWire() });
    return undefined;
  }

  private handle(
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
    now: number,
  ): ServerCall | undefined {
    const action = this.admit(request);
    if (action instanceof StrataError) return this.refuse(request, respond, action, undefined);
    if (this.perCaller !== undefined || this.perAction !== undefined) {
      const limited = this.rateLimit(request, principal, action);
      if (limited !== undefined) return this.refuse(request, respond, limited, action.series);
    }
    let limitedByConcurrency = false;
    // The admin service is never shed: an operator must be able to read and clear faults on a
    // node that is overloaded (it is cheap, and its calls are few).
    if (this.limit !== undefined && request.service !== ADMIN_SERVICE) {
      if (!this.limit.tryAcquire()) {
        this.host.counters.shed++;
        this.host.emit({
          type: "shed",
          service: request.service,
          action: request.action,
          reason: "concurrency",
          limit: this.limit.limit,
        });
        return this.refuse(
          request,
          respond,
          new StrataError(
            "RESOURCE_EXHAUSTED",
            `${action.what}: node ${this.host.id} is at its concurrency limit`,
            {
              details: { reason: "shed", node: this.host.id, limit: this.limit.limit },
            },
          ),
          action.series,
        );
      }
      limitedByConcurrency = true;
    }
    const fault = this.host.faults.active
      ? this.host.faults.match(this.host.id, request.service, request.action)
      : undefined;
    this.host.counters.served++;
    const call = new ServerCall(this.host, request, respond, principal, deadline, now);
    call.limited = limitedByConcurrency;
    const parent = contextFromTrace(request.trace, ROOT_CONTEXT);
    const span = this.host.telemetry.startServer(action.series, parent, this.host.id, request.from);
    call.span = span;
    call.series = action.series;
    call.otelContext = withSpan(parent, span);
    this.inFlight++;
    if (fault !== undefined) {
      this.host.counters.faults++;
      this.applyFault(call, action, fault);
      return call;
    }
    this.begin(call, action);
    return call;
  }

  private begin(call: ServerCall, action: HostedAction): void {
    try {
      const input = validate(action.contract.input, call.request.input, action.inputLabel);
      if (input instanceof Promise) {
        input.then(
          (value) => this.authorizeThenRun(call, action, value),
          (failure: unknown) => this.fail(call, action, failure),
        );
      } else {
        this.authorizeThenRun(call, action, input);
      }
    } catch (failure) {
      this.fail(call, action, failure);
    }
  }

  private applyFault(call: ServerCall, action: HostedAction, fault: FaultEffect): void {
    switch (fault.type) {
      case "fail":
        this.finish(call, action, {
          ok: false,
          error: new StrataError(fault.code, fault.message ?? `${action.what}: injected fault`, {
            details: { injected: true },
          }).toWire(),
        });
        return;
      case "latency": {
        const delay =
          fault.ms + (fault.jitterMs === undefined ? 0 : this.clock.random() * fault.jitterMs);
        this.clock.setTimer(() => {
          if (call.aborted) this.finish(call, action, undefined);
          else this.begin(call, action);
        }, delay);
        return;
      }
      case "drop-reply":
        call.dropReply = true;
        this.begin(call, action);
        return;
      case "black-hole":
        // Swallowed: never run, never answered. It does not hold up a drain.
        call.done = true;
        this.inFlight--;
        if (call.span !== undefined && call.series !== undefined) {
          this.host.telemetry.endServer(call.span, call.series, "CANCELLED", 0);
        }
        if (call.limited) this.limit?.release(0, false, "", false);
        this.local.delete(call);
        return;
    }
  }

  private rateLimit(
    request: CallRequest,
    principal: Principal | undefined,
    action: HostedAction,
  ): StrataError | undefined {
    const caller = principal === undefined ? `node:${request.from}` : describePrincipal(principal);
    const checks: Array<[RateLimiter | undefined, string, "caller" | "action"]> = [
      [this.perCaller, caller, "caller"],
      [this.perAction, action.what, "action"],
    ];
    for (const [limiter, key, scope] of checks) {
      if (limiter === undefined || limiter.tryTake(key)) continue;
      this.host.counters.rateLimited++;
      this.host.emit({
        type: "shed",
        service: request.service,
        action: request.action,
        reason: "rate-limit",
        limit: 0,
      });
      return new StrataError(
        "RESOURCE_EXHAUSTED",
        `${action.what}: rate limit exceeded for ${scope === "caller" ? caller : "the action"}`,
        {
          details: { reason: "rate-limit", scope, retryAfterMs: limiter.retryAfterMs(key) },
        },
      );
    }
    return undefined;
  }

  private admit(request: CallRequest): HostedAction | StrataError {
    if (!this.host.accepting()) {
      return new StrataError("UNAVAILABLE", `node ${this.host.id} is ${this.host.refusal()}`, {
        details: { node: this.host.id, reason: this.host.refusal() },
      });
    }
    const service = this.services.get(request.service);
    if (service === undefined) {
      return new StrataError(
        "UNIMPLEMENTED",
        `node ${this.host.id} does not serve ${request.service}`,
        {
          details: { service: request.service },
        },
      );
    }
    if (request.version !== "" && request.version !== service.version) {
      return new StrataError(
        "UNAVAILABLE",
        `node ${this.host.id} serves ${request.service}@${service.version}, not @${request.version}`,
        { details: { service: request.service, served: service.version } },
      );
    }
    const action = service.actions.get(request.action);
    if (action === undefined) {
      return new StrataError(
        "UNIMPLEMENTED",
        `${request.service} has no action "${request.action}"`,
        {
          details: { service: request.service, action: request.action },
        },
      );
    }
    if (request.timeoutMs <= 0) {
      return new StrataError("DEADLINE_EXCEEDED", `${action.what}: arrived after its deadline`);
    }
    return action;
  }

  /** Asks the authorizer (when there is one) and runs the handler only on an explicit allow. */
  private authorizeThenRun(call: ServerCall, action: HostedAction, input: unknown): void {
    const authorizer = this.authorizer;
    if (authorizer === undefined) {
      this.run(call, action, input);
      return;
    }
    let decision: unknown;
    try {
      decision = authorizer.authorize({
        principal: call.principal,
        service: call.service,
        action: call.action,
        input,
        callerNode: call.callerNode,
        workload: call.workload,
      });
    } catch (error) {
      this.deny(call, action, `the authorizer failed: ${errorText(error)}`);
      return;
    }
    if (isThenable(decision)) {
      decision.then(
        (d) => this.decided(call, action, input, d),
        (error: unknown) => this.deny(call, action, `the authorizer failed: ${errorText(error)}`),
      );
    } else {
      this.decided(call, action, input, decision);
    }
  }

  private decided(call: ServerCall, action: HostedAction, input: unknown, decision: unknown): void {
    if (call.done) return;
    const d = decision as { allowed?: unknown; reason?: unknown } | null | undefined;
    if (typeof d === "object" && d !== null && d.allowed === true) {
      this.host.counters.authorized++;
      safely(() =>
        this.host.telemetry.authorizations.add(1, action.series.with("decision", "allow")),
      );
      this.run(call, action, input);
      return;
    }
    const reason =
      typeof d === "object" && d !== null && typeof d.reason === "string"
        ? d.reason
        : "the authorizer gave no decision";
    this.deny(call, action, reason);
  }

  /** Denies a call: counted, traced and logged here; the caller learns only that it was denied. */
  private deny(call: ServerCall, action: HostedAction, reason: string): void {
    if (call.done) return;
    this.host.counters.denied++;
    const telemetry = this.host.telemetry;
    safely(() => telemetry.authorizations.add(1, action.series.with("decision", "deny")));
    decisionSpan(
      telemetry.tracer,
      "authorization denied",
      call.otelContext,
      {
        "strata.reason": reason.slice(0, 200),
      },
      true,
    );
    const p = call.principal;
    call.logger.warn(
      {
        principal: p === undefined ? "anonymous" : describePrincipal(p),
        callerNode: call.callerNode,
        reason: reason.slice(0, 500),
      },
      "call denied",
    );
    this.fail(
      call,
      action,
      new StrataError("PERMISSION_DENIED", `${action.what}: permission denied`, {
        details: { reason: "policy" },
      }),
    );
  }

  private run(call: ServerCall, action: HostedAction, input: unknown): void {
    if (call.done) return;
    let result: unknown;
    try {
      // The handler runs with the call's span active, so that its calls, state operations and
      // events join the trace (with an AsyncLocalStorage context manager installed).
      result = otelContext.with(call.otelContext, action.handler, undefined, input, call);
    } catch (failure) {
      this.fail(call, action, failure);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (output) => this.succeed(call, action, output),
        (failure: unknown) => this.fail(call, action, failure),
      );
    } else {
      this.succeed(call, action, result);
    }
  }

  private succeed(call: ServerCall, action: HostedAction, output: unknown): void {
    if (!this.validateOutput) {
      this.finish(call, action, { ok: true, output });
      return;
    }
    try {
      const checked = validate(action.contract.output, output, action.outputLabel);
      if (checked instanceof Promise) {
        checked.then(
          (value) => this.finish(call, action, { ok: true, output: value }),
          (failure: unknown) => this.fail(call, action, outputError(action, failure)),
        );
      } else {
        this.finish(call, action, { ok: true, output: checked });
      }
    } catch (failure) {
      this.fail(call, action, outputError(action, failure));
    }
  }

  private fail(call: ServerCall, action: HostedAction, failure: unknown): void {
    const error = toStrataError(failure, action.what);
    if (error.code === "INTERNAL" || error.code === "UNKNOWN") {
      call.logger.error({ err: error.cause ?? error }, "handler failed");
    }
    this.finish(call, action, { ok: false, error: error.toWire() });
  }

  private finish(
    call: ServerCall,
    action: HostedAction | undefined,
    reply: CallReply | undefined,
  ): void {
    if (call.done) return;
    call.done = true;
    this.inFlight--;
    this.deadlines.remove(call);
    const code: ErrorCode | "OK" =
      reply === undefined ? "CANCELLED" : reply.ok ? "OK" : reply.error.code;
    const end = this.clock.monotonic();
    const ms = end - call.startedAt;
    if (call.span !== undefined && call.series !== undefined) {
      this.host.telemetry.endServer(call.span, call.series, code, ms / 1000);
    }
    this.host.served(call.service, call.action, code, ms);
    if (call.limited) {
      const overloaded =
        reply !== undefined &&
        !reply.ok &&
        (reply.error.code === "DEADLINE_EXCEEDED" || reply.error.code === "RESOURCE_EXHAUSTED");
      const sample = reply === undefined || reply.ok;
      this.limit?.release(ms, overloaded, call.series?.spanName, sample);
    }
    // Per-caller maps stay (one per calling node) and are dropped when that node leaves.
    if (call.remote) this.remote.get(call.request.from)?.delete(call.request.id);
    else this.local.delete(call);
    if (reply !== undefined && !call.dropReply) {
      try {
        call.respond(reply);
      } catch (error) {
        // An unencodable output (or one over the size limit) must still answer the caller.
        const failure = toStrataError(error, `${action?.what ?? call.service} reply`);
        try {
          call.respond({ ok: false, error: failure.toWire() });
        } catch (second) {
          this.logger.error({ err: second }, "could not send a reply");
        }
      }
    }
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }
}

/** Who a request from another node acts for; see {@link Serving.handleRemote}. */
function remotePrincipal(request: CallRequest, peersAuthenticated: boolean): Principal | undefined {
  if (peersAuthenticated) return request.principal;
  const workload = request.workload;
  if (workload === undefined) return undefined;
  return request.principal?.kind === "user"
    ? request.principal
    : { kind: "workload", id: workload };
}

/** `user:<subject>`, `workload:<id>` or `node:<id>`: a principal's id, never its claims. */
function describePrincipal(principal: Principal): string {
  return principal.kind === "user"
    ? `user:${principal.subject}`
    : `${principal.kind}:${principal.id}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.slice(0, 200) : "unknown error";
}

function outputError(action: HostedAction, failure: unknown): StrataError {
  return new StrataError("INTERNAL", `${action.what} returned an invalid output`, {
    cause: toStrataError(failure),
  });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}

import { StrataError, toStrataError, type ErrorCode } from "../errors/index.js";
import { CallWindow } from "../observability/call-window.js";
import { eventLoopDelay, processCpu, registerNodeGauges } from "../observability/node-gauges.js";
import { SloMonitor, type BurnRateRule, type SloSpec } from "../observability/slo.js";
import type { TelemetrySnapshot } from "../observability/snapshot.js";
import { RpcTelemetry, type TelemetryOptions } from "../observability/telemetry.js";
import {
  silentLogger,
  systemClock,
  type CallReply,
  type CallRequest,
  type Clock,
  type ControlMessage,
  type Authorizer,
  type Logger,
  type NodeAnnouncement,
  type NodeStatus,
  type Transport,
  type TransportHandlers,
} from "../ports/index.js";
import { createHlc, type HybridClock } from "../ports/hlc.js";
import { FaultInjector } from "../resilience/faults.js";
import {
  checkResilienceOptions,
  type CallPolicies,
  type ResilienceOptions,
} from "../resilience/policy.js";
import type { BreakerState } from "../resilience/circuit-breaker.js";
import type { Client, ClientOptions } from "../service/client.js";
import type {
  ServiceContract,
  ServiceContractSpec,
  AnyServiceImplementation,
} from "../service/define-service.js";
import { ADMIN_SERVICE, adminService } from "./admin.js";
import { Calling, groupOf } from "./calling.js";
import type { CallOptions, Principal, RoutingStrategy } from "./context.js";
import {
  emptyStats,
  type NodeEvent,
  type NodeState,
  type NodeStats,
  type ResilienceEvent,
} from "./events.js";
import { Health, type HealthCheck, type HealthReport } from "./health.js";
import { Membership, type MembershipEvent } from "./membership.js";
import { Router, checkRange } from "./router.js";
import type { ServerCall } from "./server-call.js";
import { Serving } from "./serving.js";

export { groupOf };
export type { NodeEvent, NodeState, NodeStats };

/** Options for {@link createNode}. */
export interface NodeOptions {
  /** How this node reaches the others: `createEmbeddedNetwork().transport()` or a NATS transport. */
  readonly transport: Transport;
  /** Unique node id (letters, digits, `-`, `_`); default a random one. */
  readonly id?: string;
  /** Region the node runs in, for region-affine routing; default `"default"`. */
  readonly region?: string;
  readonly services?: readonly AnyServiceImplementation[];
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Budget of a call that names none (ms); default 10 000. */
  readonly defaultTimeoutMs?: number;
  /** How often the node tells the cluster it is alive (ms); default 1 000. */
  readonly heartbeatIntervalMs?: number;
  /** A node silent for this long leaves the routing table (ms); default 3.5 heartbeats. */
  readonly deadAfterMs?: number;
  /** Longest graceful drain before in-flight calls are aborted (ms); default 10 000. */
  readonly drainTimeoutMs?: number;
  /** Validate handler outputs against the output schema (costs time; on in `strata dev`). */
  readonly validateOutput?: boolean;
  /** Default routing for this node's clients. */
  readonly routing?: {
    readonly strategy?: RoutingStrategy;
    readonly preferLocal?: boolean;
    readonly regionAffinity?: boolean;
  };
  /** Policies of the call path and protection of the serving side; see docs/resilience.md. */
  readonly resilience?: ResilienceOptions;
  /** Health checks that decide readiness. */
  readonly healthChecks?: readonly HealthCheck[];
  /** Serve the built-in `strata-admin` service (health, stats, faults); default true. */
  readonly admin?: boolean;
  /** Where traces and metrics go, and the node's service level objectives. */
  readonly telemetry?: NodeTelemetryOptions;
  /**
   * Asked before every handler runs; a denial answers `PERMISSION_DENIED`. Default: none (every
   * call is allowed). See the security block's Cedar authorizer.
   */
  readonly authorizer?: Authorizer;
}

/** Telemetry of one node; see docs/observability.md. */
export interface NodeTelemetryOptions extends TelemetryOptions {
  /** Objectives for the calls this node serves; alerts arrive as `slo` node events. */
  readonly slos?: readonly SloSpec[];
  /** Burn-rate alert rules; default the SRE workbook's (1 h/5 min at 14.4x, 6 h/30 min at 6x). */
  readonly burnRateRules?: readonly BurnRateRule[];
  /** How often burn rates are recomputed (ms); default 10 000. */
  readonly sloEvaluateEveryMs?: number;
  /** Window of the live call statistics `strata top` shows (ms); default 10 000. */
  readonly windowMs?: number;
}

/** Client options, plus policies for every call made through the client. */
export interface NodeClientOptions extends ClientOptions {
  readonly policies?: CallPolicies;
  /**
   * Who the client's calls act for (for example the user whose token a gateway verified). It
   * reaches callees only over authenticated transports; see docs/security.md.
   */
  readonly principal?: Principal;
}

/** What `node.stats()` returns. */
export interface NodeStatsReport extends NodeStats {
  readonly inFlight: number;
  readonly concurrencyLimit: number | undefined;
  readonly breakers: ReadonlyArray<{
    scope: "node" | "action";
    target: string;
    state: BreakerState;
  }>;
}

/** A node: hosts services, routes calls, takes part in membership. Dispose it to stop it. */
export interface StrataNode extends AsyncDisposable {
  readonly id: string;
  readonly region: string;
  readonly state: NodeState;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Faults this node injects into calls it serves (off until a rule is added). */
  readonly faults: FaultInjector;
  /** This node's hybrid logical clock (for LWW registers, events and the ledger). */
  readonly hlc: HybridClock;
  /** Adds a service; allowed before and after start. */
  serve(implementation: AnyServiceImplementation): void;
  start(signal?: AbortSignal): Promise<void>;
  /**
   * Drains and stops: stop taking calls, finish in-flight ones within the drain bound, leave the
   * cluster, disconnect. Idempotent.
   */
  stop(options?: { readonly drainTimeoutMs?: number }): Promise<void>;
  /** A typed client for a service contract. */
  client<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options?: NodeClientOptions,
  ): Client<S>;
  /** An untyped call, for tools such as the CLI; input and output are checked by the callee. */
  call(
    service: string,
    action: string,
    input: unknown,
    options?: UntypedCallOptions,
  ): Promise<unknown>;
  /** The cluster as this node sees it, itself included. */
  nodes(): NodeAnnouncement[];
  /** Resolves once a ready node serves `service` (at a version in `range`, default any). */
  waitForService(
    service: string,
    options?: {
      readonly range?: string;
      readonly timeoutMs?: number;
      readonly signal?: AbortSignal;
    },
  ): Promise<void>;
  /** Subscribes to membership, state and resilience events; dispose the result to unsubscribe. */
  on(listener: (event: NodeEvent) => void): Disposable;
  /** Calls this node is serving right now. */
  inFlight(): number;
  /** Adds a health check; a failing required check makes the node unready. */
  addHealthCheck(check: HealthCheck): void;
  /** Liveness, readiness and the last result of every check. */
  health(): HealthReport;
  /** Counters of this node's calls and policy decisions. */
  stats(): NodeStatsReport;
  /** This node's service level objectives: add more, read their status. */
  readonly slos: SloMonitor;
  /** Live call statistics, breakers, SLO status and process health (what `strata top` shows). */
  telemetrySnapshot(): TelemetrySnapshot;
}

/** Options for {@link StrataNode.call}: call options plus routing choices. */
export interface UntypedCallOptions extends CallOptions, NodeClientOptions {}

const NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `node option ${name} must be a positive number of milliseconds, got ${String(value)}`,
    );
  }
  return value;
}

function randomId(clock: Clock): string {
  let out = "node-";
  for (let i = 0; i < 8; i++) out += Math.floor(clock.random() * 36).toString(36);
  return out;
}

class Node implements StrataNode, TransportHandlers {
  readonly id: string;
  readonly region: string;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly faults: FaultInjector;
  readonly hlc: HybridClock;
  readonly membership: Membership;
  readonly router: Router;
  readonly counters: NodeStats = emptyStats();
  readonly telemetry: RpcTelemetry;
  readonly slos: SloMonitor;
  state: NodeState = "created";
  private readonly window: CallWindow;
  private readonly sloEvaluateEveryMs: number;
  private sloTimer: { clear(): void } | undefined;
  private unregisterGauges: (() => void) | undefined;

  private readonly serving: Serving;
  private readonly calling: Calling;
  private readonly healthChecks: Health;
  private readonly listeners = new Set<(event: NodeEvent) => void>();
  private readonly waiters = new Set<() => void>();
  private readonly defaultTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly deadAfterMs: number;
  private readonly drainTimeoutMs: number;
  private readonly startedAt: number;
  private readonly incarnation: number;
  private heartbeatTimer: { clear(): void } | undefined;
  private stopping: Promise<void> | undefined;
  private lastDiscover = -Infinity;
  private helloQueued = false;
  private ready = true;

  constructor(options: NodeOptions) {
    if (options.transport === undefined) {
      throw new StrataError("INVALID_ARGUMENT", "node option transport is required");
    }
    this.clock = options.clock ?? systemClock();
    this.id = options.id ?? randomId(this.clock);
    if (!NODE_ID.test(this.id)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `node id "${this.id}" must match ${NODE_ID.source}`,
      );
    }
    this.region = options.region ?? "default";
    if (!NODE_ID.test(this.region)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `region "${this.region}" must match ${NODE_ID.source}`,
      );
    }
    this.transport = options.transport;
    this.logger = (options.logger ?? silentLogger).child({ node: this.id });
    this.defaultTimeoutMs = positive("defaultTimeoutMs", options.defaultTimeoutMs, 10_000);
    this.heartbeatIntervalMs = positive("heartbeatIntervalMs", options.heartbeatIntervalMs, 1_000);
    this.deadAfterMs = positive("deadAfterMs", options.deadAfterMs, this.heartbeatIntervalMs * 3.5);
    if (this.deadAfterMs <= this.heartbeatIntervalMs) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `node option deadAfterMs (${this.deadAfterMs}) must exceed heartbeatIntervalMs (${this.heartbeatIntervalMs})`,
      );
    }
    this.drainTimeoutMs = positive("drainTimeoutMs", options.drainTimeoutMs, 10_000);
    const strategy = options.routing?.strategy ?? "p2c";
    if (strategy !== "p2c" && strategy !== "round-robin") {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `unknown routing strategy "${String(strategy)}" (use "p2c" or "round-robin")`,
      );
    }
    checkResilienceOptions(options.resilience);
    this.startedAt = this.clock.now();
    this.incarnation = this.startedAt * 1000 + Math.floor(this.clock.random() * 1000);
    this.faults = new FaultInjector(() => this.clock.random());
    this.hlc = createHlc(this.clock, this.id);
    this.membership = new Membership((event) => this.onMembership(event));
    this.router = new Router(this.membership, this.region, () => this.clock.random());
    this.healthChecks = new Health(this.clock);
    const telemetry = options.telemetry;
    this.telemetry = new RpcTelemetry(telemetry);
    this.window = new CallWindow(
      this.clock,
      telemetry?.windowMs === undefined ? {} : { windowMs: telemetry.windowMs },
    );
    this.sloEvaluateEveryMs = positive(
      "telemetry.sloEvaluateEveryMs",
      telemetry?.sloEvaluateEveryMs,
      10_000,
    );
    this.slos = new SloMonitor(this.clock, telemetry?.slos ?? [], {
      ...(telemetry?.burnRateRules === undefined ? {} : { rules: telemetry.burnRateRules }),
      onAlert: (event) => {
        this.logger[event.state === "firing" ? "warn" : "info"](
          { slo: event.slo, severity: event.severity, burnRates: event.burnRates },
          `SLO ${event.slo}: ${event.severity} alert ${event.state}`,
        );
        this.emit(event);
      },
    });
    for (const check of options.healthChecks ?? []) this.healthChecks.add(check);
    this.serving = new Serving(this, {
      validateOutput: options.validateOutput ?? false,
      policies: options.resilience?.serving,
      authorizer: options.authorizer,
    });
    this.calling = new Calling(this, {
      defaultTimeoutMs: this.defaultTimeoutMs,
      routing: {
        strategy,
        preferLocal: options.routing?.preferLocal ?? true,
        regionAffinity: options.routing?.regionAffinity ?? true,
      },
      resilience: options.resilience,
    });
    if (options.admin !== false) this.serving.add(adminService(this));
    for (const implementation of options.services ?? []) this.serve(implementation);
  }

  // ---- hosts' views ----------------------------------------------------------------------------

  accepting(): boolean {
    return this.state === "running";
  }

  refusal(): string {
    return this.state === "draining" ? "draining" : "not serving";
  }

  canCall(): boolean {
    return this.state === "running" || this.state === "draining";
  }

  describeState(): string {
    return this.state;
  }

  peersAuthenticated(): boolean {
    return this.transport.authenticated === true;
  }

  served(service: string, action: string, code: ErrorCode | "OK", durationMs: number): void {
    this.window.record(service, action, code, durationMs);
    this.slos.record(service, action, code, durationMs);
  }

  watchDeadline(call: ServerCall): void {
    this.serving.watchDeadline(call);
  }

  serveLocal(
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
    now: number,
  ): ServerCall | undefined {
    return this.serving.handleLocal(request, respond, principal, deadline, now);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  serve(implementation: AnyServiceImplementation): void {
    const contract = implementation.contract;
    if (this.state === "draining" || this.state === "stopped") {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `node ${this.id} is ${this.state}; cannot serve ${contract.name}`,
      );
    }
    this.serving.add(implementation);
    if (this.state === "running") {
      this.transport.joinGroup(groupOf(contract.name, contract.version));
      this.announce();
    }
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (this.state !== "created") {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `node ${this.id} is ${this.state}; start() runs once`,
      );
    }
    this.setState("starting");
    try {
      await this.transport.start(this.id, this, signal);
      for (const implementation of this.serving.implementations()) {
        await implementation.hooks.started?.(signal ?? new AbortController().signal);
      }
      await this.healthChecks.runAll();
    } catch (error) {
      this.setState("stopped");
      await this.transport.close().catch(() => undefined);
      throw error;
    }
    for (const implementation of this.serving.implementations()) {
      this.transport.joinGroup(
        groupOf(implementation.contract.name, implementation.contract.version),
      );
    }
    this.ready = this.healthChecks.requiredPass();
    this.setState("running");
    this.announce();
    this.transport.broadcast({ t: "discover", id: this.id });
    this.scheduleHeartbeat();
    this.unregisterGauges = registerNodeGauges(this.telemetry.meter, {
      id: this.id,
      region: this.region,
      inFlight: () => this.serving.inFlight,
      breakers: () => this.calling.breakers(),
      sloStatus: () => this.slos.status(),
    });
    this.evaluateSlos();
  }

  stop(options: { readonly drainTimeoutMs?: number } = {}): Promise<void> {
    this.stopping ??= this.drainAndStop(options.drainTimeoutMs ?? this.drainTimeoutMs);
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async drainAndStop(drainTimeoutMs: number): Promise<void> {
    if (this.state === "created" || this.state === "stopped") {
      this.setState("stopped");
      return;
    }
    if (this.state === "starting") {
      throw new StrataError("FAILED_PRECONDITION", `node ${this.id} is still starting`);
    }
    this.setState("draining");
    this.transport.leaveGroups();
    this.announce();
    await this.serving.waitIdle(drainTimeoutMs);
    this.serving.abortAll(this.id);
    this.heartbeatTimer?.clear();
    this.transport.broadcast({ t: "bye", id: this.id, incarnation: this.incarnation });
    this.setState("stopped");
    for (const implementation of this.serving.implementations()) {
      try {
        await implementation.hooks.stopped?.();
      } catch (error) {
        this.logger.error(
          { err: error, service: implementation.contract.name },
          "stopped hook failed",
        );
      }
    }
    this.calling.stopAll(
      new StrataError("UNAVAILABLE", `node ${this.id} stopped`, {
        details: { outcome: "unknown" },
      }),
    );
    this.serving.stop();
    this.sloTimer?.clear();
    this.unregisterGauges?.();
    await this.transport.close();
  }

  private setState(state: NodeState): void {
    this.state = state;
    this.emit({ type: "state", state });
  }

  // ---- health ----------------------------------------------------------------------------------

  addHealthCheck(check: HealthCheck): void {
    this.healthChecks.add(check);
  }

  health(): HealthReport {
    return {
      live: this.state === "running" || this.state === "draining",
      ready: this.state === "running" && this.ready,
      state: this.state,
      checks: this.healthChecks.all(),
    };
  }

  private async checkHealth(): Promise<void> {
    await this.healthChecks.runAll();
    const ready = this.healthChecks.requiredPass();
    if (ready !== this.ready) {
      this.ready = ready;
      this.emit({ type: "health", ready, failing: this.healthChecks.failing() });
      this.announce();
    }
  }

  // ---- membership ------------------------------------------------------------------------------

  private status(): NodeStatus {
    if (this.state !== "running") return "draining";
    return this.ready ? "ready" : "unready";
  }

  private announcement(): NodeAnnouncement {
    return {
      id: this.id,
      region: this.region,
      incarnation: this.incarnation,
      status: this.status(),
      inFlight: this.serving.inFlight,
      startedAt: this.startedAt,
      transport: this.transport.name,
      services: this.serving.announcements(),
    };
  }

  /** Broadcasts this node's announcement; repeated requests within one tick coalesce. */
  private announce(): void {
    if (this.state === "running" || this.state === "draining") {
      this.membership.upsert(this.announcement(), this.clock.monotonic(), true);
      this.wakeWaiters();
    }
    if (this.helloQueued) return;
    this.helloQueued = true;
    queueMicrotask(() => {
      this.helloQueued = false;
      if (this.state !== "running" && this.state !== "draining") return;
      const announcement = this.announcement();
      this.membership.upsert(announcement, this.clock.monotonic(), true);
      this.transport.broadcast({ t: "hello", node: announcement });
    });
  }

  private scheduleHeartbeat(): void {
    const due = this.clock.monotonic() + this.heartbeatIntervalMs;
    this.heartbeatTimer = this.clock.setTimer(() => {
      if (this.state !== "running" && this.state !== "draining") return;
      // After an event-loop stall (GC, a handler hogging the CPU) peers' heartbeats are still
      // queued unread; sweeping now would evict every peer. Let them be read first.
      const stalled = this.clock.monotonic() - due > this.heartbeatIntervalMs;
      this.transport.broadcast({
        t: "heartbeat",
        id: this.id,
        status: this.status(),
        inFlight: this.serving.inFlight,
        incarnation: this.incarnation,
      });
      if (!stalled) this.membership.sweep(this.clock.monotonic(), this.deadAfterMs);
      this.checkHealth().catch((error: unknown) =>
        this.logger.error({ err: error }, "health checks failed"),
      );
      this.scheduleHeartbeat();
    }, this.heartbeatIntervalMs);
  }

  onControl(message: ControlMessage): void {
    if (this.state !== "running" && this.state !== "draining") return;
    const now = this.clock.monotonic();
    switch (message.t) {
      case "hello":
        if (message.node.id === this.id) {
          if (message.node.incarnation !== this.incarnation) {
            this.logger.error(
              { other: message.node.incarnation },
              "another node announces this node's id",
            );
          }
          return;
        }
        this.membership.upsert(message.node, now, false);
        // A known node that starts serving another service changes no membership state.
        this.wakeWaiters();
        return;
      case "heartbeat":
        if (message.id === this.id) return;
        if (
          !this.membership.heartbeat(
            message.id,
            message.incarnation,
            message.status,
            message.inFlight,
            now,
          )
        ) {
          if (now - this.lastDiscover > this.heartbeatIntervalMs) {
            this.lastDiscover = now;
            this.transport.broadcast({ t: "discover", id: this.id });
          }
        }
        return;
      case "bye": {
        const member = this.membership.get(message.id);
        if (member !== undefined && !member.local && member.incarnation === message.incarnation) {
          this.membership.remove(message.id, "bye");
        }
        return;
      }
      case "discover":
        if (message.id !== this.id) this.announce();
        return;
    }
  }

  private onMembership(event: MembershipEvent): void {
    if (event.type === "left") {
      this.serving.forgetCaller(event.id);
      this.calling.memberLeft(event.id, event.reason);
    }
    this.emit(event);
    this.wakeWaiters();
  }

  /** Re-checks every pending waitForService. */
  private wakeWaiters(): void {
    if (this.waiters.size > 0) for (const check of [...this.waiters]) check();
  }

  waitForService(
    service: string,
    options: {
      readonly range?: string;
      readonly timeoutMs?: number;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<void> {
    let range: string;
    try {
      range = checkRange(options.range ?? "*", service);
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const ready = (): boolean => this.router.available(service, range) > 0;
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.waiters.delete(check);
        timer.clear();
        options.signal?.removeEventListener("abort", onAbort);
      };
      const check = (): void => {
        if (ready()) {
          cleanup();
          resolve();
        }
      };
      const onAbort = (): void => {
        cleanup();
        reject(new StrataError("CANCELLED", `waiting for ${service} was cancelled`));
      };
      const timer = this.clock.setTimer(() => {
        cleanup();
        reject(
          new StrataError(
            "UNAVAILABLE",
            `no node serving ${service}@${range} appeared within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  nodes(): NodeAnnouncement[] {
    const out: NodeAnnouncement[] = [];
    for (const member of this.membership.all()) {
      out.push(
        member.local
          ? this.announcement()
          : { ...member.announcement, status: member.status, inFlight: member.reportedInFlight },
      );
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  on(listener: (event: NodeEvent) => void): Disposable {
    this.listeners.add(listener);
    return { [Symbol.dispose]: () => this.listeners.delete(listener) };
  }

  emit(event: NodeEvent | ResilienceEvent): void {
    if (this.listeners.size === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error }, "node event listener threw");
      }
    }
  }

  inFlight(): number {
    return this.serving.inFlight;
  }

  telemetrySnapshot(): TelemetrySnapshot {
    const loop = eventLoopDelay();
    return {
      node: this.id,
      region: this.region,
      status: this.state === "running" && !this.ready ? "unready" : this.state,
      inFlight: this.serving.inFlight,
      ...(this.serving.concurrencyLimit === undefined
        ? {}
        : { concurrencyLimit: this.serving.concurrencyLimit }),
      cpu: processCpu(),
      windowSeconds: this.window.windowMs / 1000,
      actions: this.window.snapshot(),
      breakers: this.calling.breakers(),
      slos: this.slos.status(),
      heapUsedBytes: process.memoryUsage().heapUsed,
      eventLoopDelayP99Ms: loop.p99,
    };
  }

  private evaluateSlos(): void {
    this.sloTimer = this.clock.setTimer(() => {
      this.slos.evaluate();
      if (this.state === "running" || this.state === "draining") this.evaluateSlos();
    }, this.sloEvaluateEveryMs);
  }

  stats(): NodeStatsReport {
    return {
      ...this.counters,
      inFlight: this.serving.inFlight,
      concurrencyLimit: this.serving.concurrencyLimit,
      breakers: this.calling.breakers(),
    };
  }

  // ---- calling ---------------------------------------------------------------------------------

  client<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options?: NodeClientOptions,
  ): Client<S> {
    return this.calling.makeClient(contract, options, undefined);
  }

  makeClient<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options: ClientOptions | undefined,
    parent: ServerCall,
  ): Client<S> {
    return this.calling.makeClient(contract, options, parent);
  }

  call(
    service: string,
    action: string,
    input: unknown,
    options: UntypedCallOptions = {},
  ): Promise<unknown> {
    return this.calling.call(service, action, input, options);
  }

  onReply(id: number, reply: CallReply): void {
    this.calling.onReply(id, reply);
  }

  onRequest(request: CallRequest, respond: (reply: CallReply) => void): void {
    this.serving.handleRemote(request, respond);
  }

  onCancel(from: string, id: number): void {
    this.serving.cancel(from, id);
  }
}

/** Whether a service name is the built-in admin service (tools hide it from listings). */
export function isAdminService(name: string): boolean {
  return name === ADMIN_SERVICE;
}

/**
 * Creates a node. Call `start()` to join the cluster.
 *
 * @example
 * const network = createEmbeddedNetwork();
 * await using node = createNode({ transport: network.transport(), services: [catalogImpl] });
 * await node.start();
 * const product = await node.client(catalog).get({ id: "p-1" });
 */
export function createNode(options: NodeOptions): StrataNode {
  return new Node(options);
}

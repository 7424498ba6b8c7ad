import { StrataError, fromWireError, toStrataError } from "../errors/index.js";
import {
  silentLogger,
  systemClock,
  type CallReply,
  type CallRequest,
  type CallTarget,
  type Clock,
  type ControlMessage,
  type Logger,
  type NodeAnnouncement,
  type NodeStatus,
  type TraceContext,
  type Transport,
  type TransportHandlers,
} from "../ports/index.js";
import type { Client, ClientOptions } from "../service/client.js";
import type {
  ActionContract,
  ServiceContract,
  ServiceContractSpec,
  ServiceImplementation,
} from "../service/define-service.js";
import { validate } from "../service/schema.js";
import type { CallContext, CallOptions, Principal, RoutingStrategy } from "./context.js";
import { DeadlineQueue, type DeadlineItem } from "./deadline-queue.js";
import { Membership, type Member, type MembershipEvent } from "./membership.js";
import { Router, checkRange, type RouteSpec } from "./router.js";

/** Options for {@link createNode}. */
export interface NodeOptions {
  /** How this node reaches the others: `createEmbeddedNetwork().transport()` or a NATS transport. */
  readonly transport: Transport;
  /** Unique node id (letters, digits, `-`, `_`); default a random one. */
  readonly id?: string;
  /** Region the node runs in, for region-affine routing; default `"default"`. */
  readonly region?: string;
  readonly services?: readonly ServiceImplementation[];
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
}

/** Lifecycle state of a node. */
export type NodeState = "created" | "starting" | "running" | "draining" | "stopped";

/** What a node reports to observers. */
export type NodeEvent = MembershipEvent | { readonly type: "state"; readonly state: NodeState };

/** A node: hosts services, routes calls, takes part in membership. Dispose it to stop it. */
export interface StrataNode extends AsyncDisposable {
  readonly id: string;
  readonly region: string;
  readonly state: NodeState;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Adds a service; allowed before and after start. */
  serve(implementation: ServiceImplementation): void;
  start(signal?: AbortSignal): Promise<void>;
  /**
   * Drains and stops: stop taking calls, finish in-flight ones within the drain bound, leave the
   * cluster, disconnect. Idempotent.
   */
  stop(options?: { readonly drainTimeoutMs?: number }): Promise<void>;
  /** A typed client for a service contract. */
  client<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options?: ClientOptions,
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
  /** Subscribes to membership and state events; dispose the result to unsubscribe. */
  on(listener: (event: NodeEvent) => void): Disposable;
  /** Calls this node is serving right now. */
  inFlight(): number;
}

/** Options for {@link StrataNode.call}: call options plus routing choices. */
export interface UntypedCallOptions extends CallOptions, ClientOptions {}

interface Binding extends RouteSpec {
  /** `service.action`, for messages. */
  readonly what: string;
  readonly service: string;
  readonly action: string;
  readonly range: string;
  readonly strategy: RoutingStrategy;
  readonly preferLocal: boolean;
  readonly regionAffinity: boolean;
  readonly timeoutMs: number | undefined;
  readonly shardKey: ((input: never) => string) | undefined;
}

interface PendingCall extends DeadlineItem {
  readonly id: number;
  readonly binding: Binding;
  readonly member: Member | undefined;
  readonly budget: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** The callee's context when the call is served on this very node. */
  server: ServerCall | undefined;
  settled: boolean;
}

interface HostedAction {
  readonly contract: ActionContract;
  /** Labels for validation messages, built once. */
  readonly inputLabel: string;
  readonly outputLabel: string;
  readonly handler: (input: unknown, context: CallContext) => unknown;
}

interface HostedService {
  readonly implementation: ServiceImplementation;
  readonly version: string;
  readonly actions: Map<string, HostedAction>;
}

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

/** The call context a handler receives. One per inbound call; its signal is created on demand. */
class ServerCall implements CallContext, DeadlineItem {
  deadline: number;
  heapIndex = -1;
  done = false;
  /** Registered for cancels from another node (local calls are cancelled directly). */
  remote = false;
  private controller: AbortController | undefined;
  private abortReason: StrataError | undefined;
  private childLogger: Logger | undefined;

  private readonly node: Node;
  readonly request: CallRequest;
  readonly respond: (reply: CallReply) => void;
  readonly principal: Principal | undefined;

  constructor(
    node: Node,
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
  ) {
    this.node = node;
    this.request = request;
    this.respond = respond;
    this.principal = principal;
    this.deadline = deadline;
  }

  get service(): string {
    return this.request.service;
  }
  get action(): string {
    return this.request.action;
  }
  get nodeId(): string {
    return this.node.id;
  }
  get callerNode(): string {
    return this.request.from;
  }
  get trace(): TraceContext | undefined {
    return this.request.trace;
  }
  get meta(): Readonly<Record<string, string>> {
    return this.request.meta ?? EMPTY_META;
  }
  get idempotencyKey(): string | undefined {
    return this.request.idempotencyKey;
  }
  get logger(): Logger {
    return (this.childLogger ??= this.node.logger.child({
      service: this.request.service,
      action: this.request.action,
    }));
  }
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
      else if (!this.done) this.node.watchDeadline(this);
    }
    return this.controller.signal;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - this.node.clock.monotonic());
  }

  abort(reason: StrataError): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  client<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options?: ClientOptions,
  ): Client<S> {
    return this.node.makeClient(contract, options, this);
  }
}

const EMPTY_META: Readonly<Record<string, string>> = Object.freeze({});

class Node implements StrataNode, TransportHandlers {
  readonly id: string;
  readonly region: string;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  state: NodeState = "created";

  private readonly services = new Map<string, HostedService>();
  private readonly pending = new Map<number, PendingCall>();
  private readonly serving = new Map<string, Map<number, ServerCall>>();
  private readonly listeners = new Set<(event: NodeEvent) => void>();
  private readonly membership: Membership;
  private readonly router: Router;
  private readonly callDeadlines: DeadlineQueue<PendingCall>;
  private readonly serverDeadlines: DeadlineQueue<ServerCall>;
  private readonly defaultTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly deadAfterMs: number;
  private readonly drainTimeoutMs: number;
  private readonly validateOutput: boolean;
  private readonly routing: Required<NonNullable<NodeOptions["routing"]>>;
  private readonly startedAt: number;
  private incarnation: number;
  private nextId = 1;
  private serverInFlight = 0;
  private heartbeatTimer: { clear(): void } | undefined;
  private idleWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;
  private lastDiscover = -Infinity;
  private helloQueued = false;

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
    this.validateOutput = options.validateOutput ?? false;
    const strategy = options.routing?.strategy ?? "p2c";
    if (strategy !== "p2c" && strategy !== "round-robin") {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `unknown routing strategy "${String(strategy)}" (use "p2c" or "round-robin")`,
      );
    }
    this.routing = {
      strategy,
      preferLocal: options.routing?.preferLocal ?? true,
      regionAffinity: options.routing?.regionAffinity ?? true,
    };
    this.startedAt = this.clock.now();
    this.incarnation = this.startedAt * 1000 + Math.floor(this.clock.random() * 1000);
    this.membership = new Membership((event) => this.onMembership(event));
    const clock = this.clock;
    this.router = new Router(this.membership, this.region, () => clock.random());
    this.callDeadlines = new DeadlineQueue(this.clock, (call) => this.expire(call));
    this.serverDeadlines = new DeadlineQueue(this.clock, (call) =>
      call.abort(
        new StrataError("DEADLINE_EXCEEDED", `${call.service}.${call.action}: deadline exceeded`),
      ),
    );
    for (const implementation of options.services ?? []) this.serve(implementation);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  serve(implementation: ServiceImplementation): void {
    const contract = implementation.contract;
    if (this.state === "draining" || this.state === "stopped") {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `node ${this.id} is ${this.state}; cannot serve ${contract.name}`,
      );
    }
    if (this.services.has(contract.name)) {
      throw new StrataError("ALREADY_EXISTS", `node ${this.id} already serves ${contract.name}`);
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
        inputLabel: `${contract.name}.${name} input`,
        outputLabel: `${contract.name}.${name} output`,
      });
    }
    this.services.set(contract.name, { implementation, version: contract.version, actions });
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
      for (const service of this.services.values()) {
        await service.implementation.hooks.started?.(signal ?? new AbortController().signal);
      }
    } catch (error) {
      this.setState("stopped");
      await this.transport.close().catch(() => undefined);
      throw error;
    }
    for (const service of this.services.values()) {
      this.transport.joinGroup(groupOf(service.implementation.contract.name, service.version));
    }
    this.setState("running");
    this.announce();
    this.transport.broadcast({ t: "discover", id: this.id });
    this.scheduleHeartbeat();
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
    if (this.serverInFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimer(resolve, drainTimeoutMs);
        this.idleWaiters.push(() => {
          timer.clear();
          resolve();
        });
      });
    }
    const stragglers: ServerCall[] = [];
    for (const calls of this.serving.values())
      for (const call of calls.values()) stragglers.push(call);
    for (const pending of this.pending.values()) {
      if (pending.server !== undefined) stragglers.push(pending.server);
    }
    for (const call of stragglers) {
      if (call.done) continue;
      const error = new StrataError(
        "UNAVAILABLE",
        `node ${this.id} stopped before ${call.service}.${call.action} finished`,
        { details: { node: this.id, outcome: "unknown" } },
      );
      call.abort(error);
      this.finish(call, { ok: false, error: error.toWire() });
    }
    this.heartbeatTimer?.clear();
    this.transport.broadcast({ t: "bye", id: this.id, incarnation: this.incarnation });
    this.setState("stopped");
    for (const service of this.services.values()) {
      try {
        await service.implementation.hooks.stopped?.();
      } catch (error) {
        this.logger.error(
          { err: error, service: service.implementation.contract.name },
          "stopped hook failed",
        );
      }
    }
    for (const call of [...this.pending.values()]) {
      this.settleError(
        call,
        new StrataError("UNAVAILABLE", `node ${this.id} stopped`, {
          details: { outcome: "unknown" },
        }),
      );
    }
    this.callDeadlines.stop();
    this.serverDeadlines.stop();
    await this.transport.close();
  }

  private setState(state: NodeState): void {
    this.state = state;
    this.emit({ type: "state", state });
  }

  // ---- membership ------------------------------------------------------------------------------

  private status(): NodeStatus {
    return this.state === "running" ? "ready" : "draining";
  }

  private announcement(): NodeAnnouncement {
    return {
      id: this.id,
      region: this.region,
      incarnation: this.incarnation,
      status: this.status(),
      inFlight: this.serverInFlight,
      startedAt: this.startedAt,
      transport: this.transport.name,
      services: [...this.services.values()].map((s) => ({
        name: s.implementation.contract.name,
        version: s.version,
        actions: [...s.actions].map(([name, a]) => ({
          name,
          idempotent: a.contract.idempotent === true,
        })),
      })),
    };
  }

  /** Broadcasts this node's announcement; repeated requests within one tick coalesce. */
  private announce(): void {
    if (this.state === "running" || this.state === "draining") {
      this.membership.upsert(this.announcement(), this.clock.monotonic(), true);
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
    this.heartbeatTimer = this.clock.setTimer(() => {
      if (this.state !== "running" && this.state !== "draining") return;
      this.transport.broadcast({
        t: "heartbeat",
        id: this.id,
        status: this.status(),
        inFlight: this.serverInFlight,
        incarnation: this.incarnation,
      });
      this.membership.sweep(this.clock.monotonic(), this.deadAfterMs);
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
      this.serving.delete(event.id);
      for (const call of [...this.pending.values()]) {
        if (call.member?.id === event.id) {
          this.settleError(
            call,
            new StrataError(
              "UNAVAILABLE",
              `node ${event.id} left (${event.reason}) during ${call.binding.service}.${call.binding.action}`,
              { details: { node: event.id, reason: event.reason, outcome: "unknown" } },
            ),
          );
        }
      }
    }
    this.emit(event);
    if (this.waiters.size > 0) for (const check of [...this.waiters]) check();
  }

  private readonly waiters = new Set<() => void>();

  waitForService(
    service: string,
    options: {
      readonly range?: string;
      readonly timeoutMs?: number;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<void> {
    const range = checkRange(options.range ?? "*", service);
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

  private emit(event: NodeEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error }, "node event listener threw");
      }
    }
  }

  inFlight(): number {
    return this.serverInFlight;
  }

  // ---- calling ---------------------------------------------------------------------------------

  client<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options?: ClientOptions,
  ): Client<S> {
    return this.makeClient(contract, options, undefined);
  }

  makeClient<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options: ClientOptions | undefined,
    parent: ServerCall | undefined,
  ): Client<S> {
    const client: Record<string, (input: unknown, options?: CallOptions) => Promise<unknown>> = {};
    for (const [action, spec] of Object.entries(contract.actions)) {
      const binding = this.bind(
        contract.name,
        action,
        options,
        `^${contract.version}`,
        spec.shardKey?.bind(spec),
      );
      client[action] = (input, callOptions) => this.invoke(binding, input, callOptions, parent);
    }
    return client as Client<S>;
  }

  call(
    service: string,
    action: string,
    input: unknown,
    options: UntypedCallOptions = {},
  ): Promise<unknown> {
    let binding: Binding;
    try {
      binding = this.bind(service, action, options, "*", undefined);
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
    return this.invoke(binding, input, options, undefined);
  }

  private bind(
    service: string,
    action: string,
    options: ClientOptions | undefined,
    defaultRange: string,
    shardKey: ((input: never) => string) | undefined,
  ): Binding {
    if (options?.timeoutMs !== undefined) positive("timeoutMs", options.timeoutMs, 0);
    const strategy = options?.strategy ?? this.routing.strategy;
    if (strategy !== "p2c" && strategy !== "round-robin") {
      throw new StrataError("INVALID_ARGUMENT", `unknown routing strategy "${String(strategy)}"`);
    }
    return {
      what: `${service}.${action}`,
      service,
      action,
      range: checkRange(options?.version ?? defaultRange, service),
      strategy,
      preferLocal: options?.preferLocal ?? this.routing.preferLocal,
      regionAffinity: options?.regionAffinity ?? this.routing.regionAffinity,
      timeoutMs: options?.timeoutMs,
      shardKey,
      cache: undefined,
    };
  }

  private invoke(
    binding: Binding,
    input: unknown,
    options: CallOptions | undefined,
    parent: ServerCall | undefined,
  ): Promise<unknown> {
    if (this.state !== "running" && this.state !== "draining") {
      return Promise.reject(
        new StrataError("UNAVAILABLE", `node ${this.id} is ${this.state}; it cannot make calls`),
      );
    }
    const now = this.clock.monotonic();
    const budget = options?.timeoutMs ?? binding.timeoutMs ?? this.defaultTimeoutMs;
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

    let member: Member | undefined;
    let target: CallTarget;
    let version: string;
    try {
      if (options?.node !== undefined) {
        member = this.membership.get(options.node);
        const served = member?.announcement.services.find((s) => s.name === binding.service);
        if (member === undefined || served === undefined) {
          throw new StrataError(
            "UNAVAILABLE",
            `node ${options.node} is not known to serve ${binding.service}`,
            { details: { node: options.node } },
          );
        }
        target = member.target;
        version = served.version;
      } else if (options?.via === "group") {
        member = undefined;
        target = { kind: "group", group: groupOf(binding.service, binding.range) };
        version = "";
      } else {
        let shardKey = options?.shardKey;
        if (shardKey === undefined && binding.shardKey !== undefined) {
          try {
            shardKey = binding.shardKey(input as never);
          } catch (error) {
            throw new StrataError(
              "INVALID_ARGUMENT",
              `${what}: cannot derive the shard key from the input`,
              { cause: error },
            );
          }
        }
        const instance = this.router.pick(binding, shardKey);
        member = instance.member;
        target = member.target;
        version = instance.version;
      }
    } catch (error) {
      return Promise.reject(toStrataError(error, what));
    }

    const id = this.nextId++;
    const meta =
      parent?.request.meta === undefined
        ? options?.meta
        : options?.meta === undefined
          ? parent.request.meta
          : { ...parent.request.meta, ...options.meta };
    const request: CallRequest = {
      id,
      from: this.id,
      service: binding.service,
      version,
      action: binding.action,
      input,
      timeoutMs: deadline - now,
      trace: parent?.request.trace,
      meta,
      idempotencyKey: options?.idempotencyKey ?? parent?.request.idempotencyKey,
    };
    const principal = parent?.principal;
    return new Promise<unknown>((resolve, reject) => {
      const call: PendingCall = {
        id,
        binding,
        member,
        budget: deadline - now,
        deadline,
        heapIndex: -1,
        resolve,
        reject,
        signal,
        onAbort: undefined,
        server: undefined,
        settled: false,
      };
      this.pending.set(id, call);
      this.callDeadlines.push(call);
      if (member !== undefined) member.outstanding++;
      if (signal !== undefined) {
        call.onAbort = () =>
          this.abandon(call, new StrataError("CANCELLED", `${what}: cancelled by the caller`));
        signal.addEventListener("abort", call.onAbort, { once: true });
      }
      if (member?.local === true) {
        // Served right here: no transport, no registration for remote cancels.
        this.serve1(request, (reply) => this.settle(call, reply), principal, deadline, call);
      } else {
        this.transport.send(target, request);
      }
    });
  }

  /** Delivery of a reply (from the transport, or from a local call). */
  onReply(id: number, reply: CallReply): void {
    const call = this.pending.get(id);
    if (call !== undefined) this.settle(call, reply);
  }

  private settle(call: PendingCall, reply: CallReply): void {
    if (call.settled) return; // late reply after deadline or cancellation
    this.release(call);
    if (reply.ok) call.resolve(reply.output);
    else call.reject(fromWireError(reply.error));
  }

  private release(call: PendingCall): void {
    call.settled = true;
    this.pending.delete(call.id);
    this.callDeadlines.remove(call);
    if (call.member !== undefined) call.member.outstanding--;
    if (call.onAbort !== undefined) call.signal?.removeEventListener("abort", call.onAbort);
  }

  private settleError(call: PendingCall, error: StrataError): void {
    if (call.settled) return;
    this.release(call);
    call.reject(error);
  }

  /** The caller gives up on a call: fail it here and tell the callee to stop. */
  private abandon(call: PendingCall, error: StrataError): void {
    if (call.settled) return;
    this.settleError(call, error);
    if (call.server !== undefined) {
      const server = call.server;
      queueMicrotask(() => server.abort(error));
    } else if (call.member !== undefined && !call.member.local) {
      this.transport.cancel(call.member.id, call.id);
    }
  }

  private expire(call: PendingCall): void {
    const what = `${call.binding.service}.${call.binding.action}`;
    this.abandon(
      call,
      new StrataError(
        "DEADLINE_EXCEEDED",
        `${what}: deadline of ${Math.round(call.budget)} ms exceeded`,
        { details: { timeoutMs: Math.round(call.budget), node: call.member?.id ?? null } },
      ),
    );
  }

  // ---- serving ---------------------------------------------------------------------------------

  onRequest(request: CallRequest, respond: (reply: CallReply) => void): void {
    const deadline = this.clock.monotonic() + request.timeoutMs;
    const call = this.serve1(request, respond, undefined, deadline, undefined);
    if (call === undefined || call.done) return;
    // Register it so a cancel from the caller's node can find it.
    call.remote = true;
    let calls = this.serving.get(request.from);
    if (calls === undefined) {
      calls = new Map<number, ServerCall>();
      this.serving.set(request.from, calls);
    }
    calls.set(request.id, call);
  }

  onCancel(from: string, id: number): void {
    const call = this.serving.get(from)?.get(id);
    call?.abort(
      new StrataError("CANCELLED", `${call.service}.${call.action}: cancelled by the caller`),
    );
  }

  /** Admits, validates and runs one inbound call; returns its context unless it was refused. */
  private serve1(
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
    pending: PendingCall | undefined,
  ): ServerCall | undefined {
    const action = this.admit(request);
    if (action instanceof StrataError) {
      respond({ ok: false, error: action.toWire() });
      return undefined;
    }
    const call = new ServerCall(this, request, respond, principal, deadline);
    if (pending !== undefined) pending.server = call;
    this.serverInFlight++;
    try {
      const input = validate(action.contract.input, request.input, action.inputLabel);
      if (input instanceof Promise) {
        input.then(
          (value) => this.run(call, action, value),
          (failure: unknown) => this.fail(call, failure),
        );
      } else {
        this.run(call, action, input);
      }
    } catch (failure) {
      this.fail(call, failure);
    }
    return call;
  }

  private admit(request: CallRequest): HostedAction | StrataError {
    if (this.state !== "running") {
      return new StrataError(
        "UNAVAILABLE",
        `node ${this.id} is ${this.state === "draining" ? "draining" : "not serving"}`,
        { details: { node: this.id, reason: this.state } },
      );
    }
    const service = this.services.get(request.service);
    if (service === undefined) {
      return new StrataError("UNIMPLEMENTED", `node ${this.id} does not serve ${request.service}`, {
        details: { service: request.service },
      });
    }
    if (request.version !== "" && request.version !== service.version) {
      return new StrataError(
        "UNAVAILABLE",
        `node ${this.id} serves ${request.service}@${service.version}, not @${request.version}`,
        { details: { service: request.service, served: service.version } },
      );
    }
    const action = service.actions.get(request.action);
    if (action === undefined) {
      return new StrataError(
        "UNIMPLEMENTED",
        `${request.service} has no action "${request.action}"`,
        { details: { service: request.service, action: request.action } },
      );
    }
    if (request.timeoutMs <= 0) {
      return new StrataError(
        "DEADLINE_EXCEEDED",
        `${request.service}.${request.action}: arrived after its deadline`,
      );
    }
    return action;
  }

  private run(call: ServerCall, action: HostedAction, input: unknown): void {
    if (call.done) return;
    let result: unknown;
    try {
      result = action.handler(input, call);
    } catch (failure) {
      this.fail(call, failure);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (output) => this.succeed(call, action, output),
        (failure: unknown) => this.fail(call, failure),
      );
    } else {
      this.succeed(call, action, result);
    }
  }

  private succeed(call: ServerCall, action: HostedAction, output: unknown): void {
    if (!this.validateOutput) {
      this.finish(call, { ok: true, output });
      return;
    }
    try {
      const checked = validate(action.contract.output, output, action.outputLabel);
      if (checked instanceof Promise) {
        checked.then(
          (value) => this.finish(call, { ok: true, output: value }),
          (failure: unknown) => this.fail(call, outputError(call, failure)),
        );
      } else {
        this.finish(call, { ok: true, output: checked });
      }
    } catch (failure) {
      this.fail(call, outputError(call, failure));
    }
  }

  private fail(call: ServerCall, failure: unknown): void {
    const error = toStrataError(failure, `${call.service}.${call.action}`);
    if (error.code === "INTERNAL" || error.code === "UNKNOWN") {
      call.logger.error({ err: error.cause ?? error }, "handler failed");
    }
    this.finish(call, { ok: false, error: error.toWire() });
  }

  private finish(call: ServerCall, reply: CallReply): void {
    if (call.done) return;
    call.done = true;
    this.serverInFlight--;
    this.serverDeadlines.remove(call);
    // Per-caller maps stay (one per calling node) and are dropped when that node leaves.
    if (call.remote) this.serving.get(call.request.from)?.delete(call.request.id);
    try {
      call.respond(reply);
    } catch (error) {
      // An unencodable output (or one over the size limit) must still answer the caller.
      const failure = toStrataError(error, `${call.service}.${call.action} reply`);
      try {
        call.respond({ ok: false, error: failure.toWire() });
      } catch (second) {
        this.logger.error({ err: second }, "could not send a reply");
      }
    }
    if (this.serverInFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  watchDeadline(call: ServerCall): void {
    this.serverDeadlines.push(call);
  }
}

function outputError(call: ServerCall, failure: unknown): StrataError {
  const error = toStrataError(failure);
  return new StrataError("INTERNAL", `${call.service}.${call.action} returned an invalid output`, {
    cause: error,
  });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}

/** The queue group a service joins: one per service and major version. */
export function groupOf(service: string, versionOrRange: string): string {
  const major = /^[\^~]?(\d+)/.exec(versionOrRange)?.[1] ?? "any";
  return `${service}.v${major}`;
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

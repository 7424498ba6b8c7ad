import { ROOT_CONTEXT, type Context, type Span } from "@opentelemetry/api";
import type { StrataError } from "../errors/index.js";
import type { RpcSeries } from "../observability/telemetry.js";
import type { CallReply, CallRequest, Clock, Logger, TraceContext } from "../ports/index.js";
import type { Client, ClientOptions } from "../service/client.js";
import type { ServiceContract, ServiceContractSpec } from "../service/define-service.js";
import type { CallContext, Principal } from "./context.js";
import type { DeadlineItem } from "./deadline-queue.js";

/** What a {@link ServerCall} needs from the node that serves it. */
export interface ServerCallHost {
  readonly id: string;
  readonly clock: Clock;
  readonly logger: Logger;
  watchDeadline(call: ServerCall): void;
  makeClient<S extends ServiceContractSpec>(
    contract: ServiceContract<S>,
    options: ClientOptions | undefined,
    parent: ServerCall,
  ): Client<S>;
}

const EMPTY_META: Readonly<Record<string, string>> = Object.freeze({});

/** The call context a handler receives. One per inbound call; its signal is created on demand. */
export class ServerCall implements CallContext, DeadlineItem {
  deadline: number;
  heapIndex = -1;
  done = false;
  /** Registered for cancels from another node (local calls are cancelled directly). */
  remote = false;
  /** Monotonic time the call was admitted, for the serving-side concurrency limit. */
  readonly startedAt: number;
  /** True when the serving-side concurrency limit admitted it (and must be told it ended). */
  limited = false;
  /** An injected fault: run the handler but send no reply. */
  dropReply = false;
  /** The call's server span, the context it is active in, and its metric series. */
  span: Span | undefined;
  otelContext: Context = ROOT_CONTEXT;
  series: RpcSeries | undefined;
  private controller: AbortController | undefined;
  private abortReason: StrataError | undefined;
  private childLogger: Logger | undefined;
  private readonly host: ServerCallHost;
  readonly request: CallRequest;
  readonly respond: (reply: CallReply) => void;
  readonly principal: Principal | undefined;

  constructor(
    host: ServerCallHost,
    request: CallRequest,
    respond: (reply: CallReply) => void,
    principal: Principal | undefined,
    deadline: number,
    startedAt: number,
  ) {
    this.host = host;
    this.request = request;
    this.respond = respond;
    this.principal = principal;
    this.deadline = deadline;
    this.startedAt = startedAt;
  }

  get service(): string {
    return this.request.service;
  }
  get action(): string {
    return this.request.action;
  }
  get nodeId(): string {
    return this.host.id;
  }
  get callerNode(): string {
    return this.request.from;
  }
  get workload(): string | undefined {
    return this.request.workload;
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
    return (this.childLogger ??= this.host.logger.child({
      service: this.request.service,
      action: this.request.action,
    }));
  }
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
      else if (!this.done) this.host.watchDeadline(this);
    }
    return this.controller.signal;
  }

  /** True once the call was cancelled, timed out, or its node stopped. */
  get aborted(): boolean {
    return this.abortReason !== undefined;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - this.host.clock.monotonic());
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
    return this.host.makeClient(contract, options, this);
  }
}

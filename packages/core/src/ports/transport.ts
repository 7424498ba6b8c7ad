import type { WireError } from "../errors/index.js";
import type { Principal } from "../runtime/context.js";

/** W3C trace context (and W3C baggage) carried by a call or an event. */
export interface TraceContext {
  readonly traceparent: string;
  readonly tracestate?: string;
  /** W3C Baggage header value. */
  readonly baggage?: string;
}

/**
 * One call as it travels to the callee. Transports that cross a process boundary encode it with
 * the codec; the embedded transport hands it over as it is.
 */
export interface CallRequest {
  /** Caller-local call id; unique among the caller's calls in flight. */
  readonly id: number;
  /** Node id of the caller. */
  readonly from: string;
  readonly service: string;
  /** Exact version of the service the router chose on the target node. */
  readonly version: string;
  readonly action: string;
  readonly input: unknown;
  /** Time budget left, in milliseconds, when the call was sent (deadlines cross hops as budgets). */
  readonly timeoutMs: number;
  readonly trace?: TraceContext | undefined;
  readonly meta?: Readonly<Record<string, string>> | undefined;
  readonly idempotencyKey?: string | undefined;
  /**
   * Who the call acts for (an end user a gateway verified, a workload). A callee takes it from
   * the wire only when its transport says every peer was authenticated, or when a signed call
   * envelope proved which workload sent it (then only a user principal is taken, as vouched for
   * by that workload).
   */
  readonly principal?: Principal | undefined;
  /**
   * The calling workload's identity (a SPIFFE ID), set by the receiving transport after it
   * verified the request's signed envelope. The codec never reads it from the wire.
   */
  readonly workload?: string | undefined;
}

/** A request frame whose signed envelope verified. */
export interface OpenedFrame {
  /** The encoded request inside the envelope. */
  readonly frame: Uint8Array;
  /** The workload that signed it (a SPIFFE ID from a certificate the trust root vouches for). */
  readonly workload: string;
}

/**
 * Signs and verifies call envelopes, so that a callee learns the caller's workload identity from
 * a proof rather than from a field a client can set (the security block implements it with the
 * node's workload certificate). `binding` names where the frame travels (subject and reply
 * address): a sealed frame replayed anywhere else does not open.
 */
export interface CallSigner {
  /** Bytes the envelope adds to a frame at most. */
  readonly overheadBytes: number;
  /** The workload this signer signs as. */
  readonly workload: string;
  seal(frame: Uint8Array, binding: string): Uint8Array;
  /** The inner frame and its signer, or a rejection (`UNAUTHENTICATED` with `details.reason`). */
  open(sealed: Uint8Array, binding: string): OpenedFrame | Promise<OpenedFrame>;
}

/** The callee's answer. */
export type CallReply =
  | { readonly ok: true; readonly output: unknown }
  | { readonly ok: false; readonly error: WireError };

/** Where a request goes: a chosen node, or any member of a service's queue group. */
export type CallTarget =
  | { readonly kind: "node"; readonly node: string }
  | { readonly kind: "group"; readonly group: string };

/** Membership messages nodes broadcast to each other. */
export type ControlMessage =
  | { readonly t: "hello"; readonly node: NodeAnnouncement }
  | {
      readonly t: "heartbeat";
      readonly id: string;
      readonly status: NodeStatus;
      readonly inFlight: number;
      readonly incarnation: number;
    }
  | { readonly t: "bye"; readonly id: string; readonly incarnation: number }
  | { readonly t: "discover"; readonly id: string };

/**
 * Status of a node as the cluster sees it: only `ready` nodes receive routed calls; `unready`
 * nodes are up but failing a required health check; `draining` nodes are shutting down.
 */
export type NodeStatus = "ready" | "unready" | "draining";

/** One action as announced to the cluster. */
export interface ActionAnnouncement {
  readonly name: string;
  readonly idempotent: boolean;
}

/** One service a node hosts, as announced to the cluster. */
export interface ServiceAnnouncement {
  readonly name: string;
  readonly version: string;
  readonly actions: readonly ActionAnnouncement[];
}

/** What a node tells the cluster about itself. */
export interface NodeAnnouncement {
  readonly id: string;
  readonly region: string;
  /** Changes every time a node with this id starts, so a restarted node is told from its old self. */
  readonly incarnation: number;
  readonly status: NodeStatus;
  readonly inFlight: number;
  readonly startedAt: number;
  readonly transport: string;
  readonly services: readonly ServiceAnnouncement[];
}

/** What the runtime gives a transport to deliver inbound traffic. */
export interface TransportHandlers {
  /** A request for this node; `respond` must be called at most once. */
  onRequest(request: CallRequest, respond: (reply: CallReply) => void): void;
  /** The reply to one of this node's requests (by call id), or a transport-made error. */
  onReply(id: number, reply: CallReply): void;
  /** The caller gave up on a call it sent here. */
  onCancel(from: string, id: number): void;
  onControl(message: ControlMessage): void;
}

/**
 * The port every transport implements. The runtime owns call state (pending calls, deadlines,
 * routing); a transport only moves messages and reports delivery failures through `onReply`.
 */
export interface Transport {
  /** Short name shown by tools, for example `embedded` or `nats`. */
  readonly name: string;
  /** Largest encoded message the transport accepts, in bytes. */
  readonly maxPayload: number;
  /**
   * How many times this transport lost its own connection so far (0 for transports that cannot).
   * A call that fails while this changes says nothing about the node it was sent to.
   */
  readonly interruptions?: number;
  /**
   * True when every peer that can send to this node was authenticated (in-process, or mutual TLS
   * the server enforces): only then is a request's `principal` believed.
   */
  readonly authenticated?: boolean;
  /** Connects and starts delivering traffic for `nodeId` to `handlers`. */
  start(nodeId: string, handlers: TransportHandlers, signal?: AbortSignal): Promise<void>;
  /**
   * Sends a request. Delivery failures (no such node, payload too large, disconnected) come back as
   * an error reply through `onReply`, never as a throw.
   */
  send(target: CallTarget, request: CallRequest): void;
  /** Tells `node` that call `id` from this node is abandoned. Best effort. */
  cancel(node: string, id: number): void;
  /** Sends a membership message to every node. Best effort. */
  broadcast(message: ControlMessage): void;
  /** Joins the queue group for `group` so that group-addressed calls can reach this node. */
  joinGroup(group: string): void;
  /** Leaves every queue group (used while draining). */
  leaveGroups(): void;
  /** Flushes what is buffered and disconnects. */
  close(): Promise<void>;
}

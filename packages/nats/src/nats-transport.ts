import {
  connect,
  type ConnectionOptions,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import {
  StrataError,
  createCodec,
  toStrataError,
  silentLogger,
  type CallReply,
  type CallSigner,
  type CallRequest,
  type CallTarget,
  type Codec,
  type ControlMessage,
  type Logger,
  type OpenedFrame,
  type Transport,
  type TransportHandlers,
} from "@strata/core";
import { checkServerVersion } from "./server-version.js";

/** Options for {@link createNatsTransport}. */
export interface NatsTransportOptions {
  /** One or more `nats://host:port` URLs (a comma-separated string is accepted too). */
  readonly servers: string | readonly string[];
  /**
   * Namespace of the Strata cluster on this NATS system; nodes see only nodes of the same
   * cluster. Letters, digits, `-` and `_`; default `"default"`.
   */
  readonly cluster?: string;
  /** Connection name shown by the NATS server's monitoring. */
  readonly name?: string;
  /** Frame limit in bytes; never above the server's `max_payload`. Default: the server's. */
  readonly maxFrameBytes?: number;
  /**
   * Mutual TLS with the NATS servers (PEM): this node's certificate chain (leaf first) and key,
   * and the CA bundle the servers' certificates chain to. The connection then fails unless the
   * server presents a certificate from that CA, and servers with `verify: true` refuse clients
   * without one from theirs. See `strata ca issue`.
   */
  readonly tls?: NatsTlsOptions;
  /**
   * Signs every request this node sends and verifies every request it receives (see the security
   * block's `createWorkloadIdentity`): callees then learn the calling workload from a proof, and a
   * user principal on the wire is believed only as vouched for by a verified workload. Without a
   * signer, calls from other nodes are anonymous, whatever they claim.
   */
  readonly signer?: CallSigner;
  /**
   * With a signer: also accept unsigned requests, as anonymous calls (for rolling a signer out
   * across a cluster). Default false: an unsigned request is refused with `UNAUTHENTICATED`.
   */
  readonly acceptUnsigned?: boolean;
  /** Extra nats.js connection options (credentials, reconnect tuning). */
  readonly connection?: Omit<ConnectionOptions, "servers" | "name">;
  readonly logger?: Logger;
}

/**
 * Mutual TLS material, as PEM text or as file paths. Files are read again at every (re)connect,
 * so a renewed certificate written over them is used from the next connection on; live
 * connections are not interrupted.
 */
export type NatsTlsOptions = (
  | { readonly cert: string; readonly key: string; readonly ca: string }
  | { readonly certFile: string; readonly keyFile: string; readonly caFile: string }
) & {
  /**
   * Key exchange groups to offer, most preferred first (`X25519MLKEM768:X25519:P-256`); see the
   * security block's `preferredTlsGroups`. Default: Node's.
   */
  readonly ecdhCurve?: string;
};

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

function splitServers(servers: string | readonly string[]): string[] {
  const list = (typeof servers === "string" ? servers.split(",") : [...servers])
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0) {
    throw new StrataError("INVALID_ARGUMENT", "NATS transport: no server URL given");
  }
  for (const url of list) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(url) && !/^[^\s:/]+:\d+$/.test(url)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `NATS transport: "${url}" is not a server URL such as nats://127.0.0.1:4222`,
      );
    }
  }
  return list;
}

function unavailable(message: string, details: Record<string, unknown> = {}): CallReply {
  return { ok: false, error: new StrataError("UNAVAILABLE", message, { details }).toWire() };
}

/**
 * Subjects, all under `strata.<cluster>.` and kept short because every publish encodes them:
 * `n.<node>` requests to a node, `g.<service>.v<major>` queue groups, `r.<node>.<call id>`
 * replies, `x.<node>` cancels, `ctl` membership.
 *
 * A transport over NATS core request/reply. Each node listens on its own subject and on a queue
 * group per service; replies come back on one wildcard subscription per connection, with the call
 * id in the reply subject, so no per-call subscription or timer is needed.
 */
class NatsTransport implements Transport {
  readonly name = "nats";
  private readonly servers: string[];
  private readonly cluster: string;
  private readonly options: NatsTransportOptions;
  private readonly logger: Logger;
  private nc: NatsConnection | undefined;
  private codec: Codec | undefined;
  private handlers: TransportHandlers | undefined;
  private nodeId = "";
  private prefix = "";
  private replyPrefix = "";
  private readonly groups = new Map<string, Subscription>();
  private closed = false;
  private lost = 0;
  /**
   * True once connected over TLS with a client certificate to a server that verifies client
   * certificates: only CA-authenticated workloads can then publish to this node. That keeps
   * strangers out but does not tell a callee which workload published a request, so the
   * transport never reports its peers as authenticated: workload identity comes from the signer.
   */
  mutualTls = false;
  /** Requests refused because their envelope was missing or did not verify. */
  refusedEnvelopes = 0;

  constructor(options: NatsTransportOptions) {
    this.servers = splitServers(options.servers);
    this.cluster = options.cluster ?? "default";
    if (!TOKEN.test(this.cluster)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `NATS transport: cluster "${this.cluster}" must match ${TOKEN.source}`,
      );
    }
    if (
      options.maxFrameBytes !== undefined &&
      !(Number.isInteger(options.maxFrameBytes) && options.maxFrameBytes >= 64)
    ) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        "NATS transport: maxFrameBytes must be an integer >= 64",
      );
    }
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  get interruptions(): number {
    return this.lost;
  }

  get maxPayload(): number {
    return this.codec?.maxFrameBytes ?? this.options.maxFrameBytes ?? 1024 * 1024;
  }

  /** The underlying connection, for adapters that share it (JetStream, KV). */
  get connection(): NatsConnection | undefined {
    return this.nc;
  }

  async start(nodeId: string, handlers: TransportHandlers, signal?: AbortSignal): Promise<void> {
    if (this.nc !== undefined)
      throw new StrataError("FAILED_PRECONDITION", "NATS transport already started");
    signal?.throwIfAborted();
    let nc: NatsConnection;
    try {
      nc = await connect({
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        // nats.js defaults (a ping every 2 minutes, 20 s to connect) leave a node attached to a
        // black-holed server, one that accepts packets and never answers, for minutes; these
        // notice it in about 15 s and give up on an unanswered connect in 5.
        pingInterval: 5_000,
        maxPingOut: 3,
        timeout: 5_000,
        ...this.options.connection,
        ...(this.options.tls === undefined ? {} : { tls: { ...this.options.tls } }),
        servers: this.servers,
        name: this.options.name ?? `strata:${nodeId}`,
      });
    } catch (error) {
      throw new StrataError(
        "UNAVAILABLE",
        `cannot connect to NATS at ${this.servers.join(",")}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    try {
      checkServerVersion(nc.info?.version);
      this.mutualTls =
        this.options.tls !== undefined &&
        nc.info?.tls_required === true &&
        nc.info.tls_verify === true;
      signal?.throwIfAborted();
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw error;
    }
    // The envelope travels around the frame, so frames leave room for it under the server limit.
    const serverMax =
      (nc.info?.max_payload ?? 1024 * 1024) - (this.options.signer?.overheadBytes ?? 0);
    this.codec = createCodec({
      maxFrameBytes: Math.min(serverMax, this.options.maxFrameBytes ?? serverMax),
    });
    this.nc = nc;
    this.nodeId = nodeId;
    this.handlers = handlers;
    this.prefix = `strata.${this.cluster}.`;
    this.replyPrefix = `${this.prefix}r.${nodeId}.`;

    nc.subscribe(`${this.prefix}n.${nodeId}`, {
      callback: (_err, msg) => this.onRequestMsg(msg),
    });
    nc.subscribe(`${this.prefix}x.${nodeId}`, {
      callback: (_err, msg) => this.onCancelMsg(msg),
    });
    nc.subscribe(`${this.replyPrefix}*`, { callback: (_err, msg) => this.onReplyMsg(msg) });
    nc.subscribe(`${this.prefix}ctl`, { callback: (_err, msg) => this.onControlMsg(msg) });
    await nc.flush();
    void this.watchStatus(nc);
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const status of nc.status()) {
        if (status.type === "disconnect" || status.type === "reconnecting") this.lost++;
        if (
          status.type === "disconnect" ||
          status.type === "reconnect" ||
          status.type === "error"
        ) {
          this.logger.warn(
            { nats: status.type, server: "server" in status ? status.server : undefined },
            "NATS connection status changed",
          );
        }
      }
    } catch {
      // The status iterator ends when the connection closes.
    }
  }

  send(target: CallTarget, request: CallRequest): void {
    const nc = this.nc;
    const codec = this.codec;
    const handlers = this.handlers;
    if (nc === undefined || codec === undefined || handlers === undefined || this.closed) {
      const h = handlers;
      if (h !== undefined)
        queueMicrotask(() => h.onReply(request.id, unavailable("NATS transport is closed")));
      return;
    }
    let frame: Uint8Array;
    try {
      frame = codec.encodeRequest(request);
    } catch (error) {
      const failure = toStrataError(error, "cannot encode request");
      queueMicrotask(() => handlers.onReply(request.id, { ok: false, error: failure.toWire() }));
      return;
    }
    const subject =
      target.kind === "node" ? `${this.prefix}n.${target.node}` : `${this.prefix}g.${target.group}`;
    const reply = this.replyPrefix + request.id;
    try {
      const signer = this.options.signer;
      if (signer !== undefined) frame = signer.seal(frame, `${subject}\n${reply}`);
      nc.publish(subject, frame, { reply });
    } catch (error) {
      queueMicrotask(() =>
        handlers.onReply(
          request.id,
          unavailable(
            `cannot publish to NATS: ${error instanceof Error ? error.message : String(error)}`,
          ),
        ),
      );
    }
  }

  private onRequestMsg(msg: Msg): void {
    const signer = this.options.signer;
    if (signer === undefined) {
      this.acceptRequest(msg, msg.data, undefined);
      return;
    }
    const replyTo = msg.reply ?? "";
    let opened: OpenedFrame | Promise<OpenedFrame>;
    try {
      opened = signer.open(msg.data, `${msg.subject}\n${replyTo}`);
    } catch (error) {
      this.refuseEnvelope(msg, error);
      return;
    }
    if (opened instanceof Promise) {
      opened.then(
        (o) => this.acceptRequest(msg, o.frame, o.workload),
        (error: unknown) => this.refuseEnvelope(msg, error),
      );
    } else {
      this.acceptRequest(msg, opened.frame, opened.workload);
    }
  }

  /** A request whose envelope is missing or bad: refused (or, unsigned, let in when allowed). */
  private refuseEnvelope(msg: Msg, error: unknown): void {
    const failure = toStrataError(error, "call envelope");
    const unsigned = failure.code === "UNAUTHENTICATED" && failure.details.reason === "unsigned";
    if (unsigned && this.options.acceptUnsigned === true) {
      this.acceptRequest(msg, msg.data, undefined);
      return;
    }
    this.refusedEnvelopes++;
    this.logger.warn(
      { subject: msg.subject, code: failure.code, reason: failure.details.reason },
      "refused a request whose envelope did not verify",
    );
    const replyTo = msg.reply ?? "";
    if (replyTo.length > 0) this.publishReply(replyTo, { ok: false, error: failure.toWire() });
  }

  private acceptRequest(msg: Msg, frame: Uint8Array, workload: string | undefined): void {
    const codec = this.codec;
    const handlers = this.handlers;
    if (codec === undefined || handlers === undefined || this.closed) return;
    const replyTo = msg.reply;
    let request: CallRequest;
    try {
      const decoded = codec.decodeRequest(frame);
      request = workload === undefined ? decoded : { ...decoded, workload };
    } catch (error) {
      const failure = toStrataError(error, "malformed request");
      this.logger.warn({ subject: msg.subject, code: failure.code }, "refused a malformed request");
      if (replyTo !== undefined && replyTo.length > 0)
        this.publishReply(replyTo, { ok: false, error: failure.toWire() });
      return;
    }
    if (replyTo === undefined || replyTo.length === 0) {
      this.logger.warn({ subject: msg.subject }, "refused a request without a reply subject");
      return;
    }
    handlers.onRequest(request, (reply) => this.publishReply(replyTo, reply, true));
  }

  /** Publishes a reply; with `strict`, encoding errors propagate so the runtime can answer with them. */
  private publishReply(replyTo: string, reply: CallReply, strict = false): void {
    const nc = this.nc;
    const codec = this.codec;
    if (nc === undefined || codec === undefined || nc.isClosed()) return;
    let frame: Uint8Array;
    try {
      frame = codec.encodeReply(reply);
    } catch (error) {
      if (strict) throw error;
      return;
    }
    nc.publish(replyTo, frame);
  }

  private onReplyMsg(msg: Msg): void {
    const handlers = this.handlers;
    const codec = this.codec;
    if (handlers === undefined || codec === undefined) return;
    const id = Number(msg.subject.slice(this.replyPrefix.length));
    if (!Number.isSafeInteger(id)) return;
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      handlers.onReply(
        id,
        unavailable("no responders: the target is not listening", { reason: "no-responders" }),
      );
      return;
    }
    let reply: CallReply;
    try {
      reply = codec.decodeReply(msg.data);
    } catch (error) {
      const failure = toStrataError(error, "malformed reply");
      reply = {
        ok: false,
        error: new StrataError(
          "INTERNAL",
          `malformed reply from peer: ${failure.message}`,
        ).toWire(),
      };
    }
    handlers.onReply(id, reply);
  }

  private onCancelMsg(msg: Msg): void {
    const handlers = this.handlers;
    if (handlers === undefined || this.codec === undefined) return;
    try {
      const value = this.codec.decode(msg.data);
      if (Array.isArray(value) && typeof value[0] === "string" && typeof value[1] === "number") {
        handlers.onCancel(value[0], value[1]);
      }
    } catch {
      // A malformed cancel is dropped: cancellation is best effort.
    }
  }

  private onControlMsg(msg: Msg): void {
    const handlers = this.handlers;
    const codec = this.codec;
    if (handlers === undefined || codec === undefined) return;
    let message: ControlMessage;
    try {
      message = codec.decodeControl(msg.data);
    } catch (error) {
      this.logger.warn({ err: error }, "dropped a malformed control message");
      return;
    }
    handlers.onControl(message);
  }

  cancel(node: string, id: number): void {
    const nc = this.nc;
    if (nc === undefined || this.codec === undefined || this.closed) return;
    nc.publish(`${this.prefix}x.${node}`, this.codec.encode([this.nodeId, id]));
  }

  broadcast(message: ControlMessage): void {
    const nc = this.nc;
    if (nc === undefined || this.codec === undefined || this.closed) return;
    try {
      nc.publish(`${this.prefix}ctl`, this.codec.encodeControl(message));
    } catch (error) {
      this.logger.warn({ err: error }, "could not broadcast a control message");
    }
  }

  joinGroup(group: string): void {
    const nc = this.nc;
    if (nc === undefined || this.groups.has(group)) return;
    const subject = `${this.prefix}g.${group}`;
    this.groups.set(
      group,
      nc.subscribe(subject, { queue: subject, callback: (_err, msg) => this.onRequestMsg(msg) }),
    );
  }

  leaveGroups(): void {
    for (const subscription of this.groups.values()) subscription.unsubscribe();
    this.groups.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const nc = this.nc;
    if (nc === undefined || nc.isClosed()) return;
    try {
      await nc.flush();
    } catch {
      // Flushing a connection that is down fails; closing still proceeds.
    }
    await nc.close();
  }
}

/**
 * Creates a transport over NATS (server >= 2.10; older servers are refused at connect time).
 *
 * @example
 * const node = createNode({ transport: createNatsTransport({ servers: "nats://127.0.0.1:4222" }) });
 */
/** A NATS transport, with what adapters and reports read from it. */
export type NatsTransportHandle = Transport & {
  /** The underlying connection, for adapters that share it (JetStream, KV). */
  readonly connection: NatsConnection | undefined;
  /** Connected with a client certificate to a server that verifies client certificates. */
  readonly mutualTls: boolean;
  /** Requests refused because their envelope was missing or did not verify. */
  readonly refusedEnvelopes: number;
};

export function createNatsTransport(options: NatsTransportOptions): NatsTransportHandle {
  return new NatsTransport(options);
}

import { createCodec, type Codec } from "../../codec/index.js";
import { StrataError } from "../../errors/index.js";
import type {
  CallReply,
  CallRequest,
  CallTarget,
  ControlMessage,
  Transport,
  TransportHandlers,
} from "../../ports/index.js";

/** Options for {@link createEmbeddedNetwork}. */
export interface EmbeddedNetworkOptions {
  /**
   * Encode and decode every message as the wire transports do, for exact parity with them
   * (size limits, what survives serialisation). Off by default: messages are handed over by
   * reference, as in-process calls are, so handlers must not mutate their inputs.
   */
  readonly serialize?: boolean;
  /** Frame limit when `serialize` is on; default 1 MiB. */
  readonly maxFrameBytes?: number;
  /** Picks a member of a queue group; default uniform random. */
  readonly random?: () => number;
}

/** A set of nodes in one process, connected in memory. Faults can be injected between them. */
export interface EmbeddedNetwork {
  /** A transport for one node of this network. */
  transport(): Transport;
  /** Ids of the nodes attached right now. */
  nodes(): string[];
  /**
   * Simulates a crash of `nodeId`'s process as seen by the others: it vanishes from the network at
   * once, and nothing more goes in or out of it (replies in flight are lost).
   */
  kill(nodeId: string): void;
  /** Cuts (or heals) the links between two groups of nodes, in both directions. */
  partition(a: readonly string[], b: readonly string[]): void;
  /** Removes every partition. */
  heal(): void;
}

class Network implements EmbeddedNetwork {
  readonly endpoints = new Map<string, Endpoint>();
  readonly groups = new Map<string, Set<string>>();
  private readonly cuts = new Set<string>();
  readonly codec: Codec | undefined;
  readonly random: () => number;
  readonly maxPayload: number;

  constructor(options: EmbeddedNetworkOptions) {
    this.codec =
      options.serialize === true ? createCodec(maybeLimit(options.maxFrameBytes)) : undefined;
    this.maxPayload = this.codec?.maxFrameBytes ?? Number.MAX_SAFE_INTEGER;
    // The default picks without touching global randomness; a seeded source can be passed in.
    let state = 0x2545f491;
    this.random =
      options.random ??
      (() => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        return (state >>> 0) / 4294967296;
      });
  }

  transport(): Transport {
    return new Endpoint(this);
  }

  nodes(): string[] {
    return [...this.endpoints.keys()];
  }

  kill(nodeId: string): void {
    const endpoint = this.endpoints.get(nodeId);
    endpoint?.detach();
  }

  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a)
      for (const y of b) if (x !== y) this.cuts.add(`${x}\u0000${y}`).add(`${y}\u0000${x}`);
  }

  heal(): void {
    this.cuts.clear();
  }

  linked(from: string, to: string): boolean {
    return this.cuts.size === 0 || !this.cuts.has(`${from}\u0000${to}`);
  }
}

function maybeLimit(maxFrameBytes: number | undefined): { maxFrameBytes?: number } {
  return maxFrameBytes === undefined ? {} : { maxFrameBytes };
}

function unavailable(message: string, details: Record<string, unknown>): CallReply {
  return { ok: false, error: new StrataError("UNAVAILABLE", message, { details }).toWire() };
}

class Endpoint implements Transport {
  readonly name = "embedded";
  /** Every peer is in this process: trusted code. */
  readonly authenticated = true;
  readonly maxPayload: number;
  nodeId = "";
  handlers: TransportHandlers | undefined;
  alive = false;
  private readonly joined = new Set<string>();

  private readonly network: Network;

  constructor(network: Network) {
    this.network = network;
    this.maxPayload = network.maxPayload;
  }

  start(nodeId: string, handlers: TransportHandlers): Promise<void> {
    if (this.alive)
      return Promise.reject(new StrataError("FAILED_PRECONDITION", "transport already started"));
    if (this.network.endpoints.has(nodeId)) {
      return Promise.reject(
        new StrataError("ALREADY_EXISTS", `a node with id ${nodeId} is already on this network`),
      );
    }
    this.nodeId = nodeId;
    this.handlers = handlers;
    this.alive = true;
    this.network.endpoints.set(nodeId, this);
    return Promise.resolve();
  }

  send(target: CallTarget, request: CallRequest): void {
    const handlers = this.handlers;
    if (handlers === undefined) return;
    const peer = this.resolve(target);
    if (!this.alive || peer === undefined || !this.network.linked(this.nodeId, peer.nodeId)) {
      const where = target.kind === "node" ? `node ${target.node}` : `group ${target.group}`;
      const reply = unavailable(`no responders: ${where} is unreachable`, { target: where });
      queueMicrotask(() => handlers.onReply(request.id, reply));
      return;
    }
    let delivered = request;
    const codec = this.network.codec;
    if (codec !== undefined) {
      try {
        delivered = codec.decodeRequest(codec.encodeRequest(request));
      } catch (error) {
        const failure =
          error instanceof StrataError ? error : new StrataError("INTERNAL", String(error));
        queueMicrotask(() => handlers.onReply(request.id, { ok: false, error: failure.toWire() }));
        return;
      }
    }
    const id = request.id;
    peer.handlers?.onRequest(delivered, (reply) => {
      if (!this.alive || !peer.alive || !this.network.linked(peer.nodeId, this.nodeId)) return;
      // Throws (size limit, unencodable) reach the callee runtime, which answers with the error.
      const received = codec === undefined ? reply : codec.decodeReply(codec.encodeReply(reply));
      handlers.onReply(id, received);
    });
  }

  cancel(node: string, id: number): void {
    const peer = this.network.endpoints.get(node);
    if (!this.alive || peer === undefined || !this.network.linked(this.nodeId, node)) return;
    const from = this.nodeId;
    queueMicrotask(() => peer.handlers?.onCancel(from, id));
  }

  broadcast(message: ControlMessage): void {
    if (!this.alive) return;
    const codec = this.network.codec;
    const from = this.nodeId;
    for (const peer of this.network.endpoints.values()) {
      if (peer === this || !this.network.linked(from, peer.nodeId)) continue;
      const delivered =
        codec === undefined ? message : codec.decodeControl(codec.encodeControl(message));
      queueMicrotask(() => {
        if (peer.alive && this.network.linked(from, peer.nodeId))
          peer.handlers?.onControl(delivered);
      });
    }
  }

  joinGroup(group: string): void {
    let members = this.network.groups.get(group);
    if (members === undefined) this.network.groups.set(group, (members = new Set()));
    members.add(this.nodeId);
    this.joined.add(group);
  }

  leaveGroups(): void {
    for (const group of this.joined) this.network.groups.get(group)?.delete(this.nodeId);
    this.joined.clear();
  }

  close(): Promise<void> {
    this.detach();
    return Promise.resolve();
  }

  detach(): void {
    if (!this.alive) return;
    this.leaveGroups();
    this.alive = false;
    if (this.network.endpoints.get(this.nodeId) === this)
      this.network.endpoints.delete(this.nodeId);
  }

  private resolve(target: CallTarget): Endpoint | undefined {
    if (target.kind === "node") return this.network.endpoints.get(target.node);
    const members = this.network.groups.get(target.group);
    if (members === undefined || members.size === 0) return undefined;
    const ids = [...members].filter((id) => this.network.linked(this.nodeId, id));
    const id = ids[Math.floor(this.network.random() * ids.length)];
    return id === undefined ? undefined : this.network.endpoints.get(id);
  }
}

/**
 * Creates an in-process network. Every node of an embedded cluster takes a transport from it.
 *
 * @example
 * const network = createEmbeddedNetwork();
 * const a = createNode({ transport: network.transport(), id: "a" });
 */
export function createEmbeddedNetwork(options: EmbeddedNetworkOptions = {}): EmbeddedNetwork {
  return new Network(options);
}

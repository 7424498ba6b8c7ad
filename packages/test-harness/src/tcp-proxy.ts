import { connect, createServer, type Server, type Socket } from "node:net";
import { seededRandom } from "@strata/core";

/**
 * Faults added to every chunk a proxy forwards, in both directions.
 *
 * TCP delivers every byte, in order, or breaks the connection; a proxy between two TCP endpoints
 * can only hold bytes back. So `delayMs` and `jitterMs` hold each chunk for
 * `delayMs ± jitterMs` (uniform, never below zero) and `loss` models what a lost segment costs a
 * TCP connection: the chunk (and, to keep order, everything behind it) waits one retransmission
 * timeout. Order within a connection is always kept: a chunk is never delivered before the chunk
 * read before it, so jitter reorders data only across connections, never within one.
 */
export interface LinkFaults {
  /** Added one-way latency per chunk, in ms. */
  readonly delayMs: number;
  /** Spread around `delayMs`, in ms (uniform in [delay - jitter, delay + jitter], at least 0). */
  readonly jitterMs: number;
  /**
   * Probability (0..1) that a chunk is "lost": it is then held for a retransmission timeout of
   * 200 ms, doubling for each further consecutive loss in the same direction of the same
   * connection, up to {@link MAX_RTO_MS}.
   */
  readonly loss: number;
}

/** How a cut link behaves; see {@link TcpProxy.cut}. */
export type CutMode = "blackhole" | "reset";

/** Counters of a {@link TcpProxy} since it started. */
export interface TcpProxyStats {
  /** Connections accepted and forwarded (or held, during a black-hole cut). */
  readonly connections: number;
  /** Connections open now. */
  readonly open: number;
  /** Bytes delivered to the target. */
  readonly bytesUp: number;
  /** Bytes delivered back to clients. */
  readonly bytesDown: number;
  /** Connections reset on arrival because the link was cut in `reset` mode. */
  readonly refused: number;
}

/**
 * A TCP forwarder on 127.0.0.1 that can be cut, healed and slowed, without privileges (no
 * iptables, no tc). Put one on each link of a system under test and break links on purpose.
 * Dispose it (or call {@link TcpProxy.close}) to destroy every connection and free the port.
 */
export interface TcpProxy extends AsyncDisposable {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:<port>`: what clients of the proxied service connect to. */
  readonly url: string;
  readonly target: { readonly host: string; readonly port: number };
  /**
   * Cuts the link.
   *
   * - `blackhole` (the default): open connections stop forwarding in both directions (the proxy
   *   stops reading, so senders block once the socket buffers fill, as they would with no
   *   acknowledgements); new connections are accepted but never reach the target.
   * - `reset`: every open connection is reset (both sides see ECONNRESET or EOF) and new ones are
   *   reset on arrival. The listener keeps its port, so a client sees a reset connection rather
   *   than ECONNREFUSED.
   *
   * Cutting a cut link again switches its mode.
   */
  cut(mode?: CutMode): void;
  /**
   * Forwards again. Connections that lived through a black-hole cut are reset on heal, both to
   * the client and to the target, as a peer whose retransmissions timed out would; their held
   * bytes are dropped. (Resuming them would be the other choice, but a real partition long enough
   * to matter ends with broken connections, and a resumed one would hide reconnection paths.)
   * New connections are forwarded.
   */
  heal(): void;
  /** Sets some of the faults; those not given keep their values. Applies to chunks read from now on. */
  set(faults: Partial<LinkFaults>): void;
  /** No latency, jitter or loss. Does not heal a cut. */
  clear(): void;
  /** The faults in force. */
  readonly faults: LinkFaults;
  readonly isCut: boolean;
  stats(): TcpProxyStats;
  /** Destroys every connection and stops listening; the port is free once this resolves. */
  close(): Promise<void>;
}

/** Options for {@link startTcpProxy}. */
export interface TcpProxyOptions {
  /** Where to forward; host defaults to 127.0.0.1. */
  readonly target: { readonly host?: string; readonly port: number };
  /** For logs and test messages; default `proxy->host:port`. */
  readonly name?: string;
  /** Port to listen on (127.0.0.1); default a free one the OS picks. */
  readonly port?: number;
  /** Source of randomness for jitter and loss, in [0, 1); default `seededRandom(seed)`. */
  readonly random?: () => number;
  /** Seed of the default random source; default 1, so runs repeat. */
  readonly seed?: number;
  /** Aborting closes the proxy (or rejects the start). */
  readonly signal?: AbortSignal;
}

/** First retransmission timeout of a "lost" chunk, in ms (Linux's minimum RTO). */
export const BASE_RTO_MS = 200;
/** The retransmission timeout stops doubling here, in ms (Linux goes to 120 s; tests cannot wait). */
export const MAX_RTO_MS = 3_200;

/** A direction pauses its source once this many bytes are held back (delay, loss, or a cut). */
const HIGH_WATER = 1 << 20;

const NO_FAULTS: LinkFaults = { delayMs: 0, jitterMs: 0, loss: 0 };

function validate(faults: LinkFaults): void {
  if (!(faults.delayMs >= 0) || !Number.isFinite(faults.delayMs)) {
    throw new RangeError(`delayMs must be a finite number >= 0, got ${faults.delayMs}`);
  }
  if (!(faults.jitterMs >= 0) || !Number.isFinite(faults.jitterMs)) {
    throw new RangeError(`jitterMs must be a finite number >= 0, got ${faults.jitterMs}`);
  }
  if (!(faults.loss >= 0 && faults.loss <= 1)) {
    throw new RangeError(`loss must be in [0, 1], got ${faults.loss}`);
  }
}

/** Closes a socket: with a TCP reset when asked and possible, else plainly. Never throws. */
function kill(socket: Socket, reset: boolean): void {
  if (socket.destroyed) return;
  // resetAndDestroy on a socket still connecting waits for "connect", which may never come.
  if (reset && !socket.connecting) socket.resetAndDestroy();
  else socket.destroy();
}

/** The state a direction needs from its proxy. */
interface Link {
  readonly isCut: boolean;
  readonly faults: LinkFaults;
  random(): number;
  count(direction: "up" | "down", bytes: number): void;
}

/**
 * One direction of one connection: reads chunks from `source`, holds each until it is due, and
 * writes them to `destination` in the order read.
 */
class Direction {
  private readonly queue: Array<{ chunk: Buffer; due: number }> = [];
  private queuedBytes = 0;
  private lastDue = 0;
  private consecutiveLosses = 0;
  private timer: NodeJS.Timeout | undefined;
  private blocked = false;
  private sourceEnded = false;
  private finished = false;
  private readonly source: Socket;
  private readonly destination: Socket;
  private readonly link: Link;
  private readonly direction: "up" | "down";

  constructor(init: { source: Socket; destination: Socket; link: Link; direction: "up" | "down" }) {
    this.source = init.source;
    this.destination = init.destination;
    this.link = init.link;
    this.direction = init.direction;
    this.source.on("data", (chunk: Buffer) => this.onData(chunk));
    this.source.on("end", () => {
      this.sourceEnded = true;
      this.pump();
    });
    this.destination.on("drain", () => {
      this.blocked = false;
      this.pump();
    });
  }

  /** Pauses or resumes the source to match the state: cut, blocked, or too much held back. */
  flow(): void {
    if (this.source.destroyed) return;
    const hold = this.link.isCut || this.blocked || this.queuedBytes >= HIGH_WATER;
    if (hold && !this.source.isPaused()) this.source.pause();
    else if (!hold && this.source.isPaused()) this.source.resume();
  }

  pump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.destination.destroyed || this.finished) return;
    if (!this.link.isCut) {
      while (!this.blocked) {
        const head = this.queue[0];
        if (head === undefined) break;
        const wait = head.due - performance.now();
        if (wait > 0) {
          this.timer = setTimeout(() => this.pump(), Math.ceil(wait));
          break;
        }
        this.queue.shift();
        this.queuedBytes -= head.chunk.length;
        this.write(head.chunk);
      }
      if (this.sourceEnded && this.queue.length === 0 && !this.blocked) {
        this.finished = true;
        this.destination.end();
      }
    }
    this.flow();
  }

  /** Drops whatever is held back; nothing is delivered any more. */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.finished = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private write(chunk: Buffer): void {
    this.link.count(this.direction, chunk.length);
    if (!this.destination.write(chunk)) this.blocked = true;
  }

  private onData(chunk: Buffer): void {
    const { delayMs, jitterMs, loss } = this.link.faults;
    const now = performance.now();
    let hold = delayMs;
    if (jitterMs > 0) hold = Math.max(0, delayMs + (this.link.random() * 2 - 1) * jitterMs);
    let due = Math.max(this.lastDue, now + hold);
    if (loss > 0 && this.link.random() < loss) {
      due += Math.min(MAX_RTO_MS, BASE_RTO_MS * 2 ** this.consecutiveLosses);
      this.consecutiveLosses++;
    } else {
      this.consecutiveLosses = 0;
    }
    this.lastDue = due;
    if (
      this.queue.length === 0 &&
      due <= now &&
      !this.link.isCut &&
      !this.blocked &&
      !this.destination.destroyed
    ) {
      this.write(chunk);
      this.flow();
      return;
    }
    this.queue.push({ chunk, due });
    this.queuedBytes += chunk.length;
    if (this.timer === undefined) this.pump();
    else this.flow();
  }
}

/** A client connection and, unless it arrived during a black-hole cut, its upstream socket. */
class Connection {
  readonly client: Socket;
  private upstream: Socket | undefined;
  private up: Direction | undefined;
  private down: Direction | undefined;
  private connected = false;

  constructor(client: Socket) {
    this.client = client;
  }

  /** Connects upstream and starts both directions once connected. */
  start(link: Link, target: { host: string; port: number }, onClosed: () => void): void {
    const { client } = this;
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.upstream = upstream;
    let closed = 0;
    const closedOne = (): void => {
      if (++closed === 2) onClosed();
    };
    // "error" is always followed by "close" with hadError; the close handlers do the work. A
    // graceful close needs nothing: each direction ends its destination once it has delivered
    // everything it read.
    upstream.on("error", () => undefined);
    upstream.on("close", (hadError) => {
      if (hadError) {
        this.stop();
        if (this.connected) kill(client, true);
        else refuseGently(client);
      }
      closedOne();
    });
    client.on("close", (hadError) => {
      if (hadError) {
        this.stop();
        kill(upstream, true);
      }
      closedOne();
    });
    upstream.once("connect", () => {
      this.connected = true;
      upstream.setNoDelay(true);
      this.up = new Direction({ source: client, destination: upstream, link, direction: "up" });
      this.down = new Direction({ source: upstream, destination: client, link, direction: "down" });
      this.pump();
    });
  }

  /** Holds a connection that arrived during a black-hole cut: nothing is read or forwarded. */
  hold(onClosed: () => void): void {
    this.client.on("close", onClosed);
  }

  pump(): void {
    this.up?.pump();
    this.down?.pump();
  }

  destroy(reset: boolean): void {
    this.stop();
    kill(this.client, reset);
    if (this.upstream !== undefined) kill(this.upstream, reset);
  }

  private stop(): void {
    this.up?.stop();
    this.down?.stop();
  }
}

/**
 * Closes a client whose target could not be reached the way a plain TCP forwarder does: end of
 * stream, with anything it sent read and dropped (unread data would turn the close into a reset).
 */
function refuseGently(client: Socket): void {
  if (client.destroyed) return;
  client.on("data", () => undefined);
  client.resume();
  client.end();
  // A client that never closes its side is not kept forever.
  setTimeout(() => client.destroy(), 1_000).unref();
}

class Proxy implements TcpProxy, Link {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly target: { readonly host: string; readonly port: number };
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly randomSource: () => number;
  private mode: CutMode | undefined;
  private current: LinkFaults = NO_FAULTS;
  private counters = { connections: 0, bytesUp: 0, bytesDown: 0, refused: 0 };
  private closing: Promise<void> | undefined;

  constructor(init: {
    name: string;
    port: number;
    server: Server;
    target: { host: string; port: number };
    random: () => number;
  }) {
    this.name = init.name;
    this.port = init.port;
    this.url = `127.0.0.1:${init.port}`;
    this.server = init.server;
    this.target = init.target;
    this.randomSource = init.random;
    this.server.on("connection", (socket) => this.accept(socket));
  }

  get isCut(): boolean {
    return this.mode !== undefined;
  }

  get faults(): LinkFaults {
    return this.current;
  }

  random(): number {
    return this.randomSource();
  }

  count(direction: "up" | "down", bytes: number): void {
    if (direction === "up") this.counters.bytesUp += bytes;
    else this.counters.bytesDown += bytes;
  }

  cut(mode: CutMode = "blackhole"): void {
    this.mode = mode;
    switch (mode) {
      case "reset":
        for (const connection of this.connections) connection.destroy(true);
        break;
      case "blackhole":
        for (const connection of this.connections) connection.pump();
        break;
    }
  }

  heal(): void {
    if (this.mode === "blackhole") {
      for (const connection of this.connections) connection.destroy(true);
    }
    this.mode = undefined;
  }

  set(faults: Partial<LinkFaults>): void {
    const next = { ...this.current, ...faults };
    validate(next);
    this.current = next;
  }

  clear(): void {
    this.current = NO_FAULTS;
  }

  stats(): TcpProxyStats {
    return { ...this.counters, open: this.connections.size };
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const connection of this.connections) connection.destroy(false);
    });
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private accept(socket: Socket): void {
    socket.on("error", () => undefined);
    if (this.closing !== undefined || this.mode === "reset") {
      if (this.closing === undefined) this.counters.refused++;
      kill(socket, true);
      return;
    }
    socket.setNoDelay(true);
    this.counters.connections++;
    const connection = new Connection(socket);
    this.connections.add(connection);
    const onClosed = (): void => {
      this.connections.delete(connection);
    };
    if (this.mode === "blackhole") connection.hold(onClosed);
    else connection.start(this, this.target, onClosed);
  }
}

/**
 * Starts a TCP proxy on 127.0.0.1 that forwards to `target`, for breaking links in tests: cut
 * (black hole or reset), heal, and added latency, jitter and loss. It never throws into the
 * process: a target that refuses just closes the client's connection, and garbage or resets from
 * either side end only that connection.
 *
 * @example
 * await using proxy = await startTcpProxy({ target: { port: server.port }, name: "app->db" });
 * proxy.set({ delayMs: 20, jitterMs: 5 });
 * proxy.cut();   // black hole
 * proxy.heal();  // connections that lived through the cut are reset
 */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  options.signal?.throwIfAborted();
  const target = { host: options.target.host ?? "127.0.0.1", port: options.target.port };
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.on("error", () => undefined);
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: options.port ?? 0 }, () => {
      server.off("error", reject);
      const address = server.address();
      if (typeof address === "object" && address !== null) resolve(address.port);
      else reject(new Error("the proxy got no port"));
    });
  });
  const proxy = new Proxy({
    name: options.name ?? `proxy->${target.host}:${target.port}`,
    port,
    server,
    target,
    random: options.random ?? seededRandom(options.seed ?? 1),
  });
  const signal = options.signal;
  if (signal !== undefined) {
    if (signal.aborted) {
      await proxy.close();
      signal.throwIfAborted();
    }
    signal.addEventListener("abort", () => void proxy.close(), { once: true });
  }
  return proxy;
}

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findNatsServer } from "./find-nats.js";
import { freePort } from "./free-port.js";
import { reapOnExit, releaseDir, removeOnExit } from "./reaper.js";
import { startTcpProxy, type CutMode, type TcpProxy } from "./tcp-proxy.js";
import { waitFor } from "./wait-for.js";

/** Options for {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** 1 (a single server) or 3 (a routed cluster); default 1. */
  readonly nodes?: 1 | 3;
  /** Enable JetStream; default true. */
  readonly jetstream?: boolean;
  /** Set `sync_interval: always` (fsync before every acknowledgement). */
  readonly syncAlways?: boolean;
  /**
   * Serve clients over TLS only (PEM files); with `verify`, clients must present a certificate
   * that chains to `caFile` (mutual TLS).
   */
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly caFile: string;
    readonly verify: boolean;
  };
  /**
   * Put every link through a {@link TcpProxy} of its own, so that links can be cut, healed and
   * slowed: each route from server i to server j goes through the proxy `ni->nj`, and
   * {@link NatsCluster.client} makes client links. Servers then advertise a route address that
   * resets every connection (route gossip would otherwise let a server dial a peer directly,
   * around the proxies), do not advertise peers' client URLs to clients (`no_advertise`), and
   * ping every second (`ping_interval: 1s`; the default is two minutes), so that a black-holed
   * link is noticed in about three seconds.
   */
  readonly proxied?: boolean;
  /** Seed of the proxies' randomness (jitter and loss); proxy k uses `seed + k`. Default 1. */
  readonly seed?: number;
  /** Longest wait for the cluster (and for a restarted server) to be ready, in ms; default 20 000. */
  readonly startTimeoutMs?: number;
  /** Aborts the start: servers started so far are killed and their folders removed. */
  readonly signal?: AbortSignal;
}

/** One running (or stopped) nats-server of a test cluster. */
export interface NatsServerHandle {
  readonly name: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly url: string;
  readonly dir: string;
  readonly version: string;
  /** The process id of the current, or last, process; undefined before the first start. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** SIGKILL, then wait for the process to exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the process stops answering but keeps its sockets. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Starts the server again with the same config, ports and store; waits until it is ready. */
  restart(): Promise<void>;
  /** The server's log so far. */
  logs(): Promise<string>;
}

/** The proxied links of one client process to every server; see {@link NatsCluster.client}. */
export interface NatsClientLinks {
  readonly name: string;
  /** One URL per server, in server order, each through the proxy `<name>-><server>`. */
  readonly urls: readonly string[];
  /** All URLs, comma-joined. */
  readonly url: string;
  readonly links: readonly TcpProxy[];
}

/** Options for {@link NatsCluster.partition}. */
export interface PartitionOptions {
  /** How the links between groups are cut; default `blackhole` (see {@link TcpProxy.cut}). */
  readonly mode?: CutMode;
}

/** A test cluster; dispose it (or call stop) to kill every server and remove its folders. */
export interface NatsCluster extends AsyncDisposable {
  readonly servers: readonly NatsServerHandle[];
  /** Direct URLs of the servers (never through a proxy). */
  readonly urls: readonly string[];
  /** All URLs, comma-joined. */
  readonly url: string;
  /**
   * Every link proxy of a proxied cluster: the routes (`n1->n2`, `n1->n3`, …), then client links
   * in the order they were made. Empty unless started with `proxied: true`.
   */
  readonly links: readonly TcpProxy[];
  /**
   * Where proxied servers advertise their route address: it resets every connection, and its
   * `stats().refused` counts the servers' attempts to dial a peer they learned of by gossip.
   */
  readonly gossipSink: TcpProxy | undefined;
  /** The proxy that carries connections from `from` to `to` (`link("n1", "n2")`, `link("app-1", "n3")`). */
  link(from: string, to: string): TcpProxy;
  /**
   * The links of a client process named `name` (not a server's name): one proxy per server, made
   * on the first call and shared by later calls with the same name. Connect the process with
   * `urls` so that partitions can name it. New links start healed, whatever partition is in force.
   *
   * @example
   * const app = await cluster.client("app-1");
   * const nc = await connect({ servers: [...app.urls] });
   */
  client(name: string): Promise<NatsClientLinks>;
  /**
   * Cuts every link between members of different groups, in both directions. Groups name servers
   * (`n1`) and clients made by {@link NatsCluster.client}; anything not named keeps its links.
   * Cuts add up: a later partition cuts more, and only {@link NatsCluster.heal} restores.
   *
   * @example
   * cluster.partition([["n1", "app-1"], ["n2", "n3", "app-2"]]); // app-1 reaches only n1
   */
  partition(groups: ReadonlyArray<ReadonlyArray<string>>, options?: PartitionOptions): void;
  /** Heals every cut link (see {@link TcpProxy.heal}); latency and loss stay as set. */
  heal(): void;
  stop(): Promise<void>;
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

async function httpJson(url: string): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    if (!response.ok) return undefined;
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

class Server implements NatsServerHandle {
  readonly name: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly routePort: number;
  readonly url: string;
  readonly dir: string;
  readonly version: string;
  private readonly binary: string;
  private readonly config: string;
  private readonly startTimeoutMs: number;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private readonly peers: number;
  private readonly jetstream: boolean;
  /** Every server of the cluster, this one included, set once all are made. */
  siblings: readonly Server[] = [];

  constructor(init: {
    name: string;
    port: number;
    monitorPort: number;
    routePort: number;
    dir: string;
    binary: string;
    version: string;
    peers: number;
    jetstream: boolean;
    startTimeoutMs: number;
  }) {
    this.name = init.name;
    this.port = init.port;
    this.monitorPort = init.monitorPort;
    this.routePort = init.routePort;
    this.dir = init.dir;
    this.binary = init.binary;
    this.version = init.version;
    this.peers = init.peers;
    this.jetstream = init.jetstream;
    this.startTimeoutMs = init.startTimeoutMs;
    this.url = `nats://127.0.0.1:${init.port}`;
    this.config = join(init.dir, "nats.conf");
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return (
      this.child?.pid !== undefined &&
      this.child.exitCode === null &&
      this.child.signalCode === null
    );
  }

  async writeConfig(options: {
    /** `host:port` of each peer's route listener, or of the proxy in front of it. */
    routes: readonly string[];
    syncAlways: boolean;
    tls: NatsClusterOptions["tls"];
    /** Set for a proxied cluster: the route address to advertise (a sink that resets). */
    advertise: string | undefined;
  }): Promise<void> {
    const { routes, syncAlways, tls, advertise } = options;
    const lines = [
      `server_name: ${this.name}`,
      `listen: 127.0.0.1:${this.port}`,
      `http: 127.0.0.1:${this.monitorPort}`,
    ];
    if (advertise !== undefined) lines.push(`ping_interval: "1s"`);
    if (tls !== undefined) {
      lines.push(
        "tls {",
        `  cert_file: ${JSON.stringify(tls.certFile)}`,
        `  key_file: ${JSON.stringify(tls.keyFile)}`,
        `  ca_file: ${JSON.stringify(tls.caFile)}`,
        `  verify: ${tls.verify ? "true" : "false"}`,
        "  timeout: 2",
        "}",
      );
    }
    if (this.jetstream) {
      lines.push("jetstream {", `  store_dir: ${JSON.stringify(join(this.dir, "jetstream"))}`);
      if (syncAlways) lines.push("  sync_interval: always");
      lines.push("}");
    }
    if (routes.length > 0) {
      lines.push(
        "cluster {",
        "  name: strata-test",
        `  listen: 127.0.0.1:${this.routePort}`,
        `  routes: [${routes.map((r) => `nats-route://${r}`).join(", ")}]`,
      );
      // Without this, a server that learns of a peer from another's INFO dials the peer's real
      // route port, bypassing the link proxies (measured on 2.10: a cut link was back within
      // seconds, direct). Advertising the sink makes every such dial fail.
      if (advertise !== undefined) {
        lines.push(`  advertise: ${JSON.stringify(advertise)}`, "  no_advertise: true");
      }
      lines.push("}");
    }
    await writeFile(this.config, `${lines.join("\n")}\n`);
  }

  async spawn(): Promise<void> {
    const log = await open(join(this.dir, "server.log"), "a");
    const child = spawn(this.binary, ["-c", this.config], { stdio: ["ignore", log.fd, log.fd] });
    await log.close();
    this.child = child;
    reapOnExit(child);
    // A process that could not be spawned emits "error" and may never emit "exit".
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.on("error", () => resolve());
    });
  }

  async ready(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const base = `http://127.0.0.1:${this.monitorPort}`;
    // When the meta group has a leader but too few members, since when (see MetaGroupTooSmall).
    let shortSince: number | undefined;
    let tooSmall: MetaGroupTooSmall | undefined;
    await waitFor(
      async () => {
        if (!this.running) {
          throw new Error(`${this.name} exited; see ${join(this.dir, "server.log")}`);
        }
        // Each unmet step throws its reason: waitFor keeps the last one as the timeout's cause.
        const health = this.jetstream ? `${base}/healthz?js-enabled-only=true` : `${base}/healthz`;
        if (!(await httpOk(health))) throw new Error(`${this.name}: /healthz not ok`);
        if (this.peers === 0) return true;
        const routez = await httpJson(`${base}/routez`);
        const routes = (routez?.["routes"] as Array<Record<string, unknown>> | undefined) ?? [];
        const remotes = new Set(routes.map((r) => String(r["remote_name"] ?? r["remote_id"])));
        // 2.10 pools routes (several connections per peer), so count peers, not connections.
        if (remotes.size < this.peers) {
          throw new Error(`${this.name}: routes to [${[...remotes].join(", ")}] only`);
        }
        if (!this.jetstream) return true;
        const jsz = await httpJson(`${base}/jsz`);
        const meta = jsz?.["meta_cluster"] as Record<string, unknown> | undefined;
        // Ready once the JetStream meta group has a leader and knows every peer: a routed server
        // can report a leader while the last peer is still joining the group.
        if (typeof meta?.["leader"] !== "string" || meta["leader"] === "") {
          shortSince = undefined;
          throw new Error(`${this.name}: no meta leader`);
        }
        const size = meta["cluster_size"];
        if (size !== this.peers + 1) {
          shortSince ??= performance.now();
          if (
            typeof size === "number" &&
            size < this.peers + 1 &&
            performance.now() - shortSince > META_SHORT_MS
          ) {
            tooSmall = new MetaGroupTooSmall(
              `${this.name}: the meta group led by ${meta["leader"]} stays at ${size} of ${this.peers + 1} members`,
            );
            return true;
          }
          throw new Error(`${this.name}: meta group of ${JSON.stringify(size)} members`);
        }
        shortSince = undefined;
        if (!(await this.leaderSeesMe(meta["leader"]))) {
          throw new Error(`${this.name}: meta leader ${meta["leader"]} does not count it current`);
        }
        return true;
      },
      {
        timeoutMs,
        intervalMs: 50,
        message: `nats-server ${this.name} not ready`,
        ...(signal === undefined ? {} : { signal }),
      },
    );
    if (tooSmall !== undefined) throw tooSmall;
  }

  /**
   * Whether the meta leader counts this server as a current, online peer. The leader places new
   * streams only on peers it sees online, and after a restart it can lag behind the restarted
   * server's own view by a moment: a stream created then is refused for "peer offline".
   */
  private async leaderSeesMe(leaderName: string): Promise<boolean> {
    if (leaderName === this.name) return true;
    const leader = this.siblings.find((s) => s.name === leaderName);
    if (leader === undefined) return true;
    const jsz = await httpJson(`http://127.0.0.1:${leader.monitorPort}/jsz`);
    const meta = jsz?.["meta_cluster"] as Record<string, unknown> | undefined;
    const replicas = (meta?.["replicas"] as Array<Record<string, unknown>> | undefined) ?? [];
    const me = replicas.find((r) => r["name"] === this.name);
    return me !== undefined && me["current"] === true && me["offline"] !== true;
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    // A stopped process still dies of SIGKILL; SIGCONT first keeps that true everywhere.
    child.kill("SIGCONT");
    child.kill("SIGKILL");
    await this.exited;
  }

  pause(): void {
    this.child?.kill("SIGSTOP");
  }

  resume(): void {
    this.child?.kill("SIGCONT");
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
    await this.ready(this.startTimeoutMs);
  }

  logs(): Promise<string> {
    return readFile(join(this.dir, "server.log"), "utf8").catch(() => "");
  }
}

/** A start that failed for a passing reason: a port race, or a meta group formed too small. */
class RetryableStart extends Error {}

/**
 * Set when a new cluster's JetStream meta group elected a leader with fewer members than there
 * are servers, and stays so. nats-server 2.10 sizes a new meta group down at cold boot when it has
 * heard of more servers than it knows to run JetStream (its "mixed mode" check); a peer whose
 * announcement is late is then never admitted. Seen now and then when routes start slowly (through
 * link proxies). Starting afresh is the cure.
 */
class MetaGroupTooSmall extends Error {}

/** How long a leader with a short meta group is given to admit the rest, in ms. */
const META_SHORT_MS = 4_000;

/**
 * Starts a 1- or 3-server NATS (JetStream) cluster on free loopback ports, each server in its own
 * temporary folder. It never touches servers already running on the machine.
 *
 * @example
 * await using cluster = await startNatsCluster({ nodes: 3, syncAlways: true });
 * await cluster.servers[0]?.kill();
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  options.signal?.throwIfAborted();
  const found = await findNatsServer();
  // A port found free can be taken by another process before the server binds it, and a new
  // meta group can form too small (see MetaGroupTooSmall); either way, try afresh.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, found.path, found.version);
    } catch (error) {
      if (!(error instanceof RetryableStart) || attempt >= 3) throw error;
    }
  }
}

/** The link proxies of a proxied cluster, by name (`from->to`). */
class Links {
  private readonly byName = new Map<string, TcpProxy>();
  private readonly clients = new Map<string, Promise<NatsClientLinks>>();
  private readonly serverNames: ReadonlySet<string>;
  private readonly seed: number;
  sink: TcpProxy | undefined;

  constructor(serverNames: readonly string[], seed: number) {
    this.serverNames = new Set(serverNames);
    this.seed = seed;
  }

  get all(): TcpProxy[] {
    return [...this.byName.values()];
  }

  async add(from: string, to: string, targetPort: number): Promise<TcpProxy> {
    const name = `${from}->${to}`;
    const proxy = await startTcpProxy({
      name,
      target: { port: targetPort },
      seed: this.seed + this.byName.size,
    });
    this.byName.set(name, proxy);
    return proxy;
  }

  get(from: string, to: string): TcpProxy {
    const proxy = this.byName.get(`${from}->${to}`);
    if (proxy === undefined) {
      throw new Error(
        this.byName.size === 0
          ? "links exist only in a cluster started with proxied: true"
          : `no link ${from}->${to}; links: ${[...this.byName.keys()].join(", ")}`,
      );
    }
    return proxy;
  }

  client(name: string, servers: readonly Server[]): Promise<NatsClientLinks> {
    if (this.sink === undefined) {
      return Promise.reject(
        new Error("client links exist only in a cluster started with proxied: true"),
      );
    }
    if (this.serverNames.has(name) || name.includes("->") || name === "") {
      return Promise.reject(new Error(`"${name}" cannot name a client`));
    }
    let made = this.clients.get(name);
    if (made === undefined) {
      made = (async () => {
        const links: TcpProxy[] = [];
        for (const server of servers) links.push(await this.add(name, server.name, server.port));
        const urls = links.map((l) => `nats://${l.url}`);
        return { name, urls, url: urls.join(","), links };
      })();
      this.clients.set(name, made);
    }
    return made;
  }

  partition(groups: ReadonlyArray<ReadonlyArray<string>>, mode: CutMode): void {
    if (this.sink === undefined) {
      throw new Error("partitions need a cluster started with proxied: true");
    }
    const groupOf = new Map<string, number>();
    groups.forEach((group, i) => {
      for (const member of group) {
        if (!this.serverNames.has(member) && !this.clients.has(member)) {
          throw new Error(`partition names "${member}", which is neither a server nor a client`);
        }
        if (groupOf.has(member)) throw new Error(`partition names "${member}" twice`);
        groupOf.set(member, i);
      }
    });
    for (const [name, proxy] of this.byName) {
      const [from = "", to = ""] = name.split("->");
      const a = groupOf.get(from);
      const b = groupOf.get(to);
      if (a !== undefined && b !== undefined && a !== b) proxy.cut(mode);
    }
  }

  heal(): void {
    for (const proxy of this.byName.values()) proxy.heal();
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.all, ...(this.sink === undefined ? [] : [this.sink])].map((p) => p.close()),
    );
  }
}

async function startOnce(
  options: NatsClusterOptions,
  binary: string,
  version: string,
): Promise<NatsCluster> {
  const count = options.nodes ?? 1;
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const servers: Server[] = [];
  const links = new Links(
    Array.from({ length: count }, (_, i) => `n${i + 1}`),
    options.seed ?? 1,
  );
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.kill()));
    await links.close();
    await Promise.all(servers.map((s) => rm(s.dir, { recursive: true, force: true })));
    for (const s of servers) releaseDir(s.dir);
  };
  try {
    for (let i = 0; i < count; i++) {
      const dir = await mkdtemp(join(tmpdir(), `strata-nats-n${i + 1}-`));
      removeOnExit(dir);
      servers.push(
        new Server({
          name: `n${i + 1}`,
          port: await freePort(),
          monitorPort: await freePort(),
          routePort: await freePort(),
          dir,
          binary,
          version,
          peers: count - 1,
          jetstream: options.jetstream !== false,
          startTimeoutMs,
        }),
      );
    }
    for (const server of servers) server.siblings = servers;
    const routes = new Map<Server, string[]>(servers.map((s) => [s, []]));
    if (options.proxied === true) {
      const sink = await startTcpProxy({ name: "gossip-sink", target: { port: 1 } });
      sink.cut("reset");
      links.sink = sink;
    }
    if (count > 1) {
      for (const from of servers) {
        for (const to of servers) {
          // A server lists its own route port too: it drops the route to itself, and 2.10 sizes
          // a new JetStream meta group from the number of routes listed. With only the peers
          // listed, the group starts expecting 2 members and now and then never admits the third.
          const route =
            links.sink === undefined || from === to
              ? `127.0.0.1:${to.routePort}`
              : (await links.add(from.name, to.name, to.routePort)).url;
          routes.get(from)?.push(route);
        }
      }
    }
    for (const server of servers) {
      options.signal?.throwIfAborted();
      await server.writeConfig({
        routes: routes.get(server) ?? [],
        syncAlways: options.syncAlways === true,
        tls: options.tls,
        advertise: links.sink?.url,
      });
      await server.spawn();
    }
    await Promise.all(servers.map((s) => s.ready(startTimeoutMs, options.signal)));
  } catch (error) {
    const logs = await Promise.all(
      servers.map(async (s) => ({ name: s.name, text: await s.logs() })),
    );
    await stop();
    if (options.signal?.aborted === true) throw error;
    // waitFor keeps the last unmet readiness step as the cause: say which it was.
    const cause =
      error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : "";
    const message = `NATS test cluster did not start: ${String(error)}${cause}\n${logs
      .map((l) => `--- ${l.name}\n${l.text.slice(-2_000)}`)
      .join("\n")}`;
    const portRace = logs.some((l) => /address already in use/i.test(l.text));
    throw portRace || error instanceof MetaGroupTooSmall
      ? new RetryableStart(message, { cause: error })
      : new Error(message, { cause: error });
  }
  const urls = servers.map((s) => s.url);
  return {
    servers,
    urls,
    url: urls.join(","),
    get links() {
      return links.all;
    },
    gossipSink: links.sink,
    link: (from, to) => links.get(from, to),
    client: (name) => links.client(name, servers),
    partition: (groups, partitionOptions) =>
      links.partition(groups, partitionOptions?.mode ?? "blackhole"),
    heal: () => links.heal(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findNatsServer } from "./find-nats.js";
import { freePort } from "./free-port.js";
import { reapOnExit, releaseDir, removeOnExit } from "./reaper.js";
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

/** A test cluster; dispose it (or call stop) to kill every server and remove its folders. */
export interface NatsCluster extends AsyncDisposable {
  readonly servers: readonly NatsServerHandle[];
  readonly urls: readonly string[];
  /** All URLs, comma-joined. */
  readonly url: string;
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

  async writeConfig(
    routePorts: readonly number[],
    syncAlways: boolean,
    tls?: NatsClusterOptions["tls"],
  ): Promise<void> {
    const lines = [
      `server_name: ${this.name}`,
      `listen: 127.0.0.1:${this.port}`,
      `http: 127.0.0.1:${this.monitorPort}`,
    ];
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
    if (routePorts.length > 1) {
      lines.push(
        "cluster {",
        "  name: strata-test",
        `  listen: 127.0.0.1:${this.routePort}`,
        `  routes: [${routePorts.map((p) => `nats-route://127.0.0.1:${p}`).join(", ")}]`,
        "}",
      );
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
    await waitFor(
      async () => {
        if (!this.running) {
          throw new Error(`${this.name} exited; see ${join(this.dir, "server.log")}`);
        }
        const health = this.jetstream ? `${base}/healthz?js-enabled-only=true` : `${base}/healthz`;
        if (!(await httpOk(health))) return false;
        if (this.peers === 0) return true;
        const routez = await httpJson(`${base}/routez`);
        const routes = (routez?.["routes"] as Array<Record<string, unknown>> | undefined) ?? [];
        const remotes = new Set(routes.map((r) => String(r["remote_name"] ?? r["remote_id"])));
        // 2.10 pools routes (several connections per peer), so count peers, not connections.
        if (remotes.size < this.peers) return false;
        if (!this.jetstream) return true;
        const jsz = await httpJson(`${base}/jsz`);
        const meta = jsz?.["meta_cluster"] as Record<string, unknown> | undefined;
        // Ready once the JetStream meta group has a leader and knows every peer: a routed server
        // can report a leader while the last peer is still joining the group.
        return (
          typeof meta?.["leader"] === "string" &&
          meta["leader"] !== "" &&
          meta["cluster_size"] === this.peers + 1
        );
      },
      {
        timeoutMs,
        intervalMs: 50,
        message: `nats-server ${this.name} not ready`,
        ...(signal === undefined ? {} : { signal }),
      },
    );
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

/** Set when a server could not bind a port another process took after we found it free. */
class PortRaceError extends Error {}

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
  // A port found free can be taken by another process before the server binds it; try afresh.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, found.path, found.version);
    } catch (error) {
      if (!(error instanceof PortRaceError) || attempt >= 3) throw error;
    }
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
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.kill()));
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
    const routePorts = count > 1 ? servers.map((s) => s.routePort) : [];
    for (const server of servers) {
      options.signal?.throwIfAborted();
      await server.writeConfig(routePorts, options.syncAlways === true, options.tls);
      await server.spawn();
    }
    await Promise.all(servers.map((s) => s.ready(startTimeoutMs, options.signal)));
  } catch (error) {
    const logs = await Promise.all(
      servers.map(async (s) => ({ name: s.name, text: await s.logs() })),
    );
    await stop();
    if (options.signal?.aborted === true) throw error;
    const message = `NATS test cluster did not start: ${String(error)}\n${logs
      .map((l) => `--- ${l.name}\n${l.text.slice(-2_000)}`)
      .join("\n")}`;
    const portRace = logs.some((l) => /address already in use/i.test(l.text));
    throw portRace
      ? new PortRaceError(message, { cause: error })
      : new Error(message, { cause: error });
  }
  const urls = servers.map((s) => s.url);
  return {
    servers,
    urls,
    url: urls.join(","),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

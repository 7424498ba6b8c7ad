import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createNode, type StrataNode } from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import {
  reapOnExit,
  releaseDir,
  removeOnExit,
  startNatsCluster,
  startPostgres,
  startTcpProxy,
  type NatsCluster,
  type PostgresCluster,
  type TcpProxy,
} from "@strata/test-harness/engines";
import {
  DEFAULT_WORKLOADS,
  STAY_ON_PROXIES,
  type Breakage,
  type NodeConfig,
  type WorkloadName,
} from "./services.js";

/** Options of {@link startChaosCluster}. */
export interface ChaosClusterOptions {
  /** NATS servers (JetStream, routes through proxies); default 3. */
  readonly natsServers?: 1 | 3;
  /** Strata node processes; default 3. */
  readonly nodes?: number;
  /** Regions, given to the nodes in turn; default `["eu", "us"]`. */
  readonly regions?: readonly string[];
  /** Services the nodes serve; default the register, bank, set, CRDT set and counter workloads'. */
  readonly workloads?: readonly WorkloadName[];
  /** A deliberate bug every node runs with (to show the checkers catch it). */
  readonly breakage?: Breakage;
  /**
   * Start PostgreSQL too (process `pg`, every node's connection to it behind a proxy of its
   * own); default: when a workload needs it (`pg-register`).
   */
  readonly postgres?: boolean;
  /** Where the nodes keep their folders; default a new temporary folder, removed on stop. */
  readonly dir?: string;
  /** A folder to copy each node's log into (`<node>.log`) when the cluster stops. */
  readonly logsTo?: string;
  /** Progress lines (process starts, exits). */
  readonly log?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/** A process of the cluster that faults can be injected into. */
export interface ChaosProcess {
  readonly name: string;
  readonly kind: "nats" | "node" | "postgres";
  readonly running: boolean;
  /** kill -9. */
  kill(): Promise<void>;
  /** Starts it again (after a kill) and waits until it serves. */
  restart(): Promise<void>;
  /** SIGSTOP: it keeps its connections and answers nothing. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

/** A Strata node process. */
export interface ChaosNode extends ChaosProcess {
  readonly kind: "node";
  readonly region: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Moves the node's wall clock (its clock port) by `ms` from true time. */
  skew(ms: number): void;
}

/** NATS servers, Strata nodes as processes, a client for the workloads, and the links between them. */
export interface ChaosCluster extends AsyncDisposable {
  readonly nats: NatsCluster;
  /** PostgreSQL, when started. */
  readonly postgres: PostgresCluster | undefined;
  readonly servers: readonly ChaosProcess[];
  readonly nodes: readonly ChaosNode[];
  /** Every process by name: `n1`…, `node-1`…, `pg`. */
  process(name: string): ChaosProcess;
  /** The workloads' own node (no services), connected through its proxies as `client`. */
  readonly client: StrataNode;
  readonly workloads: readonly WorkloadName[];
  readonly replicas: number;
  /**
   * Cuts every link between the groups (names of servers, nodes and `client`); processes not
   * named keep their links. Nodes reach each other only through NATS, so a node is cut off from
   * another group when its links to that group's servers are cut.
   */
  partition(groups: ReadonlyArray<readonly string[]>): void;
  /** Heals every cut. */
  heal(): void;
  /** The proxies of links that touch a process (every link when no name is given). */
  links(name?: string): TcpProxy[];
  stop(): Promise<void>;
}

/** The node program: next to this module once built; from the sources, the built copy. */
const NODE_MAIN = ((): string => {
  const here = fileURLToPath(new URL("./node-main.js", import.meta.url));
  return existsSync(here) ? here : fileURLToPath(new URL("../dist/node-main.js", import.meta.url));
})();

class NodeProcess implements ChaosNode {
  readonly kind = "node" as const;
  readonly name: string;
  readonly region: string;
  readonly dir: string;
  private readonly config: NodeConfig;
  private readonly log: (line: string) => void;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private skewMs = 0;

  constructor(config: NodeConfig, log: (line: string) => void) {
    this.config = config;
    this.name = config.id;
    this.region = config.region;
    this.dir = config.dir;
    this.log = log;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  async start(timeoutMs = 30_000): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const logFile = await open(join(this.dir, "node.log"), "a");
    const child = spawn(
      process.execPath,
      [NODE_MAIN, JSON.stringify({ ...this.config, skewMs: this.skewMs })],
      { stdio: ["pipe", "pipe", logFile.fd] },
    );
    await logFile.close();
    reapOnExit(child);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    child.stdin?.on("error", () => undefined);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`${this.name} did not start in ${timeoutMs} ms; see ${this.dir}/node.log`),
        );
      }, timeoutMs);
      const done = (error?: Error): void => {
        clearTimeout(timer);
        child.off("exit", onExit);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onExit = (code: number | null): void => {
        void readFile(join(this.dir, "node.log"), "utf8")
          .catch(() => "")
          .then((text) =>
            done(new Error(`${this.name} exited (${code}) while starting:\n${text.slice(-2_000)}`)),
          );
      };
      child.once("exit", onExit);
      lines.on("line", (line) => {
        if (line.includes('"ready":true')) done();
      });
    });
    this.log(`${this.name} started (pid ${child.pid})`);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill("SIGCONT");
    child.kill("SIGKILL");
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  pause(): void {
    this.child?.kill("SIGSTOP");
  }

  resume(): void {
    this.child?.kill("SIGCONT");
  }

  skew(ms: number): void {
    this.skewMs = ms;
    this.child?.stdin?.write(`${JSON.stringify({ skewMs: ms })}\n`);
  }

  /** Asks the node to drain and stop; kills it if it takes too long. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill("SIGCONT");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Starts a cluster for chaos experiments: NATS servers whose routes run through fault-injecting
 * proxies, and Strata nodes as separate processes, each connected to every server through its
 * own proxies, so that any process can be killed, paused, partitioned from any other, slowed or
 * (for nodes) given a skewed clock. Needs nats-server >= 2.10 (see `npm run setup:engines`).
 *
 * @example
 * await using cluster = await startChaosCluster({ nodes: 3 });
 * cluster.partition([["n1", "node-1"], ["n2", "n3", "node-2", "node-3", "client"]]);
 */
export async function startChaosCluster(options: ChaosClusterOptions = {}): Promise<ChaosCluster> {
  const log = options.log ?? (() => undefined);
  const workloads = options.workloads ?? DEFAULT_WORKLOADS;
  const natsServers = options.natsServers ?? 3;
  const replicas = natsServers >= 3 ? 3 : 1;
  const regions = options.regions ?? ["eu", "us"];
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "strata-chaos-")));
  if (ownDir) removeOnExit(dir);
  const nats = await startNatsCluster({
    nodes: natsServers,
    syncAlways: true,
    proxied: true,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  log(`NATS: ${nats.servers.map((s) => s.name).join(", ")} (routes through proxies)`);
  const nodes: NodeProcess[] = [];
  let client: StrataNode | undefined;
  const withPostgres =
    options.postgres ??
    (workloads.includes("pg-register") || workloads.includes("sharded-register"));
  let postgres: PostgresCluster | undefined;
  const pgLinks = new Map<string, TcpProxy>();
  const stop = async (): Promise<void> => {
    nats.heal();
    for (const link of pgLinks.values()) link.heal();
    await client?.stop({ drainTimeoutMs: 500 }).catch(() => undefined);
    await Promise.all(nodes.map((n) => n.stop()));
    await Promise.all([...pgLinks.values()].map((l) => l.close()));
    await postgres?.stop();
    await nats.stop();
    if (options.logsTo !== undefined) {
      const to = options.logsTo;
      await mkdir(to, { recursive: true });
      await Promise.all(
        nodes.map((n) =>
          copyFile(join(n.dir, "node.log"), join(to, `${n.name}.log`)).catch(() => undefined),
        ),
      );
    }
    if (ownDir) {
      await rm(dir, { recursive: true, force: true });
      releaseDir(dir);
    }
  };
  try {
    const count = options.nodes ?? 3;
    if (withPostgres) {
      postgres = await startPostgres();
      log(`PostgreSQL on port ${postgres.primary.port}`);
    }
    for (let i = 1; i <= count; i++) {
      const id = `node-${i}`;
      let postgresUrl: string | undefined;
      if (postgres !== undefined) {
        const link = await startTcpProxy({
          target: { port: postgres.primary.port },
          name: `${id}->pg`,
        });
        pgLinks.set(id, link);
        postgresUrl = postgres.primary.url.replace(`:${postgres.primary.port}/`, `:${link.port}/`);
      }
      const config: NodeConfig = {
        id,
        region: regions[(i - 1) % regions.length] ?? "default",
        servers: (await nats.client(id)).urls,
        cluster: "chaos",
        dir: join(dir, id),
        workloads,
        replicas,
        ...(options.breakage === undefined ? {} : { breakage: options.breakage }),
        ...(postgresUrl === undefined ? {} : { postgresUrl }),
      };
      nodes.push(new NodeProcess(config, log));
    }
    // The first node creates the buckets and streams; the others then open them.
    await nodes[0]?.start();
    await Promise.all(nodes.slice(1).map((n) => n.start()));
    client = createNode({
      id: "client",
      transport: createNatsTransport({
        servers: (await nats.client("client")).urls,
        cluster: "chaos",
        name: "client",
        connection: STAY_ON_PROXIES,
      }),
      admin: false,
    });
    await client.start();
  } catch (error) {
    await stop();
    throw error;
  }
  const byName = new Map<string, ChaosProcess>();
  const servers: ChaosProcess[] = nats.servers.map((s) => ({
    name: s.name,
    kind: "nats" as const,
    get running() {
      return s.running;
    },
    kill: () => s.kill(),
    restart: () => s.restart(),
    pause: () => s.pause(),
    resume: () => s.resume(),
  }));
  const pg = postgres?.primary;
  if (pg !== undefined) {
    servers.push({
      name: "pg",
      kind: "postgres",
      get running() {
        return pg.running;
      },
      kill: () => pg.kill(),
      restart: () => pg.restart(),
      pause: () => {
        throw new Error("pausing PostgreSQL is not supported; kill it or cut its links");
      },
      resume: () => undefined,
    });
  }
  for (const p of [...servers, ...nodes]) byName.set(p.name, p);
  const the = client;
  return {
    nats,
    postgres,
    servers,
    nodes,
    client: the,
    workloads,
    replicas,
    process(name) {
      const found = byName.get(name);
      if (found === undefined)
        throw new Error(`no process "${name}" (known: ${[...byName.keys()].join(", ")})`);
      return found;
    },
    partition(groups) {
      // The NATS cluster cuts its own links; a node's link to PostgreSQL is cut when the node
      // and `pg` are named in different groups.
      nats.partition(groups.map((g) => g.filter((n) => n !== "pg")).filter((g) => g.length > 0));
      const groupOf = (name: string): number => groups.findIndex((g) => g.includes(name));
      const pgGroup = groupOf("pg");
      for (const [node, link] of pgLinks) {
        const nodeGroup = groupOf(node);
        if (pgGroup >= 0 && nodeGroup >= 0 && pgGroup !== nodeGroup) link.cut();
      }
    },
    heal: () => {
      nats.heal();
      for (const link of pgLinks.values()) link.heal();
    },
    links(name) {
      const all = [...nats.links, ...pgLinks.values()];
      if (name === undefined) return all;
      return all.filter((l) => l.name.split("->").includes(name));
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import {
  access,
  chmod,
  chown,
  mkdtemp,
  open,
  readFile,
  readdir,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./find-nats.js";
import { freePort } from "./free-port.js";
import { reapOnExit } from "./reaper.js";
import { waitFor } from "./wait-for.js";

const run = promisify(execFile);

/** A PostgreSQL server started for tests. */
export interface PostgresServer {
  readonly port: number;
  readonly dir: string;
  /** A connection string for the `strata` superuser over TCP on loopback. */
  readonly url: string;
  readonly running: boolean;
  kill(): Promise<void>;
  restart(): Promise<void>;
  logs(): Promise<string>;
}

/** A primary, and a hot standby when asked for. Dispose it to stop both and remove their folders. */
export interface PostgresCluster extends AsyncDisposable {
  readonly primary: PostgresServer;
  readonly standby: PostgresServer | undefined;
  stop(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Finds initdb/pg_ctl/postgres: STRATA_PG_BIN, .engines/engines.env, PATH's, /usr/lib/postgresql. */
export async function findPostgresBin(): Promise<string> {
  const candidates: string[] = [];
  const env = process.env["STRATA_PG_BIN"];
  if (env !== undefined && env !== "") candidates.push(env);
  try {
    const text = await readFile(join(await repoRoot(), ".engines", "engines.env"), "utf8");
    const line = text.split("\n").find((l) => l.startsWith("STRATA_PG_BIN="));
    const value = line?.slice("STRATA_PG_BIN=".length).trim();
    if (value !== undefined && value !== "") candidates.push(value);
  } catch {
    // no engines file
  }
  try {
    const versions = (await readdir("/usr/lib/postgresql")).sort().reverse();
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian layout
  }
  for (const dir of candidates) {
    if ((await exists(join(dir, "initdb"))) && (await exists(join(dir, "postgres")))) {
      // Debian's /usr/local/bin holds symlinks; the real folder has pg_basebackup too.
      return dir;
    }
  }
  throw new Error(
    "PostgreSQL server binaries not found: run `npm run setup:engines` or set STRATA_PG_BIN",
  );
}

/** PostgreSQL refuses to run as root; as root, run it as the `postgres` user. */
async function runAs(): Promise<{ uid: number; gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined;
  const { stdout: uid } = await run("id", ["-u", "postgres"]).catch(() => ({ stdout: "" }));
  const { stdout: gid } = await run("id", ["-g", "postgres"]).catch(() => ({ stdout: "" }));
  if (uid.trim() === "")
    throw new Error("running as root and there is no postgres user to run PostgreSQL as");
  return { uid: Number(uid), gid: Number(gid) };
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

class Server implements PostgresServer {
  readonly port: number;
  readonly dir: string;
  private readonly bin: string;
  private readonly user: { uid: number; gid: number } | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;

  constructor(init: {
    port: number;
    dir: string;
    bin: string;
    user: { uid: number; gid: number } | undefined;
  }) {
    this.port = init.port;
    this.dir = init.dir;
    this.bin = init.bin;
    this.user = init.user;
  }

  get url(): string {
    return `postgresql://strata@127.0.0.1:${this.port}/postgres`;
  }

  get data(): string {
    return join(this.dir, "data");
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  async start(): Promise<void> {
    const log = await open(join(this.dir, "server.log"), "a");
    const child = spawn(
      join(this.bin, "postgres"),
      ["-D", this.data, "-p", String(this.port), "-k", this.dir, "-h", "127.0.0.1"],
      {
        stdio: ["ignore", log.fd, log.fd],
        ...(this.user === undefined ? {} : { uid: this.user.uid, gid: this.user.gid }),
      },
    );
    await log.close();
    child.on("error", () => undefined);
    this.child = child;
    live.add(child);
    // Also when a test runner ends this process with a signal, which skips the 'exit' hook.
    reapOnExit(child);
    this.exited = once(child, "exit").finally(() => live.delete(child));
    await waitFor(
      async () => {
        if (!this.running) throw new Error(`postgres exited; see ${join(this.dir, "server.log")}`);
        return (await this.logs()).includes("ready to accept");
      },
      { timeoutMs: 30_000, intervalMs: 50, message: "PostgreSQL did not start" },
    );
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await writeFile(join(this.dir, "server.log"), "");
    await this.start();
  }

  logs(): Promise<string> {
    return readFile(join(this.dir, "server.log"), "utf8").catch(() => "");
  }
}

async function exec(
  bin: string,
  args: string[],
  user: { uid: number; gid: number } | undefined,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(bin, args, {
      stdio: ["ignore", "pipe", "pipe"],
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`${bin} ${args.join(" ")} failed (${String(code)}):\n${output}`)),
    );
  });
}

/**
 * Starts a PostgreSQL primary (and optionally a hot standby made with pg_basebackup -R) on free
 * loopback ports in temporary folders, with durable settings (fsync on) and trust auth on
 * loopback only. Never touches servers already running on the machine.
 *
 * @example
 * await using pg = await startPostgres({ standby: true });
 * const pool = new Pool({ connectionString: pg.primary.url });
 */
export async function startPostgres(
  options: { readonly standby?: boolean } = {},
): Promise<PostgresCluster> {
  const bin = await findPostgresBin();
  const user = await runAs();
  const servers: Server[] = [];
  const make = async (name: string): Promise<Server> => {
    const dir = await mkdtemp(join(tmpdir(), `strata-pg-${name}-`));
    if (user !== undefined) await chown(dir, user.uid, user.gid);
    await chmod(dir, 0o700);
    const server = new Server({ port: await freePort(), dir, bin, user });
    servers.push(server);
    return server;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.kill()));
    await Promise.all(servers.map((s) => rm(s.dir, { recursive: true, force: true })));
  };
  try {
    const primary = await make("primary");
    await exec(
      join(bin, "initdb"),
      [
        "-D",
        primary.data,
        "-U",
        "strata",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-instructions",
      ],
      user,
    );
    const conf = [
      "listen_addresses = '127.0.0.1'",
      "fsync = on",
      "synchronous_commit = on",
      "wal_level = replica",
      "max_wal_senders = 5",
      "hot_standby = on",
      "max_connections = 200",
      "shared_buffers = 32MB",
    ];
    await writeFile(join(primary.data, "postgresql.auto.conf"), `${conf.join("\n")}\n`, {
      flag: "a",
    });
    await writeFile(
      join(primary.data, "pg_hba.conf"),
      [
        "local all all trust",
        "host all all 127.0.0.1/32 trust",
        "host replication all 127.0.0.1/32 trust",
        "",
      ].join("\n"),
    );
    await primary.start();
    let standby: Server | undefined;
    if (options.standby === true) {
      standby = await make("standby");
      const baseBackup = (await exists(join(bin, "pg_basebackup")))
        ? join(bin, "pg_basebackup")
        : "pg_basebackup";
      await exec(
        baseBackup,
        [
          "-D",
          standby.data,
          "-R",
          "-h",
          "127.0.0.1",
          "-p",
          String(primary.port),
          "-U",
          "strata",
          "-X",
          "stream",
        ],
        user,
      );
      await standby.start();
    }
    return { primary, standby, stop, [Symbol.asyncDispose]: stop };
  } catch (error) {
    const logs = await Promise.all(servers.map(async (s) => (await s.logs()).slice(-2_000)));
    await stop();
    throw new Error(`PostgreSQL test cluster did not start: ${String(error)}\n${logs.join("\n")}`, {
      cause: error,
    });
  }
}

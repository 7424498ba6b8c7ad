import { execFile } from "node:child_process";
import { access, constants, readFile } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The oldest nats-server the harness (and Strata) accepts. */
export const MIN_NATS_SERVER = "2.10.0";

/** Walks up from this module to the workspace root (the package.json with "workspaces"). */
export async function repoRoot(): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
        workspaces?: unknown;
      };
      if (pkg.workspaces !== undefined) return dir;
    } catch {
      // no package.json here
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the Strata workspace root");
    dir = parent;
  }
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function fromEnvFile(root: string): Promise<string | undefined> {
  try {
    const text = await readFile(join(root, ".engines", "engines.env"), "utf8");
    const line = text.split("\n").find((l) => l.startsWith("STRATA_NATS_SERVER="));
    const value = line?.slice("STRATA_NATS_SERVER=".length).trim();
    return value === undefined || value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

/** Parses `nats-server: v2.10.27` into "2.10.27". */
export function parseNatsVersion(output: string): string | undefined {
  return /v?(\d+\.\d+\.\d+)/.exec(output)?.[1];
}

function atLeast(version: string, minimum: string): boolean {
  const a = version.split(".").map(Number);
  const b = minimum.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/**
 * Finds nats-server: `STRATA_NATS_SERVER`, then `.engines/engines.env`, then
 * `.engines/nats-server/nats-server`, then PATH. Refuses versions below 2.10, saying why.
 */
export async function findNatsServer(): Promise<{ path: string; version: string }> {
  const root = await repoRoot();
  const candidates: string[] = [];
  const env = process.env["STRATA_NATS_SERVER"];
  if (env !== undefined && env !== "") candidates.push(env);
  else {
    const fromFile = await fromEnvFile(root);
    if (fromFile !== undefined) candidates.push(fromFile);
    candidates.push(join(root, ".engines", "nats-server", "nats-server"));
    for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
      if (dir !== "") candidates.push(join(dir, "nats-server"));
    }
  }
  if (env !== undefined && env !== "" && !(await executable(env))) {
    throw new Error(`STRATA_NATS_SERVER=${env} is not an executable file`);
  }
  for (const path of candidates) {
    if (!(await executable(path))) continue;
    let output: string;
    try {
      const { stdout, stderr } = await run(path, ["--version"], { timeout: 10_000 });
      output = `${stdout}${stderr}`;
    } catch (error) {
      throw new Error(`${path} --version failed; run \`npm run setup:engines\``, { cause: error });
    }
    const version = parseNatsVersion(output);
    if (version === undefined) continue;
    if (!atLeast(version, MIN_NATS_SERVER)) {
      throw new Error(
        `nats-server ${version} at ${path} is too old: Strata needs >= ${MIN_NATS_SERVER}. ` +
          "2.9.x lets two concurrent compare-and-set updates with the same revision both succeed on " +
          "replicated streams (nats-server#4320), can serve stale KV reads from followers after a " +
          "restart, and has no sync_interval to fsync before acknowledging. Run `npm run setup:engines`.",
      );
    }
    return { path, version };
  }
  throw new Error("nats-server not found: run `npm run setup:engines` (or set STRATA_NATS_SERVER)");
}

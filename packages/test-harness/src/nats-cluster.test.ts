import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findNatsServer, startNatsCluster, waitFor } from "./index.js";

async function json(url: string): Promise<Record<string, unknown>> {
  const response = await fetch(url);
  return (await response.json()) as Record<string, unknown>;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The process state letter from /proc (R, S, T for stopped, …). */
async function processState(pid: number | undefined): Promise<string | undefined> {
  if (pid === undefined) return undefined;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return /\) (\w) /.exec(stat)?.[1];
}

/** Pids of nats-server processes whose parent is this test process (from /proc). */
async function ourNatsServers(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // "pid (comm) state ppid …"; a zombie would still count, which is what we want to catch.
    const match = /^\d+ \((.*)\) \w (\d+) /.exec(stat);
    if (match?.[1] === "nats-server" && Number(match[2]) === process.pid) pids.push(Number(entry));
  }
  return pids;
}

/** The distinct server names a server has routes to (2.10 pools several routes per peer). */
async function remoteNames(monitorPort: number): Promise<string[]> {
  const routez = await json(`http://127.0.0.1:${monitorPort}/routez`);
  const routes = (routez["routes"] as Array<{ remote_name: string }> | undefined) ?? [];
  return [...new Set(routes.map((r) => r.remote_name))].sort();
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("findNatsServer", () => {
  it("finds a server of at least 2.10", async () => {
    const { version } = await findNatsServer();
    const [major, minor] = version.split(".").map(Number);
    expect((major ?? 0) * 100 + (minor ?? 0)).toBeGreaterThanOrEqual(210);
  });

  it("refuses a server below 2.10 and says why", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-fake-nats-"));
    const fake = join(dir, "nats-server");
    await writeFile(fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n");
    await chmod(fake, 0o755);
    const before = process.env["STRATA_NATS_SERVER"];
    process.env["STRATA_NATS_SERVER"] = fake;
    try {
      await expect(findNatsServer()).rejects.toThrow(/2\.9\.10.*too old.*4320/s);
    } finally {
      if (before === undefined) delete process.env["STRATA_NATS_SERVER"];
      else process.env["STRATA_NATS_SERVER"] = before;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("startNatsCluster", () => {
  it("starts one JetStream server, and dispose removes its process and folder", async () => {
    let dir = "";
    let pid: number | undefined;
    {
      await using cluster = await startNatsCluster({ nodes: 1, syncAlways: true });
      const server = cluster.servers[0];
      if (server === undefined) throw new Error("no server");
      dir = server.dir;
      pid = server.pid;
      expect(cluster.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      const jsz = await json(`http://127.0.0.1:${server.monitorPort}/jsz`);
      expect(jsz["config"]).toMatchObject({ sync_interval: expect.anything() as unknown });
      expect(alive(pid)).toBe(true);
    }
    expect(await exists(dir)).toBe(false);
    expect(alive(pid)).toBe(false);
    expect(await ourNatsServers()).toEqual([]);
  });

  it("starts without JetStream when asked", async () => {
    await using cluster = await startNatsCluster({ nodes: 1, jetstream: false });
    const server = cluster.servers[0];
    if (server === undefined) throw new Error("no server");
    expect((await fetch(`http://127.0.0.1:${server.monitorPort}/healthz`)).ok).toBe(true);
    const jsz = await json(`http://127.0.0.1:${server.monitorPort}/jsz`);
    expect(jsz["disabled"]).toBe(true);
  });

  it("an aborted start rejects and leaves no process behind", async () => {
    const aborted = AbortSignal.abort(new Error("not wanted"));
    await expect(startNatsCluster({ nodes: 3, signal: aborted })).rejects.toThrow("not wanted");
    // Abort part-way: whichever step it lands in, servers spawned so far are killed.
    await expect(startNatsCluster({ nodes: 3, signal: AbortSignal.timeout(30) })).rejects.toThrow();
    expect(await ourNatsServers()).toEqual([]);
  });

  it("starts a 3-node cluster; kill -9, restart, pause and resume one server", async () => {
    const dirs: string[] = [];
    {
      await using cluster = await startNatsCluster({ nodes: 3 });
      dirs.push(...cluster.servers.map((s) => s.dir));
      expect(cluster.urls).toHaveLength(3);
      expect(cluster.url).toBe(cluster.urls.join(","));
      const [a, b, c] = cluster.servers;
      if (a === undefined || b === undefined || c === undefined) throw new Error("servers missing");
      for (const server of cluster.servers) {
        const jsz = await json(`http://127.0.0.1:${server.monitorPort}/jsz`);
        const meta = jsz["meta_cluster"] as { cluster_size: number; leader: string };
        expect(meta.cluster_size).toBe(3);
        expect(meta.leader).toMatch(/^n[123]$/);
      }

      const pid = a.pid;
      await a.kill();
      expect(a.running).toBe(false);
      expect(alive(pid)).toBe(false);
      await a.restart();
      expect(a.running).toBe(true);
      expect(a.pid).not.toBe(pid);
      expect(await remoteNames(a.monitorPort)).toEqual(["n2", "n3"]);
      // The peers see it again too (routes are per connection, so give them their moment).
      for (const peer of [b, c]) {
        await waitFor(async () => (await remoteNames(peer.monitorPort)).includes("n1"), {
          timeoutMs: 5_000,
          message: `${peer.name} has no route back to n1`,
        });
      }
      expect(await a.logs()).toMatch(/Server is ready/);

      a.pause();
      // The kernel reports the process stopped ("T") once SIGSTOP has landed; then it answers nothing.
      await waitFor(async () => (await processState(a.pid)) === "T", {
        timeoutMs: 5_000,
        message: "server never stopped",
      });
      await expect(
        fetch(`http://127.0.0.1:${a.monitorPort}/healthz`, {
          signal: AbortSignal.timeout(300),
          keepalive: false,
        }),
      ).rejects.toThrow();
      a.resume();
      await waitFor(async () => (await processState(a.pid)) !== "T", {
        timeoutMs: 5_000,
        message: "server never resumed",
      });
      const health = await fetch(`http://127.0.0.1:${a.monitorPort}/healthz`);
      expect(health.ok).toBe(true);

      // Leave one server paused: disposing must still kill it.
      b.pause();
    }
    for (const dir of dirs) expect(await exists(dir)).toBe(false);
    expect(await ourNatsServers()).toEqual([]);
  });
});

import { spawn } from "node:child_process";
import { appendFile, copyFile, mkdir, mkdtemp, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { manualClock } from "../../ports/index.js";
import type { KvPage } from "../../ports/strong-kv.js";
import { openEmbeddedKv } from "./embedded-kv.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "strata-kv-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

// The behaviour every adapter shares (listing, watches, hostile keys, linearizability, locks) is
// in the conformance suite (embedded-kv-conformance.test.ts); these tests cover what is the
// embedded store's own: create revisions, manual-clock leases, restarts, torn tails, SIGKILL,
// and transactions that a crash leaves whole or absent.
describe("embedded StrongKV", () => {
  it("puts, gets, creates, compares-and-sets and deletes with increasing revisions", async () => {
    await using kv = await openEmbeddedKv({ dir: await freshDir() });
    const r1 = await kv.put("a", enc("1"));
    const r2 = await kv.put("a", enc("2"));
    expect(r2).toBeGreaterThan(r1);
    expect(dec((await kv.get("a"))?.value)).toBe("2");
    expect((await kv.get("a"))?.createRevision).toBe(r1);
    await expect(kv.create("a", enc("x"))).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    await expect(kv.compareAndSet("a", enc("3"), r1)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      details: { currentRevision: r2 },
    });
    const r3 = await kv.compareAndSet("a", enc("3"), r2);
    await expect(kv.compareAndSet("b", enc("new"), 0)).resolves.toBeGreaterThan(r3);
    expect(await kv.delete("a", { expectedRevision: r3 })).toBe(true);
    expect(await kv.get("a")).toBeUndefined();
    expect(await kv.delete("a")).toBe(false);
    expect(await kv.revision()).toBeGreaterThan(r3);
  });

  it("refuses bad keys, values and options with INVALID_ARGUMENT", async () => {
    await using kv = await openEmbeddedKv({ dir: await freshDir() });
    for (const key of ["", ".a", "a.", "a b", "ключ", "x".repeat(1025), "a*"]) {
      await expect(kv.put(key, enc("v"))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    }
    await expect(kv.put("a", "text" as never)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(kv.compareAndSet("a", enc("v"), -1)).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(kv.list("", { limit: 0 })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(kv.grantLease(1)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("expires a lease and deletes its keys; keep-alive extends it; revoke ends it", async () => {
    const clock = manualClock();
    await using kv = await openEmbeddedKv({ dir: await freshDir(), clock });
    const lease = await kv.grantLease(1_000);
    await kv.put("lock/a", enc("me"), { lease });
    clock.advance(800);
    await kv.keepAlive(lease);
    clock.advance(800);
    expect(await kv.get("lock/a")).toBeDefined();
    clock.advance(300);
    await kv.revision(); // let the expiry's deletes commit
    expect(await kv.get("lock/a")).toBeUndefined();
    await expect(kv.keepAlive(lease)).rejects.toMatchObject({ code: "NOT_FOUND" });
    const other = await kv.grantLease(1_000);
    await kv.put("lock/b", enc("me"), { lease: other });
    await kv.revokeLease(other);
    expect(await kv.get("lock/b")).toBeUndefined();
    await expect(kv.put("x", enc("v"), { lease: "lease-999" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
  });

  it("survives a restart, with snapshots, and refuses a second opener", async () => {
    const dir = await freshDir();
    {
      await using kv = await openEmbeddedKv({ dir, compactAfterBytes: 2_000 });
      for (let i = 0; i < 200; i++) await kv.put(`k/${i % 20}`, enc(`v${i}`));
      await expect(openEmbeddedKv({ dir })).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
      expect(await kv.walSize()).toBeLessThan(4_000); // compacted along the way
    }
    await using again = await openEmbeddedKv({ dir });
    expect(dec((await again.get("k/19"))?.value)).toBe("v199");
    expect((await again.list("k/")).entries).toHaveLength(20);
    expect(await again.revision()).toBe(200);
  });

  it("cuts a torn tail on recovery and keeps everything before it", async () => {
    const dir = await freshDir();
    {
      await using kv = await openEmbeddedKv({ dir });
      await kv.put("a", enc("1"));
      await kv.put("b", enc("2"));
    }
    const wal = join(dir, "kv.wal");
    const before = (await stat(wal)).size;
    await appendFile(wal, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 9, 9])); // a header promising 40 bytes, then 2
    await using kv = await openEmbeddedKv({ dir });
    expect(dec((await kv.get("b"))?.value)).toBe("2");
    expect((await stat(wal)).size).toBe(before);
    await kv.put("c", enc("3"));
    expect(dec((await kv.get("c"))?.value)).toBe("3");
  });

  it("loses no acknowledged write when its process is killed with SIGKILL mid-write", async () => {
    const dir = await freshDir();
    const acknowledged = await writeUntilKilled(dir, "put", 2_000);
    await using kv = await openEmbeddedKv({ dir });
    let missing = 0;
    for (const [key, revision] of acknowledged) {
      const entry = await kv.get(key);
      if (entry?.revision !== revision || dec(entry.value) !== `v${Number(key.slice(2))}`)
        missing++;
    }
    expect(missing).toBe(0);
    expect(acknowledged.size).toBeGreaterThanOrEqual(2_000);
  });

  it("recovers a transaction whole or not at all when the log is torn inside its record", async () => {
    const dir = await freshDir();
    const wal = join(dir, "kv.wal");
    let before: number;
    let revision: number;
    {
      await using kv = await openEmbeddedKv({ dir });
      await kv.put("acct/a", enc("10"));
      await kv.put("acct/b", enc("0"));
      before = (await stat(wal)).size;
      revision = await kv.transaction({
        writes: [
          { type: "put", key: "acct/a", value: enc("7") },
          { type: "put", key: "acct/b", value: enc("3") },
          { type: "put", key: "audit/1", value: enc("a->b 3") },
        ],
      });
      expect(revision).toBe(5);
    }
    const after = (await stat(wal)).size;
    // Every cut inside the transaction's record (a crash mid-write) leaves none of it.
    for (const cut of [
      before + 1,
      before + 8,
      before + Math.floor((after - before) / 2),
      after - 1,
    ]) {
      await rm(join(dir, "copy"), { recursive: true, force: true });
      await mkdir(join(dir, "copy"));
      await copyFile(wal, join(dir, "copy", "kv.wal"));
      await truncate(join(dir, "copy", "kv.wal"), cut);
      await using torn = await openEmbeddedKv({ dir: join(dir, "copy") });
      expect(dec((await torn.get("acct/a"))?.value), `cut at ${cut}`).toBe("10");
      expect(dec((await torn.get("acct/b"))?.value)).toBe("0");
      expect(await torn.get("audit/1")).toBeUndefined();
      expect(await torn.revision()).toBe(2);
    }
    // The whole record: all of it, with the revisions it was acknowledged with.
    await using kv = await openEmbeddedKv({ dir });
    expect(dec((await kv.get("acct/a"))?.value)).toBe("7");
    expect((await kv.get("acct/b"))?.revision).toBe(4);
    expect((await kv.get("audit/1"))?.revision).toBe(revision);
  });

  it("refuses a transaction too large for one log record and stays usable", async () => {
    await using kv = await openEmbeddedKv({ dir: await freshDir(), sync: false });
    const base = await kv.put("big/a", enc("small"));
    const half = new Uint8Array(33 * 1024 * 1024);
    await expect(
      kv.transaction({
        writes: [
          { type: "put", key: "big/a", value: half },
          { type: "put", key: "big/b", value: half },
        ],
      }),
    ).rejects.toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect((await kv.get("big/a"))?.revision).toBe(base);
    expect(await kv.get("big/b")).toBeUndefined();
    expect(await kv.revision()).toBe(base);
    await expect(kv.put("big/c", enc("ok"))).resolves.toBe(base + 1);
  });

  it("never leaves a transaction half-applied when its process is killed with SIGKILL", async () => {
    const dir = await freshDir();
    const acknowledged = await writeUntilKilled(dir, "txn", 500);
    await using kv = await openEmbeddedKv({ dir });
    for (const [key, revision] of acknowledged) {
      const value = `v${Number(key.slice(2))}`;
      expect((await kv.get(`${key}/c`))?.revision, key).toBe(revision);
      for (const part of ["a", "b", "c"])
        expect(dec((await kv.get(`${key}/${part}`))?.value)).toBe(value);
    }
    // Transactions that were not acknowledged are there whole or not at all.
    const parts = new Map<string, number>();
    for (let after: string | undefined = ""; after !== undefined;) {
      const page: KvPage = await kv.list("t/", { after, limit: 10_000 });
      for (const entry of page.entries) {
        const txn = entry.key.slice(0, entry.key.lastIndexOf("/"));
        parts.set(txn, (parts.get(txn) ?? 0) + 1);
      }
      after = page.next;
    }
    expect(parts.size).toBeGreaterThanOrEqual(acknowledged.size);
    expect([...parts].filter(([, count]) => count !== 3)).toEqual([]);
  });
});

/**
 * Runs the writer fixture on `dir` until it has acknowledged `count` writes, then kills it with
 * SIGKILL; returns every acknowledged key with its revision.
 */
async function writeUntilKilled(
  dir: string,
  mode: "put" | "txn",
  count: number,
): Promise<Map<string, number>> {
  const fixture = fileURLToPath(new URL("../../../test-fixtures/kv-writer.mjs", import.meta.url));
  const child = spawn(process.execPath, [fixture, dir, "16", mode], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const acknowledged = new Map<string, number>();
  let buffer = "";
  let ready = false;
  await new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "ready") ready = true;
        const [key, revision] = line.split(" ");
        if (key !== undefined && revision !== undefined) acknowledged.set(key, Number(revision));
      }
      if (ready && acknowledged.size >= count) {
        child.kill("SIGKILL");
        resolve();
      }
    });
  });
  await exited;
  return acknowledged;
}

import { spawn } from "node:child_process";
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeLogConformance, waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { manualClock } from "../../ports/index.js";
import type { EventLog, LogRecord } from "../../ports/log.js";
import { openEmbeddedLog, type EmbeddedLog, type EmbeddedLogOptions } from "./embedded-log.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "strata-log-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

// The conformance fixture removes a log's folder when the test disposes it; reopen keeps it.
const folders = new WeakMap<EventLog, string>();
async function openInFolder(dir: string): Promise<EventLog> {
  const log = await openEmbeddedLog({ dir });
  const wrapped = Object.assign(log, {
    async [Symbol.asyncDispose]() {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    },
  });
  folders.set(wrapped, dir);
  return wrapped;
}
describeLogConformance("embedded", {
  open: async () => openInFolder(await mkdtemp(join(tmpdir(), "strata-log-conformance-"))),
  async reopen(log) {
    const dir = folders.get(log);
    if (dir === undefined) throw new Error("not a log this fixture opened");
    await (log as EmbeddedLog).close();
    return openInFolder(dir);
  },
});

async function segmentFiles(dir: string, stream: string): Promise<string[]> {
  return (await readdir(join(dir, stream))).filter((f) => f.endsWith(".log")).sort();
}

async function readAll(log: EventLog, stream: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (;;) {
    const from = (out.at(-1)?.seq ?? 0) + 1;
    const page = await log.read(stream, { fromSeq: from, limit: 10_000 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}

async function fill(
  log: EventLog,
  stream: string,
  count: number,
  options: { start?: number; partitions?: number } = {},
): Promise<void> {
  const start = options.start ?? 0;
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      log.append(stream, {
        partition: (start + i) % (options.partitions ?? 1),
        id: `id-${start + i}`,
        key: `k${(start + i) % 5}`,
        payload: enc(`payload-${start + i}`),
      }),
    ),
  );
}

async function open(dir: string, options: Omit<EmbeddedLogOptions, "dir"> = {}) {
  return openEmbeddedLog({ dir, ...options });
}

// The behaviour every adapter shares is in the conformance suite above; these tests cover the
// embedded log's own: segment files, retention, recovery from torn and hostile files, SIGKILL.
describe("embedded Log", () => {
  it("rolls segments at segmentBytes; reads, partition reads and seqAtTime span them", async () => {
    const dir = await freshDir();
    const clock = manualClock();
    {
      await using log = await open(dir, { segmentBytes: 512, clock });
      await log.ensureStream({ name: "roll", partitions: 3 });
      for (let i = 0; i < 150; i++) {
        await fill(log, "roll", 1, { start: i, partitions: 3 });
        clock.advance(10);
      }
      expect((await segmentFiles(dir, "roll")).length).toBeGreaterThan(5);
      expect((await readAll(log, "roll")).map((r) => dec(r.payload))).toEqual(
        Array.from({ length: 150 }, (_, i) => `payload-${i}`),
      );
    }
    // After a reopen the recent-record cache is empty: every read below comes from the files.
    await using log = await open(dir, { segmentBytes: 512, clock });
    const all = await readAll(log, "roll");
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    expect(all.map((r) => r.id)).toEqual(Array.from({ length: 150 }, (_, i) => `id-${i}`));
    const p2 = await log.read("roll", { partition: 2, fromSeq: 40, limit: 20 });
    expect(p2.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 42 + i * 3));
    expect(p2.every((r) => r.partition === 2)).toBe(true);
    const t = (all[99] as LogRecord).time;
    expect(await log.seqAtTime("roll", t)).toBe(100);
    expect(await log.seqAtTime("roll", t - 5)).toBe(100);
    expect(await log.seqAtTime("roll", t + 1)).toBe(101);
    expect(await log.streamInfo("roll")).toMatchObject({ firstSeq: 1, lastSeq: 150, records: 150 });
    await fill(log, "roll", 1, { start: 150, partitions: 3 });
    expect((await log.read("roll", { fromSeq: 151 }))[0]).toMatchObject({ seq: 151, id: "id-150" });
  });

  it("serves reads that straddle the in-memory tail and the files", async () => {
    await using log = await open(await freshDir(), { sync: false });
    await log.ensureStream({ name: "big", partitions: 2 });
    for (let n = 0; n < 6_000; n += 1_000)
      await fill(log, "big", 1_000, { start: n, partitions: 2 });
    const all = await readAll(log, "big");
    expect(all.length).toBe(6_000);
    for (const r of all) expect(dec(r.payload)).toBe(`payload-${r.seq - 1}`);
    const odd = await log.read("big", { partition: 1, limit: 10_000 });
    expect(odd.length).toBe(3_000);
    expect(odd.every((r, i) => r.seq === 2 * i + 2)).toBe(true);
  });

  it("removes whole old segments past maxBytes, never the active one, and moves firstSeq", async () => {
    const dir = await freshDir();
    await using log = await open(dir, { segmentBytes: 400 });
    await log.ensureStream({ name: "cap", partitions: 1, maxBytes: 2_000 });
    for (let i = 0; i < 120; i += 10) await fill(log, "cap", 10, { start: i });
    await waitFor(async () => (await log.streamInfo("cap")).bytes <= 2_400, {
      message: "retention did not remove old segments",
    });
    const info = await log.streamInfo("cap");
    expect(info.firstSeq).toBeGreaterThan(1);
    expect(info.lastSeq).toBe(120);
    expect(info.records).toBe(120 - info.firstSeq + 1);
    const files = await segmentFiles(dir, "cap");
    expect(files[0]).toBe(`${String(info.firstSeq).padStart(20, "0")}.log`);
    const kept = await log.read("cap", { limit: 1_000 });
    expect(kept[0]?.seq).toBe(info.firstSeq); // a read from 1 starts at the first kept record
    expect(kept.at(-1)?.seq).toBe(120);
    for (const r of kept) expect(dec(r.payload)).toBe(`payload-${r.seq - 1}`);
    expect(await log.seqAtTime("cap", 0)).toBe(info.firstSeq);
  });

  it("removes segments older than maxAgeMs when the clock passes them, keeping the active one", async () => {
    const dir = await freshDir();
    const clock = manualClock();
    await using log = await open(dir, { segmentBytes: 400, clock });
    await log.ensureStream({ name: "age", partitions: 1, maxAgeMs: 60_000 });
    for (let i = 0; i < 30; i++) await fill(log, "age", 1, { start: i });
    const segments = (await segmentFiles(dir, "age")).length;
    expect(segments).toBeGreaterThan(2);
    clock.advance(30_000);
    await fill(log, "age", 1, { start: 30 });
    clock.advance(30_001); // the first 30 records are now older than a minute; the 31st is not
    await waitFor(async () => (await segmentFiles(dir, "age")).length === 1, {
      message: "expired segments were not removed",
    });
    expect(await log.streamInfo("age")).toMatchObject({ lastSeq: 31 });
    const info = await log.streamInfo("age");
    expect(info.firstSeq).toBeLessThanOrEqual(31);
    expect((await log.read("age")).at(-1)?.seq).toBe(31);
    clock.advance(3_600_000);
    await fill(log, "age", 1, { start: 31 });
    expect((await log.read("age")).at(-1)?.id).toBe("id-31"); // the active segment stays
  });

  it("keeps the duplicate window across a reopen and forgets ids once it has passed", async () => {
    const dir = await freshDir();
    const clock = manualClock();
    const append = (log: EventLog, id: string) =>
      log.append("dup", { partition: 0, id, key: "k", payload: enc(id) });
    {
      await using log = await open(dir, { clock });
      await log.ensureStream({ name: "dup", partitions: 1, duplicateWindowMs: 10_000 });
      expect(await append(log, "a")).toEqual({ seq: 1, duplicate: false });
      clock.advance(6_000);
      expect(await append(log, "b")).toEqual({ seq: 2, duplicate: false });
      // A duplicate sent while the first copy is still being written waits for it.
      const [first, again] = await Promise.all([append(log, "c"), append(log, "c")]);
      expect(first).toEqual({ seq: 3, duplicate: false });
      expect(again).toEqual({ seq: 3, duplicate: true });
    }
    {
      await using log = await open(dir, { clock });
      expect(await append(log, "a")).toEqual({ seq: 1, duplicate: true });
      expect(await append(log, "b")).toEqual({ seq: 2, duplicate: true });
      clock.advance(5_000); // "a" is now 11 s old, "b" 5 s
      expect(await append(log, "a")).toEqual({ seq: 4, duplicate: false });
      expect(await append(log, "b")).toEqual({ seq: 2, duplicate: true });
    }
    clock.advance(20_000);
    await using log = await open(dir, { clock }); // nothing inside the window is rebuilt
    expect(await append(log, "b")).toEqual({ seq: 5, duplicate: false });
  });

  it("cuts a torn tail off the last segment on reopen, and appends go on", async () => {
    const dir = await freshDir();
    {
      await using log = await open(dir);
      await log.ensureStream({ name: "torn", partitions: 1 });
      await fill(log, "torn", 3);
    }
    const [file] = await segmentFiles(dir, "torn");
    const path = join(dir, "torn", file as string);
    const before = (await stat(path)).size;
    const whole = await readFile(path);
    // Half of a real record, as a crash mid-write leaves it.
    await appendFile(path, whole.subarray(0, Math.floor(whole.length / 3 / 2)));
    await using log = await open(dir);
    expect((await stat(path)).size).toBe(before);
    expect((await readAll(log, "torn")).map((r) => r.id)).toEqual(["id-0", "id-1", "id-2"]);
    expect(
      await log.append("torn", { partition: 0, id: "n", key: "k", payload: enc("n") }),
    ).toEqual({ seq: 4, duplicate: false });
    await log.close();
    await using again = await open(dir);
    expect((await readAll(again, "torn")).map((r) => r.id)).toEqual(["id-0", "id-1", "id-2", "n"]);
  });

  it("refuses to open, with DATA_LOSS, when an older segment is corrupt or missing", async () => {
    const dir = await freshDir();
    {
      await using log = await open(dir, { segmentBytes: 300 });
      await log.ensureStream({ name: "bad", partitions: 1 });
      for (let i = 0; i < 40; i += 4) await fill(log, "bad", 4, { start: i });
    }
    const files = await segmentFiles(dir, "bad");
    expect(files.length).toBeGreaterThan(3);
    const victim = join(dir, "bad", files[1] as string);
    const original = await readFile(victim);
    const flipped = Buffer.from(original);
    const middle = Math.floor(flipped.length / 2);
    flipped[middle] = (flipped[middle] as number) ^ 0xff;
    await writeFile(victim, flipped);
    await expect(open(dir)).rejects.toMatchObject({ code: "DATA_LOSS" });
    expect((await readFile(victim)).equals(flipped)).toBe(true); // nothing was cut
    await writeFile(victim, original);
    await rm(join(dir, "bad", files[2] as string));
    await expect(open(dir)).rejects.toMatchObject({ code: "DATA_LOSS" });
    await writeFile(join(dir, "bad", "stream.json"), "{ not json");
    await expect(open(dir)).rejects.toMatchObject({ code: "DATA_LOSS" });
  });

  it("refuses a second opener, bad options and a stream spec with different limits", async () => {
    const dir = await freshDir();
    await using log = await open(dir);
    await expect(open(dir)).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    await expect(open(await freshDir(), { segmentBytes: 0 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await log.ensureStream({ name: "lim", partitions: 2, maxBytes: 1_000_000 });
    await expect(
      log.ensureStream({ name: "lim", partitions: 2, maxBytes: 5 }),
    ).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    await expect(log.ensureStream({ name: "lim", partitions: 2 })).resolves.toMatchObject({
      partitions: 2,
    });
  });

  it("wakes many concurrent followers on each append; abort and delete end them", async () => {
    await using log = await open(await freshDir());
    await log.ensureStream({ name: "fan", partitions: 2 });
    const controller = new AbortController();
    const partitionOf = (f: number): number | undefined => (f % 3 === 2 ? undefined : f % 3);
    const seen = Array.from({ length: 25 }, (): number[] => []);
    const followers = seen.map(async (out, f) => {
      const partition = partitionOf(f);
      for await (const r of log.follow("fan", {
        signal: controller.signal,
        ...(partition === undefined ? {} : { partition }),
      })) {
        out.push(r.seq);
      }
    });
    await fill(log, "fan", 200, { partitions: 2 });
    const expected = seen.map((_, f) =>
      Array.from({ length: 200 }, (_, i) => i + 1).filter((seq) => {
        const partition = partitionOf(f);
        return partition === undefined || (seq - 1) % 2 === partition;
      }),
    );
    await waitFor(() => seen.every((out, f) => out.length === expected[f]?.length), {
      message: "followers did not see every append",
    });
    const ending = log.follow("fan", { fromSeq: 1 });
    const iterator = ending[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ seq: 1 });
    controller.abort();
    await Promise.all(followers);
    expect(seen).toEqual(expected);
    // Drain the stored records, then the delete wakes the waiting follower with NOT_FOUND.
    const rest = (async () => {
      let count = 1;
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) return count;
        count++;
      }
    })();
    const ended = expect(rest).rejects.toMatchObject({ code: "NOT_FOUND" });
    await log.deleteStream("fan");
    await ended;
  });

  it("loses no acknowledged append when its process is killed with SIGKILL mid-load", async () => {
    const dir = await freshDir();
    const fixture = fileURLToPath(
      new URL("../../../test-fixtures/log-writer.mjs", import.meta.url),
    );
    const child = spawn(process.execPath, [fixture, dir, "32", "16384"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const acknowledged = new Map<number, number>(); // seq -> writer's record number
    let buffer = "";
    let ready = false;
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", (code) => reject(new Error(`writer exited early with ${String(code)}`)));
      child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) {
          if (line === "ready") ready = true;
          const [n, seq] = line.split(" ");
          if (n !== undefined && seq !== undefined) acknowledged.set(Number(seq), Number(n));
        }
        if (ready && acknowledged.size >= 3_000) {
          child.kill("SIGKILL");
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.once("exit", resolve));
    await using log = await open(dir);
    const records = await readAll(log, "crash");
    const bySeq = new Map(records.map((r) => [r.seq, r]));
    let missing = 0;
    for (const [seq, n] of acknowledged) {
      const record = bySeq.get(seq);
      if (
        record === undefined ||
        record.id !== `w-${n}` ||
        record.partition !== n % 4 ||
        record.headers["n"] !== String(n) ||
        dec(record.payload) !== `payload-${n}`
      ) {
        missing++;
      }
    }
    expect(missing).toBe(0);
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1)); // no gap
    expect((await segmentFiles(dir, "crash")).length).toBeGreaterThan(1); // it rolled under load
    const next = await log.append("crash", {
      partition: 0,
      id: "after",
      key: "k",
      payload: enc(""),
    });
    expect(next.seq).toBe(records.length + 1);
  });
});

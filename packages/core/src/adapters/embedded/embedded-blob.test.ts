import { spawn } from "node:child_process";
import { appendFile, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { isStrataError } from "../../errors/index.js";
import type { BlobChange, BlobStore } from "../../ports/blob.js";
import { openEmbeddedBlob } from "./embedded-blob.js";

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "strata-blob-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Takes `count` changes from a watch, then stops it. */
async function take(
  store: BlobStore,
  prefix: string,
  count: number,
  fromSeq?: number,
): Promise<BlobChange[]> {
  const controller = new AbortController();
  const seen: BlobChange[] = [];
  const options = fromSeq === undefined ? { signal: controller.signal } : { fromSeq };
  for await (const change of store.watch(prefix, { ...options, signal: controller.signal })) {
    seen.push(change);
    if (seen.length >= count) controller.abort();
  }
  return seen;
}

describe("embedded blob store", () => {
  it("stores, reads, lists, and deletes objects with content type and metadata", async () => {
    await using blobs = await openEmbeddedBlob({ dir: await freshDir() });
    const info = await blobs.put("invoices/2025/o-1.pdf", enc("%PDF-1"), {
      contentType: "application/pdf",
      metadata: { "order-id": "o-1" },
    });
    expect(info).toMatchObject({
      key: "invoices/2025/o-1.pdf",
      size: 6,
      contentType: "application/pdf",
      metadata: { "order-id": "o-1" },
      seq: 1,
    });
    expect(info.sha256).toMatch(/^[0-9a-f]{64}$/);
    const object = await blobs.get("invoices/2025/o-1.pdf");
    expect(dec(object.bytes)).toBe("%PDF-1");
    expect(object.contentType).toBe("application/pdf");
    expect(await blobs.head("invoices/2025/o-1.pdf")).toEqual(info);
    expect(await blobs.head("invoices/none")).toBeUndefined();
    await expect(blobs.get("invoices/none")).rejects.toMatchObject({ code: "NOT_FOUND" });

    // Streams are stored chunk by chunk; replacing keeps one version.
    await blobs.put("invoices/2025/o-1.pdf", Readable.from([enc("%PDF-"), enc("2")]));
    expect(dec((await blobs.get("invoices/2025/o-1.pdf")).bytes)).toBe("%PDF-2");
    expect((await blobs.head("invoices/2025/o-1.pdf"))?.contentType).toBe(
      "application/octet-stream",
    );

    for (let i = 0; i < 5; i++) await blobs.put(`invoices/2026/o-${i}`, enc(`n${i}`));
    const first = await blobs.list("invoices/2026/", { limit: 2 });
    expect(first.items.map((i) => i.key)).toEqual(["invoices/2026/o-0", "invoices/2026/o-1"]);
    const rest = await blobs.list("invoices/2026/", { after: first.next as string });
    expect(rest.items.map((i) => i.key)).toEqual([
      "invoices/2026/o-2",
      "invoices/2026/o-3",
      "invoices/2026/o-4",
    ]);
    expect(rest.next).toBeUndefined();
    expect((await blobs.list("")).items).toHaveLength(6);

    expect(await blobs.delete("invoices/2026/o-0")).toBe(true);
    expect(await blobs.delete("invoices/2026/o-0")).toBe(false);
    expect(await blobs.head("invoices/2026/o-0")).toBeUndefined();
    expect(await blobs.journalInfo()).toEqual({ firstSeq: 1, lastSeq: 8 });
  });

  it("refuses hostile keys, prefixes, content types and metadata with clear errors", async () => {
    await using blobs = await openEmbeddedBlob({ dir: await freshDir() });
    const hostile: unknown[] = [
      "",
      "../etc/passwd",
      "a/../../b",
      "a/./b",
      "..",
      "/absolute",
      "a//b",
      "trailing/",
      "nul\u0000byte",
      "line\nbreak",
      "back\\slash",
      "lone\ud800surrogate",
      "x".repeat(1025),
      "é".repeat(513), // 1 026 bytes of UTF-8
      42,
      undefined,
    ];
    for (const key of hostile) {
      const error = await blobs.put(key as string, enc("x")).catch((e: unknown) => e);
      expect(isStrataError(error, "INVALID_ARGUMENT"), String(key).slice(0, 20)).toBe(true);
      expect((error as Error).message).toMatch(/blob key/);
      await expect(blobs.get(key as string)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      await expect(blobs.delete(key as string)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    }
    expect(() => blobs.watch("../")).toThrow(/"\.\." segments are not allowed/);
    await expect(blobs.list("a\u0000")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(blobs.put("ok", enc("x"), { contentType: "text/html\r\nx: y" })).rejects.toThrow(
      /contentType/,
    );
    await expect(blobs.put("ok", enc("x"), { metadata: { "Bad Name": "v" } })).rejects.toThrow(
      /metadata name/,
    );
    await expect(blobs.put("ok", enc("x"), { metadata: { a: "x".repeat(9_000) } })).rejects.toThrow(
      /at most 8192/,
    );
    await expect(blobs.put("ok", "text" as unknown as Uint8Array)).rejects.toThrow(
      /Uint8Array or an async iterable/,
    );
    // Unusual but harmless keys are fine, and nothing refused left a trace.
    await blobs.put("reports/Q1 2025 (final) ü.pdf", enc("ok"));
    expect((await blobs.list("")).items.map((i) => i.key)).toEqual([
      "reports/Q1 2025 (final) ü.pdf",
    ]);
    expect(await blobs.journalInfo()).toEqual({ firstSeq: 1, lastSeq: 1 });
  });

  it("caps object size, for bytes and for streams, storing nothing past the cap", async () => {
    const dir = await freshDir();
    await using blobs = await openEmbeddedBlob({ dir, maxObjectBytes: 1_000 });
    await blobs.put("fits", new Uint8Array(1_000));
    await expect(blobs.put("big", new Uint8Array(1_001))).rejects.toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      retryable: false,
    });
    const endless = (): AsyncIterable<Uint8Array> => ({
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.resolve({ value: new Uint8Array(300), done: false }),
      }),
    });
    const error = await blobs.put("stream", endless()).catch((e: unknown) => e);
    expect(isStrataError(error, "RESOURCE_EXHAUSTED")).toBe(true);
    expect((error as Error).message).toMatch(/over the 1000-byte limit/);
    expect(await blobs.head("stream")).toBeUndefined();
    expect(await readdir(join(dir, "tmp"))).toEqual([]);
    expect(await readdir(join(dir, "data"))).toHaveLength(1);
    expect((await blobs.journalInfo()).lastSeq).toBe(1);
  });

  it("delivers ordered changes under a prefix and resumes from a sequence after a reopen", async () => {
    const dir = await freshDir();
    {
      await using blobs = await openEmbeddedBlob({ dir });
      const watching = take(blobs, "in/", 3, 1);
      await blobs.put("in/a", enc("1"));
      await blobs.put("out/x", enc("2"));
      await blobs.put("in/b", enc("333"));
      await blobs.delete("in/a");
      const seen = await watching;
      expect(seen.map((c) => [c.type, c.key, c.seq, c.size])).toEqual([
        ["put", "in/a", 1, 1],
        ["put", "in/b", 3, 3],
        ["delete", "in/a", 4, 1],
      ]);
      expect(seen.every((c) => c.at > 0)).toBe(true);
    }
    await using blobs = await openEmbeddedBlob({ dir });
    expect(await blobs.journalInfo()).toEqual({ firstSeq: 1, lastSeq: 4 });
    // Resume after the last change handled (seq 3): the delete, then new changes.
    const resumed = take(blobs, "in/", 2, 4);
    await blobs.put("in/c", enc("c"));
    expect((await resumed).map((c) => `${c.type}:${c.key}:${c.seq}`)).toEqual([
      "delete:in/a:4",
      "put:in/c:5",
    ]);
    // Without fromSeq a watch starts with the next change.
    const live = take(blobs, "", 1);
    await blobs.put("in/d", enc("d"));
    expect((await live).map((c) => c.seq)).toEqual([6]);
    expect(() => blobs.watch("", { fromSeq: 0 })).toThrow(/fromSeq/);
  });

  it("compacts its journal: objects stay, old changes are out of range", async () => {
    const dir = await freshDir();
    {
      await using blobs = await openEmbeddedBlob({ dir, journalRetain: 3 });
      for (let i = 0; i < 10; i++) await blobs.put(`k/${i % 4}`, enc(`v${i}`));
      await blobs.delete("k/0");
      await blobs.compact();
      const info = await blobs.journalInfo();
      expect(info).toEqual({ firstSeq: 9, lastSeq: 11 });
      expect(() => blobs.watch("", { fromSeq: 2 })).toThrow(
        expect.objectContaining({ code: "OUT_OF_RANGE" }) as Error,
      );
      expect((await take(blobs, "", 3, 9)).map((c) => c.seq)).toEqual([9, 10, 11]);
    }
    await using blobs = await openEmbeddedBlob({ dir, journalRetain: 3 });
    expect(await blobs.journalInfo()).toEqual({ firstSeq: 9, lastSeq: 11 });
    expect((await blobs.list("k/")).items.map((i) => [i.key, i.seq])).toEqual([
      ["k/1", 10],
      ["k/2", 7],
      ["k/3", 8],
    ]);
    expect(dec((await blobs.get("k/3")).bytes)).toBe("v7");
    expect((await blobs.put("k/4", enc("new"))).seq).toBe(12);
  });

  it("reopens after an interrupted write with every acknowledged object and nothing else", async () => {
    const dir = await freshDir();
    {
      await using blobs = await openEmbeddedBlob({ dir });
      await blobs.put("docs/a", enc("alpha"));
      await blobs.put("docs/b", enc("beta"));
      await blobs.put("docs/a", enc("alpha-2"));
    }
    const journal = join(dir, "journal");
    const size = (await stat(journal)).size;
    // What a crash can leave: a half-written temporary file, a data file renamed into place
    // whose journal record never made it, and a torn journal record.
    await writeFile(join(dir, "tmp", "half"), enc("partial"));
    await writeFile(join(dir, "data", "orphan"), enc("never acknowledged"));
    await appendFile(journal, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 9, 9]));
    await using blobs = await openEmbeddedBlob({ dir });
    expect(dec((await blobs.get("docs/a")).bytes)).toBe("alpha-2");
    expect(dec((await blobs.get("docs/b")).bytes)).toBe("beta");
    expect(await blobs.journalInfo()).toEqual({ firstSeq: 1, lastSeq: 3 });
    expect((await stat(journal)).size).toBe(size);
    expect(await readdir(join(dir, "tmp"))).toEqual([]);
    expect((await readdir(join(dir, "data"))).length).toBe(2);
    expect((await blobs.put("docs/c", enc("c"))).seq).toBe(4);
  });

  it("detects an object changed on disk behind its back", async () => {
    const dir = await freshDir();
    await using blobs = await openEmbeddedBlob({ dir });
    await blobs.put("x", enc("original"));
    const [file] = await readdir(join(dir, "data"));
    await writeFile(join(dir, "data", file as string), enc("tampered"));
    await expect(blobs.get("x")).rejects.toMatchObject({ code: "DATA_LOSS" });
  });

  it("refuses a second opener of the same folder", async () => {
    const dir = await freshDir();
    await using _blobs = await openEmbeddedBlob({ dir });
    await expect(openEmbeddedBlob({ dir })).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
    await expect(openEmbeddedBlob({ dir: await freshDir(), maxObjectBytes: 0 })).rejects.toThrow(
      /maxObjectBytes/,
    );
  });

  it("loses no acknowledged put when its process is killed with SIGKILL mid-write", async () => {
    const dir = await freshDir();
    const acknowledged = await putUntilKilled(dir, 300);
    await using blobs = await openEmbeddedBlob({ dir });
    const missing: string[] = [];
    for (const [key, seq] of acknowledged) {
      const object = await blobs.get(key).catch(() => undefined);
      if (object?.seq !== seq || dec(object.bytes) !== `body of ${key}`.repeat(50)) {
        missing.push(key);
      }
    }
    expect(missing).toEqual([]);
    expect(acknowledged.size).toBeGreaterThanOrEqual(300);
    // The change feed holds every acknowledged put, in order, with no gaps.
    const info = await blobs.journalInfo();
    const seqs = (await take(blobs, "", info.lastSeq, 1)).map((c) => c.seq);
    expect(seqs).toEqual(Array.from({ length: info.lastSeq }, (_, i) => i + 1));
    // Nothing half-written is visible, and no stray file is left.
    expect(await readdir(join(dir, "tmp"))).toEqual([]);
    expect((await readdir(join(dir, "data"))).length).toBe(info.lastSeq);
  });
});

const WRITER = `
import { openEmbeddedBlob } from "@strata/core";
const blobs = await openEmbeddedBlob({ dir: process.argv[1] });
process.stdout.write("ready\\n");
let next = 0;
async function writer() {
  for (;;) {
    const key = "k/" + String(next++).padStart(8, "0");
    const info = await blobs.put(key, new TextEncoder().encode(("body of " + key).repeat(50)));
    process.stdout.write(key + " " + info.seq + "\\n");
  }
}
await Promise.all(Array.from({ length: 8 }, writer));
`;

/** Runs a writer process on `dir` until it acknowledged `count` puts, then kills it with SIGKILL. */
async function putUntilKilled(dir: string, count: number): Promise<Map<string, number>> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", WRITER, dir], {
    cwd: fileURLToPath(new URL("../../..", import.meta.url)),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const acknowledged = new Map<string, number>();
  let buffer = "";
  await new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.once("exit", (code) => reject(new Error(`writer exited early (${String(code)})`)));
    child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        const [key, seq] = line.split(" ");
        if (key !== undefined && seq !== undefined) acknowledged.set(key, Number(seq));
      }
      if (acknowledged.size >= count) {
        child.kill("SIGKILL");
        resolve();
      }
    });
  });
  await exited;
  return acknowledged;
}

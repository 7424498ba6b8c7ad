import { createHash } from "node:crypto";
import { mkdir, open, readFile, readdir, rename, rm, type FileHandle } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Packr } from "msgpackr";
import { StrataError, isStrataError, toStrataError } from "../../errors/index.js";
import {
  DEFAULT_MAX_OBJECT_BYTES,
  blobNotFound,
  blobTooLarge,
  checkBlobKey,
  checkBlobMetadata,
  checkBlobPrefix,
  checkContentType,
  type BlobCallOptions,
  type BlobChange,
  type BlobData,
  type BlobInfo,
  type BlobJournalInfo,
  type BlobObject,
  type BlobPage,
  type BlobPutOptions,
  type BlobStore,
} from "../../ports/blob.js";
import { systemClock, type Clock } from "../../ports/clock.js";
import { checkLimit } from "../../state/keys.js";
import {
  AppendLog,
  frameRecord,
  recoverLog,
  syncDirectory,
  writeFileAtomic,
} from "./append-log.js";
import { lockFolder, type FolderLock } from "./folder-lock.js";

/** Options for {@link openEmbeddedBlob}. */
export interface EmbeddedBlobOptions {
  /** Folder that holds the store (created if missing); one process at a time may open it. */
  readonly dir: string;
  readonly clock?: Clock;
  /** Largest object accepted (bytes); default 64 MiB. */
  readonly maxObjectBytes?: number;
  /** fsync before acknowledging (default true). Off only for throwaway test data. */
  readonly sync?: boolean;
  /**
   * Changes the journal keeps for watches that resume from a sequence; default 100 000. When it
   * holds twice as many it is compacted: older changes are dropped (objects are kept).
   */
  readonly journalRetain?: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

const PUT = 1;
const DELETE = 2;
/** First record of a compacted journal: changes below this sequence are state only. */
const FLOOR = 3;

/** key, seq, at, size, contentType, metadata, sha256, data file. */
type PutRecord = [
  typeof PUT,
  string,
  number,
  number,
  number,
  string,
  Record<string, string>,
  string,
  string,
];
/** key, seq, at, size. */
type DeleteRecord = [typeof DELETE, string, number, number, number];
type ChangeRecord = PutRecord | DeleteRecord;

interface Stored extends BlobInfo {
  /** The data file's name in `data/`. */
  readonly file: string;
}

interface Journaled {
  readonly change: BlobChange;
  readonly record: ChangeRecord;
}

function infoOf(record: PutRecord): Stored {
  const [, key, seq, at, size, contentType, metadata, sha256, file] = record;
  return { key, seq, at, size, contentType, metadata, sha256, file };
}

function changeOf(record: ChangeRecord): BlobChange {
  if (record[0] === PUT) {
    const [, key, seq, at, size, contentType] = record;
    return { type: "put", key, size, seq, at, contentType };
  }
  const [, key, seq, at, size] = record;
  return { type: "delete", key, size, seq, at };
}

function publicInfo(stored: Stored): BlobInfo {
  const { file: _file, ...info } = stored;
  return info;
}

function storageError(what: string, error: unknown): StrataError {
  if (isStrataError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new StrataError("RESOURCE_EXHAUSTED", `${what}: the disk is full`, { cause: error });
  }
  return new StrataError("UNAVAILABLE", `${what}: storage failed`, { cause: error });
}

/**
 * The embedded BlobStore. Each version of an object is a file in `data/` written under a
 * temporary name in `tmp/`, fsynced, renamed into place (and the folder fsynced); only then is a
 * record of the change appended to the journal (CRC-framed, fsynced in group commits) and the put
 * acknowledged. The journal is the truth: on open it is replayed (a torn tail cut off), leftover
 * temporary files and data files no record points to (a put interrupted before its journal record,
 * a replaced version not yet removed) are deleted. A crash therefore loses nothing acknowledged
 * and never exposes half an object.
 */
class EmbeddedBlobStore implements BlobStore {
  readonly name = "embedded";
  readonly maxObjectBytes: number;
  private readonly dir: string;
  private readonly clock: Clock;
  private readonly sync: boolean;
  private readonly retain: number;
  private readonly objects = new Map<string, Stored>();
  /** Watchable changes, consecutive sequences from `history[0]`. */
  private history: Journaled[] = [];
  /** Per key: the tail of its chain of changes, so changes to one key commit in call order. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly wakers = new Set<() => void>();
  private readonly inflight = new Set<Promise<unknown>>();
  private log!: AppendLog;
  private folderLock: FolderLock | undefined;
  /** Last sequence handed out / last one durable and applied. */
  private assigned = 0;
  private applied = 0;
  private floor = 1;
  private closed = false;
  private failure: unknown;
  /** While set, commits wait: compaction swaps the journal under it. */
  private gate: Promise<void> | undefined;
  private compacting: Promise<void> | undefined;

  constructor(options: EmbeddedBlobOptions) {
    this.dir = resolve(options.dir);
    this.clock = options.clock ?? systemClock();
    this.sync = options.sync ?? true;
    const max = options.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new StrataError("INVALID_ARGUMENT", "maxObjectBytes must be a positive integer");
    }
    const retain = options.journalRetain ?? 100_000;
    if (!Number.isSafeInteger(retain) || retain < 1) {
      throw new StrataError("INVALID_ARGUMENT", "journalRetain must be a positive integer");
    }
    this.maxObjectBytes = max;
    this.retain = retain;
  }

  private get journalPath(): string {
    return join(this.dir, "journal");
  }
  private get dataDir(): string {
    return join(this.dir, "data");
  }
  private get tmpDir(): string {
    return join(this.dir, "tmp");
  }

  async open(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    this.folderLock = await lockFolder(
      join(this.dir, "blob.lock"),
      `the blob store in ${this.dir}`,
    );
    try {
      // Temporary files belong to puts that were never acknowledged.
      await rm(this.tmpDir, { recursive: true, force: true });
      await mkdir(this.tmpDir, { recursive: true });
      await recoverLog(this.journalPath, (payload) => this.replay(payload));
      this.applied = this.assigned;
      this.log = await AppendLog.open(this.journalPath, { sync: this.sync });
      const referenced = new Set([...this.objects.values()].map((o) => o.file));
      for (const name of await readdir(this.dataDir)) {
        if (!referenced.has(name)) await rm(join(this.dataDir, name), { force: true });
      }
      await syncDirectory(this.dataDir);
      await syncDirectory(this.dir);
    } catch (error) {
      await this.folderLock.release();
      this.folderLock = undefined;
      throw error;
    }
  }

  private replay(payload: Uint8Array): void {
    const record = packr.unpack(payload) as unknown[];
    if (record[0] === FLOOR) {
      this.floor = record[1] as number;
      return;
    }
    if (record[0] !== PUT && record[0] !== DELETE) {
      throw new StrataError(
        "DATA_LOSS",
        `unknown record type ${String(record[0])} in ${this.journalPath}`,
      );
    }
    const change = record as ChangeRecord;
    this.apply(change, change[2] >= this.floor);
  }

  /** Applies a durable change to memory (and, when watchable, to the history). */
  private apply(record: ChangeRecord, watchable: boolean): Stored | undefined {
    const key = record[1];
    const seq = record[2];
    const previous = this.objects.get(key);
    let stored: Stored | undefined;
    if (record[0] === PUT) {
      stored = infoOf(record);
      this.objects.set(key, stored);
    } else {
      this.objects.delete(key);
    }
    this.assigned = Math.max(this.assigned, seq);
    this.applied = Math.max(this.applied, seq);
    if (watchable) this.history.push({ change: changeOf(record), record });
    return previous === undefined || previous.file === stored?.file ? undefined : previous;
  }

  // ---- writes ----------------------------------------------------------------------------------

  private checkOpen(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the blob store is closed");
    if (this.failure !== undefined) {
      throw new StrataError(
        "DATA_LOSS",
        `the blob store in ${this.dir} failed a write; reopen it`,
        {
          cause: this.failure,
        },
      );
    }
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  private newFileName(): string {
    const part = (): string =>
      Math.floor(this.clock.random() * 0x1_0000_0000)
        .toString(16)
        .padStart(8, "0");
    return `${this.clock.now().toString(36)}-${part()}${part()}`;
  }

  /** Writes the bytes to a temporary file, fsynced; returns its size and digest. */
  private async writeTemp(
    path: string,
    key: string,
    data: BlobData,
    signal: AbortSignal | undefined,
  ): Promise<{ size: number; sha256: string }> {
    const hash = createHash("sha256");
    let size = 0;
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, "wx");
      if (data instanceof Uint8Array) {
        if (data.length > this.maxObjectBytes) {
          throw blobTooLarge(key, data.length, this.maxObjectBytes);
        }
        hash.update(data);
        size = data.length;
        await handle.write(data);
      } else if (typeof data === "object" && data !== null && Symbol.asyncIterator in data) {
        for await (const chunk of data) {
          if (signal?.aborted === true) throw new StrataError("CANCELLED", "put cancelled");
          if (!(chunk instanceof Uint8Array)) {
            throw new StrataError("INVALID_ARGUMENT", "a blob stream must yield Uint8Array chunks");
          }
          size += chunk.length;
          if (size > this.maxObjectBytes) throw blobTooLarge(key, size, this.maxObjectBytes);
          hash.update(chunk);
          await handle.write(chunk);
        }
      } else {
        throw new StrataError(
          "INVALID_ARGUMENT",
          "blob data must be a Uint8Array or an async iterable of Uint8Array",
        );
      }
      if (this.sync) await handle.datasync();
      await handle.close();
      handle = undefined;
      return { size, sha256: hash.digest("hex") };
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw storageError(`put ${JSON.stringify(key.slice(0, 80))}`, error);
    }
  }

  /** Runs `step` after every earlier change to `key`, and keeps the store's close waiting for it. */
  private chain<T>(key: string, step: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(step);
    this.chains.set(key, run);
    this.inflight.add(run);
    void run
      .finally(() => {
        this.inflight.delete(run);
        if (this.chains.get(key) === run) this.chains.delete(key);
      })
      .catch(() => undefined);
    return run;
  }

  /** Appends a change and resolves once it is durable and applied; returns the replaced file. */
  private async commit(
    make: (seq: number, at: number) => ChangeRecord,
  ): Promise<Stored | undefined> {
    while (this.gate !== undefined) await this.gate;
    this.checkOpen();
    // From here to append() nothing awaits: sequences reach the journal in order.
    const record = make(this.assigned + 1, this.clock.now());
    const payload = packr.pack(record);
    this.assigned++;
    const durable = this.log.append(payload);
    // Callbacks on the append run in append order, so changes are applied in sequence order.
    const applied = durable.then(
      () => {
        const replaced = this.apply(record, true);
        for (const wake of [...this.wakers]) wake();
        this.maybeCompact();
        return replaced;
      },
      (error: unknown) => {
        this.failure ??= error;
        throw storageError("journal append", error);
      },
    );
    return applied;
  }

  async put(key: string, data: BlobData, options: BlobPutOptions = {}): Promise<BlobInfo> {
    this.checkOpen(options.signal);
    checkBlobKey(key);
    const contentType = checkContentType(options.contentType);
    const metadata = checkBlobMetadata(options.metadata);
    const file = this.newFileName();
    const temp = join(this.tmpDir, file);
    const { size, sha256 } = await this.writeTemp(temp, key, data, options.signal);
    const target = join(this.dataDir, file);
    try {
      await rename(temp, target);
      await syncDirectory(this.dataDir);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      await rm(target, { force: true }).catch(() => undefined);
      throw storageError(`put ${JSON.stringify(key.slice(0, 80))}`, error);
    }
    try {
      return await this.chain(key, async () => {
        const replaced = await this.commit((seq, at): PutRecord => [
          PUT,
          key,
          seq,
          at,
          size,
          contentType,
          metadata,
          sha256,
          file,
        ]);
        if (replaced !== undefined) await this.removeData(replaced.file);
        return publicInfo(this.objects.get(key) as Stored);
      });
    } catch (error) {
      // Not in the journal: the file is an orphan (open() would remove it too).
      if (this.failure === undefined) await this.removeData(file);
      throw toStrataError(error, "put");
    }
  }

  async delete(key: string, options: BlobCallOptions = {}): Promise<boolean> {
    this.checkOpen(options.signal);
    checkBlobKey(key);
    return this.chain(key, async () => {
      const current = this.objects.get(key);
      if (current === undefined) return false;
      const replaced = await this.commit((seq, at): DeleteRecord => [
        DELETE,
        key,
        seq,
        at,
        current.size,
      ]);
      if (replaced !== undefined) await this.removeData(replaced.file);
      return true;
    });
  }

  private async removeData(file: string): Promise<void> {
    // Best effort: a file left behind is removed when the store is next opened.
    await rm(join(this.dataDir, file), { force: true }).catch(() => undefined);
  }

  // ---- reads -----------------------------------------------------------------------------------

  async get(key: string, options: BlobCallOptions = {}): Promise<BlobObject> {
    this.checkOpen(options.signal);
    checkBlobKey(key);
    // A concurrent put may replace (and remove) the version between lookup and read: look again.
    for (let attempt = 0; attempt < 8; attempt++) {
      const stored = this.objects.get(key);
      if (stored === undefined) throw blobNotFound(key);
      let bytes: Buffer;
      try {
        bytes = await readFile(join(this.dataDir, stored.file));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT" && this.objects.get(key) !== stored)
          continue;
        throw new StrataError("DATA_LOSS", `object ${JSON.stringify(key)} is unreadable`, {
          cause: error,
        });
      }
      if (
        bytes.length !== stored.size ||
        createHash("sha256").update(bytes).digest("hex") !== stored.sha256
      ) {
        throw new StrataError("DATA_LOSS", `object ${JSON.stringify(key)} is corrupt on disk`, {
          details: { key },
        });
      }
      return {
        ...publicInfo(stored),
        bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
      };
    }
    throw new StrataError("ABORTED", `object ${JSON.stringify(key)} kept changing; read again`);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a refusal rejects
  async head(key: string, options: BlobCallOptions = {}): Promise<BlobInfo | undefined> {
    this.checkOpen(options.signal);
    checkBlobKey(key);
    const stored = this.objects.get(key);
    return stored === undefined ? undefined : publicInfo(stored);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a refusal rejects
  async list(
    prefix: string,
    options: BlobCallOptions & { readonly after?: string; readonly limit?: number } = {},
  ): Promise<BlobPage> {
    this.checkOpen(options.signal);
    checkBlobPrefix(prefix);
    const limit = checkLimit(options.limit);
    const after = options.after;
    if (after !== undefined && typeof after !== "string") {
      throw new StrataError("INVALID_ARGUMENT", "after must be a key");
    }
    const keys: string[] = [];
    for (const key of this.objects.keys()) {
      if (key.startsWith(prefix) && (after === undefined || key > after)) keys.push(key);
    }
    keys.sort();
    const items = keys.slice(0, limit).map((key) => publicInfo(this.objects.get(key) as Stored));
    const last = items[items.length - 1];
    return keys.length > limit && last !== undefined ? { items, next: last.key } : { items };
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a refusal rejects
  async journalInfo(options: BlobCallOptions = {}): Promise<BlobJournalInfo> {
    this.checkOpen(options.signal);
    return { firstSeq: this.firstSeq(), lastSeq: this.applied };
  }

  private firstSeq(): number {
    return this.history[0]?.change.seq ?? this.applied + 1;
  }

  watch(
    prefix: string,
    options: BlobCallOptions & { readonly fromSeq?: number } = {},
  ): AsyncIterable<BlobChange> {
    this.checkOpen(options.signal);
    checkBlobPrefix(prefix);
    const from = options.fromSeq ?? this.applied + 1;
    if (!Number.isSafeInteger(from) || from < 1) {
      throw new StrataError("INVALID_ARGUMENT", "fromSeq must be a positive integer");
    }
    if (from < this.firstSeq()) throw this.outOfRange(from);
    return this.follow(prefix, from, options.signal);
  }

  private outOfRange(from: number): StrataError {
    return new StrataError(
      "OUT_OF_RANGE",
      `change ${from} is no longer in the journal; the oldest kept is ${this.firstSeq()}`,
      { details: { fromSeq: from, firstSeq: this.firstSeq() } },
    );
  }

  private async *follow(
    prefix: string,
    from: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<BlobChange> {
    let next = from;
    for (;;) {
      if (this.closed || signal?.aborted === true) return;
      const first = this.firstSeq();
      if (next < first) throw this.outOfRange(next);
      const entry = this.history[next - first];
      if (entry === undefined) {
        await this.changed(signal);
        continue;
      }
      next++;
      if (entry.change.key.startsWith(prefix)) yield entry.change;
    }
  }

  /** Resolves on the next applied change, on abort, or on close. */
  private changed(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.wakers.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.wakers.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  // ---- compaction and close --------------------------------------------------------------------

  private maybeCompact(): void {
    if (this.compacting !== undefined || this.history.length < 2 * this.retain) return;
    this.compacting = this.compact()
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.compacting = undefined;
      });
  }

  /**
   * Rewrites the journal keeping the newest `journalRetain` changes and, for older ones, only the
   * put of each object still stored. Commits wait meanwhile; the new journal replaces the old by
   * an atomic rename, so a crash leaves one or the other.
   */
  async compact(): Promise<void> {
    while (this.gate !== undefined) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    try {
      await this.log.drain();
      const floor = Math.max(this.firstSeq(), this.applied - this.retain + 1);
      const parts: Buffer[] = [frameRecord(packr.pack([FLOOR, floor]))];
      const base = [...this.objects.values()].filter((o) => o.seq < floor);
      base.sort((a, b) => a.seq - b.seq);
      for (const o of base) {
        const record: PutRecord = [
          PUT,
          o.key,
          o.seq,
          o.at,
          o.size,
          o.contentType,
          o.metadata,
          o.sha256,
          o.file,
        ];
        parts.push(frameRecord(packr.pack(record)));
      }
      const kept = this.history.filter((h) => h.change.seq >= floor);
      for (const h of kept) parts.push(frameRecord(packr.pack(h.record)));
      await this.log.close();
      await writeFileAtomic(this.journalPath, Buffer.concat(parts));
      this.log = await AppendLog.open(this.journalPath, { sync: this.sync });
      this.floor = floor;
      this.history = kept;
    } finally {
      this.gate = undefined;
      open();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.inflight]);
    await this.compacting;
    this.closed = true;
    for (const wake of [...this.wakers]) wake();
    await this.log.close();
    await this.folderLock?.release();
    this.folderLock = undefined;
  }
}

/** The embedded store, with `close()` and a manual `compact()`. */
export interface EmbeddedBlob extends BlobStore {
  close(): Promise<void>;
  /** Drops changes older than the newest `journalRetain` from the journal now. */
  compact(): Promise<void>;
}

/**
 * Opens (creating) an embedded BlobStore in a folder.
 *
 * @example
 * await using blobs = await openEmbeddedBlob({ dir: "./data/blobs", maxObjectBytes: 16 << 20 });
 * await blobs.put("invoices/2025/o-1.pdf", pdf, { contentType: "application/pdf" });
 * for await (const change of blobs.watch("invoices/", { fromSeq: 1, signal })) render(change);
 */
export async function openEmbeddedBlob(options: EmbeddedBlobOptions): Promise<EmbeddedBlob> {
  const store = new EmbeddedBlobStore(options);
  await store.open();
  return store;
}

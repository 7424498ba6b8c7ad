import { mkdir, readFile, stat } from "node:fs/promises";
import { instrumentKv } from "../../observability/kv-telemetry.js";
import type { TelemetryOptions } from "../../observability/telemetry.js";
import { join, resolve } from "node:path";
import { Packr } from "msgpackr";
import { StrataError, toStrataError } from "../../errors/index.js";
import { systemClock, type Clock, type Timer } from "../../ports/index.js";
import type {
  KvCallOptions,
  KvCapabilities,
  KvEntry,
  KvEvent,
  KvPage,
  KvTransaction,
  ReadConsistency,
  StrongKV,
} from "../../ports/strong-kv.js";
import { EventQueue } from "../../state/event-queue.js";
import {
  checkExpectedRevision,
  checkKey,
  checkLeaseTtl,
  checkLimit,
  checkPrefix,
  checkTransaction,
  checkValue,
  leaseNotFound,
  revisionConflict,
} from "../../state/keys.js";
import {
  AppendLog,
  MAX_RECORD_BYTES,
  recoverLog,
  removeIfExists,
  syncDirectory,
  writeFileAtomic,
} from "./append-log.js";
import { lockFolder, type FolderLock } from "./folder-lock.js";

/** Options for {@link openEmbeddedKv}. */
export interface EmbeddedKvOptions {
  /** Folder that holds the store (created if missing); one process at a time may open it. */
  readonly dir: string;
  /** Where operation spans and latencies go; default the global OpenTelemetry providers. */
  readonly telemetry?: TelemetryOptions;
  readonly clock?: Clock;
  /** fsync before acknowledging a write (default true). Off only for throwaway test data. */
  readonly sync?: boolean;
  /** Compact the write-ahead log into a snapshot when it grows past this (bytes); default 64 MiB. */
  readonly compactAfterBytes?: number;
  /** Changes kept in memory for watches that resume from a revision; default 10 000. */
  readonly watchHistory?: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/**
 * Encodes a log record, refusing one the log could not take before anything changes in memory
 * (a refused append would otherwise leave memory ahead of the disk).
 */
function pack(record: unknown[]): Uint8Array {
  const payload = packr.pack(record);
  if (payload.length > MAX_RECORD_BYTES) {
    throw new StrataError(
      "RESOURCE_EXHAUSTED",
      `a write of ${payload.length} bytes is over the ${MAX_RECORD_BYTES}-byte limit of one log record`,
      { details: { bytes: payload.length, limit: MAX_RECORD_BYTES } },
    );
  }
  return payload;
}

const PUT = 1;
const DELETE = 2;
const LEASE = 3;
const REVOKE = 4;
/** Several puts and deletes in one record: all or nothing after a crash. */
const TXN = 5;

/** A put in the log: key, value, revision, create revision, lease. */
type PutRecord = [number, string, Uint8Array, number, number, string | null];

interface Lease {
  readonly id: string;
  readonly ttlMs: number;
  timer: Timer | undefined;
  readonly keys: Set<string>;
}

interface Snapshot {
  readonly revision: number;
  readonly leaseSeq: number;
  readonly entries: Array<[string, Uint8Array, number, number, string | null]>;
  readonly leases: Array<[string, number]>;
}

function notFoundLease(lease: string): StrataError {
  return leaseNotFound(lease);
}

/**
 * The embedded StrongKV: everything in memory, every write appended to a write-ahead log and
 * fsynced (in group commits) before it is acknowledged, snapshots when the log grows. A crash
 * (kill -9) loses nothing acknowledged: recovery replays the snapshot and the log, cutting a torn
 * tail. Linearizable: one process owns the store, and a read waits for a pending write to the
 * same key to become durable before it can observe it.
 */
class EmbeddedKvStore implements StrongKV {
  readonly name = "embedded";
  readonly capabilities: KvCapabilities = {
    staleReads: false,
    leases: true,
    watch: true,
    transactions: true,
  };
  private readonly dir: string;
  private readonly clock: Clock;
  private readonly sync: boolean;
  private readonly compactAfterBytes: number;
  private readonly historyLimit: number;
  private readonly entries = new Map<string, KvEntry>();
  private readonly leases = new Map<string, Lease>();
  private readonly pendingByKey = new Map<string, Promise<void>>();
  private readonly watchers = new Set<{ prefix: string; queue: EventQueue<KvEvent> }>();
  private history: Array<{ revision: number; event: KvEvent }> = [];
  private log!: AppendLog;
  private rev = 0;
  private leaseSeq = 0;
  private closed = false;
  private failure: unknown;
  private compacting: Promise<void> | undefined;
  /** While set, writers wait: compaction swaps the log under it. */
  private gate: Promise<void> | undefined;
  private lockPath: string;
  private folderLock: FolderLock | undefined;

  constructor(options: EmbeddedKvOptions) {
    this.dir = options.dir;
    this.clock = options.clock ?? systemClock();
    this.sync = options.sync ?? true;
    this.compactAfterBytes = options.compactAfterBytes ?? 64 * 1024 * 1024;
    this.historyLimit = options.watchHistory ?? 10_000;
    this.lockPath = resolve(this.dir, "kv.lock");
  }

  private get walPath(): string {
    return join(this.dir, "kv.wal");
  }

  private get snapshotPath(): string {
    return join(this.dir, "kv.snapshot");
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.lock();
    try {
      const snapshot = await readFile(this.snapshotPath).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return undefined;
        throw error;
      });
      if (snapshot !== undefined) this.loadSnapshot(packr.unpack(snapshot) as Snapshot);
      const floor = this.rev;
      await recoverLog(this.walPath, (payload) => this.replay(payload, floor));
      this.log = await AppendLog.open(this.walPath, { sync: this.sync });
      await syncDirectory(this.dir);
      // Leases come back with their full time to live: a restart extends them, never cuts them short.
      for (const lease of this.leases.values()) this.armLease(lease);
    } catch (error) {
      await this.folderLock?.release();
      this.folderLock = undefined;
      throw error;
    }
  }

  private async lock(): Promise<void> {
    this.folderLock = await lockFolder(this.lockPath, `the store in ${this.dir}`);
  }

  private loadSnapshot(snapshot: Snapshot): void {
    this.rev = snapshot.revision;
    this.leaseSeq = snapshot.leaseSeq;
    for (const [id, ttlMs] of snapshot.leases)
      this.leases.set(id, { id, ttlMs, timer: undefined, keys: new Set() });
    for (const [key, value, revision, createRevision, lease] of snapshot.entries) {
      this.entries.set(
        key,
        lease === null
          ? { key, value, revision, createRevision }
          : { key, value, revision, createRevision, lease },
      );
      if (lease !== null) this.leases.get(lease)?.keys.add(key);
    }
  }

  private replay(payload: Uint8Array, floor: number): void {
    const record = packr.unpack(payload) as unknown[];
    switch (record[0]) {
      case PUT: {
        const [, key, value, revision, createRevision, lease] = record as PutRecord;
        if (revision <= floor) return;
        this.applyPut(key, value, revision, createRevision, lease ?? undefined);
        return;
      }
      case DELETE: {
        const [, key, revision] = record as [number, string, number];
        if (revision <= floor) return;
        this.applyDelete(key, revision);
        return;
      }
      case LEASE: {
        const [, id, ttlMs, seq] = record as [number, string, number, number];
        if (seq <= this.leaseSeq && this.leases.has(id)) return;
        this.leaseSeq = Math.max(this.leaseSeq, seq);
        this.leases.set(id, { id, ttlMs, timer: undefined, keys: new Set() });
        return;
      }
      case REVOKE: {
        const [, id] = record as [number, string];
        this.leases.delete(id);
        return;
      }
      case TXN: {
        const [, writes] = record as [number, unknown[][]];
        for (const write of writes) {
          if (write[0] === PUT) {
            const [, key, value, revision, createRevision, lease] = write as PutRecord;
            if (revision > floor) {
              this.applyPut(key, value, revision, createRevision, lease ?? undefined);
            }
          } else {
            const [, key, revision] = write as [number, string, number];
            if (revision > floor) this.applyDelete(key, revision);
          }
        }
        return;
      }
      default:
        throw new StrataError(
          "DATA_LOSS",
          `unknown record type ${String(record[0])} in ${this.walPath}`,
        );
    }
  }

  private applyPut(
    key: string,
    value: Uint8Array,
    revision: number,
    createRevision: number,
    lease: string | undefined,
  ): KvEntry {
    const previous = this.entries.get(key);
    if (previous?.lease !== undefined && previous.lease !== lease)
      this.leases.get(previous.lease)?.keys.delete(key);
    const entry: KvEntry =
      lease === undefined
        ? { key, value, revision, createRevision }
        : { key, value, revision, createRevision, lease };
    this.entries.set(key, entry);
    if (lease !== undefined) this.leases.get(lease)?.keys.add(key);
    this.rev = Math.max(this.rev, revision);
    return entry;
  }

  private applyDelete(key: string, revision: number): void {
    const previous = this.entries.get(key);
    if (previous?.lease !== undefined) this.leases.get(previous.lease)?.keys.delete(key);
    this.entries.delete(key);
    this.rev = Math.max(this.rev, revision);
  }

  // ---- writes ----------------------------------------------------------------------------------

  private checkOpen(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the store is closed");
    if (this.failure !== undefined) {
      // Memory may hold a write the disk refused: serve nothing until reopened (which recovers).
      throw new StrataError("DATA_LOSS", `the store in ${this.dir} failed a write; reopen it`, {
        cause: this.failure,
      });
    }
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  /** Appends a record and, once durable, publishes the events; keeps the per-key read barrier. */
  private commit(
    key: string | readonly string[] | undefined,
    payload: Uint8Array,
    event: KvEvent | readonly KvEvent[] | undefined,
  ): Promise<void> {
    const durable = this.log.append(payload);
    durable.catch((error: unknown) => {
      this.failure ??= error;
    });
    const keys = key === undefined ? [] : typeof key === "string" ? [key] : key;
    for (const k of keys) {
      this.pendingByKey.set(k, durable);
      void durable.then(
        () => {
          if (this.pendingByKey.get(k) === durable) this.pendingByKey.delete(k);
        },
        () => undefined,
      );
    }
    return durable.then(() => {
      if (Array.isArray(event)) for (const e of event as readonly KvEvent[]) this.publish(e);
      else if (event !== undefined) this.publish(event as KvEvent);
      this.maybeCompact();
    });
  }

  async transaction(txn: KvTransaction, options: KvCallOptions = {}): Promise<number> {
    this.checkOpen(options.signal);
    const { checks, writes } = checkTransaction(txn);
    await this.gate;
    this.checkOpen(options.signal);
    // From here to commit() nothing awaits: no other write can interleave.
    for (const check of checks) {
      const current = this.entries.get(check.key)?.revision ?? 0;
      if (current !== check.revision) throw revisionConflict(check.key, current, check.revision);
    }
    for (const write of writes) {
      if (write.type === "put" && write.lease !== undefined && !this.leases.has(write.lease)) {
        throw notFoundLease(write.lease);
      }
    }
    // One record for the whole transaction: recovery replays all of it or, torn, none of it.
    // It is encoded before memory changes, so a refused record leaves the store as it was.
    const records: unknown[][] = [];
    let revision = this.rev;
    for (const write of writes) {
      if (write.type === "put") {
        revision++;
        const createRevision = this.entries.get(write.key)?.createRevision ?? revision;
        records.push([PUT, write.key, write.value, revision, createRevision, write.lease ?? null]);
      } else if (this.entries.has(write.key)) {
        revision++;
        records.push([DELETE, write.key, revision]);
      }
    }
    const payload = pack([TXN, records]);
    const events = records.map((record): KvEvent => {
      if (record[0] === DELETE) {
        const [, key, rev] = record as [number, string, number];
        this.applyDelete(key, rev);
        return { type: "delete", key, revision: rev };
      }
      const [, key, value, rev, createRevision, lease] = record as PutRecord;
      return {
        type: "put",
        entry: this.applyPut(key, value, rev, createRevision, lease ?? undefined),
      };
    });
    await this.commit(
      writes.map((w) => w.key),
      payload,
      events,
    );
    return revision;
  }

  private write(key: string, value: Uint8Array, lease: string | undefined): Promise<number> {
    if (lease !== undefined && !this.leases.has(lease)) return Promise.reject(notFoundLease(lease));
    const revision = this.rev + 1;
    const createRevision = this.entries.get(key)?.createRevision ?? revision;
    let payload: Uint8Array;
    try {
      payload = pack([PUT, key, value, revision, createRevision, lease ?? null]);
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
    this.rev = revision;
    const entry = this.applyPut(key, value, revision, createRevision, lease);
    return this.commit(key, payload, { type: "put", entry }).then(() => revision);
  }

  async put(
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    this.checkOpen(options.signal);
    await this.gate;
    return this.write(checkKey(key), checkValue(value), options.lease);
  }

  async create(
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    this.checkOpen(options.signal);
    checkKey(key);
    await this.gate;
    const current = this.entries.get(key);
    if (current !== undefined) {
      throw new StrataError("ALREADY_EXISTS", `key ${key} already exists`, {
        details: { key, currentRevision: current.revision },
      });
    }
    return this.write(key, checkValue(value), options.lease);
  }

  async compareAndSet(
    key: string,
    value: Uint8Array,
    expectedRevision: number,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    this.checkOpen(options.signal);
    checkKey(key);
    checkExpectedRevision(expectedRevision);
    await this.gate;
    const current = this.entries.get(key)?.revision ?? 0;
    if (current !== expectedRevision) {
      throw revisionConflict(key, current, expectedRevision);
    }
    return this.write(key, checkValue(value), options.lease);
  }

  async delete(
    key: string,
    options: KvCallOptions & { readonly expectedRevision?: number } = {},
  ): Promise<boolean> {
    this.checkOpen(options.signal);
    checkKey(key);
    const current = this.entries.get(key);
    if (
      options.expectedRevision !== undefined &&
      (current?.revision ?? 0) !== options.expectedRevision
    ) {
      throw revisionConflict(key, current?.revision ?? 0, options.expectedRevision);
    }
    if (current === undefined) {
      // Nothing to delete; still wait for a pending write to this key so the answer is durable.
      await this.pendingByKey.get(key);
      return false;
    }
    const revision = ++this.rev;
    this.applyDelete(key, revision);
    await this.commit(key, pack([DELETE, key, revision]), { type: "delete", key, revision });
    return true;
  }

  // ---- reads -----------------------------------------------------------------------------------

  async get(
    key: string,
    options: KvCallOptions & { readonly consistency?: ReadConsistency } = {},
  ): Promise<KvEntry | undefined> {
    this.checkOpen(options.signal);
    checkKey(key);
    // A value is visible only once durable: wait for a pending write to this key.
    const pending = this.pendingByKey.get(key);
    if (pending !== undefined) await pending.catch(() => undefined);
    return this.entries.get(key);
  }

  async list(
    prefix: string,
    options: KvCallOptions & { readonly after?: string; readonly limit?: number } = {},
  ): Promise<KvPage> {
    this.checkOpen(options.signal);
    checkPrefix(prefix);
    const limit = checkLimit(options.limit);
    await this.log.drain();
    const keys: string[] = [];
    for (const key of this.entries.keys()) {
      if (key.startsWith(prefix) && (options.after === undefined || key > options.after))
        keys.push(key);
    }
    keys.sort();
    const page = keys.slice(0, limit).map((key) => this.entries.get(key) as KvEntry);
    const last = page[page.length - 1];
    return keys.length > limit && last !== undefined
      ? { entries: page, next: last.key }
      : { entries: page };
  }

  async revision(options: KvCallOptions = {}): Promise<number> {
    this.checkOpen(options.signal);
    await this.log.drain();
    return this.rev;
  }

  // ---- watches ---------------------------------------------------------------------------------

  private publish(event: KvEvent): void {
    const revision = event.type === "put" ? event.entry.revision : event.revision;
    this.history.push({ revision, event });
    if (this.history.length > this.historyLimit * 1.5)
      this.history = this.history.slice(-this.historyLimit);
    const key = event.type === "put" ? event.entry.key : event.key;
    for (const watcher of this.watchers)
      if (key.startsWith(watcher.prefix)) watcher.queue.push(event);
  }

  watch(
    prefix: string,
    options: KvCallOptions & { readonly fromRevision?: number } = {},
  ): AsyncIterable<KvEvent> {
    this.checkOpen(options.signal);
    checkPrefix(prefix);
    const watcher = {
      prefix,
      queue: new EventQueue<KvEvent>({
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        onClose: () => this.watchers.delete(watcher),
      }),
    };
    const from = options.fromRevision;
    if (from !== undefined) {
      const oldest = this.history[0]?.revision;
      if (from < this.rev && (oldest === undefined || from < oldest - 1)) {
        throw new StrataError(
          "OUT_OF_RANGE",
          `revision ${from} is compacted; the oldest watchable is ${oldest ?? this.rev}`,
          {
            details: { fromRevision: from, oldest: oldest ?? this.rev },
          },
        );
      }
      for (const { revision, event } of this.history) {
        const key = event.type === "put" ? event.entry.key : event.key;
        if (revision > from && key.startsWith(prefix)) watcher.queue.push(event);
      }
    }
    this.watchers.add(watcher);
    return watcher.queue;
  }

  // ---- leases ----------------------------------------------------------------------------------

  private armLease(lease: Lease): void {
    lease.timer?.clear();
    lease.timer = this.clock.setTimer(() => {
      void this.expire(lease.id);
    }, lease.ttlMs);
  }

  private async expire(id: string): Promise<void> {
    await this.gate;
    if (this.closed) return;
    const lease = this.leases.get(id);
    if (lease === undefined) return;
    this.leases.delete(id);
    lease.timer?.clear();
    const commits: Promise<void>[] = [];
    for (const key of lease.keys) {
      if (this.entries.get(key)?.lease !== id) continue;
      const revision = ++this.rev;
      this.applyDelete(key, revision);
      commits.push(
        this.commit(key, pack([DELETE, key, revision]), { type: "delete", key, revision }),
      );
    }
    commits.push(this.commit(undefined, pack([REVOKE, id]), undefined));
    await Promise.all(commits).catch(() => undefined);
  }

  async grantLease(ttlMs: number, options: KvCallOptions = {}): Promise<string> {
    this.checkOpen(options.signal);
    checkLeaseTtl(ttlMs);
    await this.gate;
    const seq = ++this.leaseSeq;
    const id = `lease-${seq}`;
    const lease: Lease = { id, ttlMs, timer: undefined, keys: new Set() };
    this.leases.set(id, lease);
    await this.commit(undefined, pack([LEASE, id, ttlMs, seq]), undefined);
    this.armLease(lease);
    return id;
  }

  keepAlive(id: string, options: KvCallOptions = {}): Promise<void> {
    try {
      this.checkOpen(options.signal);
      const lease = this.leases.get(id);
      if (lease === undefined) throw notFoundLease(id);
      this.armLease(lease);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
  }

  async revokeLease(id: string, options: KvCallOptions = {}): Promise<void> {
    this.checkOpen(options.signal);
    if (!this.leases.has(id)) throw notFoundLease(id);
    await this.expire(id);
  }

  // ---- compaction and close --------------------------------------------------------------------

  private maybeCompact(): void {
    if (this.compacting !== undefined || this.log.size < this.compactAfterBytes) return;
    this.compacting = this.compact().finally(() => {
      this.compacting = undefined;
    });
  }

  /** Writes a snapshot of the durable state and starts a fresh log; writers wait meanwhile. */
  async compact(): Promise<void> {
    while (this.gate !== undefined) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    try {
      await this.log.drain();
      const snapshot: Snapshot = {
        revision: this.rev,
        leaseSeq: this.leaseSeq,
        entries: [...this.entries.values()].map((e) => [
          e.key,
          e.value,
          e.revision,
          e.createRevision ?? e.revision,
          e.lease ?? null,
        ]),
        leases: [...this.leases.values()].map((l) => [l.id, l.ttlMs]),
      };
      await writeFileAtomic(this.snapshotPath, packr.pack(snapshot));
      // A crash from here on is safe: recovery skips log records the snapshot already holds.
      await this.log.close();
      await removeIfExists(this.walPath);
      this.log = await AppendLog.open(this.walPath, { sync: this.sync });
      await syncDirectory(this.dir);
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
    await this.compacting;
    this.closed = true;
    for (const lease of this.leases.values()) lease.timer?.clear();
    for (const watcher of [...this.watchers]) watcher.queue.end();
    await this.log.close();
    await this.folderLock?.release();
    this.folderLock = undefined;
  }

  /** Size of the write-ahead log in bytes (for tests and tools). */
  async walSize(): Promise<number> {
    return (await stat(this.walPath)).size;
  }
}

/** The embedded store, with `close()` and a manual `compact()`. */
export interface EmbeddedKv extends StrongKV {
  close(): Promise<void>;
  compact(): Promise<void>;
  walSize(): Promise<number>;
}

/**
 * Opens (creating) an embedded StrongKV in a folder.
 *
 * @example
 * await using kv = await openEmbeddedKv({ dir: "./data/kv" });
 * const rev = await kv.put("stock/sku-1", bytes);
 */
export async function openEmbeddedKv(options: EmbeddedKvOptions): Promise<EmbeddedKv> {
  const kv = new EmbeddedKvStore(options);
  await kv.open();
  return instrumentKv(kv, options.telemetry);
}

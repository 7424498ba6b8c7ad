import {
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  type FileHandle,
} from "node:fs/promises";
import { join, resolve } from "node:path";
import { crc32 } from "node:zlib";
import { Packr } from "msgpackr";
import { StrataError, toStrataError } from "../../errors/index.js";
import {
  checkAppend,
  checkFromSeq,
  checkPartition,
  checkReadLimit,
  checkStreamName,
  checkStreamSpec,
  streamNotFound,
  wrongLastSeq,
} from "../../events/log-checks.js";
import {
  silentLogger,
  systemClock,
  type Clock,
  type Logger,
  type Timer,
} from "../../ports/index.js";
import type {
  AppendInput,
  AppendResult,
  EventLog,
  LogCallOptions,
  LogCapabilities,
  LogRecord,
  ReadOptions,
  StreamInfo,
  StreamSpec,
} from "../../ports/log.js";
import { AppendLog, MAX_RECORD_BYTES, syncDirectory, writeFileAtomic } from "./append-log.js";
import { lockFolder, type FolderLock } from "./folder-lock.js";

/** Options for {@link openEmbeddedLog}. */
export interface EmbeddedLogOptions {
  /** Folder that holds the log (created if missing); one process at a time may open it. */
  readonly dir: string;
  /** Record times, the duplicate window and age retention read this clock. */
  readonly clock?: Clock;
  /** Recovery (torn tails cut) and retention failures are reported here. */
  readonly logger?: Logger;
  /**
   * fsync before acknowledging an append (default true). UNSAFE when false: a crash or power
   * loss can drop acknowledged records. Only for throwaway test and bench data. Critical streams
   * fsync regardless.
   */
  readonly sync?: boolean;
  /**
   * A stream starts a new segment file once its current one holds this many bytes (default
   * 64 MiB, at most 1 GiB). Retention removes whole segments, so a stream with `maxBytes` uses
   * segments of at most an eighth of it (but not under 64 KiB).
   */
  readonly segmentBytes?: number;
}

/** The embedded log, with `close()` (the same as disposing it). */
export interface EmbeddedLog extends EventLog {
  close(): Promise<void>;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
/** Smallest segment a `maxBytes` stream is cut into: keeps file counts sane for tiny limits. */
const MIN_RETENTION_SEGMENT_BYTES = 64 * 1024;
/** frameRecord's header: payload length (u32 LE) then CRC-32 of the payload (u32 LE). */
const FRAME_HEADER = 8;
/** Recovery reads segments in windows of this size rather than a read per record. */
const SCAN_CHUNK = 4 * 1024 * 1024;
/** A read coalesces records into one file read while the gap between them stays this small. */
const READ_GAP = 64 * 1024;
const READ_SPAN = 8 * 1024 * 1024;
/** Recent records kept decoded in memory, so followers at the tail never touch the disk. */
const RECENT_RECORDS = 4_096;
const RECENT_BYTES = 16 * 1024 * 1024;
const FOLLOW_PAGE = 512;
const RECORD_FORMAT = 1;
const STREAM_FORMAT = 1;
const SPEC_FILE = "stream.json";
const SEGMENT_FILE = /^(\d{20})\.log$/;
const GRAVE_SUFFIX = ".deleted";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

type NormalSpec = ReturnType<typeof checkStreamSpec>;

/** A growable column of numbers: the per-record index costs bytes, not objects. */
class Column {
  private data: Float64Array | Uint32Array;
  private readonly wide: boolean;
  length = 0;

  /** `wide`: f64 values (times); otherwise u32 (offsets and positions in a segment). */
  constructor(wide: boolean) {
    this.wide = wide;
    this.data = wide ? new Float64Array(16) : new Uint32Array(16);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = this.wide
        ? new Float64Array(this.length * 2)
        : new Uint32Array(this.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }

  at(index: number): number {
    return this.data[index] ?? Number.NaN;
  }

  /** First index whose value is at least `value` (the column is ascending). */
  lowerBound(value: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid) < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops the growth slack once the column is complete. */
  trim(): void {
    if (this.data.length > this.length) this.data = this.data.slice(0, this.length);
  }
}

/**
 * One segment file: the records from `baseSeq` on, contiguous, `seq = baseSeq + index`. The index
 * holds each record's byte offset and time, and per partition the positions of its records.
 */
class Segment {
  readonly offsets = new Column(false);
  readonly times = new Column(true);
  readonly partitions = new Map<number, Column>();
  /** Bytes in the file, counting appends not yet durable. */
  bytes = 0;

  readonly baseSeq: number;
  readonly path: string;

  constructor(baseSeq: number, path: string) {
    this.baseSeq = baseSeq;
    this.path = path;
  }

  get count(): number {
    return this.offsets.length;
  }

  /** One past the last sequence held. */
  get endSeq(): number {
    return this.baseSeq + this.count;
  }

  add(offset: number, time: number, partition: number): void {
    let positions = this.partitions.get(partition);
    if (positions === undefined) {
      positions = new Column(false);
      this.partitions.set(partition, positions);
    }
    positions.push(this.count);
    this.offsets.push(offset);
    this.times.push(time);
  }

  /** Where the record at `index` ends in the file. */
  endOf(index: number): number {
    return index + 1 < this.count ? this.offsets.at(index + 1) : this.bytes;
  }

  seal(): void {
    this.offsets.trim();
    this.times.trim();
    for (const positions of this.partitions.values()) positions.trim();
  }
}

/** The last records appended, decoded, in sequence order; bounded by count and payload bytes. */
class RecentRecords {
  private records: Array<LogRecord | undefined> = [];
  private head = 0;
  private bytes = 0;

  push(record: LogRecord): void {
    this.records.push(record);
    this.bytes += record.payload.length;
    while (
      this.records.length - this.head > 1 &&
      (this.records.length - this.head > RECENT_RECORDS || this.bytes > RECENT_BYTES)
    ) {
      this.bytes -= this.records[this.head]?.payload.length ?? 0;
      this.records[this.head++] = undefined;
    }
    if (this.head > 1_024 && this.head * 2 > this.records.length) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }

  /** Sequence of the oldest record held, or `fallback` when empty. */
  firstSeq(fallback: number): number {
    return this.records[this.head]?.seq ?? fallback;
  }

  get(seq: number): LogRecord | undefined {
    const first = this.records[this.head];
    return first === undefined ? undefined : this.records[this.head + seq - first.seq];
  }
}

interface SeenId {
  readonly seq: number;
  readonly time: number;
  /** Set until the first copy is durable: a duplicate is answered only once it is. */
  durable: Promise<void> | undefined;
}

/** A stream's state in memory: its segments' index, the duplicate window, followers' wake-ups. */
class StreamState {
  /** Oldest first; the last one is active (appended to), never removed by retention. */
  readonly segments: Segment[] = [];
  log!: AppendLog;
  /** Next sequence to assign. */
  nextSeq = 1;
  /** Highest sequence that is durable; reads and follows see up to here. */
  durableSeq = 0;
  /** Record times never go backwards within a stream, so `seqAtTime` can binary-search. */
  lastTime = 0;
  /** Bytes in every segment, counting appends not yet durable. */
  bytes = 0;
  /** Ids in the duplicate window, oldest first (insertion order is time order). */
  readonly ids = new Map<string, SeenId>();
  readonly recent = new RecentRecords();
  /** Followers waiting for the next durable append. */
  readonly wakers = new Set<() => void>();
  rolling: Promise<void> | undefined;
  retaining: Promise<void> | undefined;
  retentionDue = false;
  /** Counts segment removals, so a read that raced one can tell and start again. */
  removals = 0;
  ageTimer: Timer | undefined;
  failure: unknown;
  deleted = false;

  readonly spec: NormalSpec;
  readonly dir: string;
  readonly segmentBytes: number;

  constructor(spec: NormalSpec, dir: string, segmentBytes: number) {
    this.spec = spec;
    this.dir = dir;
    this.segmentBytes = segmentBytes;
  }

  get name(): string {
    return this.spec.name;
  }

  get active(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }

  get firstSeq(): number {
    return this.segments[0]?.baseSeq ?? this.nextSeq;
  }

  /** Index in `segments` of the segment holding `seq` (the first one for older sequences). */
  locateIndex(seq: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.segments[mid] as Segment).baseSeq <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  locate(seq: number): Segment {
    return this.segments[this.locateIndex(seq)] as Segment;
  }

  timeOf(seq: number): number {
    const segment = this.locate(seq);
    return segment.times.at(seq - segment.baseSeq);
  }

  /** Durable bytes: every segment, less the active one's appends still in flight. */
  durableBytes(): number {
    const active = this.active;
    const index = this.durableSeq + 1 - active.baseSeq;
    const pending =
      index >= 0 && index < active.count ? active.bytes - active.offsets.at(index) : 0;
    return this.bytes - pending;
  }

  /** Up to `limit` sequences of `partition` in `start..end`, from the per-partition index. */
  partitionSeqs(partition: number, start: number, end: number, limit: number): number[] {
    const out: number[] = [];
    for (let i = this.locateIndex(start); i < this.segments.length; i++) {
      const segment = this.segments[i] as Segment;
      const positions = segment.partitions.get(partition);
      if (positions === undefined) continue;
      for (let k = positions.lowerBound(start - segment.baseSeq); k < positions.length; k++) {
        const seq = segment.baseSeq + positions.at(k);
        if (seq > end || out.length === limit) return out;
        out.push(seq);
      }
    }
    return out;
  }

  /** Forgets ids older than the duplicate window. */
  expireIds(now: number): void {
    const horizon = now - this.spec.duplicateWindowMs;
    for (const [id, seen] of this.ids) {
      if (seen.time > horizon) break;
      this.ids.delete(id);
    }
  }

  rememberId(id: string, seen: SeenId): void {
    this.ids.delete(id);
    this.ids.set(id, seen);
  }

  wakeFollowers(): void {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const wake of wakers) wake();
  }
}

function segmentName(baseSeq: number): string {
  return `${String(baseSeq).padStart(20, "0")}.log`;
}

function corrupt(message: string, details: Record<string, unknown>, cause?: unknown): StrataError {
  return new StrataError("DATA_LOSS", message, {
    details,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Record layout on disk: a MessagePack array, headers `null` when there are none. */
function encodeRecord(record: LogRecord): Uint8Array {
  const headers = Object.keys(record.headers).length === 0 ? null : record.headers;
  return packr.pack([
    RECORD_FORMAT,
    record.seq,
    record.partition,
    record.id,
    record.key,
    record.time,
    headers,
    record.payload,
  ]);
}

function isStringMap(value: unknown): value is Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((v) => typeof v === "string");
}

/** Decodes a stored record, refusing anything that is not exactly what `encodeRecord` wrote. */
function decodeRecord(stream: string, bytes: Uint8Array, where: string): LogRecord {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw corrupt(`undecodable record in ${where}`, { stream }, error);
  }
  if (Array.isArray(value) && value.length === 8 && value[0] === RECORD_FORMAT) {
    const [, seq, partition, id, key, time, headers, payload] = value as unknown[];
    if (
      Number.isSafeInteger(seq) &&
      Number.isInteger(partition) &&
      typeof id === "string" &&
      typeof key === "string" &&
      typeof time === "number" &&
      Number.isFinite(time) &&
      (headers === null || isStringMap(headers)) &&
      payload instanceof Uint8Array
    ) {
      return {
        stream,
        seq: seq as number,
        partition: partition as number,
        id,
        key,
        time,
        headers: headers ?? {},
        // A plain view: msgpackr hands out Buffers, appends are cached as Uint8Arrays.
        payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
      };
    }
  }
  throw corrupt(`malformed record in ${where}`, { stream });
}

/** Reads `buffer.length` bytes at `position`; false when the file ends first. */
async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<boolean> {
  let done = 0;
  while (done < buffer.length) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done);
    if (bytesRead === 0) return false;
    done += bytesRead;
  }
  return true;
}

/**
 * Walks a segment's CRC-framed records (the framing of `frameRecord`) in windows of a few MiB,
 * calling `onRecord` for each intact one; returns where the intact records end. It stops at the
 * first frame that is cut short, oversized or fails its CRC, the rule `recoverLog` applies, but
 * it never truncates: only the caller knows whether that is a torn tail or lost data.
 */
async function scanSegment(
  path: string,
  onRecord: (payload: Buffer, offset: number) => void,
): Promise<{ readonly size: number; readonly intactBytes: number }> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    let window = Buffer.alloc(0);
    let windowStart = 0;
    let offset = 0;
    const cover = async (end: number): Promise<boolean> => {
      if (end > size) return false;
      if (end <= windowStart + window.length) return true;
      window = Buffer.allocUnsafe(Math.min(size - offset, Math.max(SCAN_CHUNK, end - offset)));
      windowStart = offset;
      return readFully(handle, window, offset);
    };
    while (offset < size) {
      if (!(await cover(offset + FRAME_HEADER))) break;
      const length = window.readUInt32LE(offset - windowStart);
      const checksum = window.readUInt32LE(offset - windowStart + 4);
      if (length > MAX_RECORD_BYTES || !(await cover(offset + FRAME_HEADER + length))) break;
      const start = offset + FRAME_HEADER - windowStart;
      const payload = window.subarray(start, start + length);
      if (crc32(payload) !== checksum) break;
      onRecord(payload, offset);
      offset += FRAME_HEADER + length;
    }
    return { size, intactBytes: offset };
  } finally {
    await handle.close();
  }
}

/** Runs a synchronous answer as a promise, so bad input rejects rather than throws. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(toStrataError(error));
  }
}

function isStreamName(name: string): boolean {
  try {
    checkStreamName(name);
    return true;
  } catch {
    return false;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/**
 * The embedded Log: one folder per stream under `dir`, holding `stream.json` (the spec, written
 * atomically) and segment files named by their first sequence. Every record is CRC-framed and
 * appended through a group-committed {@link AppendLog}: concurrent appends share one write and
 * one fsync, and each is acknowledged only once it is on disk.
 *
 * Memory: records live on disk. Memory holds an index of 16 bytes a record (offset and position
 * in its partition as u32, time as f64), the ids inside the duplicate window, and the last few
 * thousand records decoded, which serve followers at the tail. Reads of older records are
 * positional reads, coalesced per segment; a partition filter goes through the per-partition
 * index, so it costs the records returned, not the stream.
 *
 * Recovery scans every segment (the index is rebuilt, not stored): a torn tail of the last
 * segment, which only a crash mid-write leaves and which was never acknowledged, is cut off; a
 * bad record anywhere else, or a missing segment, refuses the open with DATA_LOSS rather than
 * silently dropping what follows it.
 */
class EmbeddedLogStore implements EmbeddedLog {
  readonly name = "embedded";
  readonly capabilities: LogCapabilities = { replicated: false };
  private readonly dir: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly sync: boolean;
  private readonly segmentBytes: number;
  private readonly lockPath: string;
  private folderLock: FolderLock | undefined;
  private readonly streams = new Map<string, StreamState>();
  /** Creates and deletes run one at a time; appends and reads do not wait for them. */
  private admin: Promise<unknown> = Promise.resolve();
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly abortWakers = new WeakMap<AbortSignal, Set<() => void>>();

  constructor(options: EmbeddedLogOptions) {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (
      !Number.isSafeInteger(segmentBytes) ||
      segmentBytes < 1 ||
      segmentBytes > MAX_SEGMENT_BYTES
    ) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `segmentBytes must be an integer in 1..${MAX_SEGMENT_BYTES}`,
      );
    }
    this.dir = options.dir;
    this.clock = options.clock ?? systemClock();
    this.logger = options.logger ?? silentLogger;
    this.sync = options.sync ?? true;
    this.segmentBytes = segmentBytes;
    this.lockPath = resolve(this.dir, "log.lock");
  }

  // ---- open, recovery and locking ----------------------------------------------------------------

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.lock();
    try {
      let removed = false;
      for (const entry of await readdir(this.dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        if (entry.name.endsWith(GRAVE_SUFFIX)) {
          // A delete that crashed after the rename: finish it.
          await rm(join(this.dir, entry.name), { recursive: true, force: true });
          removed = true;
        } else if (isStreamName(entry.name)) {
          removed = (await this.recoverStream(entry.name)) || removed;
        }
      }
      if (removed) await syncDirectory(this.dir);
      for (const stream of this.streams.values()) this.scheduleRetention(stream);
    } catch (error) {
      for (const stream of this.streams.values()) {
        // A stream whose recovery failed has no append log yet.
        await (stream.log as AppendLog | undefined)?.close().catch(() => undefined);
      }
      this.streams.clear();
      await this.unlock();
      throw error;
    }
  }

  private async lock(): Promise<void> {
    this.folderLock = await lockFolder(this.lockPath, `the log in ${this.dir}`);
  }

  private async unlock(): Promise<void> {
    await this.folderLock?.release();
    this.folderLock = undefined;
  }

  /** Loads one stream folder; true when it was a half-created stream and was removed. */
  private async recoverStream(name: string): Promise<boolean> {
    const dir = join(this.dir, name);
    const files = await readdir(dir);
    const bases = files
      .map((file) => SEGMENT_FILE.exec(file)?.[1])
      .filter((base): base is string => base !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const specBytes = await readFile(join(dir, SPEC_FILE)).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    if (specBytes === undefined) {
      // Creation writes the spec before any segment: without one, nothing was ever stored.
      for (const base of bases) {
        if ((await stat(join(dir, segmentName(base)))).size > 0) {
          throw corrupt(`stream folder ${dir} has records but no ${SPEC_FILE}`, { stream: name });
        }
      }
      await rm(dir, { recursive: true, force: true });
      return true;
    }
    const spec = this.readSpec(name, specBytes);
    const state = new StreamState(spec, dir, this.segmentBytesFor(spec));
    this.streams.set(name, state);
    if (bases.length === 0) bases.push(1); // the spec was written, the first segment not yet
    const now = this.clock.now();
    const horizon = now - state.spec.duplicateWindowMs;
    for (const [i, base] of bases.entries()) {
      const segment = new Segment(base, join(dir, segmentName(base)));
      const expected = i === 0 ? base : state.nextSeq;
      if (base !== expected || base < 1) {
        throw corrupt(
          `stream ${name}: segment ${segmentName(base)} starts at ${base}, expected ${expected} (a segment is missing)`,
          { stream: name, segment: segment.path },
        );
      }
      const last = i === bases.length - 1;
      if (last) await (await open(segment.path, "a")).close(); // may not exist yet
      const { size, intactBytes } = await scanSegment(segment.path, (payload, offset) => {
        const where = `${segment.path} at byte ${offset}`;
        const record = decodeRecord(name, payload, where);
        if (record.seq !== segment.endSeq || record.partition >= state.spec.partitions) {
          throw corrupt(`unexpected record ${record.seq} in ${where}`, { stream: name });
        }
        segment.add(offset, record.time, record.partition);
        segment.bytes = offset + FRAME_HEADER + payload.length;
        if (record.time > horizon) {
          state.rememberId(record.id, { seq: record.seq, time: record.time, durable: undefined });
        }
      });
      if (intactBytes < size) {
        if (!last) {
          throw corrupt(
            `stream ${name}: corrupt record in ${segment.path} at byte ${intactBytes} of ${size}; the records after it would be lost`,
            { stream: name, segment: segment.path, offset: intactBytes },
          );
        }
        // A torn tail: the crash interrupted a write that was never acknowledged.
        const handle = await open(segment.path, "r+");
        try {
          await handle.truncate(intactBytes);
          await handle.datasync();
        } finally {
          await handle.close();
        }
        this.logger.warn(
          { stream: name, segment: segment.path, bytes: size - intactBytes },
          "cut a torn tail off the log",
        );
      }
      if (!last) segment.seal();
      state.segments.push(segment);
      state.bytes += segment.bytes;
      state.nextSeq = segment.endSeq;
      if (segment.count > 0) state.lastTime = segment.times.at(segment.count - 1);
    }
    state.durableSeq = state.nextSeq - 1;
    state.log = await AppendLog.open(state.active.path, { sync: this.syncs(spec) });
    await syncDirectory(dir);
    // Stale temporary copies of the spec from a crash mid-write.
    await rm(join(dir, `${SPEC_FILE}.tmp`), { force: true });
    return false;
  }

  private readSpec(name: string, bytes: Uint8Array): NormalSpec {
    try {
      const stored = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
      if (stored["format"] !== STREAM_FORMAT || stored["name"] !== name) throw new Error("format");
      const positive = (key: string): number | undefined => {
        const value = stored[key];
        return typeof value === "number" && value > 0 ? value : undefined;
      };
      const spec: Record<string, unknown> = {
        name,
        partitions: stored["partitions"],
        critical: stored["critical"] === true,
      };
      for (const key of ["replicas", "maxAgeMs", "maxBytes", "duplicateWindowMs"]) {
        const value = positive(key);
        if (value !== undefined) spec[key] = value;
      }
      return checkStreamSpec(spec as unknown as StreamSpec);
    } catch (error) {
      throw corrupt(`unreadable ${SPEC_FILE} for stream ${name}`, { stream: name }, error);
    }
  }

  /** Critical streams always fsync: `sync: false` never weakens the port's promise for them. */
  private syncs(spec: NormalSpec): boolean {
    return this.sync || spec.critical;
  }

  /** The stream's segment size: the log's, cut down so `maxBytes` retention stays close. */
  private segmentBytesFor(spec: NormalSpec): number {
    if (spec.maxBytes === 0) return this.segmentBytes;
    const share = Math.max(MIN_RETENTION_SEGMENT_BYTES, Math.floor(spec.maxBytes / 8));
    return Math.min(this.segmentBytes, share);
  }

  // ---- streams -----------------------------------------------------------------------------------

  private checkOpen(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the log is closed");
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  private stream(name: string): StreamState {
    const stream = this.streams.get(checkStreamName(name));
    if (stream === undefined) throw streamNotFound(name);
    return stream;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.admin.then(fn, fn);
    this.admin = run.catch(() => undefined);
    return run;
  }

  private info(stream: StreamState): StreamInfo {
    const firstSeq = stream.firstSeq;
    return {
      name: stream.name,
      partitions: stream.spec.partitions,
      replicas: 1,
      firstSeq,
      lastSeq: stream.durableSeq,
      records: Math.max(0, stream.durableSeq - firstSeq + 1),
      bytes: stream.durableBytes(),
    };
  }

  /**
   * Creates the stream or checks the existing one. Partitions must match; a limit given here
   * (`maxAgeMs`, `maxBytes`, `duplicateWindowMs`, `critical`) must match the stored one, while a
   * limit left out accepts whatever the stream has, so readers can ensure a stream by name and
   * partitions alone. `replicas` is accepted and ignored: there is one copy, on this disk.
   */
  async ensureStream(spec: StreamSpec, options: LogCallOptions = {}): Promise<StreamInfo> {
    this.checkOpen(options.signal);
    const normal = checkStreamSpec(spec);
    return this.serial(async () => {
      this.checkOpen();
      const existing = this.streams.get(normal.name);
      if (existing !== undefined) {
        const stored = existing.spec;
        const differs: string[] = [];
        if (stored.partitions !== normal.partitions) differs.push("partitions");
        for (const key of ["maxAgeMs", "maxBytes", "duplicateWindowMs", "critical"] as const) {
          if (spec[key] !== undefined && stored[key] !== normal[key]) differs.push(key);
        }
        if (differs.length > 0) {
          throw new StrataError(
            "FAILED_PRECONDITION",
            `stream ${normal.name} exists with different ${differs.join(", ")}`,
            { details: { stream: normal.name, stored: { ...stored } } },
          );
        }
        return this.info(existing);
      }
      const dir = join(this.dir, normal.name);
      await rm(dir, { recursive: true, force: true }); // a half-created folder from a failed create
      await mkdir(dir);
      await writeFileAtomic(
        join(dir, SPEC_FILE),
        new TextEncoder().encode(JSON.stringify({ format: STREAM_FORMAT, ...normal })),
      );
      await syncDirectory(this.dir);
      const stream = new StreamState(normal, dir, this.segmentBytesFor(normal));
      const segment = new Segment(1, join(dir, segmentName(1)));
      stream.log = await AppendLog.open(segment.path, { sync: this.syncs(normal) });
      await syncDirectory(dir);
      stream.segments.push(segment);
      this.streams.set(normal.name, stream);
      return this.info(stream);
    });
  }

  streamInfo(stream: string, options: LogCallOptions = {}): Promise<StreamInfo> {
    return settle(() => {
      this.checkOpen(options.signal);
      return this.info(this.stream(stream));
    });
  }

  async deleteStream(stream: string, options: LogCallOptions = {}): Promise<boolean> {
    this.checkOpen(options.signal);
    checkStreamName(stream);
    return this.serial(async () => {
      const state = this.streams.get(stream);
      if (state === undefined) return false;
      this.streams.delete(stream);
      state.deleted = true;
      state.ageTimer?.clear();
      state.wakeFollowers();
      await state.rolling;
      await state.retaining;
      await state.log.close(); // appends already accepted finish first
      // Renamed first, so a crash mid-removal leaves a grave that open() clears, not half a stream.
      const grave = join(this.dir, `${stream}${GRAVE_SUFFIX}`);
      await rm(grave, { recursive: true, force: true });
      await rename(state.dir, grave);
      await syncDirectory(this.dir);
      await rm(grave, { recursive: true, force: true });
      return true;
    });
  }

  // ---- appends -----------------------------------------------------------------------------------

  /**
   * Appends one record and resolves once it is durable. A duplicate id inside the window is
   * answered with the first copy's sequence, once that copy is durable. An append cannot be
   * withdrawn once accepted: the signal is checked on entry only.
   */
  async append(
    stream: string,
    input: AppendInput,
    options: LogCallOptions = {},
  ): Promise<AppendResult> {
    this.checkOpen(options.signal);
    const state = this.stream(stream);
    checkAppend(input, state.spec.partitions);
    for (;;) {
      if (state.deleted) throw streamNotFound(stream);
      this.checkOpen();
      if (state.failure !== undefined) {
        throw new StrataError(
          "DATA_LOSS",
          `stream ${stream} failed a write; reopen the log to recover`,
          { cause: state.failure },
        );
      }
      state.expireIds(this.clock.now());
      const seen = state.ids.get(input.id);
      if (seen !== undefined) {
        if (seen.durable !== undefined) await seen.durable;
        return { seq: seen.seq, duplicate: true };
      }
      if (state.rolling !== undefined) {
        await state.rolling;
        continue;
      }
      const active = state.active;
      if (active.count > 0 && active.bytes >= state.segmentBytes) {
        state.rolling = this.roll(state).finally(() => {
          state.rolling = undefined;
        });
        continue;
      }
      break;
    }
    if (input.expectedLastSeq !== undefined && state.nextSeq - 1 !== input.expectedLastSeq) {
      throw wrongLastSeq(stream, input.expectedLastSeq, state.nextSeq - 1);
    }
    // From here to the AppendLog call nothing awaits: sequence order is file order.
    const seq = state.nextSeq++;
    const time = Math.max(this.clock.now(), state.lastTime);
    state.lastTime = time;
    const payload = new Uint8Array(input.payload.length);
    payload.set(input.payload); // the producer may reuse its buffer; the cache must not change
    const record: LogRecord = {
      stream,
      seq,
      partition: input.partition,
      id: input.id,
      key: input.key,
      time,
      headers: { ...input.headers },
      payload,
    };
    const segment = state.active;
    const offset = state.log.size;
    const durable = state.log.append(encodeRecord(record));
    const frameBytes = state.log.size - offset;
    segment.add(offset, time, input.partition);
    segment.bytes += frameBytes;
    state.bytes += frameBytes;
    state.recent.push(record);
    const seen: SeenId = { seq, time, durable };
    state.rememberId(input.id, seen);
    durable.then(
      () => {
        seen.durable = undefined;
        this.advance(state, seq);
      },
      (error: unknown) => {
        state.failure ??= error;
        this.logger.error({ stream, seq, err: error }, "log append failed");
      },
    );
    try {
      await durable;
    } catch (error) {
      throw toStrataError(error);
    }
    return { seq, duplicate: false };
  }

  /** Moves the durable mark (appends become durable in sequence order) and wakes followers. */
  private advance(stream: StreamState, seq: number): void {
    if (seq <= stream.durableSeq) return;
    stream.durableSeq = seq;
    stream.wakeFollowers();
    const maxBytes = stream.spec.maxBytes;
    if (maxBytes > 0 && stream.bytes > maxBytes && stream.segments.length > 1) {
      this.scheduleRetention(stream);
    }
  }

  /**
   * Seals the active segment and starts the next. The old segment is drained first, so a record
   * in the new segment is never on disk while an earlier one may still be torn away.
   */
  private async roll(stream: StreamState): Promise<void> {
    try {
      await stream.log.drain();
      await stream.log.close();
      if (stream.failure !== undefined || stream.deleted || this.closed) return;
      stream.active.seal();
      const segment = new Segment(stream.nextSeq, join(stream.dir, segmentName(stream.nextSeq)));
      stream.log = await AppendLog.open(segment.path, { sync: this.syncs(stream.spec) });
      await syncDirectory(stream.dir);
      stream.segments.push(segment);
      this.scheduleRetention(stream);
    } catch (error) {
      stream.failure ??= error;
      this.logger.error({ stream: stream.name, err: error }, "could not start a log segment");
    }
  }

  // ---- retention ---------------------------------------------------------------------------------

  private scheduleRetention(stream: StreamState): void {
    if (stream.spec.maxAgeMs === 0 && stream.spec.maxBytes === 0) return;
    stream.retentionDue = true;
    if (stream.retaining !== undefined) return;
    stream.retaining = (async () => {
      while (stream.retentionDue && !stream.deleted && !this.closed) {
        stream.retentionDue = false;
        await this.retain(stream);
      }
    })()
      .catch((error: unknown) => {
        this.logger.warn({ stream: stream.name, err: error }, "log retention failed");
      })
      .finally(() => {
        stream.retaining = undefined;
      });
  }

  /** Removes whole sealed segments, oldest first, while the stream is over its limits. */
  private async retain(stream: StreamState): Promise<void> {
    const { maxAgeMs, maxBytes } = stream.spec;
    const now = this.clock.now();
    const removed: Segment[] = [];
    while (stream.segments.length > 1) {
      const first = stream.segments[0] as Segment;
      const tooBig = maxBytes > 0 && stream.bytes > maxBytes;
      const tooOld =
        maxAgeMs > 0 && (first.count === 0 || first.times.at(first.count - 1) <= now - maxAgeMs);
      if (!tooBig && !tooOld) break;
      stream.segments.shift();
      stream.bytes -= first.bytes;
      stream.removals++;
      removed.push(first);
    }
    for (const segment of removed) await rm(segment.path, { force: true });
    if (removed.length > 0) await syncDirectory(stream.dir);
    this.armAgeTimer(stream);
  }

  /** Wakes retention when the oldest sealed segment's newest record comes of age. */
  private armAgeTimer(stream: StreamState): void {
    stream.ageTimer?.clear();
    stream.ageTimer = undefined;
    const first = stream.segments[0];
    if (stream.spec.maxAgeMs === 0 || stream.segments.length < 2 || first === undefined) return;
    if (stream.deleted || this.closed) return;
    const due =
      first.count === 0
        ? 0
        : first.times.at(first.count - 1) + stream.spec.maxAgeMs - this.clock.now();
    stream.ageTimer = this.clock.setTimer(() => this.scheduleRetention(stream), Math.max(0, due));
  }

  // ---- reads -------------------------------------------------------------------------------------

  async read(
    stream: string,
    options: ReadOptions & { readonly limit?: number } = {},
  ): Promise<LogRecord[]> {
    this.checkOpen(options.signal);
    const state = this.stream(stream);
    const limit = checkReadLimit(options.limit);
    const fromSeq = checkFromSeq(options.fromSeq);
    const partition = checkPartition(options.partition, state.spec.partitions);
    return (await this.readPage(state, fromSeq, partition, limit)).records;
  }

  /** Up to `limit` durable records from `from`, and the sequence to continue from. */
  private async readPage(
    stream: StreamState,
    from: number,
    partition: number | undefined,
    limit: number,
  ): Promise<{ readonly records: LogRecord[]; readonly next: number }> {
    for (;;) {
      const start = Math.max(from, stream.firstSeq);
      const end = stream.durableSeq;
      if (start > end) return { records: [], next: start };
      let seqs: number[];
      if (partition === undefined) {
        const count = Math.min(limit, end - start + 1);
        seqs = Array.from({ length: count }, (_, i) => start + i);
      } else {
        seqs = stream.partitionSeqs(partition, start, end, limit);
      }
      const next = seqs.length === limit ? (seqs[limit - 1] as number) + 1 : end + 1;
      const removals = stream.removals;
      try {
        return { records: await this.load(stream, seqs), next };
      } catch (error) {
        if (stream.deleted) throw streamNotFound(stream.name);
        // Retention removed a segment under the read: those records are gone, read on from
        // the new first sequence (real damage fails again, with nothing removed meanwhile).
        if (stream.removals !== removals) continue;
        throw toStrataError(error);
      }
    }
  }

  /** The records at `seqs` (ascending, durable): from the recent cache, else from disk. */
  private async load(stream: StreamState, seqs: readonly number[]): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    let i = 0;
    while (i < seqs.length) {
      const seq = seqs[i] as number;
      const cached = stream.recent.get(seq);
      if (cached !== undefined) {
        out.push(cached);
        i++;
        continue;
      }
      if (seq < stream.firstSeq) {
        throw new StrataError("OUT_OF_RANGE", `record ${seq} was removed by retention`);
      }
      const segment = stream.locate(seq);
      let j = i + 1;
      while (j < seqs.length && (seqs[j] as number) < segment.endSeq) j++;
      // Records the cache might still hold are read from disk too: simpler than splitting a run.
      out.push(...(await this.readSegment(stream, segment, seqs.slice(i, j))));
      i = j;
    }
    return out;
  }

  /** Reads records of one segment with as few positional reads as their layout allows. */
  private async readSegment(
    stream: StreamState,
    segment: Segment,
    seqs: readonly number[],
  ): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    const handle = await open(segment.path, "r");
    try {
      let k = 0;
      while (k < seqs.length) {
        const first = (seqs[k] as number) - segment.baseSeq;
        const spanStart = segment.offsets.at(first);
        let spanEnd = segment.endOf(first);
        let m = k + 1;
        while (m < seqs.length) {
          const index = (seqs[m] as number) - segment.baseSeq;
          const end = segment.endOf(index);
          if (segment.offsets.at(index) - spanEnd > READ_GAP || end - spanStart > READ_SPAN) break;
          spanEnd = end;
          m++;
        }
        const span = Buffer.allocUnsafe(spanEnd - spanStart);
        if (!(await readFully(handle, span, spanStart))) {
          throw corrupt(`${segment.path} is shorter than its index`, { stream: stream.name });
        }
        for (; k < m; k++) {
          const seq = seqs[k] as number;
          const index = seq - segment.baseSeq;
          const at = segment.offsets.at(index) - spanStart;
          const where = `${segment.path} at byte ${segment.offsets.at(index)}`;
          const length = span.readUInt32LE(at);
          const payload = span.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length);
          if (
            at + FRAME_HEADER + length > span.length ||
            crc32(payload) !== span.readUInt32LE(at + 4)
          ) {
            throw corrupt(`corrupt record ${seq} in ${where}`, { stream: stream.name, seq });
          }
          const record = decodeRecord(stream.name, payload, where);
          if (record.seq !== seq) {
            throw corrupt(`record ${record.seq} found where ${seq} belongs, ${where}`, {
              stream: stream.name,
              seq,
            });
          }
          out.push(record);
        }
      }
    } finally {
      await handle.close();
    }
    return out;
  }

  /**
   * Stored records, then new ones as they become durable. A caught-up follower waits on the
   * stream's wake-up set (woken by each durable append, the abort, a delete or close), never on a
   * timer. Errors (NOT_FOUND, bad options) surface on the first iteration, as on every adapter.
   * A follower behind retention resumes at the stream's first kept record. Deleting the stream
   * ends a follow with NOT_FOUND; closing the log ends it quietly.
   */
  follow(stream: string, options: ReadOptions = {}): AsyncIterable<LogRecord> {
    return this.followRecords(stream, options);
  }

  private async *followRecords(name: string, options: ReadOptions): AsyncGenerator<LogRecord> {
    const signal = options.signal;
    // A function, not a narrowed property: the signal and `closed` change while this waits.
    const over = (): boolean => signal?.aborted === true || this.closed;
    if (over()) return;
    const stream = this.stream(name);
    const partition = checkPartition(options.partition, stream.spec.partitions);
    let next = checkFromSeq(options.fromSeq);
    while (!over()) {
      if (stream.deleted) throw streamNotFound(name);
      const page = await this.readPage(stream, next, partition, FOLLOW_PAGE);
      for (const record of page.records) {
        yield record;
        if (over()) return;
      }
      next = page.next;
      if (page.records.length === 0) await this.waitForAppend(stream, next, signal);
    }
  }

  private waitForAppend(
    stream: StreamState,
    next: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (stream.durableSeq >= next || signal?.aborted === true || this.closed || stream.deleted) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const forget = signal === undefined ? undefined : this.onAbort(signal, () => wake());
      const wake = (): void => {
        stream.wakers.delete(wake);
        forget?.();
        resolve();
      };
      stream.wakers.add(wake);
    });
  }

  /**
   * Calls `wake` when `signal` aborts; returns the way to cancel that. One listener per signal,
   * whatever the number of followers sharing it, so many of them do not pile up listeners.
   */
  private onAbort(signal: AbortSignal, wake: () => void): () => void {
    let wakers = this.abortWakers.get(signal);
    if (wakers === undefined) {
      const set = new Set<() => void>();
      wakers = set;
      this.abortWakers.set(signal, set);
      signal.addEventListener(
        "abort",
        () => {
          for (const fn of [...set]) fn();
          set.clear();
        },
        { once: true },
      );
    }
    const set = wakers;
    set.add(wake);
    return () => set.delete(wake);
  }

  /** Binary search on record times, which never go backwards within a stream. */
  seqAtTime(stream: string, time: number, options: LogCallOptions = {}): Promise<number> {
    return settle(() => {
      this.checkOpen(options.signal);
      const state = this.stream(stream);
      if (typeof time !== "number" || Number.isNaN(time)) {
        throw new StrataError("INVALID_ARGUMENT", "time must be a number (ms since the epoch)");
      }
      let lo = state.firstSeq;
      let hi = state.durableSeq + 1;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (state.timeOf(mid) < time) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    });
  }

  // ---- close -------------------------------------------------------------------------------------

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Lets accepted appends finish, ends followers, releases the folder. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    await this.admin;
    for (const stream of this.streams.values()) {
      stream.ageTimer?.clear();
      stream.wakeFollowers();
    }
    for (const stream of this.streams.values()) {
      await stream.rolling;
      await stream.retaining;
      await stream.log.close();
    }
    await this.unlock();
  }
}

/**
 * Opens (creating) an embedded Log in a folder.
 *
 * @example
 * await using log = await openEmbeddedLog({ dir: "./data/log" });
 * await log.ensureStream({ name: "orders", partitions: 8 });
 * const { seq } = await log.append("orders", { partition: 3, id, key: orderId, payload });
 */
export async function openEmbeddedLog(options: EmbeddedLogOptions): Promise<EmbeddedLog> {
  const log = new EmbeddedLogStore(options);
  await log.open();
  return log;
}

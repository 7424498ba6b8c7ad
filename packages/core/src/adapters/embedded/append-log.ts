import { open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { crc32 } from "node:zlib";
import { StrataError, toStrataError } from "../../errors/index.js";

/** Bytes of a record header: payload length (u32) then CRC-32 of the payload (u32). */
const HEADER = 8;
/** Largest record accepted (a corrupt length must not make recovery allocate gigabytes). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** What recovery found in a log file. */
export interface RecoveryReport {
  readonly records: number;
  /** Bytes cut off the end: a torn or corrupt tail left by a crash mid-write. */
  readonly truncatedBytes: number;
}

/**
 * Reads every intact record of a log file in order and truncates a torn tail: a record whose
 * header or payload is cut short, or whose CRC does not match, ends the log there. A crash can
 * only tear the last write, so nothing acknowledged (fsynced) is lost.
 */
export async function recoverLog(
  path: string,
  onRecord: (payload: Uint8Array) => void,
): Promise<RecoveryReport> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r+");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      return { records: 0, truncatedBytes: 0 };
    throw error;
  }
  try {
    const size = (await handle.stat()).size;
    const header = Buffer.alloc(HEADER);
    let offset = 0;
    let records = 0;
    while (offset + HEADER <= size) {
      await handle.read(header, 0, HEADER, offset);
      const length = header.readUInt32LE(0);
      const checksum = header.readUInt32LE(4);
      if (length > MAX_RECORD_BYTES || offset + HEADER + length > size) break;
      const payload = Buffer.alloc(length);
      await handle.read(payload, 0, length, offset + HEADER);
      if (crc32(payload) !== checksum) break;
      onRecord(payload);
      records++;
      offset += HEADER + length;
    }
    const truncatedBytes = size - offset;
    if (truncatedBytes > 0) {
      await handle.truncate(offset);
      await handle.datasync();
    }
    return { records, truncatedBytes };
  } finally {
    await handle.close();
  }
}

/** Frames a payload as a record. */
export function frameRecord(payload: Uint8Array): Buffer {
  if (payload.length > MAX_RECORD_BYTES) {
    throw new StrataError(
      "RESOURCE_EXHAUSTED",
      `record of ${payload.length} bytes is over the ${MAX_RECORD_BYTES}-byte limit`,
    );
  }
  const record = Buffer.allocUnsafe(HEADER + payload.length);
  record.writeUInt32LE(payload.length, 0);
  record.writeUInt32LE(crc32(payload), 4);
  record.set(payload, HEADER);
  return record;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * An append-only file of CRC-framed records with group commit: appends made while a write and
 * fsync are in progress are written and synced together in the next batch, and each append's
 * promise resolves only once its record is on disk.
 */
export class AppendLog {
  private readonly handle: FileHandle;
  private readonly sync: boolean;
  private queue: Buffer[] = [];
  private waiters: Waiter[] = [];
  private flushing = false;
  private failed: unknown;
  private closed = false;
  /** Bytes in the file (written, not necessarily synced). */
  size: number;

  private constructor(handle: FileHandle, size: number, sync: boolean) {
    this.handle = handle;
    this.size = size;
    this.sync = sync;
  }

  /** Opens (creating) a log for appending. Recover it first with {@link recoverLog}. */
  static async open(path: string, options: { readonly sync?: boolean } = {}): Promise<AppendLog> {
    const handle = await open(path, "a");
    const size = (await stat(path)).size;
    return new AppendLog(handle, size, options.sync ?? true);
  }

  /** Appends one record; resolves when it is durable (or written, with `sync: false`). */
  append(payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new StrataError("UNAVAILABLE", "log is closed"));
    if (this.failed !== undefined) {
      return Promise.reject(
        new StrataError("DATA_LOSS", "log failed an earlier write; reopen to recover", {
          cause: this.failed,
        }),
      );
    }
    let record: Buffer;
    try {
      record = frameRecord(payload);
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
    this.queue.push(record);
    this.size += record.length;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Resolves once everything appended so far is durable. */
  async drain(): Promise<void> {
    if (this.queue.length === 0 && !this.flushing) return;
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0 || this.waiters.length > 0) {
      const batch = this.queue;
      const waiters = this.waiters;
      this.queue = [];
      this.waiters = [];
      try {
        if (batch.length > 0) {
          await this.handle.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch));
          if (this.sync) await this.handle.datasync();
        }
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        // After a failed write the file's tail is unknown: refuse further appends.
        this.failed = error;
        const failure = new StrataError("DATA_LOSS", "could not write the log", { cause: error });
        for (const waiter of [...waiters, ...this.waiters]) waiter.reject(failure);
        this.waiters = [];
        this.queue = [];
        break;
      }
    }
    this.flushing = false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.drain().catch(() => undefined);
    this.closed = true;
    await this.handle.close();
  }
}

/** Writes a file atomically: to a temporary name, fsynced, then renamed over the target. */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const temp = `${path}.tmp`;
  const handle = await open(temp, "w");
  try {
    await handle.write(data);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  await syncDirectory(dirname(path));
}

/** Makes a rename or file creation in `dir` durable (fsync on the directory). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes a file if it exists. */
export async function removeIfExists(path: string): Promise<void> {
  await rm(path, { force: true });
}

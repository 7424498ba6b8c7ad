/**
 * The Log port: durable, partitioned, append-only streams. The events block (typed events,
 * consumer groups, dead letters, outbox, projections) is built on it. Adapters: embedded
 * (segmented files on local disk) and NATS JetStream. Every adapter passes one conformance suite.
 *
 * A stream has a fixed number of partitions. Sequence numbers are per stream (across its
 * partitions), start at 1 and strictly increase in append order; a partition's records are the
 * stream's records with that partition number, in sequence order. Order is promised within a
 * partition only, which is why producers choose the partition from a key.
 */

/** One stored record. */
export interface LogRecord {
  readonly stream: string;
  readonly partition: number;
  /** Position in the stream: strictly increasing across the stream's partitions, from 1. */
  readonly seq: number;
  /**
   * The producer's unique id. An append whose id is already in the stream's duplicate window is
   * acknowledged with the first copy's sequence and not stored again.
   */
  readonly id: string;
  /** The partition key the producer gave (order is kept per key). */
  readonly key: string;
  /** When the log stored it (ms since the epoch). */
  readonly time: number;
  /** Small string attributes (CloudEvents attributes, trace context). */
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
}

/** How a stream is set up. Creating a stream that exists checks the spec matches. */
export interface StreamSpec {
  /** 1-64 of a-z 0-9 - _ , starting with a letter. */
  readonly name: string;
  /** Number of partitions, 1..1024; cannot change once created. */
  readonly partitions: number;
  /**
   * Copies kept (NATS: stream replicas, 1 or 3; default 1 on a single server, 3 on a cluster).
   * Embedded keeps one copy on local disk.
   */
  readonly replicas?: number;
  /**
   * The stream holds money or orders: every acknowledged append is on disk (fsync) before the
   * acknowledgement. The embedded log always syncs (in batches); on NATS this needs the
   * servers' `sync_interval: always`, and the adapter refuses a critical stream without it.
   */
  readonly critical?: boolean;
  /** Records older than this are removed (ms); default: kept until `maxBytes`. */
  readonly maxAgeMs?: number;
  /** The oldest records are removed past this size (bytes); default: unlimited. */
  readonly maxBytes?: number;
  /** How long appended ids are remembered for de-duplication (ms); default 120 000. */
  readonly duplicateWindowMs?: number;
}

/** A stream's current extent. */
export interface StreamInfo {
  readonly name: string;
  readonly partitions: number;
  readonly replicas: number;
  /** Sequence of the oldest record kept (lastSeq + 1 when empty). */
  readonly firstSeq: number;
  /** Sequence of the newest record (0 when nothing was ever appended). */
  readonly lastSeq: number;
  readonly records: number;
  readonly bytes: number;
}

/** What a producer appends. */
export interface AppendInput {
  readonly partition: number;
  readonly id: string;
  readonly key: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
  /**
   * Appends only if the stream's last sequence is exactly this (0: the stream is empty), so that
   * writers that each append after what they last read cannot fork the log; otherwise `ABORTED`
   * with `details.reason` `"wrong-last-seq"` (catch up and try again). An id already in the
   * duplicate window is still answered as a duplicate, whatever the last sequence.
   */
  readonly expectedLastSeq?: number;
}

/** An acknowledged append. */
export interface AppendResult {
  readonly seq: number;
  /** The id was already in the duplicate window: nothing new was stored, `seq` is the first copy's. */
  readonly duplicate: boolean;
}

/** What an adapter can do. */
export interface LogCapabilities {
  /** Records survive the loss of a server (replicas > 1 possible). */
  readonly replicated: boolean;
}

/** Options common to every call. */
export interface LogCallOptions {
  readonly signal?: AbortSignal;
}

/** Where a read starts and what it covers. */
export interface ReadOptions extends LogCallOptions {
  /** Only this partition; default every partition. */
  readonly partition?: number;
  /** First sequence wanted (default 1); records before the stream's firstSeq are gone. */
  readonly fromSeq?: number;
}

/** The port. */
export interface EventLog extends AsyncDisposable {
  readonly name: string;
  readonly capabilities: LogCapabilities;
  /**
   * Creates the stream, or checks that the existing one has the same partitions (and, where the
   * engine stores them, limits); FAILED_PRECONDITION when it differs.
   */
  ensureStream(spec: StreamSpec, options?: LogCallOptions): Promise<StreamInfo>;
  /** NOT_FOUND when the stream does not exist. */
  streamInfo(stream: string, options?: LogCallOptions): Promise<StreamInfo>;
  /** Deletes a stream and its records; false when there was none. */
  deleteStream(stream: string, options?: LogCallOptions): Promise<boolean>;
  /**
   * Appends one record; resolves once it is durable under the stream's settings. NOT_FOUND for an
   * unknown stream, INVALID_ARGUMENT for a partition out of range or an oversized record.
   */
  append(stream: string, input: AppendInput, options?: LogCallOptions): Promise<AppendResult>;
  /**
   * Up to `limit` (default 256, at most 10 000) records from `fromSeq` on, in sequence order.
   * Fewer (possibly none) at the end of the stream.
   */
  read(stream: string, options?: ReadOptions & { readonly limit?: number }): Promise<LogRecord[]>;
  /**
   * Every record from `fromSeq` on, in sequence order, then new ones as they are appended. Ends
   * (returns) when the signal aborts. Never skips a record that is kept.
   */
  follow(stream: string, options?: ReadOptions): AsyncIterable<LogRecord>;
  /** The sequence of the first record stored at or after `time` (lastSeq + 1 when none). */
  seqAtTime(stream: string, time: number, options?: LogCallOptions): Promise<number>;
}

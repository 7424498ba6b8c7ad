import { setMaxListeners } from "node:events";
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  DeliverPolicy,
  JetStreamApiError,
  StorageType,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
  type StreamInfo as JsStreamInfo,
} from "@nats-io/jetstream";
import {
  StrataError,
  checkAppend,
  checkFromSeq,
  checkPartition,
  checkReadLimit,
  checkStreamName,
  checkStreamSpec,
  isStrataError,
  streamNotFound,
  systemClock,
  wrongLastSeq,
  type AppendInput,
  type Clock,
  type AppendResult,
  type EventLog,
  type LogCallOptions,
  type LogCapabilities,
  type LogRecord,
  type ReadOptions,
  type StreamInfo,
  type StreamSpec,
  type Timer,
} from "@strata/core";
import { toError } from "./nats-kv.js";

/** Options for {@link openNatsLog}. */
export interface NatsLogOptions {
  /** A connection to reuse; the log does not close it. */
  readonly connection: NatsConnection;
  /** Subject prefix of the streams' records; default `strata.log`. */
  readonly subjectPrefix?: string;
  /** Prefix of the JetStream stream names; default `LOG_` (streams are `LOG_<name>`). */
  readonly streamPrefix?: string;
  /** Replicas of streams whose spec names none; default 1. */
  readonly replicas?: number;
  /**
   * The servers run with `sync_interval: always` (fsync before acknowledging). A client cannot
   * read the servers' configuration, so the deployer says so here; `critical` streams are
   * refused without it.
   */
  readonly serversSyncAlways?: boolean;
  /** Per-call timeout of JetStream API requests (ms); default 5 000. */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

const KEY = "Strata-Key";
const MSG_ID = "Nats-Msg-Id";
const PARTITIONS = "strata-partitions";
const STREAM_NOT_FOUND = 10059;
const WRONG_LAST_SEQUENCE = 10071;
const NO_MESSAGE_FOUND = 10037;
/** Reads of at most this many records go to the stream leader message by message. */
const DIRECT_READ_MAX = 16;
const NS = 1_000_000;

/**
 * The Log port on NATS JetStream (server >= 2.10): one stream per log stream (`LOG_<name>`),
 * one subject per partition (`<prefix>.<name>.<partition>`), the partition count in the
 * stream's metadata. Appends are acknowledged once stored by the stream's replicas and carry
 * the producer's id as `Nats-Msg-Id`, so the server's duplicate window drops a re-publish.
 * Reads go through ordered consumers (from the stream leader's copy), which reset themselves
 * after a server is lost and resume after the last record delivered.
 */
class NatsLog implements EventLog {
  readonly name = "nats";
  readonly capabilities: LogCapabilities = { replicated: true };
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly prefix: string;
  private readonly streamPrefix: string;
  private readonly replicas: number;
  private readonly syncAlways: boolean;
  private readonly clock: Clock;
  private readonly partitions = new Map<string, number>();
  /** Aborts every follow when the log closes; each follow adds a listener (one per partition). */
  private readonly controller = new AbortController();
  private readonly timeoutMs: number;
  private closed = false;

  constructor(init: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    prefix: string;
    streamPrefix: string;
    replicas: number;
    syncAlways: boolean;
    clock: Clock;
    timeoutMs: number;
  }) {
    setMaxListeners(0, this.controller.signal);
    this.clock = init.clock;
    this.timeoutMs = init.timeoutMs;
    this.js = init.js;
    this.jsm = init.jsm;
    this.prefix = init.prefix;
    this.streamPrefix = init.streamPrefix;
    this.replicas = init.replicas;
    this.syncAlways = init.syncAlways;
  }

  private check(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the log is closed");
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  private streamName(stream: string): string {
    return `${this.streamPrefix}${checkStreamName(stream)}`;
  }

  private subject(stream: string, partition: number | undefined): string {
    return `${this.prefix}.${stream}.${partition === undefined ? "*" : String(partition)}`;
  }

  private toInfo(stream: string, info: JsStreamInfo): StreamInfo {
    const partitions = Number(info.config.metadata?.[PARTITIONS] ?? 0);
    return {
      name: stream,
      partitions,
      replicas: info.config.num_replicas,
      firstSeq: info.state.messages === 0 ? info.state.last_seq + 1 : info.state.first_seq,
      lastSeq: info.state.last_seq,
      records: info.state.messages,
      bytes: info.state.bytes,
    };
  }

  private async fetchInfo(stream: string): Promise<StreamInfo> {
    try {
      const info = this.toInfo(stream, await this.jsm.streams.info(this.streamName(stream)));
      this.partitions.set(stream, info.partitions);
      return info;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) {
        this.partitions.delete(stream);
        throw streamNotFound(stream);
      }
      throw toError(error, `stream ${stream}`);
    }
  }

  private async partitionsOf(stream: string): Promise<number> {
    return this.partitions.get(stream) ?? (await this.fetchInfo(stream)).partitions;
  }

  async ensureStream(spec: StreamSpec, options: LogCallOptions = {}): Promise<StreamInfo> {
    this.check(options.signal);
    const s = checkStreamSpec(spec);
    if (s.critical && !this.syncAlways) {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `stream ${s.name} is critical: it needs servers running sync_interval: always (fsync before acknowledging); ` +
          "start them so and open the log with serversSyncAlways: true",
        { retryable: false },
      );
    }
    const replicas = s.replicas ?? this.replicas;
    const config: Partial<StreamConfig> & { name: string } = {
      name: this.streamName(s.name),
      subjects: [this.subject(s.name, undefined)],
      storage: StorageType.File,
      num_replicas: replicas,
      duplicate_window: s.duplicateWindowMs * NS,
      max_age: s.maxAgeMs * NS,
      max_bytes: s.maxBytes === 0 ? -1 : s.maxBytes,
      discard: DiscardPolicy.Old,
      allow_direct: false,
      metadata: { [PARTITIONS]: String(s.partitions) },
    };
    let existing: StreamInfo | undefined;
    try {
      existing = await this.fetchInfo(s.name);
    } catch (error) {
      if (!isStrataError(error, "NOT_FOUND")) throw error;
    }
    if (existing !== undefined) {
      if (existing.partitions !== s.partitions) {
        throw new StrataError(
          "FAILED_PRECONDITION",
          `stream ${s.name} exists with ${existing.partitions} partitions, not ${s.partitions}`,
          { details: { stream: s.name, partitions: existing.partitions } },
        );
      }
      return existing;
    }
    let created: JsStreamInfo;
    try {
      created = await this.jsm.streams.add(config);
    } catch (error) {
      throw toError(error, `create stream ${s.name}`);
    }
    // A 2.10 server silently drops settings it does not know: check what it stored.
    const stored = created.config;
    const mismatches: string[] = [];
    if (stored.metadata?.[PARTITIONS] !== String(s.partitions)) mismatches.push("metadata");
    if (stored.num_replicas !== replicas) mismatches.push("num_replicas");
    if (stored.duplicate_window !== config.duplicate_window) mismatches.push("duplicate_window");
    if (stored.max_age !== config.max_age) mismatches.push("max_age");
    if (stored.storage !== StorageType.File) mismatches.push("storage");
    if (mismatches.length > 0) {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `stream ${s.name} was not stored as asked (${mismatches.join(", ")}); is the server older than 2.10?`,
      );
    }
    const info = this.toInfo(s.name, created);
    this.partitions.set(s.name, info.partitions);
    return info;
  }

  async streamInfo(stream: string, options: LogCallOptions = {}): Promise<StreamInfo> {
    this.check(options.signal);
    return this.fetchInfo(checkStreamName(stream));
  }

  async deleteStream(stream: string, options: LogCallOptions = {}): Promise<boolean> {
    this.check(options.signal);
    this.partitions.delete(stream);
    try {
      return await this.jsm.streams.delete(this.streamName(stream));
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return false;
      throw toError(error, `delete stream ${stream}`);
    }
  }

  async append(
    stream: string,
    input: AppendInput,
    options: LogCallOptions = {},
  ): Promise<AppendResult> {
    this.check(options.signal);
    checkStreamName(stream);
    checkAppend(input, await this.partitionsOf(stream));
    const h = natsHeaders();
    h.set(KEY, input.key);
    for (const [name, value] of Object.entries(input.headers ?? {})) h.set(name, value);
    try {
      // No responders: no server took the message (the stream's subjects are not yet known
      // where this client is connected, just after it was created or a server came back), so
      // sending it again is safe, and the message id would make a repeat harmless anyway.
      const ack = await this.settled(() =>
        this.js.publish(this.subject(stream, input.partition), input.payload, {
          msgID: input.id,
          headers: h,
          // Checked by the stream's leader in its replicated log: a conditional append cannot
          // fork.
          ...(input.expectedLastSeq === undefined
            ? {}
            : { expect: { lastSequence: input.expectedLastSeq } }),
        }),
      );
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (error) {
      if (
        error instanceof JetStreamApiError &&
        error.code === WRONG_LAST_SEQUENCE &&
        input.expectedLastSeq !== undefined
      ) {
        const actual = /wrong last sequence: (\d+)/.exec(error.message)?.[1];
        throw wrongLastSeq(
          stream,
          input.expectedLastSeq,
          actual === undefined ? undefined : Number(actual),
        );
      }
      if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) {
        this.partitions.delete(stream);
        throw streamNotFound(stream);
      }
      const message = error instanceof Error ? error.message : String(error);
      if (noResponders(error) || /no stream/i.test(message)) {
        this.partitions.delete(stream);
        // The stream may be gone, or its leader is being elected: tell the two apart.
        await this.fetchInfo(stream);
      }
      throw toError(error, `append to ${stream}`);
    }
  }

  private toRecord(stream: string, m: JsMsg): LogRecord {
    return recordOf(stream, {
      subject: m.subject,
      seq: m.info.streamSequence,
      time: Math.floor(m.info.timestampNanos / NS),
      headers: m.headers,
      data: m.data,
    });
  }

  /**
   * Reads a page. The whole read is bounded (a few API timeouts): a consumer whose server stops
   * answering mid-fetch must not hold the caller forever, so the read then fails as UNAVAILABLE
   * (reads change nothing; the caller may read again).
   */
  async read(
    stream: string,
    options: ReadOptions & { readonly limit?: number } = {},
  ): Promise<LogRecord[]> {
    this.check(options.signal);
    const stop = new AbortController();
    let timer: Timer | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = this.clock.setTimer(() => {
        stop.abort();
        reject(
          new StrataError("UNAVAILABLE", `read ${stream}: no answer in ${3 * this.timeoutMs} ms`, {
            details: { outcome: "unknown" },
          }),
        );
      }, 3 * this.timeoutMs);
    });
    try {
      return await Promise.race([this.readPage(stream, options, stop.signal), expired]);
    } finally {
      timer?.clear();
      stop.abort();
    }
  }

  private async readPage(
    stream: string,
    options: ReadOptions & { readonly limit?: number },
    stop: AbortSignal,
  ): Promise<LogRecord[]> {
    const limit = checkReadLimit(options.limit);
    const fromSeq = checkFromSeq(options.fromSeq);
    const info = await this.fetchInfo(checkStreamName(stream));
    const partition = checkPartition(options.partition, info.partitions);
    const start = Math.max(fromSeq, info.firstSeq);
    if (start > info.lastSeq) return [];
    // A short tail (a replica catching up, a writer reading back what it just appended) is read
    // message by message from the stream's leader: no consumer to create, and never a replica
    // that has not stored the newest records yet.
    if (info.lastSeq - start < DIRECT_READ_MAX) {
      return this.whileSettling(`read ${stream}`, async () => {
        const records: LogRecord[] = [];
        const subject = this.subject(stream, partition);
        for (let seq = start; seq <= info.lastSeq && records.length < limit; seq++) {
          if (stop.aborted) break;
          let m;
          try {
            m = await this.jsm.streams.getMessage(this.streamName(stream), { seq });
          } catch (error) {
            if (error instanceof JetStreamApiError && error.code === NO_MESSAGE_FOUND) continue;
            throw error;
          }
          if (m === null || !subjectMatches(subject, m.subject)) continue;
          records.push(
            recordOf(stream, {
              subject: m.subject,
              seq: m.seq,
              time: m.time.getTime(),
              headers: m.header,
              data: m.data,
            }),
          );
        }
        return records;
      });
    }
    // An ordered consumer's fetch waits for its expiry when nothing matches; knowing the
    // number of matching records first lets the read stop as soon as it has them all.
    return this.whileSettling(`read ${stream}`, async () => {
      const records: LogRecord[] = [];
      const consumer = await this.js.consumers.get(this.streamName(stream), {
        filter_subjects: [this.subject(stream, partition)],
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
      });
      const batch = await consumer.fetch({ max_messages: limit, expires: 1_000 });
      const onStop = (): void => batch.stop();
      stop.addEventListener("abort", onStop, { once: true });
      for await (const m of batch) {
        if (m.info.streamSequence > info.lastSeq) break;
        records.push(this.toRecord(stream, m));
        if (records.length >= limit || m.info.pending === 0) break;
      }
      stop.removeEventListener("abort", onStop);
      batch.stop();
      return records;
    });
  }

  /**
   * Runs a consumer request again while the stream's leader does not answer yet (503, no
   * responders), as just after the stream is created or loses a server: for about two seconds.
   */
  private async whileSettling<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.settled(fn);
    } catch (error) {
      throw toError(error, what);
    }
  }

  /** {@link whileSettling}, leaving the last error as nats.js raised it. */
  private async settled<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (attempt >= 20 || !noResponders(error)) throw error;
        await new Promise<void>((resolve) => this.clock.setTimer(resolve, 100));
      }
    }
  }

  async *follow(stream: string, options: ReadOptions = {}): AsyncIterable<LogRecord> {
    this.check(options.signal);
    const fromSeq = checkFromSeq(options.fromSeq);
    const info = await this.fetchInfo(checkStreamName(stream));
    const partition = checkPartition(options.partition, info.partitions);
    const signal = options.signal;
    if (signal?.aborted === true) return;
    let last = Math.max(fromSeq, info.firstSeq) - 1;
    const stop = new AbortController();
    const abort = (): void => stop.abort();
    signal?.addEventListener("abort", abort, { once: true });
    this.controller.signal.addEventListener("abort", abort, { once: true });
    try {
      while (!stop.signal.aborted) {
        const consumer = await this.js.consumers.get(this.streamName(stream), {
          filter_subjects: [this.subject(stream, partition)],
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: last + 1,
        });
        // Short pulls and heartbeats: a consumer whose server died is noticed (two missed
        // heartbeats) and replaced in seconds, not after the 30 s default pull expires.
        const messages = await consumer.consume({
          max_messages: 256,
          expires: 5_000,
          idle_heartbeat: 1_000,
        });
        const onStop = (): void => void messages.close();
        stop.signal.addEventListener("abort", onStop, { once: true });
        try {
          for await (const m of messages) {
            const seq = m.info.streamSequence;
            if (seq <= last) continue; // never hand the caller a record twice
            last = seq;
            yield this.toRecord(stream, m);
            if (stop.signal.aborted) break;
          }
        } catch (error) {
          if (stop.signal.aborted) break;
          // The consumer broke (its server went away): start another after the last record.
          if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) {
            throw streamNotFound(stream);
          }
        } finally {
          stop.signal.removeEventListener("abort", onStop);
          await messages.close().catch(() => undefined);
        }
      }
    } finally {
      signal?.removeEventListener("abort", abort);
      this.controller.signal.removeEventListener("abort", abort);
    }
  }

  async seqAtTime(stream: string, time: number, options: LogCallOptions = {}): Promise<number> {
    this.check(options.signal);
    const info = await this.fetchInfo(checkStreamName(stream));
    if (info.records === 0) return info.lastSeq + 1;
    // By start time: the first record stored at or after `time`, if any.
    const found = await this.whileSettling(`seqAtTime ${stream}`, async () => {
      const consumer = await this.js.consumers.get(this.streamName(stream), {
        filter_subjects: [this.subject(stream, undefined)],
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: new Date(Math.max(0, time)).toISOString(),
      });
      const batch = await consumer.fetch({ max_messages: 1, expires: 1_000 });
      for await (const m of batch) {
        batch.stop();
        return m.info.streamSequence;
      }
      return undefined;
    });
    return found ?? info.lastSeq + 1;
  }

  close(): Promise<void> {
    this.closed = true;
    this.controller.abort();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Whether a request reached nothing that answers for the stream yet (no responders, 503): nats.js
 * reports a publish of that kind as "jetstream is not enabled", with the connection's
 * no-responders error as its cause.
 */
function noResponders(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (/no responders|503|jetstream is not enabled/i.test(e.message)) return true;
    e = e.cause;
  }
  return false;
}

/** A stored message as a record; foreign messages (no Strata headers) still read sensibly. */
/** Whether a record's subject is selected by a read's subject filter (`*` matches one token). */
function subjectMatches(filter: string, subject: string): boolean {
  if (!filter.endsWith(".*")) return filter === subject;
  const prefix = filter.slice(0, -1);
  return subject.startsWith(prefix) && !subject.slice(prefix.length).includes(".");
}

function recordOf(
  stream: string,
  m: { subject: string; seq: number; time: number; headers: MsgHdrs | undefined; data: Uint8Array },
): LogRecord {
  const headers: Record<string, string> = {};
  let key = "";
  let id = `seq-${m.seq}`;
  if (m.headers !== undefined) {
    for (const [name, values] of m.headers) {
      const value = values[0] ?? "";
      if (name === KEY) key = value;
      else if (name === MSG_ID) id = value;
      else if (!name.startsWith("Nats-")) headers[name] = value;
    }
  }
  const token = m.subject.slice(m.subject.lastIndexOf(".") + 1);
  const partition = /^\d+$/.test(token) ? Number(token) : 0;
  return { stream, partition, seq: m.seq, id, key, time: m.time, headers, payload: m.data };
}

/**
 * Opens the Log port on a NATS connection (server >= 2.10, JetStream enabled).
 *
 * @example
 * const log = await openNatsLog({ connection: nc, replicas: 3, serversSyncAlways: true });
 * await log.ensureStream({ name: "orders", partitions: 8, critical: true });
 */
export async function openNatsLog(options: NatsLogOptions): Promise<EventLog> {
  const prefix = options.subjectPrefix ?? "strata.log";
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new StrataError("INVALID_ARGUMENT", `subject prefix "${prefix}" is not a subject`);
  }
  const streamPrefix = options.streamPrefix ?? "LOG_";
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(streamPrefix)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `stream prefix "${streamPrefix}" is not a stream name`,
    );
  }
  const replicas = options.replicas ?? 1;
  if (![1, 3, 5].includes(replicas)) {
    throw new StrataError("INVALID_ARGUMENT", "replicas must be 1, 3 or 5");
  }
  const timeout = options.timeoutMs ?? 5_000;
  try {
    const js = jetstream(options.connection, { timeout });
    const jsm = await jetstreamManager(options.connection, { timeout });
    return new NatsLog({
      js,
      jsm,
      prefix,
      streamPrefix,
      replicas,
      syncAlways: options.serversSyncAlways === true,
      clock: options.clock ?? systemClock(),
      timeoutMs: timeout,
    });
  } catch (error) {
    throw toError(error, "open the log");
  }
}

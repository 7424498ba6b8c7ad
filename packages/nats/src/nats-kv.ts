import { headers, type NatsConnection } from "@nats-io/transport-node";
import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import {
  EventQueue,
  StrataError,
  checkExpectedRevision,
  checkKey,
  checkLimit,
  checkPrefix,
  checkTransaction,
  checkValue,
  isStrataError,
  noTransactions,
  revisionConflict,
  type KvCallOptions,
  type KvCapabilities,
  type KvEntry,
  type KvEvent,
  type KvPage,
  type KvTransaction,
  type ReadConsistency,
  type StrongKV,
  instrumentKv,
  type TelemetryOptions,
} from "@strata/core";

/** Options for {@link openNatsKv}. */
export interface NatsKvOptions {
  /** Where operation spans and latencies go; default the global OpenTelemetry providers. */
  readonly telemetry?: TelemetryOptions;
  /** A connection to reuse (for example the NATS transport's); the store does not close it. */
  readonly connection: NatsConnection;
  /** Bucket name: letters, digits, `-` and `_`. */
  readonly bucket: string;
  /** Replicas of the bucket's stream (1, or 3 for Raft-replicated state); default 1. */
  readonly replicas?: number;
  /**
   * Revisions kept per key (1-64; default 64). A watch resumed from an old revision replays every
   * change still kept: with history 1, a key's superseded revisions are gone (only its latest).
   */
  readonly history?: number;
  /** Per-call timeout for JetStream API requests (ms); default 5 000. */
  readonly timeoutMs?: number;
}

const BUCKET = /^[A-Za-z0-9_-]{1,64}$/;
const WRONG_LAST_SEQUENCE = 10071;
const OPERATION = "KV-Operation";

/** Maps a nats.js or JetStream failure to a StrataError; shared by the package's adapters. */
export function toError(error: unknown, what: string): StrataError {
  if (isStrataError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof JetStreamApiError) {
    return new StrataError(
      "UNAVAILABLE",
      `${what}: JetStream refused (${error.code}): ${message}`,
      {
        cause: error,
        details: { jetstreamCode: error.code },
      },
    );
  }
  if (/timeout/i.test(message)) {
    return new StrataError("UNAVAILABLE", `${what}: NATS did not answer in time`, {
      cause: error,
      details: { outcome: "unknown" },
    });
  }
  return new StrataError("UNAVAILABLE", `${what}: ${message}`, {
    cause: error,
    details: { outcome: "unknown" },
  });
}

function isWrongLastSequence(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE;
}

/**
 * StrongKV on NATS JetStream KV (server >= 2.10). Writes go to the bucket's stream leader and are
 * acknowledged once stored by a quorum (R3); compare-and-set uses the expected-last-subject-
 * sequence header, so two writers can never both win a revision. Linearizable reads ask the
 * stream leader (`STREAM.MSG.GET`); stale reads, when asked for, use direct get, which any
 * replica may answer. Capabilities: no leases (per-message TTL arrived in nats-server 2.11).
 */
class NatsKv implements StrongKV {
  readonly name = "nats";
  readonly capabilities: KvCapabilities = {
    staleReads: true,
    leases: false,
    watch: true,
    transactions: false,
  };
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly kv: KV;
  private readonly bucket: string;
  private readonly replicas: number;
  private readonly stream: string;
  private readonly prefix: string;
  private closed = false;

  constructor(init: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    kv: KV;
    bucket: string;
    replicas: number;
  }) {
    this.replicas = init.replicas;
    this.js = init.js;
    this.jsm = init.jsm;
    this.kv = init.kv;
    this.bucket = init.bucket;
    this.stream = `KV_${init.bucket}`;
    this.prefix = `$KV.${init.bucket}.`;
  }

  private check(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the store is closed");
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  /** The latest message for a key from the stream leader, deletes included. */
  private async latest(key: string, stale: boolean): Promise<StoredMsg | null> {
    const query = { last_by_subj: this.prefix + key };
    try {
      // One replica: direct get is answered by the stream's only server, which applies a write
      // before acknowledging it, so it is as fresh as the leader's STREAM.MSG.GET and cheaper
      // (no JSON/base64 envelope).
      return stale || this.replicas === 1
        ? await this.jsm.direct.getMessage(this.stream, query)
        : await this.jsm.streams.getMessage(this.stream, query);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === 10037) return null; // no message found
      throw toError(error, `get ${key}`);
    }
  }

  private entry(key: string, message: StoredMsg | null): KvEntry | undefined {
    if (message === null) return undefined;
    const operation = message.header?.get(OPERATION);
    if (operation === "DEL" || operation === "PURGE") return undefined;
    return { key, value: message.data, revision: message.seq };
  }

  async get(
    key: string,
    options: KvCallOptions & { readonly consistency?: ReadConsistency } = {},
  ): Promise<KvEntry | undefined> {
    this.check(options.signal);
    checkKey(key);
    const stale = options.consistency !== undefined && options.consistency !== "linearizable";
    return this.entry(key, await this.latest(key, stale));
  }

  private async publish(
    key: string,
    value: Uint8Array,
    expected: number | undefined,
    deleteMarker = false,
  ): Promise<number> {
    const options: Parameters<JetStreamClient["publish"]>[2] = {};
    if (expected !== undefined) options.expect = { lastSubjectSequence: expected };
    if (deleteMarker) {
      const h = headers();
      h.set(OPERATION, "DEL");
      options.headers = h;
    }
    const ack = await this.js.publish(this.prefix + key, value, options);
    return ack.seq;
  }

  private lease(options: { readonly lease?: string }): void {
    if (options.lease !== undefined) {
      throw new StrataError(
        "UNIMPLEMENTED",
        "the NATS StrongKV has no leases (nats-server 2.10 has no per-message TTL)",
      );
    }
  }

  async put(
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    this.check(options.signal);
    checkKey(key);
    this.lease(options);
    checkValue(value);
    try {
      return await this.publish(key, value, undefined);
    } catch (error) {
      throw toError(error, `put ${key}`);
    }
  }

  async create(
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    try {
      return await this.compareAndSet(key, value, 0, options);
    } catch (error) {
      if (isStrataError(error, "FAILED_PRECONDITION")) {
        throw new StrataError("ALREADY_EXISTS", `key ${key} already exists`, {
          details: error.details,
        });
      }
      throw error;
    }
  }

  async compareAndSet(
    key: string,
    value: Uint8Array,
    expectedRevision: number,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    this.check(options.signal);
    checkKey(key);
    this.lease(options);
    checkValue(value);
    checkExpectedRevision(expectedRevision);
    try {
      return await this.publish(key, value, expectedRevision);
    } catch (error) {
      if (!isWrongLastSequence(error)) throw toError(error, `compare-and-set ${key}`);
    }
    // The stream's last message for the key is not the expected one. "Absent" (0) also holds
    // when the last message is a delete marker: retry against the marker's sequence.
    const latest = await this.latest(key, false);
    const current = this.entry(key, latest);
    if (expectedRevision === 0 && current === undefined && latest !== null) {
      try {
        return await this.publish(key, value, latest.seq);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw toError(error, `compare-and-set ${key}`);
        const now = this.entry(key, await this.latest(key, false));
        throw this.conflict(key, now?.revision ?? 0, expectedRevision);
      }
    }
    throw this.conflict(key, current?.revision ?? 0, expectedRevision);
  }

  private conflict(key: string, current: number, expected: number): StrataError {
    return revisionConflict(key, current, expected);
  }

  async delete(
    key: string,
    options: KvCallOptions & { readonly expectedRevision?: number } = {},
  ): Promise<boolean> {
    this.check(options.signal);
    checkKey(key);
    const latest = await this.latest(key, false);
    const current = this.entry(key, latest);
    if (
      options.expectedRevision !== undefined &&
      (current?.revision ?? 0) !== options.expectedRevision
    ) {
      throw this.conflict(key, current?.revision ?? 0, options.expectedRevision);
    }
    if (current === undefined) return false;
    try {
      await this.publish(key, new Uint8Array(0), current.revision, true);
      return true;
    } catch (error) {
      if (!isWrongLastSequence(error)) throw toError(error, `delete ${key}`);
      const now = this.entry(key, await this.latest(key, false));
      if (options.expectedRevision !== undefined)
        throw this.conflict(key, now?.revision ?? 0, options.expectedRevision);
      // Someone wrote in between; an unconditional delete still deletes the newer value.
      return this.delete(key, options);
    }
  }

  async list(
    prefix: string,
    options: KvCallOptions & { readonly after?: string; readonly limit?: number } = {},
  ): Promise<KvPage> {
    this.check(options.signal);
    checkPrefix(prefix);
    const limit = checkLimit(options.limit);
    const keys: string[] = [];
    try {
      for await (const key of await this.kv.keys()) {
        if (key.startsWith(prefix) && (options.after === undefined || key > options.after))
          keys.push(key);
      }
    } catch (error) {
      throw toError(error, `list ${prefix}`);
    }
    keys.sort();
    const entries: KvEntry[] = [];
    let last: string | undefined;
    for (const key of keys) {
      if (entries.length === limit) break;
      last = key;
      const entry = this.entry(key, await this.latest(key, false));
      if (entry !== undefined) entries.push(entry);
    }
    const more = last !== undefined && keys.indexOf(last) < keys.length - 1;
    return more && last !== undefined ? { entries, next: last } : { entries };
  }

  /** NATS KV (2.10) cannot commit several keys atomically: UNIMPLEMENTED. */
  // eslint-disable-next-line @typescript-eslint/require-await -- async so bad input rejects
  async transaction(txn: KvTransaction, _options?: KvCallOptions): Promise<number> {
    checkTransaction(txn);
    throw noTransactions(`NATS KV bucket ${this.bucket}`);
  }

  async revision(options: KvCallOptions = {}): Promise<number> {
    this.check(options.signal);
    try {
      const info = await this.jsm.streams.info(this.stream);
      return info.state.last_seq;
    } catch (error) {
      throw toError(error, "revision");
    }
  }

  watch(
    prefix: string,
    options: KvCallOptions & { readonly fromRevision?: number } = {},
  ): AsyncIterable<KvEvent> {
    this.check(options.signal);
    checkPrefix(prefix);
    const queue = new EventQueue<KvEvent>(
      options.signal === undefined ? {} : { signal: options.signal },
    );
    const from = options.fromRevision;
    void (async () => {
      try {
        if (from !== undefined) {
          const info = await this.jsm.streams.info(this.stream);
          if (from + 1 < info.state.first_seq && from < info.state.last_seq) {
            throw new StrataError(
              "OUT_OF_RANGE",
              `revision ${from} is compacted; the oldest watchable is ${info.state.first_seq - 1}`,
              {
                details: { fromRevision: from, oldest: info.state.first_seq - 1 },
              },
            );
          }
        }
        const iterator = await this.kv.watch(
          from === undefined
            ? { key: ">", include: "updates" }
            : { key: ">", include: "history", resumeFromRevision: from + 1 },
        );
        options.signal?.addEventListener("abort", () => iterator.stop(), { once: true });
        for await (const e of iterator) {
          if (!e.key.startsWith(prefix)) continue;
          if (from !== undefined && e.revision <= from) continue;
          queue.push(
            e.operation === "PUT"
              ? { type: "put", entry: { key: e.key, value: e.value, revision: e.revision } }
              : { type: "delete", key: e.key, revision: e.revision },
          );
        }
        queue.end();
      } catch (error) {
        queue.fail(toError(error, `watch ${prefix}`));
      }
    })();
    return queue;
  }

  grantLease(): Promise<string> {
    return Promise.reject(
      new StrataError(
        "UNIMPLEMENTED",
        "the NATS StrongKV has no leases (nats-server 2.10 has no per-message TTL)",
      ),
    );
  }

  keepAlive(): Promise<void> {
    return this.grantLease().then(() => undefined);
  }

  revokeLease(): Promise<void> {
    return this.grantLease().then(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** The bucket's name, for tools. */
  get bucketName(): string {
    return this.bucket;
  }
}

/**
 * Opens (creating if needed) a StrongKV bucket on NATS JetStream. The stored stream config is
 * read back and checked, since servers silently ignore settings they do not know.
 *
 * @example
 * const kv = await openNatsKv({ connection, bucket: "inventory", replicas: 3 });
 */
export async function openNatsKv(options: NatsKvOptions): Promise<StrongKV> {
  if (!BUCKET.test(options.bucket)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `bucket "${options.bucket}" must be 1-64 of A-Z a-z 0-9 _ -`,
    );
  }
  const replicas = options.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new StrataError("INVALID_ARGUMENT", "replicas must be an integer from 1 to 5");
  }
  const timeout = options.timeoutMs ?? 5_000;
  const history = options.history ?? 64;
  if (!Number.isInteger(history) || history < 1 || history > 64) {
    throw new StrataError("INVALID_ARGUMENT", "history must be an integer from 1 to 64");
  }
  try {
    const js = jetstream(options.connection, { timeout });
    const jsm = await jetstreamManager(options.connection, { timeout });
    const kv = await new Kvm(js).create(options.bucket, {
      replicas,
      history,
      allow_direct: true,
      timeout,
    });
    const info = await jsm.streams.info(`KV_${options.bucket}`);
    const config = info.config;
    if (
      config.num_replicas !== replicas ||
      config.allow_direct !== true ||
      config.max_msgs_per_subject !== history
    ) {
      throw new StrataError(
        "FAILED_PRECONDITION",
        `bucket ${options.bucket} exists with other settings (replicas ${config.num_replicas}, allow_direct ${String(config.allow_direct)}, history ${config.max_msgs_per_subject}); want replicas ${replicas}, allow_direct true, history ${history}`,
      );
    }
    return instrumentKv(
      new NatsKv({ js, jsm, kv, bucket: options.bucket, replicas }),
      options.telemetry,
    );
  } catch (error) {
    throw toError(error, `open bucket ${options.bucket}`);
  }
}

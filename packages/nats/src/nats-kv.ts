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
import { RevisionIndex } from "./revision-index.js";

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
/**
 * The subject token (after the bucket's `$KV.<bucket>.`) of read barriers. `~` is in no Strata key
 * (see `checkKey`), so no key's subject can be a barrier's, and every path that walks the bucket's
 * keys or changes skips keys starting with it.
 */
const RESERVED = "~";
const BARRIER = `${RESERVED}read-barrier`;
const EMPTY = new Uint8Array(0);

/** A key's latest message: a value, or a delete marker. */
interface Latest {
  readonly seq: number;
  readonly deleted: boolean;
  readonly data: Uint8Array;
}

function fromStored(message: StoredMsg | null): Latest | null {
  if (message === null) return null;
  const operation = message.header?.get(OPERATION);
  return {
    seq: message.seq,
    deleted: operation === "DEL" || operation === "PURGE",
    data: message.data,
  };
}

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
 * sequence header, so two writers can never both win a revision. Stale reads, when asked for, use
 * direct get, which any replica may answer. Capabilities: no leases (per-message TTL arrived in
 * nats-server 2.11).
 *
 * Linearizable reads with more than one replica do not trust any server's word on what is
 * latest. JetStream has no leader leases: a leader cut off from its followers keeps answering as
 * leader until its lost-quorum check (10-20 s after the cut), and for about a second after the
 * partition heals, while the followers have elected a new leader and committed writes it never
 * sees; a request for a key's last message can be answered by it, and the first answer wins.
 * Instead a read:
 * 1. commits a read barrier: an empty message (a delete marker, so NATS tools list no key for it)
 *    on a reserved subject of the bucket's stream, acknowledged once a quorum has stored it at
 *    sequence S, later than every write acknowledged before the read began (a cut-off leader
 *    cannot commit it: the read fails with UNAVAILABLE);
 * 2. waits until this store's {@link RevisionIndex} (an ordered consumer of the stream, headers
 *    only, which only ever delivers committed messages) has applied S: it then names the key's
 *    latest revision as of S, or none;
 * 3. fetches that revision by its sequence (direct get, any replica): a message's content never
 *    changes, so a replica either has it or says it has not (then the read asks again).
 * Concurrent reads share a barrier, but only one published after they were invoked. Barriers take
 * revisions (the store's revisions have gaps anyway) and the bucket keeps the last `history` of
 * them, as of any key; watches and listings skip them. The index costs one small entry per key.
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
  private readonly stream: string;
  private readonly prefix: string;
  private readonly history: number;
  private readonly timeoutMs: number;
  /** Every key's latest revision, for linearizable reads (more than one replica only). */
  private readonly index: RevisionIndex | undefined;
  private closed = false;
  /** The barrier being published now, if any. */
  private barrierSent: Promise<number> | undefined;
  /** The barrier reads invoked since `barrierSent` was published wait for, if any. */
  private barrierNext: Promise<number> | undefined;

  constructor(init: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    kv: KV;
    bucket: string;
    replicas: number;
    history: number;
    timeoutMs: number;
  }) {
    this.history = init.history;
    this.timeoutMs = init.timeoutMs;
    this.js = init.js;
    this.jsm = init.jsm;
    this.kv = init.kv;
    this.bucket = init.bucket;
    this.stream = `KV_${init.bucket}`;
    this.prefix = `$KV.${init.bucket}.`;
    this.index =
      init.replicas > 1
        ? new RevisionIndex({
            js: init.js,
            stream: this.stream,
            prefix: this.prefix,
            reserved: RESERVED,
            operationHeader: OPERATION,
          })
        : undefined;
  }

  private check(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the store is closed");
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  /**
   * The revision of a read barrier published after this call: resolves once a quorum of the
   * stream's replicas has stored it, so the stream leader that acknowledged it had, at that
   * moment, applied every write acknowledged before the call. A barrier is published only once
   * the previous one has been answered; calls made meanwhile share the next one. When the
   * previous one fails, so do they (a read may always fail), which keeps a cut-off leader from
   * collecting a queue of barriers and the reads' latency at one timeout. The revision index is
   * started first, so that it delivers every barrier.
   */
  private barrier(): Promise<number> {
    if (this.barrierNext !== undefined) return this.barrierNext;
    const previous = this.barrierSent;
    const next = (async () => {
      try {
        await previous;
      } finally {
        this.barrierNext = undefined;
      }
      await this.index?.start();
      const h = headers();
      h.set(OPERATION, "DEL");
      const sent = this.js
        .publish(this.prefix + BARRIER, new Uint8Array(0), { headers: h })
        .then((ack) => ack.seq);
      this.barrierSent = sent;
      try {
        return await sent;
      } finally {
        if (this.barrierSent === sent) this.barrierSent = undefined;
      }
    })();
    this.barrierNext = next;
    return next;
  }

  /**
   * The latest message for a key, deletes included. `stale`: direct get, any replica;
   * `linearizable`: through a barrier and the revision index (see the class). One replica: direct
   * get is answered by the stream's only server, which applies a write before acknowledging it,
   * so it is as fresh as a barrier, and cheaper.
   */
  private async latest(key: string, read: "stale" | "linearizable"): Promise<Latest | null> {
    try {
      if (read === "stale" || this.index === undefined) {
        return fromStored(
          await this.jsm.direct.getMessage(this.stream, { last_by_subj: this.prefix + key }),
        );
      }
      const deadline = performance.now() + this.timeoutMs;
      // The index delivers a barrier milliseconds after its commit: however long the barrier
      // took, give that a second.
      await this.index.reached(await this.barrier(), Math.max(1_000, deadline - performance.now()));
      return await this.indexed(this.index, key, deadline);
    } catch (error) {
      throw toError(error, `get ${key}`);
    }
  }

  /**
   * The key's latest message as the index names it (the caller has seen the index pass its
   * barrier): fetched by sequence. A replica without that sequence answers "not found": it is
   * behind, or a newer write has since pushed the message past the history limit (the index then
   * names the newer one): ask again, until `deadline`.
   */
  private async indexed(
    index: RevisionIndex,
    key: string,
    deadline: number,
  ): Promise<Latest | null> {
    for (let attempt = 0; ; attempt++) {
      const at = index.get(key);
      if (at === undefined) return null;
      if (at.deleted) return { seq: at.seq, deleted: true, data: EMPTY };
      const message = await this.jsm.direct.getMessage(this.stream, { seq: at.seq });
      if (message !== null && message.subject === this.prefix + key) return fromStored(message);
      if (performance.now() >= deadline) {
        throw new StrataError(
          "UNAVAILABLE",
          `get ${key}: no replica answered with revision ${at.seq} in time`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(5 * 2 ** attempt, 100)));
    }
  }

  private entry(key: string, message: Latest | null): KvEntry | undefined {
    if (message === null || message.deleted) return undefined;
    return { key, value: message.data, revision: message.seq };
  }

  async get(
    key: string,
    options: KvCallOptions & { readonly consistency?: ReadConsistency } = {},
  ): Promise<KvEntry | undefined> {
    this.check(options.signal);
    checkKey(key);
    const stale = options.consistency !== undefined && options.consistency !== "linearizable";
    return this.entry(key, await this.latest(key, stale ? "stale" : "linearizable"));
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
    // The stream's last message for the key is not the expected one. (The leader checks this
    // before replicating, so a cut-off leader may refuse on its own old state; what it holds is
    // a prefix of what was committed, so the refusal is still right, but the current revision
    // the error reports is read behind a barrier.) "Absent" (0) also holds when the last
    // message is a delete marker: retry against the marker's sequence.
    const latest = await this.latest(key, "linearizable");
    const current = this.entry(key, latest);
    if (expectedRevision === 0 && current === undefined && latest !== null) {
      try {
        return await this.publish(key, value, latest.seq);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw toError(error, `compare-and-set ${key}`);
        const now = this.entry(key, await this.latest(key, "linearizable"));
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
    // Behind a barrier: "nothing to delete" from a cut-off leader would be a stale claim.
    const latest = await this.latest(key, "linearizable");
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
      const now = this.entry(key, await this.latest(key, "linearizable"));
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
    const wanted = (key: string): boolean =>
      key.startsWith(prefix) &&
      !key.startsWith(RESERVED) &&
      (options.after === undefined || key > options.after);
    const keys: string[] = [];
    try {
      if (this.index === undefined) {
        for await (const key of await this.kv.keys()) if (wanted(key)) keys.push(key);
      } else {
        // One barrier for the page; the index then names each key's latest revision.
        await this.index.reached(await this.barrier(), this.timeoutMs);
        for (const [key] of this.index.liveKeys()) if (wanted(key)) keys.push(key);
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
      const latest =
        this.index === undefined
          ? await this.latest(key, "stale")
          : await this.indexed(this.index, key, performance.now() + this.timeoutMs).catch(
              (error: unknown) => {
                throw toError(error, `list ${prefix}`);
              },
            );
      const entry = this.entry(key, latest);
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
      // With replicas, a barrier's own revision: later than every write acknowledged before the
      // call (the stream info of a cut-off leader could be older).
      if (this.index !== undefined) return await this.barrier();
      const info = await this.jsm.streams.info(this.stream);
      return info.state.last_seq;
    } catch (error) {
      throw toError(error, "revision");
    }
  }

  /**
   * Whether a key may have lost revisions to the bucket's history limit: some key holds `history`
   * messages. The stream's first sequence alone cannot tell, since barriers (which the limit
   * removes too) may have been all that went.
   */
  private async keysAtHistoryLimit(): Promise<boolean> {
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: `${this.prefix}>` });
    const reserved = this.prefix + RESERVED;
    return Object.entries(info.state.subjects ?? {}).some(
      ([subject, count]) => !subject.startsWith(reserved) && count >= this.history,
    );
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
          if (
            from + 1 < info.state.first_seq &&
            from < info.state.last_seq &&
            (await this.keysAtHistoryLimit())
          ) {
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
          if (!e.key.startsWith(prefix) || e.key.startsWith(RESERVED)) continue;
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
    this.index?.close();
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
      new NatsKv({ js, jsm, kv, bucket: options.bucket, replicas, history, timeoutMs: timeout }),
      options.telemetry,
    );
  } catch (error) {
    throw toError(error, `open bucket ${options.bucket}`);
  }
}

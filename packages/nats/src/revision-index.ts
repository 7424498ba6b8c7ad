import { DeliverPolicy, type ConsumerMessages, type JetStreamClient } from "@nats-io/jetstream";
import { StrataError } from "@strata/core";

/** A key's latest message as the index knows it. */
export interface IndexedRevision {
  /** Its stream sequence (the key's revision). */
  readonly seq: number;
  /** A delete or purge marker. */
  readonly deleted: boolean;
}

/** What {@link RevisionIndex} needs of the bucket. */
export interface RevisionIndexOptions {
  readonly js: JetStreamClient;
  /** The bucket's stream (`KV_<bucket>`). */
  readonly stream: string;
  /** The bucket's subject prefix (`$KV.<bucket>.`). */
  readonly prefix: string;
  /** Keys starting with this are the store's own (barriers): passed over, not indexed. */
  readonly reserved: string;
  /** The header naming a message's operation (`KV-Operation`: PUT, DEL or PURGE). */
  readonly operationHeader: string;
}

/**
 * Every key's latest revision, kept by following the bucket's stream with an ordered consumer
 * that delivers headers only: its last message per key first, then every new message, in stream
 * order. A replica applies an entry to its stream only once a quorum has committed it, so what
 * the consumer delivers is always a prefix of the committed log, whichever server serves it (an
 * old leader cut off from its followers included). Once the index has applied a sequence S, it
 * knows each key's latest revision as of S; {@link RevisionIndex.reached} waits for that.
 *
 * Memory: one small entry per key of the bucket, deleted keys included.
 */
export class RevisionIndex {
  private readonly latest = new Map<string, IndexedRevision>();
  private applied = 0;
  private readonly waiters = new Set<{
    readonly seq: number;
    readonly wake: () => void;
    readonly fail: (error: StrataError) => void;
  }>();
  private starting: Promise<void> | undefined;
  private messages: ConsumerMessages | undefined;
  private closed = false;
  private readonly options: RevisionIndexOptions;

  constructor(options: RevisionIndexOptions) {
    this.options = options;
  }

  /**
   * Starts following the stream (once; again after the consumer stopped). Resolves once the
   * consumer exists, so a barrier published after this lands after the consumer's first
   * snapshot and is delivered after it.
   */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new StrataError("UNAVAILABLE", "the store is closed"));
    this.starting ??= this.open().catch((error: unknown) => {
      this.starting = undefined;
      throw error;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    const { js, stream, prefix } = this.options;
    // From scratch, each key's last message; after a restart, everything after the last
    // applied sequence (superseded messages included, which applying in order makes harmless).
    const consumer = await js.consumers.get(stream, {
      filter_subjects: [`${prefix}>`],
      headers_only: true,
      ...(this.applied === 0
        ? { deliver_policy: DeliverPolicy.LastPerSubject }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.applied + 1 }),
    });
    const messages = await consumer.consume({
      max_messages: 1_024,
      expires: 5_000,
      idle_heartbeat: 1_000,
    });
    if (this.closed) {
      await messages.close().catch(() => undefined);
      throw new StrataError("UNAVAILABLE", "the store is closed");
    }
    this.messages = messages;
    void this.follow(messages);
  }

  private async follow(messages: ConsumerMessages): Promise<void> {
    const { prefix, reserved, operationHeader } = this.options;
    try {
      for await (const m of messages) {
        const seq = m.info.streamSequence;
        if (seq <= this.applied) continue;
        const key = m.subject.slice(prefix.length);
        if (!key.startsWith(reserved)) {
          const operation = m.headers?.get(operationHeader);
          this.latest.set(key, { seq, deleted: operation === "DEL" || operation === "PURGE" });
        }
        this.applied = seq;
        for (const waiter of this.waiters) if (waiter.seq <= seq) waiter.wake();
      }
    } catch {
      // The consumer broke: the next read starts another one after the last applied sequence.
    } finally {
      if (this.messages === messages) {
        this.messages = undefined;
        this.starting = undefined;
      }
    }
  }

  /**
   * Resolves once sequence `seq` is applied. After `timeoutMs` it fails with UNAVAILABLE; if the
   * index applied nothing meanwhile, the consumer may have stalled (its server gone quiet) and is
   * replaced with a new one.
   */
  reached(seq: number, timeoutMs: number): Promise<void> {
    if (this.applied >= seq) return Promise.resolve();
    const from = this.applied;
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        seq,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
        fail: (error: StrataError) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        if (this.applied === from) this.restart();
        reject(
          new StrataError(
            "UNAVAILABLE",
            `the revision index did not reach sequence ${seq} in ${timeoutMs} ms (at ${this.applied})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** The key's latest revision as of the last sequence applied; undefined when it has none. */
  get(key: string): IndexedRevision | undefined {
    return this.latest.get(key);
  }

  /** Keys with a live value (not deleted), unsorted. */
  *liveKeys(): IterableIterator<[string, IndexedRevision]> {
    for (const entry of this.latest) if (!entry[1].deleted) yield entry;
  }

  private restart(): void {
    const messages = this.messages;
    this.messages = undefined;
    this.starting = undefined;
    void messages?.close().catch(() => undefined);
  }

  close(): void {
    this.closed = true;
    this.restart();
    for (const waiter of this.waiters) {
      waiter.fail(new StrataError("UNAVAILABLE", "the store is closed"));
    }
  }
}

import { setMaxListeners } from "node:events";
import { StrataError, isStrataError, toStrataError } from "../errors/index.js";
import type { Clock, Timer } from "../ports/clock.js";
import type { EventLog, LogRecord } from "../ports/log.js";
import type { Logger } from "../ports/logger.js";
import type { StrongKV } from "../ports/strong-kv.js";
import { acquireLock, type Lock } from "../state/lock.js";
import { hash32 } from "../runtime/hash-ring.js";
import { decodeEvent, type CloudEvent } from "./envelope.js";

/** Where a group with no stored position starts reading. */
export type StartFrom =
  | "earliest"
  | "latest"
  | { readonly seq: number }
  /** The first event stored at or after this time (ms since the epoch). */
  | { readonly time: number };

/** What a handler is told about the delivery it is handling. */
export interface DeliveryInfo {
  readonly stream: string;
  readonly partition: number;
  readonly seq: number;
  /** 1 on first delivery to this member, then 2, 3, … on redeliveries after failures. */
  readonly attempt: number;
  /** The consumer group (or the broadcast subscriber's name). */
  readonly group: string;
  /** Aborts when the subscription stops, the partition moves away or the handler times out. */
  readonly signal: AbortSignal;
}

/** Turns a record into the work a subscription does for it. */
export type RecordHandler = (event: CloudEvent, info: DeliveryInfo) => Promise<void>;

/** The retry schedule of a failing handler. */
export interface Backoff {
  /** First delay (ms); default 100. */
  readonly initialMs?: number;
  /** Longest delay (ms); default 10 000. */
  readonly maxMs?: number;
}

/** How a consumer runs. */
export interface ConsumerConfig {
  readonly log: EventLog;
  /** Cursors and partition ownership; absent for broadcast subscribers (positions in memory). */
  readonly kv: StrongKV | undefined;
  readonly stream: string;
  readonly deadLetterStream: string;
  readonly group: string;
  readonly handle: RecordHandler;
  /** Event types handled; records of other types are passed over (acknowledged). */
  readonly types: ReadonlySet<string>;
  readonly from: StartFrom;
  readonly maxInFlight: number;
  readonly maxAttempts: number;
  readonly backoff: Required<Backoff>;
  readonly handlerTimeoutMs: number;
  /** Ownership lease and member heartbeat TTL (ms). */
  readonly leaseMs: number;
  /** How often the group's membership is re-read and partitions rebalanced (ms). */
  readonly rebalanceMs: number;
  /** How often acknowledged positions are written (ms). */
  readonly commitMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly memberId: string;
  /** Told of every record moved to the dead-letter stream. */
  readonly onDeadLetter?: () => void;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const encodeJson = (value: unknown): Uint8Array => enc.encode(JSON.stringify(value));

/** A counting semaphore: the subscription's bound on records in flight (backpressure). */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const index = this.waiters.indexOf(grant);
        if (index >= 0) this.waiters.splice(index, 1);
        resolve(false);
      };
      const grant = (): void => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      };
      this.waiters.push(grant);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
  release(): void {
    const next = this.waiters.shift();
    if (next !== undefined) next();
    else this.free++;
  }
}

/**
 * A failure of the consumer's own stores around a handler (its idempotency markers, say), not of
 * the handler: the record is tried again with backoff for as long as it takes, and never
 * dead-lettered for it. A store that is down says nothing about whether the event can be handled.
 */
export function runtimeUnavailable(error: unknown, what: string): StrataError {
  const cause = toStrataError(error, what);
  return new StrataError("UNAVAILABLE", `${what}: ${cause.message}`, {
    cause,
    details: { reason: RUNTIME_UNAVAILABLE },
  });
}

const RUNTIME_UNAVAILABLE = "runtime-unavailable";

/** Resolves after `ms`, or early (false) when the signal aborts. */
/** Waits `ms`; false (at once) when `signal` aborts first. Leaves no listener behind. */
export function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      timer.clear();
      resolve(false);
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Keys of the coordination store, all under `events/`. */
export const consumerKeys = {
  cursor: (group: string, stream: string, partition: number) =>
    `events/cursor/${group}/${stream}/${partition}`,
  cursorPrefix: (group: string) => `events/cursor/${group}/`,
  member: (group: string, stream: string, member: string) =>
    `events/members/${group}/${stream}/${member}`,
  members: (group: string, stream: string) => `events/members/${group}/${stream}/`,
  lock: (group: string, stream: string, partition: number) =>
    `events/${group}/${stream}/${partition}`,
};

/**
 * Consumes one partition while this member owns it: follows the log from the group's committed
 * position, runs records of different keys concurrently and records of one key strictly in
 * order (a failing record holds back later records of its key until it succeeds or is
 * dead-lettered), and commits the position below which every record is done. After a crash the
 * next owner starts from that position: records are redelivered, in order, never skipped.
 */
class PartitionWorker {
  private readonly controller = new AbortController();
  /** Sequences dispatched and not yet committed, in order, with whether each is done. */
  private readonly window: { seq: number; done: boolean }[] = [];
  /** Per key: the tail of its chain of records. */
  private readonly chains = new Map<string, Promise<void>>();
  private next = 0;
  private committed = 0;
  private revision = 0;
  private commitTimer: Timer | undefined;
  private committing: Promise<void> = Promise.resolve();
  private running: Promise<void> | undefined;
  private readonly tasks = new Set<Promise<void>>();

  private readonly config: ConsumerConfig;
  readonly partition: number;
  private readonly slots: Slots;
  private readonly lock: Lock | undefined;
  private readonly onStopped: (worker: PartitionWorker, error?: unknown) => void;
  /** Where to resume when there is no stored position (a restarted broadcast worker). */
  private readonly resumeAt: number | undefined;

  constructor(
    config: ConsumerConfig,
    partition: number,
    slots: Slots,
    lock: Lock | undefined,
    onStopped: (worker: PartitionWorker, error?: unknown) => void,
    resumeAt?: number,
  ) {
    this.config = config;
    this.partition = partition;
    this.slots = slots;
    this.lock = lock;
    this.onStopped = onStopped;
    this.resumeAt = resumeAt;
    // Every record in flight listens for the worker stopping: up to maxInFlight listeners.
    setMaxListeners(0, this.controller.signal);
    lock?.signal.addEventListener("abort", () => this.controller.abort(), { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  start(): void {
    this.running = this.run().then(
      () => this.onStopped(this),
      (error: unknown) => this.onStopped(this, error),
    );
  }

  private async run(): Promise<void> {
    const { config } = this;
    this.next = await this.loadPosition();
    this.committed = this.next;
    const signal = this.controller.signal;
    try {
      for await (const record of config.log.follow(config.stream, {
        partition: this.partition,
        fromSeq: this.next,
        signal,
      })) {
        if (!(await this.slots.acquire(signal))) break;
        this.dispatch(record);
        if (signal.aborted) break;
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }

  private async loadPosition(): Promise<number> {
    const { config } = this;
    if (config.kv !== undefined) {
      const key = consumerKeys.cursor(config.group, config.stream, this.partition);
      const entry = await config.kv.get(key);
      if (entry !== undefined) {
        this.revision = entry.revision;
        const stored = JSON.parse(dec.decode(entry.value)) as { next?: unknown };
        if (typeof stored.next === "number" && Number.isSafeInteger(stored.next)) {
          return stored.next;
        }
      }
    }
    if (this.resumeAt !== undefined) return this.resumeAt;
    const from = config.from;
    if (from === "earliest") return (await config.log.streamInfo(config.stream)).firstSeq;
    if (from === "latest") return (await config.log.streamInfo(config.stream)).lastSeq + 1;
    if ("seq" in from) return from.seq;
    return config.log.seqAtTime(config.stream, from.time);
  }

  private dispatch(record: LogRecord): void {
    const entry = { seq: record.seq, done: false };
    this.window.push(entry);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.slots.release();
    };
    const finish = (): void => {
      entry.done = true;
      release();
      this.scheduleCommit();
    };
    let event: CloudEvent;
    try {
      event = decodeEvent(record);
    } catch (error) {
      this.track(this.deadLetter(record, toStrataError(error).message, 0).then(finish), release);
      return;
    }
    if (!this.config.types.has(event.type)) {
      finish();
      return;
    }
    const previous = this.chains.get(record.key) ?? Promise.resolve();
    // Records of one key run one after another; a record left undone (the worker stopped) keeps
    // its sequence uncommitted, so the next owner redelivers it and everything after it.
    const task = previous
      .catch(() => undefined)
      .then(async () => {
        if (await this.deliver(record, event)) finish();
        else release();
      });
    this.chains.set(record.key, task);
    this.track(
      task.finally(() => {
        if (this.chains.get(record.key) === task) this.chains.delete(record.key);
      }),
      release,
    );
  }

  private track(task: Promise<void>, release: () => void): void {
    const tracked = task.catch((error: unknown) => {
      release();
      this.config.logger.error({ err: error, partition: this.partition }, "consumer task failed");
      this.controller.abort();
    });
    this.tasks.add(tracked);
    void tracked.finally(() => this.tasks.delete(tracked));
  }

  /** Runs the handler until it succeeds, is dead-lettered, or the worker stops (false). */
  private async deliver(record: LogRecord, event: CloudEvent): Promise<boolean> {
    const { config } = this;
    const signal = this.controller.signal;
    // `attempt` counts every try (the handler sees it); `charged` only the handler's own failures.
    for (let attempt = 1, charged = 0; ; attempt++) {
      if (signal.aborted) return false;
      const handlerAbort = new AbortController();
      const onStop = (): void => handlerAbort.abort(signal.reason);
      signal.addEventListener("abort", onStop, { once: true });
      const timer = config.clock.setTimer(
        () =>
          handlerAbort.abort(
            new StrataError("DEADLINE_EXCEEDED", `handler took over ${config.handlerTimeoutMs} ms`),
          ),
        config.handlerTimeoutMs,
      );
      let failure: StrataError | undefined;
      let detail = "";
      try {
        await Promise.race([
          config.handle(event, {
            stream: record.stream,
            partition: record.partition,
            seq: record.seq,
            attempt,
            group: config.group,
            signal: handlerAbort.signal,
          }),
          new Promise<never>((_, reject) => {
            handlerAbort.signal.addEventListener(
              "abort",
              () => reject(toStrataError(handlerAbort.signal.reason)),
              { once: true },
            );
          }),
        ]);
      } catch (error) {
        failure = toStrataError(error, "event handler");
        // The reason is kept for operators on the dead-letter stream, not sent to a caller:
        // the handler's own message says more than the wire-safe one.
        detail = error instanceof Error && error.message !== "" ? error.message : failure.message;
      } finally {
        timer.clear();
        signal.removeEventListener("abort", onStop);
      }
      if (failure === undefined) return true;
      if (signal.aborted) return false;
      const ours = failure.details["reason"] === RUNTIME_UNAVAILABLE;
      if (!ours) charged++;
      const permanent = !ours && !failure.retryable && isDeclaredPermanent(failure);
      if (permanent || charged >= config.maxAttempts) {
        const reason = `${failure.code}: ${detail}${permanent ? " (not retryable)" : ""}`;
        await this.deadLetter(record, reason, attempt);
        return true;
      }
      config.logger.warn(
        { stream: record.stream, seq: record.seq, attempt, code: failure.code, detail },
        ours
          ? "the consumer's store failed around the handler; trying again after backoff"
          : "event handler failed; redelivering after backoff",
      );
      const ceiling = Math.min(
        config.backoff.maxMs,
        config.backoff.initialMs * 2 ** Math.min(attempt - 1, 30),
      );
      const delay = ceiling / 2 + (config.clock.random() * ceiling) / 2;
      if (!(await pause(config.clock, delay, signal))) return false;
    }
  }

  private async deadLetter(record: LogRecord, reason: string, attempts: number): Promise<void> {
    const { config } = this;
    const clean = reason.replace(/[\r\n]+/g, " ").slice(0, 1_000);
    config.logger.warn(
      { stream: record.stream, seq: record.seq, group: config.group, reason: clean },
      "event dead-lettered",
    );
    const info = await config.log.streamInfo(config.deadLetterStream);
    await config.log.append(config.deadLetterStream, {
      partition: record.partition % info.partitions,
      // One dead letter per group and record, however often a crash makes us repeat this.
      id: `dlq:${config.group}:${record.stream}:${record.seq}`,
      key: record.key,
      headers: {
        ...record.headers,
        "strata-dlq-reason": clean,
        "strata-dlq-attempts": String(attempts),
        "strata-dlq-group": config.group,
        "strata-dlq-stream": record.stream,
        "strata-dlq-seq": String(record.seq),
        "strata-dlq-id": record.id,
      },
      payload: record.payload,
    });
    config.onDeadLetter?.();
  }

  private scheduleCommit(): void {
    if (this.commitTimer !== undefined) return;
    this.commitTimer = this.config.clock.setTimer(() => {
      this.commitTimer = undefined;
      this.committing = this.committing.then(() => this.commit());
    }, this.config.commitMs);
  }

  /** Writes the position below which every record is done; a lost race means ownership moved. */
  private async commit(): Promise<void> {
    while (this.window.length > 0 && (this.window[0] as { done: boolean }).done) {
      this.next = (this.window.shift() as { seq: number }).seq + 1;
    }
    if (this.next === this.committed) return;
    const next = this.next;
    const { config } = this;
    if (config.kv === undefined) {
      this.committed = next;
      return;
    }
    const key = consumerKeys.cursor(config.group, config.stream, this.partition);
    try {
      this.revision = await config.kv.compareAndSet(key, encodeJson({ next }), this.revision);
      this.committed = next;
    } catch (error) {
      if (isStrataError(error, "FAILED_PRECONDITION")) {
        config.logger.warn(
          { partition: this.partition, group: config.group },
          "position moved under this member; giving the partition up",
        );
        this.controller.abort();
        return;
      }
      config.logger.warn({ err: error, partition: this.partition }, "could not commit position");
    }
  }

  /** Position committed so far (the next record this group will see on this partition). */
  get position(): number {
    return this.committed;
  }

  /** Stops: handlers are aborted, finished work is committed, the partition is released. */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.running;
    await Promise.all(this.tasks);
    this.commitTimer?.clear();
    this.commitTimer = undefined;
    await this.committing;
    if (this.lock === undefined || !this.lock.signal.aborted) await this.commit();
    await this.lock?.release().catch(() => undefined);
  }
}

/** Failures the handler declared final: retrying cannot help, so dead-letter at once. */
function isDeclaredPermanent(error: StrataError): boolean {
  return (
    error.code === "INVALID_ARGUMENT" ||
    error.code === "FAILED_PRECONDITION" ||
    error.code === "NOT_FOUND" ||
    error.code === "PERMISSION_DENIED" ||
    error.code === "UNIMPLEMENTED"
  );
}

/** Which member of `members` owns `partition`: rendezvous hashing, stable as members come and go. */
export function ownerOf(partition: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const member of members) {
    const score = hash32(`${member}#${partition}`);
    if (score > bestScore || (score === bestScore && best !== undefined && member < best)) {
      best = member;
      bestScore = score;
    }
  }
  return best;
}

/**
 * A subscription's consumer: in a group, members find each other through heartbeat keys,
 * split the partitions by rendezvous hashing and take each partition's lock before consuming
 * it, so one member at a time consumes a partition (which is what keeps per-key order); a
 * broadcast subscriber consumes every partition on its own.
 */
export class Consumer {
  private readonly workers = new Map<number, PartitionWorker>();
  private readonly acquiring = new Set<number>();
  private readonly controller = new AbortController();
  private readonly slots: Slots;
  private partitions = 0;
  private loop: Promise<void> | undefined;
  private failure: unknown;
  private keepAlive: ReturnType<typeof setInterval> | undefined;

  private readonly config: ConsumerConfig;

  constructor(config: ConsumerConfig) {
    this.config = config;
    this.slots = new Slots(config.maxInFlight);
  }

  async start(): Promise<void> {
    this.partitions = (await this.config.log.streamInfo(this.config.stream)).partitions;
    // A running subscription keeps its process alive, as a listening socket does: the embedded
    // log has no socket, and the clock's timers never hold the process open on their own.
    this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
    if (this.config.kv === undefined) {
      for (let p = 0; p < this.partitions; p++) this.startWorker(p, undefined);
      return;
    }
    await this.heartbeat();
    await this.rebalance();
    this.loop = this.run();
  }

  /** Partitions this member consumes now. */
  owned(): number[] {
    return [...this.workers.keys()].sort((a, b) => a - b);
  }

  /** The committed position of each partition this member owns. */
  positions(): Map<number, number> {
    return new Map([...this.workers].map(([p, w]) => [p, w.position]));
  }

  private startWorker(partition: number, lock: Lock | undefined, resumeAt?: number): void {
    const worker = new PartitionWorker(
      this.config,
      partition,
      this.slots,
      lock,
      (w, error) => {
        if (error !== undefined && !this.controller.signal.aborted) {
          this.failure = error;
          this.config.logger.error(
            { err: error, partition, group: this.config.group },
            "partition consumer stopped",
          );
        }
        if (this.workers.get(partition) === w && !this.controller.signal.aborted) {
          // Lost the lock or the position, or the log failed: let the next rebalance decide who
          // takes the partition (this member again, once the log is back).
          this.workers.delete(partition);
          void w.stop().then(async () => {
            // A broadcast subscriber has no rebalance round to restart it: do it here.
            if (this.config.kv !== undefined) return;
            if (await pause(this.config.clock, this.config.rebalanceMs, this.controller.signal)) {
              this.startWorker(partition, undefined, w.position > 0 ? w.position : undefined);
            }
          });
        }
      },
      resumeAt,
    );
    this.workers.set(partition, worker);
    worker.start();
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    while (await pause(this.config.clock, this.config.rebalanceMs, signal)) {
      try {
        await this.heartbeat();
        await this.rebalance();
      } catch (error) {
        if (!signal.aborted) {
          this.config.logger.warn({ err: error, group: this.config.group }, "rebalance failed");
        }
      }
    }
  }

  private async heartbeat(): Promise<void> {
    const { config } = this;
    const kv = config.kv as StrongKV;
    await kv.put(
      consumerKeys.member(config.group, config.stream, config.memberId),
      encodeJson({ expiresAt: config.clock.now() + config.leaseMs }),
    );
  }

  private async liveMembers(): Promise<string[]> {
    const { config } = this;
    const kv = config.kv as StrongKV;
    const prefix = consumerKeys.members(config.group, config.stream);
    const now = config.clock.now();
    const live: string[] = [];
    let after: string | undefined;
    do {
      const page = await kv.list(prefix, after === undefined ? {} : { after });
      for (const entry of page.entries) {
        const { expiresAt } = JSON.parse(dec.decode(entry.value)) as { expiresAt: number };
        if (expiresAt > now) live.push(entry.key.slice(prefix.length));
        else if (expiresAt < now - 10 * config.leaseMs) {
          await kv.delete(entry.key, { expectedRevision: entry.revision }).catch(() => false);
        }
      }
      after = page.next;
    } while (after !== undefined);
    if (!live.includes(config.memberId)) live.push(config.memberId);
    return live;
  }

  private async rebalance(): Promise<void> {
    const { config } = this;
    const members = await this.liveMembers();
    const mine = new Set<number>();
    for (let p = 0; p < this.partitions; p++) {
      if (ownerOf(p, members) === config.memberId) mine.add(p);
    }
    const releasing: Promise<void>[] = [];
    for (const [p, worker] of this.workers) {
      if (!mine.has(p)) {
        this.workers.delete(p);
        releasing.push(worker.stop());
      }
    }
    await Promise.all(releasing);
    await Promise.all(
      [...mine]
        .filter((p) => !this.workers.has(p) && !this.acquiring.has(p))
        .map(async (p) => {
          this.acquiring.add(p);
          try {
            const lock = await acquireLock(
              config.kv as StrongKV,
              consumerKeys.lock(config.group, config.stream, p),
              { ttlMs: config.leaseMs, owner: config.memberId, clock: config.clock },
            );
            if (this.controller.signal.aborted) await lock.release();
            else this.startWorker(p, lock);
          } catch (error) {
            // Held by a member that has not let go yet (or is dead and its lease has not run
            // out): try again next round.
            if (!isStrataError(error, "ABORTED")) throw error;
          } finally {
            this.acquiring.delete(p);
          }
        }),
    );
  }

  /** The error that stopped a partition, if any (for health reporting). */
  get error(): unknown {
    return this.failure;
  }

  async stop(): Promise<void> {
    this.controller.abort();
    clearInterval(this.keepAlive);
    await this.loop;
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => w.stop()));
    if (this.config.kv !== undefined) {
      await this.config.kv
        .delete(consumerKeys.member(this.config.group, this.config.stream, this.config.memberId))
        .catch(() => false);
    }
  }
}

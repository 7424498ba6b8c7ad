import { setMaxListeners } from "node:events";
import {
  StrataError,
  acquireLock,
  isStrataError,
  toStrataError,
  type BlobChange,
  type BlobStore,
  type Clock,
  type Lock,
  type Logger,
  type StrongKV,
} from "@strata/core";
import { backoffDelay, pause, type Delivery, type RetryBackoff } from "./pool.js";

/** How a blob trigger runs. */
export interface BlobTriggerConfig {
  readonly name: string;
  readonly blob: BlobStore;
  readonly prefix: string;
  readonly kv: StrongKV;
  readonly changes: ReadonlySet<BlobChange["type"]>;
  readonly from: "earliest" | "latest";
  readonly maxAttempts: number;
  readonly backoff: Required<RetryBackoff>;
  readonly maxInFlight: number;
  readonly lockTtlMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly submit: (change: BlobChange, delivery: Delivery) => Promise<void>;
  readonly onDeadLetter: () => void;
  readonly onFatal: (error: StrataError) => void;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Keys of a blob trigger's state in its StrongKV, all under `functions/<name>/`. */
export const blobTriggerKeys = {
  position: (name: string): string => `functions/${name}/position`,
  deadLetter: (name: string, seq: number): string =>
    `functions/${name}/dead/${String(seq).padStart(16, "0")}`,
  deadLetters: (name: string): string => `functions/${name}/dead/`,
  lock: (name: string): string => `functions/${name}`,
};

/** An input a blob function gave up on, kept in its StrongKV. */
export interface BlobDeadLetter {
  readonly change: BlobChange;
  readonly reason: string;
  readonly attempts: number;
  /** When it was given up on (ms since the epoch). */
  readonly at: number;
}

/**
 * Follows a blob store's changes under a prefix for one function: one runner at a time (a lock
 * in the StrongKV), changes of one key strictly in order and of different keys concurrently, and
 * a stored position below which every change is done (handled, or dead-lettered after the last
 * attempt). A restart resumes from that position: changes after it may run again (at least
 * once), none is skipped.
 */
export class BlobTrigger {
  private readonly config: BlobTriggerConfig;
  private readonly controller = new AbortController();
  /** Changes dispatched and not yet below the stored position, in order. */
  private readonly window: { seq: number; done: boolean }[] = [];
  private readonly chains = new Map<string, Promise<void>>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly slotWaiters: (() => void)[] = [];
  private inFlight = 0;
  private next = 1;
  private stored = 0;
  private revision = 0;
  private committing: Promise<void> = Promise.resolve();
  private dirty = false;
  private loop: Promise<void> | undefined;
  private lock: Lock | undefined;

  constructor(config: BlobTriggerConfig) {
    this.config = config;
    // Every change in flight listens for the trigger stopping: up to maxInFlight listeners.
    setMaxListeners(0, this.controller.signal);
  }

  /** Starts following (in the background: waiting for the lock if another runner holds it). */
  start(): void {
    this.loop = this.run().catch((error: unknown) => {
      if (this.controller.signal.aborted) return;
      const failure = toStrataError(error, `function ${this.config.name}`);
      this.config.logger.error({ err: error, function: this.config.name }, "blob trigger failed");
      this.config.onFatal(failure);
    });
  }

  private async run(): Promise<void> {
    const { config } = this;
    const signal = this.controller.signal;
    this.lock = await acquireLock(config.kv, blobTriggerKeys.lock(config.name), {
      ttlMs: config.lockTtlMs,
      waitMs: 2 ** 31 - 1,
      signal,
      clock: config.clock,
    }).catch((error: unknown) => {
      if (signal.aborted) return undefined;
      throw error;
    });
    if (this.lock === undefined) return;
    // Losing the lock (a pause past its lease) means another runner may have the changes now.
    this.lock.signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    this.next = await this.loadPosition();
    for await (const change of config.blob.watch(config.prefix, { fromSeq: this.next, signal })) {
      const entry = { seq: change.seq, done: false };
      this.window.push(entry);
      if (!config.changes.has(change.type)) {
        entry.done = true;
        this.scheduleCommit();
        continue;
      }
      if (!(await this.acquireSlot())) return;
      this.dispatch(change, entry);
    }
  }

  private async loadPosition(): Promise<number> {
    const { config } = this;
    const key = blobTriggerKeys.position(config.name);
    const entry = await config.kv.get(key);
    if (entry !== undefined) {
      this.revision = entry.revision;
      const { next } = JSON.parse(dec.decode(entry.value)) as { next: number };
      this.stored = next;
      const { firstSeq } = await config.blob.journalInfo();
      if (next < firstSeq) {
        // Changes were dropped from the journal before this function saw them: say so, loudly,
        // rather than skip them.
        throw new StrataError(
          "OUT_OF_RANGE",
          `function ${config.name} stopped at change ${next}, but the blob journal now starts at ${firstSeq}`,
          { details: { position: next, firstSeq } },
        );
      }
      return next;
    }
    const info = await config.blob.journalInfo();
    const start = config.from === "earliest" ? info.firstSeq : info.lastSeq + 1;
    this.revision = await config.kv.create(key, enc.encode(JSON.stringify({ next: start })));
    this.stored = start;
    return start;
  }

  private acquireSlot(): Promise<boolean> {
    if (this.controller.signal.aborted) return Promise.resolve(false);
    if (this.inFlight < this.config.maxInFlight) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const onAbort = (): void => resolve(false);
      this.slotWaiters.push(() => {
        this.controller.signal.removeEventListener("abort", onAbort);
        this.inFlight++;
        resolve(true);
      });
      this.controller.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  private releaseSlot(): void {
    this.inFlight--;
    this.slotWaiters.shift()?.();
  }

  private dispatch(change: BlobChange, entry: { seq: number; done: boolean }): void {
    const previous = this.chains.get(change.key) ?? Promise.resolve();
    const task = previous.then(async () => {
      try {
        if (await this.deliver(change)) {
          entry.done = true;
          this.scheduleCommit();
        }
      } finally {
        this.releaseSlot();
      }
    });
    this.chains.set(change.key, task);
    const tracked = task
      .catch((error: unknown) => {
        this.config.logger.error({ err: error, function: this.config.name }, "delivery failed");
      })
      .finally(() => {
        this.tasks.delete(tracked);
        if (this.chains.get(change.key) === task) this.chains.delete(change.key);
      });
    this.tasks.add(tracked);
  }

  /** Runs the function until it succeeds or is dead-lettered (true), or the trigger stops. */
  private async deliver(change: BlobChange): Promise<boolean> {
    const { config } = this;
    const signal = this.controller.signal;
    const idempotencyKey = `${config.name}:${change.key}@${change.seq}`;
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) return false;
      let failure: unknown;
      try {
        await config.submit(change, { signal, attempt, idempotencyKey });
        return true;
      } catch (error) {
        failure = error;
      }
      if (signal.aborted) return false;
      const error = toStrataError(failure, "function handler");
      const permanent =
        !error.retryable &&
        (error.code === "INVALID_ARGUMENT" ||
          error.code === "FAILED_PRECONDITION" ||
          error.code === "PERMISSION_DENIED" ||
          error.code === "UNIMPLEMENTED");
      if (permanent || attempt >= config.maxAttempts) {
        const detail = failure instanceof Error && failure.message !== "" ? failure.message : "";
        await this.deadLetter(change, `${error.code}: ${detail || error.message}`, attempt);
        return true;
      }
      config.logger.warn(
        { function: config.name, key: change.key, seq: change.seq, attempt, code: error.code },
        "function failed; retrying after backoff",
      );
      if (!(await pause(config.clock, backoffDelay(config.clock, config.backoff, attempt), signal)))
        return false;
    }
  }

  private async deadLetter(change: BlobChange, reason: string, attempts: number): Promise<void> {
    const { config } = this;
    const letter: BlobDeadLetter = {
      change,
      reason: reason.replace(/[\r\n]+/g, " ").slice(0, 1_000),
      attempts,
      at: config.clock.now(),
    };
    config.logger.warn(
      { function: config.name, key: change.key, seq: change.seq, reason: letter.reason },
      "function gave up on a change; dead-lettered",
    );
    await config.kv.put(
      blobTriggerKeys.deadLetter(config.name, change.seq),
      enc.encode(JSON.stringify(letter)),
    );
    config.onDeadLetter();
  }

  private scheduleCommit(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.committing = this.committing.then(() => {
      this.dirty = false;
      return this.commit();
    });
  }

  /** Stores the position below which every change is done. */
  private async commit(): Promise<void> {
    while (this.window.length > 0 && (this.window[0] as { done: boolean }).done) {
      this.next = (this.window.shift() as { seq: number }).seq + 1;
    }
    if (this.next === this.stored || this.lock?.signal.aborted === true) return;
    const next = this.next;
    try {
      this.revision = await this.config.kv.compareAndSet(
        blobTriggerKeys.position(this.config.name),
        enc.encode(JSON.stringify({ next })),
        this.revision,
      );
      this.stored = next;
    } catch (error) {
      if (isStrataError(error, "FAILED_PRECONDITION")) {
        // Someone else moved the position: this runner is not the one any more.
        this.config.logger.warn({ function: this.config.name }, "position moved; stopping");
        this.controller.abort();
        return;
      }
      this.config.logger.warn(
        { err: error, function: this.config.name },
        "could not store position",
      );
    }
  }

  /** Stops following; running deliveries are given up (and redelivered after a restart). */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
    await Promise.all(this.tasks);
    this.scheduleCommit();
    await this.committing;
    await this.lock?.release().catch(() => undefined);
  }
}

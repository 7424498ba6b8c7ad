import { StrataError } from "../errors/index.js";

/** Options for {@link Bulkhead}. */
export interface BulkheadOptions {
  /** Calls allowed to run at once. */
  readonly maxConcurrent: number;
  /** Calls allowed to wait for a slot; beyond that, calls are rejected at once. */
  readonly maxQueue: number;
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * Limits concurrent calls, with a bounded FIFO queue. A full bulkhead rejects with
 * `RESOURCE_EXHAUSTED` (retryable), so one slow dependency cannot take every caller with it.
 */
export class Bulkhead {
  private readonly options: BulkheadOptions;
  private readonly onReject: () => void;
  private running = 0;
  private readonly queue: Waiter[] = [];

  constructor(options: BulkheadOptions, onReject: () => void = () => {}) {
    this.options = options;
    this.onReject = onReject;
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Takes a slot now (true), or says the caller must wait with {@link acquire} (false). */
  tryAcquire(): boolean {
    if (this.running < this.options.maxConcurrent && this.queue.length === 0) {
      this.running++;
      return true;
    }
    return false;
  }

  /** Waits for a slot; rejects with RESOURCE_EXHAUSTED when the queue is full. */
  acquire(what: string, signal?: AbortSignal): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    if (this.queue.length >= this.options.maxQueue) {
      this.onReject();
      return Promise.reject(
        new StrataError("RESOURCE_EXHAUSTED", `${what}: bulkhead full`, {
          details: {
            maxConcurrent: this.options.maxConcurrent,
            maxQueue: this.options.maxQueue,
            reason: "bulkhead",
          },
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          const index = this.queue.indexOf(waiter);
          if (index >= 0) this.queue.splice(index, 1);
          reject(new StrataError("CANCELLED", `${what}: cancelled while queued in the bulkhead`));
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.queue.push(waiter);
    });
  }

  release(): void {
    const next = this.queue.shift();
    if (next === undefined) {
      this.running--;
      return;
    }
    if (next.onAbort !== undefined) next.signal?.removeEventListener("abort", next.onAbort);
    next.resolve();
  }

  /** Fails every queued call (used when the node stops). */
  rejectQueued(error: StrataError): void {
    for (const waiter of this.queue.splice(0)) waiter.reject(error);
  }
}

import { StrataError } from "../errors/index.js";

/**
 * A push-to-pull bridge: producers `push` items, one consumer iterates them in order. Bounded:
 * a consumer that falls `limit` items behind is failed with RESOURCE_EXHAUSTED rather than
 * letting memory grow without end. Ends when the signal aborts or `end()` is called.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private readonly limit: number;
  private waiting:
    { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private done = false;
  private error: unknown;
  private readonly onClose: () => void;

  constructor(
    options: {
      readonly limit?: number;
      readonly signal?: AbortSignal;
      readonly onClose?: () => void;
    } = {},
  ) {
    this.limit = options.limit ?? 100_000;
    this.onClose = options.onClose ?? (() => {});
    options.signal?.addEventListener("abort", () => this.end(), { once: true });
    if (options.signal?.aborted === true) this.done = true;
  }

  push(item: T): void {
    if (this.done) return;
    if (this.waiting !== undefined) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting.resolve({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.limit) {
      this.fail(
        new StrataError("RESOURCE_EXHAUSTED", `watcher fell more than ${this.limit} events behind`),
      );
      return;
    }
    this.items.push(item);
  }

  fail(error: unknown): void {
    if (this.done) return;
    this.error = error;
    this.finish();
  }

  end(): void {
    if (this.done) return;
    this.finish();
  }

  private finish(): void {
    this.done = true;
    this.onClose();
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting === undefined) return;
    if (this.error !== undefined && this.items.length === 0) waiting.reject(this.error);
    else waiting.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.done) {
          if (this.error !== undefined) {
            const error = this.error;
            this.error = undefined;
            return Promise.reject(
              error instanceof Error ? error : new Error("watch failed", { cause: error }),
            );
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          this.waiting = { resolve, reject };
        });
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

import { Packr } from "msgpackr";
import { StrataError, isStrataError } from "../errors/index.js";
import { systemClock, type Clock } from "../ports/index.js";
import type { KvCallOptions, KvEntry, ReadConsistency, StrongKV } from "../ports/strong-kv.js";
import { fullJitterBackoff } from "../resilience/backoff.js";

/** A typed value with its revision. */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

/** Options for {@link StateStore.update}. */
export interface UpdateOptions extends KvCallOptions {
  /** Compare-and-set attempts before giving up with ABORTED; default 50. */
  readonly maxAttempts?: number;
  readonly lease?: string;
}

/**
 * Typed, strongly consistent state over any StrongKV adapter. Values are encoded with
 * MessagePack. `update` reads, applies a pure function and writes with compare-and-set, retrying
 * on conflicts, so concurrent updates never lose one another.
 *
 * @example
 * const stock = createStateStore(kv, "stock");
 * await stock.update<Stock>("sku-1", (s) => ({ ...s, available: s.available - 1 }));
 */
export interface StateStore {
  readonly kv: StrongKV;
  get<T>(
    key: string,
    options?: KvCallOptions & { readonly consistency?: ReadConsistency },
  ): Promise<Versioned<T> | undefined>;
  put<T>(
    key: string,
    value: T,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number>;
  /** Writes only if absent; ALREADY_EXISTS otherwise. */
  create<T>(
    key: string,
    value: T,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number>;
  /**
   * Applies `fn` to the current value (undefined when absent) and writes the result with
   * compare-and-set, retrying on conflicts. `fn` may throw a StrataError to refuse the change
   * (for example FAILED_PRECONDITION when stock would go negative); it may run several times.
   * Returning `undefined` deletes the key.
   */
  update<T>(
    key: string,
    fn: (current: T | undefined) => T | undefined,
    options?: UpdateOptions,
  ): Promise<Versioned<T | undefined>>;
  delete(
    key: string,
    options?: KvCallOptions & { readonly expectedRevision?: number },
  ): Promise<boolean>;
  /** Every entry under the prefix, decoded, page by page. */
  list<T>(prefix?: string, options?: KvCallOptions): AsyncIterable<{ key: string } & Versioned<T>>;
}

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "auto" as "bigint",
});

function decode<T>(entry: KvEntry): T {
  try {
    return packr.unpack(entry.value) as T;
  } catch (error) {
    throw new StrataError(
      "DATA_LOSS",
      `value of ${entry.key} at revision ${entry.revision} does not decode`,
      { cause: error },
    );
  }
}

/**
 * Creates a typed store over `kv`, with keys under `namespace/`. The clock paces retries after
 * compare-and-set conflicts (exponential backoff with full jitter, so hot keys do not livelock).
 */
export function createStateStore(
  kv: StrongKV,
  namespace: string,
  clock: Clock = systemClock(),
): StateStore {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(namespace)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `namespace "${namespace}" must be 1-64 of A-Z a-z 0-9 _ -`,
    );
  }
  const full = (key: string): string => `${namespace}/${key}`;
  const store: StateStore = {
    kv,
    async get<T>(
      key: string,
      options?: KvCallOptions & { readonly consistency?: ReadConsistency },
    ) {
      const entry = await kv.get(full(key), options);
      return entry === undefined
        ? undefined
        : { value: decode<T>(entry), revision: entry.revision };
    },
    put: (key, value, options) => kv.put(full(key), packr.pack(value), options),
    create: (key, value, options) => kv.create(full(key), packr.pack(value), options),
    async update<T>(
      key: string,
      fn: (current: T | undefined) => T | undefined,
      options: UpdateOptions = {},
    ) {
      const attempts = options.maxAttempts ?? 50;
      for (let attempt = 0; attempt < attempts; attempt++) {
        options.signal?.throwIfAborted();
        const entry = await kv.get(
          full(key),
          options.signal === undefined ? {} : { signal: options.signal },
        );
        const current = entry === undefined ? undefined : decode<T>(entry);
        const next = fn(current);
        const expected = entry?.revision ?? 0;
        try {
          if (next === undefined) {
            if (entry === undefined) return { value: undefined, revision: expected };
            await kv.delete(full(key), { expectedRevision: expected });
            return { value: undefined, revision: expected };
          }
          const revision = await kv.compareAndSet(
            full(key),
            packr.pack(next),
            expected,
            options.lease === undefined ? {} : { lease: options.lease },
          );
          return { value: next, revision };
        } catch (error) {
          // A conflict, or (in a sharded store) a key that moved since it was read: read again.
          const retry =
            (isStrataError(error, "FAILED_PRECONDITION") || isStrataError(error, "ABORTED")) &&
            "currentRevision" in error.details;
          if (!retry) throw error;
          const delay = fullJitterBackoff(attempt, { baseMs: 1, maxMs: 50 }, () => clock.random());
          if (delay > 0) await new Promise<void>((resolve) => clock.setTimer(resolve, delay));
        }
      }
      throw new StrataError(
        "ABORTED",
        `update of ${key} kept conflicting after ${attempts} attempts`,
        {
          details: { key, attempts },
        },
      );
    },
    delete: (key, options) => kv.delete(full(key), options),
    async *list<T>(prefix = "", options: KvCallOptions = {}) {
      let after: string | undefined;
      for (;;) {
        const page = await kv.list(full(prefix), {
          ...options,
          ...(after === undefined ? {} : { after }),
          limit: 500,
        });
        for (const entry of page.entries) {
          yield {
            key: entry.key.slice(namespace.length + 1),
            value: decode<T>(entry),
            revision: entry.revision,
          };
        }
        if (page.next === undefined) return;
        after = page.next;
      }
    },
  };
  return store;
}

/**
 * The StrongKV port: linearizable per-key state with revisions, compare-and-set, prefix listing,
 * ordered watches and leases. Adapters: embedded (local disk), NATS JetStream KV, PostgreSQL.
 * Every adapter passes the same conformance suite.
 */

/** One stored key. Values are bytes; the state block encodes and decodes them. */
export interface KvEntry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the write that produced this value; strictly increasing across the store. */
  readonly revision: number;
  /** Revision at which the key was (last) created, where the adapter tracks it (embedded does). */
  readonly createRevision?: number;
  /** Lease the key is attached to, if any: it is deleted when the lease expires. */
  readonly lease?: string;
}

/** How fresh a read must be. */
export type ReadConsistency =
  /** The latest acknowledged write (the default). */
  | "linearizable"
  /** Any replica's value no older than `maxStalenessMs`; adapters report what they served. */
  | { readonly maxStalenessMs: number };

/** A change seen by a watch, in revision order. */
export type KvEvent =
  | { readonly type: "put"; readonly entry: KvEntry }
  | { readonly type: "delete"; readonly key: string; readonly revision: number };

/** What an adapter can do; asking for anything else fails with UNIMPLEMENTED. */
export interface KvCapabilities {
  readonly staleReads: boolean;
  readonly leases: boolean;
  readonly watch: boolean;
  /** Atomic writes to several keys at once. */
  readonly transactions: boolean;
}

/** Options common to every call. */
export interface KvCallOptions {
  readonly signal?: AbortSignal;
}

/** A page of a prefix listing. */
export interface KvPage {
  readonly entries: readonly KvEntry[];
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: string;
}

/**
 * A condition of a transaction: the key's current revision is `revision` (0: the key is absent,
 * so `{ key, revision: 0 }` makes a write to it create-if-absent).
 */
export interface KvTxnCheck {
  readonly key: string;
  readonly revision: number;
}

/** A write of a transaction. */
export type KvTxnWrite =
  | {
      readonly type: "put";
      readonly key: string;
      readonly value: Uint8Array;
      readonly lease?: string;
    }
  | { readonly type: "delete"; readonly key: string };

/** Writes applied together, if every check holds (see {@link StrongKV.transaction}). */
export interface KvTransaction {
  /** At most 1 000 checks; a key may be both checked and written. */
  readonly checks?: readonly KvTxnCheck[];
  /** At most 1 000 writes, each key at most once; applied (and watched) in key order. */
  readonly writes: readonly KvTxnWrite[];
}

/** The port. */
export interface StrongKV extends AsyncDisposable {
  readonly name: string;
  readonly capabilities: KvCapabilities;
  /** The key's entry, or undefined. */
  get(
    key: string,
    options?: KvCallOptions & { readonly consistency?: ReadConsistency },
  ): Promise<KvEntry | undefined>;
  /** Writes unconditionally; returns the new revision. */
  put(
    key: string,
    value: Uint8Array,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number>;
  /** Writes only if the key is absent; ALREADY_EXISTS otherwise. */
  create(
    key: string,
    value: Uint8Array,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number>;
  /**
   * Writes only if the key's current revision is `expectedRevision` (0: the key must be absent);
   * FAILED_PRECONDITION with `details.currentRevision` otherwise.
   */
  compareAndSet(
    key: string,
    value: Uint8Array,
    expectedRevision: number,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number>;
  /** Deletes (optionally only at `expectedRevision`); returns whether a key was deleted. */
  delete(
    key: string,
    options?: KvCallOptions & { readonly expectedRevision?: number },
  ): Promise<boolean>;
  /** Keys starting with `prefix`, in key order, `limit` at a time after the `after` cursor. */
  list(
    prefix: string,
    options?: KvCallOptions & { readonly after?: string; readonly limit?: number },
  ): Promise<KvPage>;
  /**
   * Every change under `prefix` in revision order, starting after `fromRevision` (default: now).
   * Ends when the signal aborts. A revision already compacted away fails with OUT_OF_RANGE.
   */
  watch(
    prefix: string,
    options?: KvCallOptions & { readonly fromRevision?: number },
  ): AsyncIterable<KvEvent>;
  /** Grants a lease that expires `ttlMs` after its last keep-alive. */
  grantLease(ttlMs: number, options?: KvCallOptions): Promise<string>;
  /** Extends a lease; NOT_FOUND when it already expired. */
  keepAlive(lease: string, options?: KvCallOptions): Promise<void>;
  /** Ends a lease now, deleting its keys. */
  revokeLease(lease: string, options?: KvCallOptions): Promise<void>;
  /** The store's current revision. */
  revision(options?: KvCallOptions): Promise<number>;
  /**
   * Applies every write atomically if every check holds, and returns the revision of its last
   * write. Each write takes its own revision, unique across the store, increasing in key order
   * (consecutive on the embedded store; on PostgreSQL concurrent writes may take revisions in
   * between); a delete of an absent key is skipped and takes none. With no effective write the
   * call returns the store's current revision.
   *
   * A failed check throws FAILED_PRECONDITION with `details.key` and `details.currentRevision` of
   * the first check (in the order given) that failed, and writes nothing; a put with a lease that
   * does not exist throws NOT_FOUND and writes nothing. Watchers never see a transaction before
   * it has committed, then all of its writes under their prefix, in key order. Malformed input
   * (more than 1 000 writes or checks, a key written twice, a bad key or value) throws
   * INVALID_ARGUMENT. Stores without `capabilities.transactions` throw UNIMPLEMENTED.
   *
   * @example
   * // Reserve stock and record the order in one step, only if the stock is unchanged.
   * await kv.transaction({
   *   checks: [{ key: "stock/sku-1", revision: stock.revision }, { key: "orders/o-7", revision: 0 }],
   *   writes: [
   *     { type: "put", key: "stock/sku-1", value: lessStock },
   *     { type: "put", key: "orders/o-7", value: order },
   *   ],
   * });
   */
  transaction(txn: KvTransaction, options?: KvCallOptions): Promise<number>;
}

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

/** A condition of a transaction: the key's current revision is `revision` (0: it is absent). */
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

/** Writes applied together, if every check holds. */
export interface KvTransaction {
  readonly checks?: readonly KvTxnCheck[];
  /** At most 1 000 writes, each key at most once. */
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
   * Applies every write atomically if every check holds. Writes take consecutive revisions in
   * key order (revisions stay unique per write across the store); returns the last. A failed
   * check throws FAILED_PRECONDITION with
   * `details.key` and `details.currentRevision` of the first check that failed, and writes
   * nothing. Watchers see all of a transaction's writes, in key order, or none. Stores without
   * `capabilities.transactions` throw UNIMPLEMENTED.
   */
  transaction(txn: KvTransaction, options?: KvCallOptions): Promise<number>;
}

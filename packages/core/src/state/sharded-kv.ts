import { StrataError, toStrataError } from "../errors/index.js";
import type {
  KvCallOptions,
  KvCapabilities,
  KvEntry,
  KvEvent,
  KvPage,
  KvTransaction,
  ReadConsistency,
  StrongKV,
} from "../ports/strong-kv.js";
import { hash32 } from "../runtime/hash-ring.js";
import { EventQueue } from "./event-queue.js";
import { checkKey, checkPrefix, checkTransaction } from "./keys.js";

/** Hash slots keys are spread over; shard groups own slots, never keys directly. */
export const SLOTS = 1024;

/** One shard group: a StrongKV (a bucket, a database) placed in a region. */
export interface ShardGroup {
  readonly id: string;
  readonly region: string;
  readonly kv: StrongKV;
}

/** The slot table: for each slot, the id of the group that owns it. */
export interface ShardMapSnapshot {
  readonly epoch: number;
  readonly owners: readonly string[];
  readonly groups: ReadonlyArray<{ readonly id: string; readonly region: string }>;
}

/**
 * A hash tag by path prefix: keys that agree on their first `segments` `/`-separated segments
 * share a slot, so one transaction can span them (`order/42/lines` and `order/42/total` with
 * `segments: 2`). Keys with fewer segments are their own tag.
 */
export function prefixHashTag(segments: number): (key: string) => string {
  if (!(Number.isInteger(segments) && segments >= 1)) {
    throw new StrataError("INVALID_ARGUMENT", "segments must be an integer >= 1");
  }
  return (key) => {
    let end = -1;
    for (let i = 0; i < segments; i++) {
      end = key.indexOf("/", end + 1);
      if (end < 0) return key;
    }
    return key.slice(0, end);
  };
}

/** The slot of a key, or of its hash tag when the store has a tag function. */
export function slotOf(key: string, hashTag?: (key: string) => string): number {
  return hash32(hashTag === undefined ? key : hashTag(key)) % SLOTS;
}

/**
 * A StrongKV spread over shard groups by hash slot. Each key lives in exactly one group, so
 * per-key guarantees (linearizability, compare-and-set) are the group's. Revisions are per group:
 * compare them only for the same key. Adding a group moves an even share of slots to it, slot by
 * slot: writes to a moving slot wait while its keys are copied and removed from the old owner,
 * so no write is lost or applied twice.
 *
 * Rebalancing is coordinated by this object: every write to the sharded store must go through
 * it (one process owns the map). Cross-process fencing of a shared map is not implemented.
 */
export class ShardedKv implements StrongKV {
  readonly name = "sharded";
  private groups = new Map<string, ShardGroup>();
  private owners: string[];
  private epoch = 1;
  /** Slots being moved: writers and readers of their keys wait on these. */
  private readonly moving = new Map<number, Promise<void>>();
  /** While a rebalance runs: keys written to each slot that is still to move. */
  private dirty: Map<number, Set<string>> | undefined;
  /** Operations in flight per slot, and the mover waiting for a slot to go quiet. */
  private readonly active: number[] = [];
  private readonly quiet = new Map<number, () => void>();

  private readonly hashTag: ((key: string) => string) | undefined;

  /**
   * `hashTag` picks the part of a key that decides its slot (see {@link prefixHashTag}); keys
   * with one tag share a slot, so transactions can span them. Default: the whole key. Changing
   * it for a store that holds data moves keys to other slots: choose it before the first write.
   */
  constructor(groups: readonly ShardGroup[], options: { hashTag?: (key: string) => string } = {}) {
    this.hashTag = options.hashTag;
    if (groups.length === 0)
      throw new StrataError("INVALID_ARGUMENT", "a sharded store needs at least one group");
    for (const group of groups) {
      if (this.groups.has(group.id))
        throw new StrataError("INVALID_ARGUMENT", `duplicate shard group ${group.id}`);
      this.groups.set(group.id, group);
    }
    const ids = groups.map((g) => g.id);
    this.owners = Array.from({ length: SLOTS }, (_, slot) => ids[slot % ids.length] as string);
  }

  /** The slot of a key in this store (by its hash tag, when the store has one). */
  slotOf(key: string): number {
    return slotOf(key, this.hashTag);
  }

  get capabilities(): KvCapabilities {
    const all = [...this.groups.values()].map((g) => g.kv.capabilities);
    return {
      staleReads: all.every((c) => c.staleReads),
      leases: false, // a lease lives in one group; keys of other groups cannot attach to it
      watch: all.every((c) => c.watch),
      // Within one slot only (see transaction()).
      transactions: all.every((c) => c.transactions),
    };
  }

  /**
   * A transaction whose keys (checks and writes) all hash to one slot runs on that slot's group,
   * if the group has transactions; keys spread over slots fail with UNIMPLEMENTED, since groups
   * cannot commit together. A `hashTag` option keeps related keys in one slot. One slot, not one group: slots move between groups when groups are
   * added, so a transaction that two slots of one group could take today would fail tomorrow.
   */
  transaction(txn: KvTransaction, options?: KvCallOptions): Promise<number> {
    let keys: string[];
    try {
      const { checks, writes } = checkTransaction(txn);
      keys = [...checks.map((c) => c.key), ...writes.map((w) => w.key)];
    } catch (error) {
      return Promise.reject(toStrataError(error));
    }
    const first = keys[0];
    if (first === undefined) return this.revision(options);
    const slots = [...new Set(keys.map((k) => this.slotOf(k)))];
    if (slots.length > 1) {
      return Promise.reject(
        new StrataError(
          "UNIMPLEMENTED",
          `the keys of this transaction span ${slots.length} shard slots; a sharded store commits a transaction only when all its keys hash to one slot`,
          { details: { slots: slots.slice(0, 10) } },
        ),
      );
    }
    return this.on(first, true, (kv) => {
      for (const key of keys) this.dirty?.get(this.slotOf(key))?.add(key);
      return kv.transaction(txn, options);
    });
  }

  /** The current slot table, for tools and for routing state calls to the owning shard. */
  map(): ShardMapSnapshot {
    return {
      epoch: this.epoch,
      owners: [...this.owners],
      groups: [...this.groups.values()].map((g) => ({ id: g.id, region: g.region })),
    };
  }

  /** The group that owns `key` now. */
  groupOf(key: string): ShardGroup {
    return this.groups.get(this.owners[this.slotOf(key)] as string) as ShardGroup;
  }

  /** Runs one operation on the key's owner; a slot being moved waits, and its mover waits for it. */
  private async on<T>(key: string, write: boolean, op: (kv: StrongKV) => Promise<T>): Promise<T> {
    checkKey(key);
    const slot = this.slotOf(key);
    for (let wait = this.moving.get(slot); wait !== undefined; wait = this.moving.get(slot))
      await wait;
    // During a rebalance, remember keys written to slots that will move, so none is left behind.
    if (write) this.dirty?.get(slot)?.add(key);
    this.active[slot] = (this.active[slot] ?? 0) + 1;
    try {
      return await op(this.groupOf(key).kv);
    } finally {
      this.active[slot] = (this.active[slot] ?? 1) - 1;
      if (this.active[slot] === 0) this.quiet.get(slot)?.();
    }
  }

  /** Resolves once no operation on `slot` is in flight (new ones are held back by `moving`). */
  private async settle(slot: number): Promise<void> {
    if ((this.active[slot] ?? 0) === 0) return;
    await new Promise<void>((resolve) => this.quiet.set(slot, resolve));
    this.quiet.delete(slot);
  }

  get(
    key: string,
    options?: KvCallOptions & { readonly consistency?: ReadConsistency },
  ): Promise<KvEntry | undefined> {
    return this.on(key, false, (kv) => kv.get(key, options));
  }

  put(
    key: string,
    value: Uint8Array,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number> {
    if (options?.lease !== undefined) return this.grantLease().then(() => 0);
    return this.on(key, true, (kv) => kv.put(key, value, options));
  }

  create(
    key: string,
    value: Uint8Array,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number> {
    if (options?.lease !== undefined) return this.grantLease().then(() => 0);
    return this.on(key, true, (kv) => kv.create(key, value, options));
  }

  compareAndSet(
    key: string,
    value: Uint8Array,
    expectedRevision: number,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number> {
    if (options?.lease !== undefined) return this.grantLease().then(() => 0);
    return this.on(key, true, (kv) => kv.compareAndSet(key, value, expectedRevision, options));
  }

  delete(
    key: string,
    options?: KvCallOptions & { readonly expectedRevision?: number },
  ): Promise<boolean> {
    return this.on(key, true, (kv) => kv.delete(key, options));
  }

  /** Lists across every group, merged in key order. */
  async list(
    prefix: string,
    options: KvCallOptions & { readonly after?: string; readonly limit?: number } = {},
  ): Promise<KvPage> {
    checkPrefix(prefix);
    const limit = options.limit ?? 1_000;
    const pages = await Promise.all(
      [...this.groups.values()].map((g) => g.kv.list(prefix, { ...options, limit })),
    );
    const merged = pages
      .flatMap((p) => p.entries)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // A key that moved between the reads of two groups may appear twice: keep one.
    const unique = merged.filter((e, i) => i === 0 || merged[i - 1]?.key !== e.key);
    const page = unique.slice(0, limit);
    const last = page[page.length - 1];
    const more = unique.length > limit || pages.some((p) => p.next !== undefined);
    return more && last !== undefined ? { entries: page, next: last.key } : { entries: page };
  }

  /** Changes from every group; order is per key (per group), not global. */
  watch(
    prefix: string,
    options: KvCallOptions & { readonly fromRevision?: number } = {},
  ): AsyncIterable<KvEvent> {
    if (options.fromRevision !== undefined) {
      throw new StrataError(
        "UNIMPLEMENTED",
        "a sharded store has no store-wide revision to resume a watch from; watch each group",
      );
    }
    const queue = new EventQueue<KvEvent>(
      options.signal === undefined ? {} : { signal: options.signal },
    );
    for (const group of this.groups.values()) {
      void (async () => {
        try {
          for await (const event of group.kv.watch(
            prefix,
            options.signal === undefined ? {} : { signal: options.signal },
          ))
            queue.push(event);
        } catch (error) {
          queue.fail(error);
        }
      })();
    }
    return queue;
  }

  /** The highest revision of any group (revisions are per group). */
  async revision(options?: KvCallOptions): Promise<number> {
    const revisions = await Promise.all(
      [...this.groups.values()].map((g) => g.kv.revision(options)),
    );
    return Math.max(...revisions);
  }

  grantLease(): Promise<string> {
    return Promise.reject(
      new StrataError(
        "UNIMPLEMENTED",
        "leases are per shard group: use the group's store for keys that need one",
      ),
    );
  }
  keepAlive(): Promise<void> {
    return this.grantLease().then(() => undefined);
  }
  revokeLease(): Promise<void> {
    return this.grantLease().then(() => undefined);
  }

  /**
   * Adds a group and moves an even share of slots to it, one slot at a time. Returns how many
   * keys moved. Writes to a slot wait only while that slot moves.
   */
  async addGroup(
    group: ShardGroup,
    options: { readonly onSlotMoved?: (slot: number, keys: number) => void } = {},
  ): Promise<number> {
    if (this.groups.has(group.id))
      throw new StrataError("ALREADY_EXISTS", `shard group ${group.id} already exists`);
    const share = Math.floor(SLOTS / (this.groups.size + 1));
    // Take slots from the groups that own the most, so ownership stays even.
    const counts = new Map<string, number[]>();
    this.owners.forEach((owner, slot) => {
      const list = counts.get(owner) ?? [];
      list.push(slot);
      counts.set(owner, list);
    });
    const take: number[] = [];
    while (take.length < share) {
      const [, slots] = [...counts].sort((a, b) => b[1].length - a[1].length)[0] as [
        string,
        number[],
      ];
      take.push(slots.pop() as number);
    }
    if (this.dirty !== undefined)
      throw new StrataError("FAILED_PRECONDITION", "a rebalance is already running");
    this.groups.set(group.id, group);
    try {
      return await this.move(group, take, options.onSlotMoved);
    } finally {
      this.dirty = undefined;
    }
  }

  private async move(
    group: ShardGroup,
    take: readonly number[],
    onSlotMoved: ((slot: number, keys: number) => void) | undefined,
  ): Promise<number> {
    this.dirty = new Map(take.map((slot) => [slot, new Set<string>()]));
    // Index the keys of the moving slots once, per old owner.
    const bySlot = new Map<number, string[]>();
    const takeSet = new Set(take);
    for (const owner of new Set(take.map((slot) => this.owners[slot] as string))) {
      const kv = (this.groups.get(owner) as ShardGroup).kv;
      let after: string | undefined;
      for (;;) {
        const page = await kv.list("", { limit: 1_000, ...(after === undefined ? {} : { after }) });
        for (const entry of page.entries) {
          const slot = this.slotOf(entry.key);
          if (takeSet.has(slot)) bySlot.set(slot, [...(bySlot.get(slot) ?? []), entry.key]);
        }
        if (page.next === undefined) break;
        after = page.next;
      }
    }
    let moved = 0;
    for (const slot of take) {
      const from = (this.groups.get(this.owners[slot] as string) as ShardGroup).kv;
      let done!: () => void;
      this.moving.set(slot, new Promise<void>((resolve) => (done = resolve)));
      try {
        await this.settle(slot);
        const keys = new Set([...(bySlot.get(slot) ?? []), ...(this.dirty?.get(slot) ?? [])]);
        this.dirty?.delete(slot);
        for (const key of keys) {
          const entry = await from.get(key);
          if (entry === undefined) continue;
          await group.kv.put(key, entry.value);
          moved++;
        }
        this.owners[slot] = group.id;
        this.epoch++;
        for (const key of keys) await from.delete(key);
        onSlotMoved?.(slot, keys.size);
      } finally {
        this.moving.delete(slot);
        done();
      }
    }
    return moved;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all([...this.groups.values()].map((g) => g.kv[Symbol.asyncDispose]()));
  }
}

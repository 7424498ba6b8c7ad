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
import { systemClock, type Clock, type Timer } from "../ports/clock.js";
import { EventQueue } from "./event-queue.js";
import { checkKey, checkPrefix, checkTransaction } from "./keys.js";
import {
  awaitRouters,
  coordinationKeys,
  decodeShardMap,
  encodeRouterRecord,
  encodeShardMap,
  type ShardCoordinationOptions,
  type StoredShardMap,
} from "./shard-map.js";

/** Hash slots keys are spread over; shard groups own slots, never keys directly. */
export const SLOTS = 1024;

/**
 * Revisions of a sharded store carry the slot's generation (how many times it has moved) above
 * the group's own revision: `generation × 2^40 + revision`. A key copied to another group gets
 * a revision there that may equal one it had in the old group; without the generation, a
 * compare-and-set holding the old revision could succeed against a newer value.
 */
const GENERATION = 2 ** 40;

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
  /** A rebalance recorded in a shared map and not finished: the group and the slots still to move. */
  readonly rebalance?: { readonly to: string; readonly slotsLeft: number };
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

/** A coordinated router's state (see {@link ShardedKv.open}). */
interface Coordination {
  readonly kv: StrongKV;
  readonly mapKey: string;
  readonly routers: string;
  readonly routerKey: string;
  readonly routerId: string;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly batchSlots: number;
  readonly ackTimeoutMs: number;
  readonly clock: Clock;
  readonly resolveGroup: ShardCoordinationOptions["resolveGroup"];
  readonly disposeWithStore: boolean;
  /** Until when (monotonic) this router may serve: its last heartbeat's send time plus the lease. */
  validUntil: number;
  lastBeat: number;
  /** The revision of the map last applied (0: none yet). */
  mapRevision: number;
  timer: Timer | undefined;
  /** Map reads, applies and heartbeats run one at a time, in this chain. */
  serial: Promise<unknown>;
  closed: boolean;
}

/** A group's revision as this store gives it, in a slot of generation `g` (see {@link GENERATION}). */
function fromGroup(g: number, revision: number): number {
  return revision === 0 ? 0 : g * GENERATION + revision;
}

/** The group's revision for a revision of this store; undefined if from another generation. */
function toGroup(g: number, revision: number): number | undefined {
  if (revision === 0) return 0;
  return Math.floor(revision / GENERATION) === g ? revision % GENERATION : undefined;
}

function entryFromGroup(g: number, entry: KvEntry): KvEntry {
  const out = { ...entry, revision: fromGroup(g, entry.revision) };
  return entry.createRevision === undefined
    ? out
    : { ...out, createRevision: fromGroup(g, entry.createRevision) };
}

/** A group's refusal, with the current revision as this store gives it. */
async function translated<T>(g: number, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    const current = (error as StrataError).details?.currentRevision;
    if (!(error instanceof StrataError) || typeof current !== "number") throw error;
    throw new StrataError(
      error.code,
      error.message.replace(/revision \d+/, `revision ${fromGroup(g, current)}`),
      { cause: error, details: { ...error.details, currentRevision: fromGroup(g, current) } },
    );
  }
}

/**
 * The refusal of a revision from an earlier generation: the key has moved to another group
 * since it was read. ABORTED, not FAILED_PRECONDITION: its value may be the same, only its
 * revision changed, so the caller should read again and retry.
 */
async function moved(g: number, kv: StrongKV, key: string, expected: number): Promise<StrataError> {
  const current = fromGroup(g, (await kv.get(key))?.revision ?? 0);
  return new StrataError(
    "ABORTED",
    `key ${key} moved to another shard group since revision ${expected} was read; read it again`,
    { details: { key, currentRevision: current, expectedRevision: expected, reason: "moved" } },
  );
}

/** The owning group's id per slot, from a stored map. */
function ownerIds(map: StoredShardMap): string[] {
  return map.owners.map((i) => (map.groups[i] as { id: string }).id);
}

/** The slots' generations in a stored map (maps written before generations existed: all 0). */
function generationsOf(map: StoredShardMap): number[] {
  return [...(map.generations ?? new Array<number>(SLOTS).fill(0))];
}

/**
 * The slots a new group takes so that `groups` groups (the new one included) own an even share:
 * taken from the groups that own the most.
 */
export function slotsToGive(owners: readonly string[], groups: number): number[] {
  const share = Math.floor(SLOTS / groups);
  const counts = new Map<string, number[]>();
  owners.forEach((owner, slot) => {
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
  return take;
}

/** Copies and deletes a rebalance keeps in flight at once (writes to a group share commits). */
const MOVE_CONCURRENCY = 32;

/** Runs `fn` over `items`, at most `limit` at a time. */
async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Lists every entry of a store (page by page). */
async function listAll(kv: StrongKV): Promise<KvEntry[]> {
  const entries: KvEntry[] = [];
  let after: string | undefined;
  do {
    const page = await kv.list("", { limit: 1_000, ...(after === undefined ? {} : { after }) });
    entries.push(...page.entries);
    after = page.next;
  } while (after !== undefined);
  return entries;
}

/**
 * A StrongKV spread over shard groups by hash slot. Each key lives in exactly one group, so
 * per-key guarantees (linearizability, compare-and-set) are the group's. Revisions are per group:
 * compare them only for the same key. Adding a group moves an even share of slots to it:
 * operations on a moving slot wait while its keys are copied and removed from the old owner,
 * so no write is lost or applied twice.
 *
 * Two modes. `new ShardedKv(groups)` keeps the map in this object: every call on the sharded
 * store must go through it (one process). `ShardedKv.open(groups, { coordination })` keeps the
 * map in a shared linearizable store, and any number of routers in any number of processes
 * route by it. Each router holds a lease renewed by a heartbeat that also says which map epoch
 * it applies. A rebalance freezes a batch of slots in the map, waits until every router has
 * applied the freeze (and drained its calls on those slots) or has gone silent past its lease,
 * then copies the keys, hands the slots over and deletes the old copies. A router that cannot
 * renew its lease stops serving, and a call whose answer arrives after its router's lease ran
 * out fails with UNAVAILABLE (outcome unknown) rather than reporting a result the rebalance may
 * have overtaken. Fencing rests on clock rates, not clock agreement: a rebalance waits out a
 * silent router's lease on its own clock, plus a 10% margin.
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
  /** Coordinated mode: what releases the operations waiting on each frozen slot. */
  private readonly frozen = new Map<number, () => void>();
  private coord: Coordination | undefined;
  /** Coordinated mode: the unfinished rebalance of the map last applied. */
  private rebalancing: ShardMapSnapshot["rebalance"];
  /** Per slot: how many times it has moved (see {@link GENERATION}). */
  private generations: number[] = new Array<number>(SLOTS).fill(0);

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
    return this.on(first, true, async (kv, g) => {
      for (const key of keys) this.dirty?.get(this.slotOf(key))?.add(key);
      const checks = [];
      for (const check of txn.checks ?? []) {
        const revision = toGroup(g, check.revision);
        if (revision === undefined) throw await moved(g, kv, check.key, check.revision);
        checks.push({ ...check, revision });
      }
      return fromGroup(g, await translated(g, kv.transaction({ ...txn, checks }, options)));
    });
  }

  /** The current slot table, for tools and for routing state calls to the owning shard. */
  map(): ShardMapSnapshot {
    const snapshot = {
      epoch: this.epoch,
      owners: [...this.owners],
      groups: [...this.groups.values()].map((g) => ({ id: g.id, region: g.region })),
    };
    return this.rebalancing === undefined
      ? snapshot
      : { ...snapshot, rebalance: { ...this.rebalancing } };
  }

  /** The group that owns `key` now. */
  groupOf(key: string): ShardGroup {
    return this.groups.get(this.owners[this.slotOf(key)] as string) as ShardGroup;
  }

  /** Runs one operation on the key's owner; a slot being moved waits, and its mover waits for it. */
  private async on<T>(
    key: string,
    write: boolean,
    op: (kv: StrongKV, generation: number) => Promise<T>,
  ): Promise<T> {
    checkKey(key);
    const slot = this.slotOf(key);
    for (let wait = this.moving.get(slot); wait !== undefined; wait = this.moving.get(slot))
      await wait;
    // During a rebalance, remember keys written to slots that will move, so none is left behind.
    if (write) this.dirty?.get(slot)?.add(key);
    this.checkLease(false);
    this.active[slot] = (this.active[slot] ?? 0) + 1;
    try {
      const result = await op(this.groupOf(key).kv, this.generations[slot] ?? 0);
      this.checkLease(true);
      return result;
    } finally {
      this.active[slot] = (this.active[slot] ?? 1) - 1;
      if (this.active[slot] === 0) this.quiet.get(slot)?.();
    }
  }

  /**
   * Coordinated mode: refuses to serve once this router's lease on the map has run out. Checked
   * when a call starts, and again when its answer arrives (`answered`): a rebalance that gave
   * up waiting for this router may have moved the slot in between.
   */
  private checkLease(answered: boolean): void {
    const c = this.coord;
    if (c === undefined) return;
    if (c.clock.monotonic() < c.validUntil) return;
    if (answered) {
      throw new StrataError(
        "UNAVAILABLE",
        `shard router ${c.routerId}: its lease on the shard map ran out before the answer came; the outcome is unknown`,
        { details: { outcome: "unknown", router: c.routerId } },
      );
    }
    throw new StrataError(
      "UNAVAILABLE",
      c.closed
        ? `shard router ${c.routerId} is closed`
        : `shard router ${c.routerId} could not renew its lease on the shard map; it serves nothing until it does`,
      { details: { router: c.routerId } },
    );
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
    return this.on(key, false, async (kv, g) => {
      const entry = await kv.get(key, options);
      return entry === undefined ? undefined : entryFromGroup(g, entry);
    });
  }

  put(
    key: string,
    value: Uint8Array,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number> {
    if (options?.lease !== undefined) return this.grantLease().then(() => 0);
    return this.on(key, true, async (kv, g) => fromGroup(g, await kv.put(key, value, options)));
  }

  create(
    key: string,
    value: Uint8Array,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number> {
    if (options?.lease !== undefined) return this.grantLease().then(() => 0);
    return this.on(key, true, async (kv, g) =>
      fromGroup(g, await translated(g, kv.create(key, value, options))),
    );
  }

  compareAndSet(
    key: string,
    value: Uint8Array,
    expectedRevision: number,
    options?: KvCallOptions & { readonly lease?: string },
  ): Promise<number> {
    if (options?.lease !== undefined) return this.grantLease().then(() => 0);
    return this.on(key, true, async (kv, g) => {
      const expected = toGroup(g, expectedRevision);
      if (expected === undefined) throw await moved(g, kv, key, expectedRevision);
      return fromGroup(g, await translated(g, kv.compareAndSet(key, value, expected, options)));
    });
  }

  delete(
    key: string,
    options?: KvCallOptions & { readonly expectedRevision?: number },
  ): Promise<boolean> {
    return this.on(key, true, async (kv, g) => {
      if (options?.expectedRevision === undefined) return kv.delete(key, options);
      const expectedRevision = toGroup(g, options.expectedRevision);
      if (expectedRevision === undefined) throw await moved(g, kv, key, options.expectedRevision);
      return translated(g, kv.delete(key, { ...options, expectedRevision }));
    });
  }

  /** Lists across every group, merged in key order. */
  async list(
    prefix: string,
    options: KvCallOptions & { readonly after?: string; readonly limit?: number } = {},
  ): Promise<KvPage> {
    checkPrefix(prefix);
    const limit = options.limit ?? 1_000;
    const groups = [...this.groups.values()];
    const pages = await Promise.all(groups.map((g) => g.kv.list(prefix, { ...options, limit })));
    // A group may still hold copies of keys in slots it no longer owns (a rebalance deletes
    // them after the handover, and one that stopped may not have): only owners' entries count.
    const merged = pages
      .flatMap((p, i) => p.entries.filter((e) => this.owners[this.slotOf(e.key)] === groups[i]?.id))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const page = merged
      .slice(0, limit)
      .map((e) => entryFromGroup(this.generations[this.slotOf(e.key)] ?? 0, e));
    const last = page[page.length - 1];
    const more = merged.length > limit || pages.some((p) => p.next !== undefined);
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
            queue.push(this.eventRevisions(event));
        } catch (error) {
          queue.fail(error);
        }
      })();
    }
    return queue;
  }

  /** An event with its revision as this store gives it: with the slot's generation now. */
  private eventRevisions(event: KvEvent): KvEvent {
    const key = event.type === "put" ? event.entry.key : event.key;
    const g = this.generations[this.slotOf(key)] ?? 0;
    return event.type === "put"
      ? { ...event, entry: entryFromGroup(g, event.entry) }
      : { ...event, revision: fromGroup(g, event.revision) };
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
    if (this.coord !== undefined) return this.addGroupCoordinated(group, options.onSlotMoved);
    if (this.groups.has(group.id))
      throw new StrataError("ALREADY_EXISTS", `shard group ${group.id} already exists`);
    const take = slotsToGive(this.owners, this.groups.size + 1);
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
        this.generations[slot] = (this.generations[slot] ?? 0) + 1;
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

  // ---- coordinated mode -------------------------------------------------------------------

  /**
   * Opens a router of a sharded store whose map lives in `coordination.kv`, shared with every
   * other router. The first router to open creates the map from `groups` (slots dealt round
   * robin in the order given); later ones read it, and must be given (or be able to resolve,
   * with `resolveGroup`) every group it names. The router registers before it reads the map, so a
   * rebalance that starts meanwhile waits for it.
   */
  static async open(
    groups: readonly ShardGroup[],
    options: { hashTag?: (key: string) => string; coordination: ShardCoordinationOptions },
  ): Promise<ShardedKv> {
    const o = options.coordination;
    const keys = coordinationKeys(o.prefix);
    const clock = o.clock ?? systemClock();
    const routerId = o.routerId ?? `router-${Math.floor(clock.random() * 2 ** 48).toString(36)}`;
    const leaseMs = o.leaseMs ?? 10_000;
    const pollMs = o.pollMs ?? 200;
    if (!(leaseMs >= 3 * pollMs && pollMs > 0))
      throw new StrataError("INVALID_ARGUMENT", "leaseMs must be at least 3 × pollMs (> 0)");
    const store = new ShardedKv(
      groups,
      options.hashTag === undefined ? {} : { hashTag: options.hashTag },
    );
    const c: Coordination = {
      kv: o.kv,
      mapKey: keys.map,
      routers: keys.routers,
      routerKey: `${keys.routers}${routerId}`,
      routerId,
      leaseMs,
      pollMs,
      batchSlots: o.batchSlots ?? 64,
      ackTimeoutMs: o.ackTimeoutMs ?? 4 * leaseMs,
      clock,
      resolveGroup: o.resolveGroup,
      disposeWithStore: o.disposeWithStore === true,
      validUntil: -Infinity,
      lastBeat: -Infinity,
      mapRevision: 0,
      timer: undefined,
      serial: Promise.resolve(),
      closed: false,
    };
    store.coord = c;
    store.epoch = 0; // applies no map yet
    try {
      await store.beat(); // registers: a rebalance from now on waits for this router
      let current = await c.kv.get(c.mapKey);
      if (current === undefined) {
        const initial: StoredShardMap = {
          v: 1,
          epoch: 1,
          groups: groups.map((g) => ({ id: g.id, region: g.region })),
          owners: Array.from({ length: SLOTS }, (_, slot) => slot % groups.length),
        };
        try {
          await c.kv.create(c.mapKey, encodeShardMap(initial));
        } catch (error) {
          if (!(error instanceof StrataError && error.code === "ALREADY_EXISTS")) throw error;
        }
        current = await c.kv.get(c.mapKey);
      }
      if (current === undefined)
        throw new StrataError("UNAVAILABLE", "the shard map vanished while being created");
      await store.apply(decodeShardMap(current.value, SLOTS), current.revision);
      await store.beat();
    } catch (error) {
      await store.close();
      throw toStrataError(error);
    }
    store.schedule();
    return store;
  }

  /** Runs `fn` after every map read, apply and heartbeat before it. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const c = this.coord as Coordination;
    const run = c.serial.then(fn, fn);
    c.serial = run.catch(() => undefined);
    return run;
  }

  private schedule(): void {
    const c = this.coord;
    if (c === undefined || c.closed) return;
    c.timer = c.clock.setTimer(() => {
      void this.serially(() => this.refresh())
        .catch(() => undefined) // tried again next time; the lease runs out if it keeps failing
        .finally(() => this.schedule());
    }, c.pollMs);
  }

  /** Reads the map, applies a new epoch, and writes the heartbeat when due or after a change. */
  private async refresh(): Promise<void> {
    const c = this.coord as Coordination;
    if (c.closed) return;
    const entry = await c.kv.get(c.mapKey);
    if (entry === undefined) throw new StrataError("DATA_LOSS", "the shard map is gone");
    // Decoded only when it changed since this router applied it (a poll is mostly a no-op).
    const changed = entry.revision !== c.mapRevision;
    if (changed) await this.apply(decodeShardMap(entry.value, SLOTS), entry.revision);
    if (changed || c.clock.monotonic() - c.lastBeat >= c.leaseMs / 4) await this.beat();
  }

  /** Writes this router's record: a heartbeat that renews its lease and names its epoch. */
  private async beat(): Promise<void> {
    const c = this.coord as Coordination;
    if (c.closed) return;
    const sent = c.clock.monotonic();
    await c.kv.put(c.routerKey, encodeRouterRecord(this.epoch));
    c.lastBeat = sent;
    c.validUntil = sent + c.leaseMs;
  }

  /**
   * Routes by `map` from now on: opens groups this router does not know, freezes the slots it
   * names as moving (and waits for this router's calls on them to end), releases the slots
   * that are no longer moving.
   */
  private async apply(map: StoredShardMap, revision: number): Promise<void> {
    const c = this.coord as Coordination;
    for (const g of map.groups) {
      if (this.groups.has(g.id)) continue;
      if (c.resolveGroup === undefined)
        throw new StrataError(
          "FAILED_PRECONDITION",
          `the shard map names group ${g.id}, which this router was not given`,
        );
      const group = await c.resolveGroup(g);
      this.groups.set(g.id, { id: g.id, region: g.region, kv: group.kv });
    }
    const frozen = new Set(map.moving?.slots ?? []);
    const newlyFrozen = [...frozen].filter((slot) => !this.frozen.has(slot));
    for (const slot of newlyFrozen) {
      let release!: () => void;
      this.moving.set(slot, new Promise<void>((resolve) => (release = resolve)));
      this.frozen.set(slot, release);
    }
    this.owners = ownerIds(map);
    this.generations = generationsOf(map);
    this.epoch = map.epoch;
    c.mapRevision = revision;
    const to = map.moving?.to ?? map.pending?.to;
    this.rebalancing =
      to === undefined
        ? undefined
        : { to, slotsLeft: (map.moving?.slots.length ?? 0) + (map.pending?.slots.length ?? 0) };
    for (const [slot, release] of [...this.frozen]) {
      if (frozen.has(slot)) continue;
      this.frozen.delete(slot);
      this.moving.delete(slot);
      release();
    }
    for (const slot of newlyFrozen) await this.settle(slot);
  }

  private async readMap(): Promise<{ map: StoredShardMap; revision: number }> {
    const c = this.coord as Coordination;
    const entry = await c.kv.get(c.mapKey);
    if (entry === undefined) throw new StrataError("DATA_LOSS", "the shard map is gone");
    return { map: decodeShardMap(entry.value, SLOTS), revision: entry.revision };
  }

  /** Writes the next map if nobody changed it meanwhile, then applies it here and says so. */
  private commitMap(
    next: StoredShardMap,
    revision: number,
  ): Promise<{ map: StoredShardMap; revision: number }> {
    const c = this.coord as Coordination;
    return this.serially(async () => {
      let written: number;
      try {
        written = await c.kv.compareAndSet(c.mapKey, encodeShardMap(next), revision);
      } catch (error) {
        if (error instanceof StrataError && error.code === "FAILED_PRECONDITION")
          throw new StrataError("ABORTED", "the shard map changed meanwhile; try again", {
            cause: error,
          });
        throw error;
      }
      await this.apply(next, written);
      await this.beat();
      return { map: next, revision: written };
    });
  }

  private async addGroupCoordinated(
    group: ShardGroup,
    onSlotMoved: ((slot: number, keys: number) => void) | undefined,
  ): Promise<number> {
    const { map, revision } = await this.readMap();
    if (map.moving !== undefined || map.pending !== undefined)
      throw new StrataError(
        "FAILED_PRECONDITION",
        `a rebalance to group ${(map.moving ?? map.pending)?.to} is unfinished; finish it with resumeRebalance()`,
      );
    if (map.groups.some((g) => g.id === group.id))
      throw new StrataError("ALREADY_EXISTS", `shard group ${group.id} already exists`);
    this.groups.set(group.id, group);
    const groups = [...map.groups, { id: group.id, region: group.region }];
    const take = slotsToGive(ownerIds(map), groups.length);
    await this.commitMap(
      { ...map, epoch: map.epoch + 1, groups, pending: { to: group.id, slots: take } },
      revision,
    );
    return this.finishRebalance(onSlotMoved);
  }

  /**
   * Coordinated mode: finishes a rebalance recorded in the map whose coordinator stopped (or
   * gave up waiting for a router), from any router. Returns how many keys moved. Call it only
   * once the process that ran the rebalance has stopped, from one router: two rebalancers
   * copying one batch at once could overwrite newer values.
   */
  async resumeRebalance(
    options: { readonly onSlotMoved?: (slot: number, keys: number) => void } = {},
  ): Promise<number> {
    if (this.coord === undefined)
      throw new StrataError(
        "FAILED_PRECONDITION",
        "only a coordinated sharded store records rebalances",
      );
    return this.finishRebalance(options.onSlotMoved);
  }

  /** Moves the recorded slots batch by batch: freeze, wait for every router, copy, hand over. */
  private async finishRebalance(
    onSlotMoved: ((slot: number, keys: number) => void) | undefined,
  ): Promise<number> {
    const c = this.coord as Coordination;
    let movedKeys = 0;
    for (;;) {
      let { map, revision } = await this.readMap();
      if (map.moving === undefined) {
        const pending = map.pending;
        if (pending === undefined) return movedKeys;
        const { pending: _, ...rest } = map;
        const batch = pending.slots.slice(0, c.batchSlots);
        const left = pending.slots.slice(c.batchSlots);
        if (batch.length === 0) {
          await this.commitMap({ ...rest, epoch: map.epoch + 1 }, revision);
          continue;
        }
        ({ map, revision } = await this.commitMap(
          {
            ...rest,
            epoch: map.epoch + 1,
            moving: { to: pending.to, slots: batch },
            ...(left.length > 0 ? { pending: { to: pending.to, slots: left } } : {}),
          },
          revision,
        ));
      }
      const moving = map.moving as NonNullable<StoredShardMap["moving"]>;
      try {
        await awaitRouters({
          kv: c.kv,
          routers: c.routers,
          epoch: map.epoch,
          leaseMs: c.leaseMs,
          pollMs: c.pollMs,
          timeoutMs: c.ackTimeoutMs,
          clock: c.clock,
        });
      } catch (error) {
        // Unfreeze: the slots go back to the pending list, to be moved by resumeRebalance().
        const { moving: _, ...rest } = map;
        await this.commitMap(
          {
            ...rest,
            epoch: map.epoch + 1,
            pending: { to: moving.to, slots: [...moving.slots, ...(map.pending?.slots ?? [])] },
          },
          revision,
        ).catch(() => undefined);
        throw error;
      }
      // Every router serving now has these slots frozen: copy their keys to the new owner.
      const copied = await this.copySlots(map, moving);
      const to = map.groups.findIndex((g) => g.id === moving.to);
      const owners = [...map.owners];
      const generations = generationsOf(map);
      for (const slot of moving.slots) {
        owners[slot] = to;
        generations[slot] = (generations[slot] ?? 0) + 1;
      }
      const { moving: _, ...rest } = map;
      await this.commitMap({ ...rest, epoch: map.epoch + 1, owners, generations }, revision);
      for (const [groupId, keys] of copied) {
        const kv = (this.groups.get(groupId) as ShardGroup).kv;
        await inParallel(keys, MOVE_CONCURRENCY, (key) => kv.delete(key));
      }
      const perSlot = new Map<number, number>();
      for (const keys of copied.values()) {
        movedKeys += keys.length;
        for (const key of keys) {
          const slot = this.slotOf(key);
          perSlot.set(slot, (perSlot.get(slot) ?? 0) + 1);
        }
      }
      for (const slot of moving.slots) onSlotMoved?.(slot, perSlot.get(slot) ?? 0);
    }
  }

  /**
   * Copies the keys of frozen slots from their owners to the target, after removing whatever
   * the target holds in them (left by a rebalance that stopped). Returns the copied keys by
   * source group.
   */
  private async copySlots(
    map: StoredShardMap,
    moving: NonNullable<StoredShardMap["moving"]>,
  ): Promise<Map<string, string[]>> {
    const slots = new Set(moving.slots);
    const target = (this.groups.get(moving.to) as ShardGroup).kv;
    const stale = (await listAll(target)).filter((e) => slots.has(this.slotOf(e.key)));
    await inParallel(stale, MOVE_CONCURRENCY, (e) => target.delete(e.key));
    const owners = ownerIds(map);
    const sources = new Set(
      moving.slots.map((slot) => owners[slot] as string).filter((id) => id !== moving.to),
    );
    const copied = new Map<string, string[]>();
    for (const source of sources) {
      // Only keys the source owns: it may hold leftovers of slots it gave away earlier.
      const entries = (await listAll((this.groups.get(source) as ShardGroup).kv)).filter((e) => {
        const slot = this.slotOf(e.key);
        return slots.has(slot) && owners[slot] === source;
      });
      await inParallel(entries, MOVE_CONCURRENCY, (e) => target.put(e.key, e.value));
      copied.set(
        source,
        entries.map((e) => e.key),
      );
    }
    return copied;
  }

  /**
   * Stops routing: a coordinated router stops its heartbeat and removes its record, so a
   * rebalance need not wait out its lease. The groups stay open (see asyncDispose).
   */
  async close(): Promise<void> {
    const c = this.coord;
    if (c === undefined || c.closed) return;
    c.closed = true;
    c.validUntil = -Infinity;
    c.timer?.clear();
    await c.serial;
    for (const [slot, release] of [...this.frozen]) {
      this.frozen.delete(slot);
      this.moving.delete(slot);
      release();
    }
    await c.kv.delete(c.routerKey).catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
    await Promise.all([...this.groups.values()].map((g) => g.kv[Symbol.asyncDispose]()));
    if (this.coord?.disposeWithStore === true) await this.coord.kv[Symbol.asyncDispose]();
  }
}

import { StrataError } from "../../errors/index.js";
import type { Timer } from "../../ports/clock.js";
import type { StrongKV } from "../../ports/strong-kv.js";
import type { StrataNode } from "../../runtime/node.js";
import { anySchema } from "../../service/custom-schema.js";
import { defineService } from "../../service/define-service.js";
import { createStateStore, type StateStore } from "../store.js";
import { join, type Causal, type DotMap } from "./types.js";

/** Options for {@link createCrdtSpace}. */
export interface CrdtSpaceOptions {
  /** The space's name: one replicated set of keys (for example `carts`). */
  readonly name: string;
  /** Where this replica keeps its states, so a restart loses no acknowledged update. */
  readonly store?: StrongKV;
  /** How often buffered deltas are shipped to peers (ms); default 50. */
  readonly shipEveryMs?: number;
}

/** What a space reports about replication. */
export interface CrdtSpaceStats {
  readonly keys: number;
  readonly deltasSent: number;
  readonly deltasReceived: number;
  readonly fullSyncs: number;
  /** Keys with deltas waiting for each peer (peers cut off keep theirs until they are back). */
  readonly pending: Readonly<Record<string, number>>;
}

/** A replicated map of keys to OR-Map states (any causal CRDT state whose store is a DotMap). */
export interface CrdtSpace extends AsyncDisposable {
  readonly name: string;
  get(key: string): Causal<DotMap> | undefined;
  keys(): string[];
  /**
   * Applies a local mutation: `mutate` gets the key's state (empty if absent) and this replica's
   * id, and returns a delta. The delta is joined locally, persisted, and shipped to every peer.
   */
  update(
    key: string,
    mutate: (state: Causal<DotMap>, replica: string) => Causal<DotMap>,
  ): Promise<Causal<DotMap>>;
  /** Sends every state to every peer now (anti-entropy); returns how many peers took it. */
  syncAll(): Promise<number>;
  stats(): CrdtSpaceStats;
}

const empty = (): Causal<DotMap> => ({
  store: { t: "map", entries: {} },
  ctx: { vv: {}, cloud: [] },
});

/**
 * Creates a space of CRDT states replicated between every node that hosts the same space (by
 * region or not): local updates are applied at once and their deltas shipped in the background,
 * joined per key while a peer is unreachable (so the backlog never exceeds one delta-group per
 * key); a peer that joins or comes back gets the full states (anti-entropy). Replicas that have
 * received the same updates are equal (strong eventual consistency).
 *
 * @example
 * const carts = await createCrdtSpace(node, { name: "carts", store: kv });
 * await carts.update("cart-42", (cart, r) => orMap.update(cart, r, "sku-1", (q, r2) => mvRegister.write(q, r2, 2)));
 */
export async function createCrdtSpace(
  node: StrataNode,
  options: CrdtSpaceOptions,
): Promise<CrdtSpace> {
  if (!/^[a-z][a-z0-9-]{0,40}$/.test(options.name)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `space name "${options.name}" must match ^[a-z][a-z0-9-]{0,40}$`,
    );
  }
  const service = `crdt-${options.name}`;
  const states = new Map<string, Causal<DotMap>>();
  const outbox = new Map<string, Map<string, Causal<DotMap>>>();
  const needsFull = new Set<string>();
  const persisted: StateStore | undefined =
    options.store === undefined
      ? undefined
      : createStateStore(options.store, `crdt-${options.name}`);
  let sent = 0;
  let received = 0;
  let fullSyncs = 0;
  if (persisted !== undefined) {
    for await (const entry of persisted.list<Causal<DotMap>>()) states.set(entry.key, entry.value);
  }
  const contract = defineService({
    name: service,
    version: "1.0.0",
    actions: {
      apply: {
        input: anySchema<{ deltas: Array<[string, Causal<DotMap>]> }>(),
        output: anySchema<{ keys: number }>(),
        idempotent: true,
      },
    },
  });
  const absorb = async (key: string, delta: Causal<DotMap>): Promise<void> => {
    const next = join(states.get(key) ?? empty(), delta);
    states.set(key, next);
    await persisted?.put(key, next);
  };
  node.serve(
    contract.implement({
      apply: async ({ deltas }) => {
        if (!Array.isArray(deltas))
          throw new StrataError("INVALID_ARGUMENT", "deltas must be a list of [key, delta]");
        for (const [key, delta] of deltas) {
          if (
            typeof key !== "string" ||
            typeof delta !== "object" ||
            delta === null ||
            delta.store?.t !== "map"
          ) {
            throw new StrataError("INVALID_ARGUMENT", "each delta must be [key, OR-Map state]");
          }
          // Joining is idempotent: a resent or duplicated delta changes nothing.
          await absorb(key, delta);
          received++;
        }
        return { keys: deltas.length };
      },
    }),
  );
  const peers = (): string[] =>
    node
      .nodes()
      .filter(
        (n) =>
          n.id !== node.id && n.status === "ready" && n.services.some((s) => s.name === service),
      )
      .map((n) => n.id);
  // A node that joins (or comes back under a new incarnation) gets the full states.
  const subscription = node.on((event) => {
    if (event.type === "joined") needsFull.add(event.member.id);
  });
  const queue = (key: string, delta: Causal<DotMap>): void => {
    for (const peer of peers()) {
      let pending = outbox.get(peer);
      if (pending === undefined) outbox.set(peer, (pending = new Map<string, Causal<DotMap>>()));
      const previous = pending.get(key);
      pending.set(key, previous === undefined ? delta : join(previous, delta));
    }
  };
  let shipping = false;
  const ship = async (): Promise<void> => {
    if (shipping) return;
    shipping = true;
    try {
      for (const peer of peers()) {
        let batch: Array<[string, Causal<DotMap>]>;
        const full = needsFull.has(peer);
        if (full) batch = [...states];
        else {
          const pending = outbox.get(peer);
          if (pending === undefined || pending.size === 0) continue;
          batch = [...pending];
        }
        if (batch.length === 0) {
          needsFull.delete(peer);
          continue;
        }
        try {
          await node.call(
            service,
            "apply",
            { deltas: batch },
            { node: peer, timeoutMs: 1_000, policies: { retry: false, breaker: false } },
          );
          sent += batch.length;
          if (full) {
            needsFull.delete(peer);
            fullSyncs++;
          }
          // Drop only what was shipped: deltas queued meanwhile stay for the next round.
          const pending = outbox.get(peer);
          for (const [key, delta] of batch) if (pending?.get(key) === delta) pending.delete(key);
        } catch {
          // Unreachable (partitioned, restarting): keep the backlog; once it answers again, send everything.
          needsFull.add(peer);
        }
      }
    } finally {
      shipping = false;
    }
  };
  let timer: Timer | undefined;
  let closed = false;
  const tick = (): void => {
    timer = node.clock.setTimer(() => {
      if (closed) return;
      void ship().finally(tick);
    }, options.shipEveryMs ?? 50);
  };
  tick();
  return {
    name: options.name,
    get: (key) => states.get(key),
    keys: () => [...states.keys()].sort(),
    async update(key, mutate) {
      const delta = mutate(states.get(key) ?? empty(), node.id);
      await absorb(key, delta);
      queue(key, delta);
      return states.get(key) as Causal<DotMap>;
    },
    async syncAll() {
      for (const peer of peers()) needsFull.add(peer);
      const before = fullSyncs;
      await ship();
      return fullSyncs - before;
    },
    stats: () => ({
      keys: states.size,
      deltasSent: sent,
      deltasReceived: received,
      fullSyncs,
      pending: Object.fromEntries([...outbox].map(([peer, pending]) => [peer, pending.size])),
    }),
    [Symbol.asyncDispose]() {
      closed = true;
      timer?.clear();
      subscription[Symbol.dispose]();
      return Promise.resolve();
    },
  };
}

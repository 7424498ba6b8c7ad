import type { Hlc } from "../../ports/hlc.js";
import { compareHlc } from "../../ports/hlc.js";
import {
  contextOf,
  dotsOf,
  emptyContext,
  emptyFun,
  emptyMap,
  emptySet,
  join,
  nextDot,
  type Causal,
  type DotFun,
  type DotMap,
  type DotSet,
  type DotStore,
} from "./causal.js";

// ---- enable-wins flag ----------------------------------------------------------------------

/** Enable-wins flag: concurrent enable and disable leave it enabled. */
export type EWFlag = Causal<DotSet>;
export const ewFlag = {
  empty: (): EWFlag => ({ store: emptySet, ctx: emptyContext }),
  enable(state: EWFlag, replica: string): EWFlag {
    const d = nextDot(state.ctx, replica);
    return { store: { t: "set", dots: [d] }, ctx: contextOf([...state.store.dots, d]) };
  },
  disable(state: EWFlag): EWFlag {
    return { store: emptySet, ctx: contextOf(state.store.dots) };
  },
  value: (state: EWFlag): boolean => state.store.dots.length > 0,
};

// ---- multi-value register -------------------------------------------------------------------

/** Multi-value register: a write replaces what it saw; concurrent writes are all kept. */
export type MVRegister<V> = Causal<DotFun> & { readonly __value?: V };
export const mvRegister = {
  empty: <V>(): MVRegister<V> => ({ store: emptyFun, ctx: emptyContext }),
  write<V>(state: MVRegister<V>, replica: string, value: V): MVRegister<V> {
    const d = nextDot(state.ctx, replica);
    return {
      store: { t: "fun", entries: { [d]: value } },
      ctx: contextOf([...Object.keys(state.store.entries), d]),
    };
  },
  /** Every concurrent value, in a stable order. */
  values<V>(state: MVRegister<V>): V[] {
    return Object.keys(state.store.entries)
      .sort()
      .map((d) => state.store.entries[d] as V);
  },
};

// ---- add-wins observed-remove set -----------------------------------------------------------

/** Add-wins OR-Set: an add concurrent with a remove of the same element wins. */
export type AWSet = Causal<DotMap>;
export const awSet = {
  empty: (): AWSet => ({ store: emptyMap, ctx: emptyContext }),
  add(state: AWSet, replica: string, element: string): AWSet {
    const d = nextDot(state.ctx, replica);
    const old = state.store.entries[element];
    return {
      store: { t: "map", entries: { [element]: { t: "set", dots: [d] } } },
      ctx: contextOf([...(old === undefined ? [] : dotsOf(old)), d]),
    };
  },
  remove(state: AWSet, element: string): AWSet {
    const old = state.store.entries[element];
    return { store: emptyMap, ctx: contextOf(old === undefined ? [] : dotsOf(old)) };
  },
  has: (state: AWSet, element: string): boolean => state.store.entries[element] !== undefined,
  values: (state: AWSet): string[] => Object.keys(state.store.entries).sort(),
};

// ---- observed-remove map of causal CRDTs ---------------------------------------------------

/**
 * OR-Map with nested causal CRDT values (any of these types, including OR-Maps): a value's
 * update is a delta of the nested CRDT lifted under its key, sharing the map's causal context;
 * removing a key removes what was observed under it, so a concurrent update survives.
 *
 * @example
 * // A cart: product id -> quantity (a multi-value register; concurrent edits are all visible).
 * let cart = orMap.empty();
 * const d = orMap.update(cart, "eu-1", "sku-1", (q, r) => mvRegister.write(q, r, 2));
 * cart = join(cart, d);
 */
export type ORMap = Causal<DotMap>;
export const orMap = {
  empty: (): ORMap => ({ store: emptyMap, ctx: emptyContext }),
  /** The nested state under `key` (bottom of the given kind when absent). */
  get<S extends DotStore>(state: ORMap, key: string, bottom: S): Causal<S> {
    return { store: (state.store.entries[key] as S | undefined) ?? bottom, ctx: state.ctx };
  },
  /** Applies a nested mutator to the value under `key`; returns the map-level delta. */
  update<S extends DotStore>(
    state: ORMap,
    replica: string,
    key: string,
    mutate: (value: Causal<S>, replica: string) => Causal<S>,
    bottom?: S,
  ): ORMap {
    const current = {
      store: (state.store.entries[key] as S | undefined) ?? bottom ?? (emptyFun as unknown as S),
      ctx: state.ctx,
    };
    const delta = mutate(current, replica);
    return { store: { t: "map", entries: { [key]: delta.store } }, ctx: delta.ctx };
  },
  remove(state: ORMap, key: string): ORMap {
    const old = state.store.entries[key];
    return { store: emptyMap, ctx: contextOf(old === undefined ? [] : dotsOf(old)) };
  },
  keys: (state: ORMap): string[] => Object.keys(state.store.entries).sort(),
};

export { join };

// ---- counters and the last-writer-wins register (not causal) -------------------------------

/** Grow-only counter: one entry per replica. */
export type GCounter = Readonly<Record<string, number>>;
export const gCounter = {
  empty: (): GCounter => ({}),
  increment(state: GCounter, replica: string, by = 1): GCounter {
    if (!(Number.isInteger(by) && by >= 0))
      throw new RangeError("a G-Counter only grows by non-negative integers");
    return { [replica]: (state[replica] ?? 0) + by };
  },
  join(a: GCounter, b: GCounter): GCounter {
    const out: Record<string, number> = { ...a };
    for (const [r, n] of Object.entries(b)) out[r] = Math.max(out[r] ?? 0, n);
    return out;
  },
  value: (state: GCounter): number => Object.values(state).reduce((s, n) => s + n, 0),
};

/** Positive-negative counter. */
export interface PNCounter {
  readonly p: GCounter;
  readonly n: GCounter;
}
export const pnCounter = {
  empty: (): PNCounter => ({ p: {}, n: {} }),
  add(state: PNCounter, replica: string, by: number): PNCounter {
    if (!Number.isInteger(by)) throw new RangeError("a PN-Counter changes by integers");
    return by >= 0
      ? { p: gCounter.increment(state.p, replica, by), n: {} }
      : { p: {}, n: gCounter.increment(state.n, replica, -by) };
  },
  join: (a: PNCounter, b: PNCounter): PNCounter => ({
    p: gCounter.join(a.p, b.p),
    n: gCounter.join(a.n, b.n),
  }),
  value: (state: PNCounter): number => gCounter.value(state.p) - gCounter.value(state.n),
};

/** Last-writer-wins register on a hybrid logical clock (ties broken by the writer's node id). */
export interface LWWRegister<V> {
  readonly value: V | undefined;
  readonly at: Hlc | undefined;
}
export const lwwRegister = {
  empty: <V>(): LWWRegister<V> => ({ value: undefined, at: undefined }),
  write: <V>(value: V, at: Hlc): LWWRegister<V> => ({ value, at }),
  join<V>(a: LWWRegister<V>, b: LWWRegister<V>): LWWRegister<V> {
    if (a.at === undefined) return b;
    if (b.at === undefined) return a;
    return compareHlc(a.at, b.at) >= 0 ? a : b;
  },
};

export type { Causal, DotFun, DotMap, DotSet, DotStore };

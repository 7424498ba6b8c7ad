/**
 * Causal delta-state CRDT machinery (Almeida, Shoker, Baquero, "Delta State Replicated Data
 * Types", 2018): dots, causal contexts, and the three dot stores — DotSet, DotFun, DotMap — with
 * the one join that every causal CRDT here is built on. All values are plain data (objects,
 * arrays, strings, numbers), so states and deltas cross the wire as MessagePack as they are.
 */

/** A dot: the `n`-th event of `replica`, written `replica:n`. Replica ids have no `:`. */
export type Dot = string;

export function dot(replica: string, n: number): Dot {
  return `${replica}:${n}`;
}

function parseDot(d: Dot): [string, number] {
  const i = d.lastIndexOf(":");
  return [d.slice(0, i), Number(d.slice(i + 1))];
}

/** What a replica has seen: a version vector plus the dots seen out of order (the cloud). */
export interface CausalContext {
  readonly vv: Readonly<Record<string, number>>;
  readonly cloud: readonly Dot[];
}

export const emptyContext: CausalContext = { vv: {}, cloud: [] };

export function contains(ctx: CausalContext, d: Dot): boolean {
  const [replica, n] = parseDot(d);
  return n <= (ctx.vv[replica] ?? 0) || ctx.cloud.includes(d);
}

/** Folds cloud dots that extend the version vector into it (keeps the context small). */
export function compact(vv: Record<string, number>, cloud: Iterable<Dot>): CausalContext {
  const rest = new Set(cloud);
  let changed = true;
  while (changed) {
    changed = false;
    for (const d of rest) {
      const [replica, n] = parseDot(d);
      const top = vv[replica] ?? 0;
      if (n <= top) {
        rest.delete(d);
        changed = true;
      } else if (n === top + 1) {
        vv[replica] = n;
        rest.delete(d);
        changed = true;
      }
    }
  }
  return { vv, cloud: [...rest].sort() };
}

export function mergeContexts(a: CausalContext, b: CausalContext): CausalContext {
  const vv: Record<string, number> = { ...a.vv };
  for (const [replica, n] of Object.entries(b.vv)) vv[replica] = Math.max(vv[replica] ?? 0, n);
  return compact(vv, [...a.cloud, ...b.cloud]);
}

/** The next dot of `replica` after everything in `ctx`. */
export function nextDot(ctx: CausalContext, replica: string): Dot {
  let n = ctx.vv[replica] ?? 0;
  for (const d of ctx.cloud) {
    const [r, m] = parseDot(d);
    if (r === replica && m > n) n = m;
  }
  return dot(replica, n + 1);
}

/** A context holding exactly these dots. */
export function contextOf(dots: Iterable<Dot>): CausalContext {
  return compact({}, dots);
}

/** Dot stores: sets of dots, dots mapped to values, keys mapped to nested dot stores. */
export type DotStore = DotSet | DotFun | DotMap;
export interface DotSet {
  readonly t: "set";
  readonly dots: readonly Dot[];
}
export interface DotFun {
  readonly t: "fun";
  readonly entries: Readonly<Record<Dot, unknown>>;
}
export interface DotMap {
  readonly t: "map";
  readonly entries: Readonly<Record<string, DotStore>>;
}

/** A dot store with its causal context: the state (or a delta) of a causal CRDT. */
export interface Causal<S extends DotStore = DotStore> {
  readonly store: S;
  readonly ctx: CausalContext;
}

export const emptySet: DotSet = { t: "set", dots: [] };
export const emptyFun: DotFun = { t: "fun", entries: {} };
export const emptyMap: DotMap = { t: "map", entries: {} };

/** Every dot a store mentions. */
export function dotsOf(store: DotStore): Dot[] {
  switch (store.t) {
    case "set":
      return [...store.dots];
    case "fun":
      return Object.keys(store.entries);
    case "map":
      return Object.values(store.entries).flatMap(dotsOf);
  }
}

export function isBottom(store: DotStore): boolean {
  switch (store.t) {
    case "set":
      return store.dots.length === 0;
    case "fun":
      return Object.keys(store.entries).length === 0;
    case "map":
      return Object.keys(store.entries).length === 0;
  }
}

function joinStores(a: DotStore, ca: CausalContext, b: DotStore, cb: CausalContext): DotStore {
  if (a.t === "set" && b.t === "set") {
    const inB = new Set(b.dots);
    const inA = new Set(a.dots);
    const out = new Set<Dot>();
    for (const d of a.dots) if (inB.has(d) || !contains(cb, d)) out.add(d);
    for (const d of b.dots) if (inA.has(d) || !contains(ca, d)) out.add(d);
    return { t: "set", dots: [...out].sort() };
  }
  if (a.t === "fun" && b.t === "fun") {
    const out: Record<Dot, unknown> = {};
    for (const [d, v] of Object.entries(a.entries))
      if (d in b.entries || !contains(cb, d)) out[d] = v;
    for (const [d, v] of Object.entries(b.entries))
      if (d in a.entries || !contains(ca, d)) out[d] = v;
    return { t: "fun", entries: out };
  }
  if (a.t === "map" && b.t === "map") {
    const out: Record<string, DotStore> = {};
    for (const key of new Set([...Object.keys(a.entries), ...Object.keys(b.entries)])) {
      const x = a.entries[key];
      const y = b.entries[key];
      const kind = (x ?? y) as DotStore;
      const joined = joinStores(x ?? bottomLike(kind), ca, y ?? bottomLike(kind), cb);
      if (!isBottom(joined)) out[key] = joined;
    }
    return { t: "map", entries: out };
  }
  throw new TypeError(`cannot join a ${a.t} with a ${b.t}`);
}

function bottomLike(store: DotStore): DotStore {
  return store.t === "set" ? emptySet : store.t === "fun" ? emptyFun : emptyMap;
}

/** The join of two causal states or deltas: commutative, associative, idempotent. */
export function join<S extends DotStore>(a: Causal<S>, b: Causal<S>): Causal<S> {
  return {
    store: joinStores(a.store, a.ctx, b.store, b.ctx) as S,
    ctx: mergeContexts(a.ctx, b.ctx),
  };
}

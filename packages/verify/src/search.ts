import type { Operation } from "./history.js";
import { Memo } from "./memo.js";
import type { Model } from "./model.js";

/**
 * The linearizability search for one sub-history: Wing & Gong's backtracking search with Lowe's
 * memoization, the way Porcupine (github.com/anishathalye/porcupine) arranges it.
 *
 * The call and return events of the operations form a doubly linked list in time order. Walking
 * it from the front, at a call the search tries to linearize that operation now: if the model
 * accepts it and the pair (set of linearized operations, state after it) was not reached before,
 * the operation is taken out of the list and the walk restarts from the front. Meeting a return
 * means an operation that has already returned is not linearized yet, so the last choice was
 * wrong: undo it and try the next call after it. The history is linearizable when the list is
 * empty, and not when the search must undo with nothing left to undo.
 *
 * Operations with unknown outcome return at infinity: they may take effect anywhere after their
 * invocation, and staying last is the same as never taking effect.
 *
 * Sets are bitsets, with the unknown-outcome operations numbered last so that the memo (see
 * memo.ts) can store a set in a few words. A Zobrist hash of the set, updated in O(1) per step,
 * and the model's hash of the state find a pair in the memo.
 */

/** Shared by every search of one check: a deadline, a step allowance, a memo size limit. */
export interface Budget {
  readonly deadline: number;
  readonly maxSteps: number;
  /** Pairs one search may remember (each costs about 40 bytes plus the state). */
  readonly maxMemo: number;
  steps: number;
}

/** Why the search stopped in a non-linearizable sub-history. */
export interface Explanation<S> {
  /** The longest sequence of operations the search could linearize. */
  readonly longest: readonly Operation[];
  /** The model's state after `longest`. */
  readonly state: S;
  /** Operations that had to come next and could not: first the one whose return forced it. */
  readonly stuck: readonly Operation[];
}

export type SearchResult<S> =
  | { readonly type: "linearizable" }
  | {
      readonly type: "violation";
      readonly explanation: Explanation<S> | undefined;
      /** The latest return time the search had to give up at: the history is already not
       * linearizable as it stood then. */
      readonly horizon: number;
    }
  | { readonly type: "out-of-budget"; readonly reason: "timeout" | "memory" };

const NONE = -1;

/** splitmix32: fixed-seed random words for the Zobrist hash, so runs are reproducible. */
function zobrist(count: number, seed: number): Int32Array {
  const out = new Int32Array(count);
  let s = seed | 0;
  for (let i = 0; i < count; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    out[i] = z ^ (z >>> 16);
  }
  return out;
}

/**
 * Searches for a linearization of `operations` (one partition, already filtered of irrelevant
 * operations). With `explain`, a violation comes with the longest linearizable prefix found.
 */
export function searchLinearization<S>(
  operations: readonly Operation[],
  model: Model<S>,
  budget: Budget,
  explain = false,
): SearchResult<S> {
  const n = operations.length;
  if (n === 0) return { type: "linearizable" };

  // Operations with a known return first, by call time; unknown outcomes last.
  const ops = [...operations].sort(
    (a, b) =>
      Number(a.ret === Infinity) - Number(b.ret === Infinity) || a.call - b.call || a.id - b.id,
  );
  let finite = 0;
  while (finite < n && (ops[finite] as Operation).ret !== Infinity) finite++;
  const finiteWords = Math.ceil(finite / 32);
  const words = finiteWords + Math.ceil((n - finite) / 32);
  const bits = new Uint32Array(words);
  const wordOf = new Int32Array(n);
  const maskOf = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const position = i < finite ? i : finiteWords * 32 + (i - finite);
    wordOf[i] = position >>> 5;
    maskOf[i] = (1 << (position & 31)) >>> 0;
  }
  const z1 = zobrist(n, 0x5eed);
  const z2 = zobrist(n, 0x0ddba11);

  // Events: node 0 is the head; operation i has call node 2i+1 and return node 2i+2.
  const order = new Int32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) order[i] = i + 1;
  const timeOf = (node: number): number => {
    const op = ops[(node - 1) >> 1] as Operation;
    return node & 1 ? op.call : op.ret;
  };
  order.sort((a, b) => timeOf(a) - timeOf(b) || (b & 1) - (a & 1) || a - b);
  const next = new Int32Array(2 * n + 1).fill(NONE);
  const prev = new Int32Array(2 * n + 1).fill(NONE);
  let last = 0;
  for (const node of order) {
    next[last] = node;
    prev[node] = last;
    last = node;
  }

  const unlink = (node: number): void => {
    const p = prev[node] as number;
    const q = next[node] as number;
    next[p] = q;
    if (q !== NONE) prev[q] = p;
  };
  const relink = (node: number): void => {
    const p = prev[node] as number;
    const q = next[node] as number;
    next[p] = node;
    if (q !== NONE) prev[q] = node;
  };

  // The linearized set, its hash, and the bounds that make its stored form short.
  let h1 = 0;
  let h2 = 0;
  let firstOpen = 0; // lowest finite operation not linearized (== finite when none)
  let lastLinearized = -1; // highest finite operation linearized
  const isSet = (i: number): boolean =>
    ((bits[wordOf[i] as number] as number) & (maskOf[i] as number)) !== 0;
  const set = (i: number): void => {
    bits[wordOf[i] as number] = (bits[wordOf[i] as number] as number) | (maskOf[i] as number);
    h1 ^= z1[i] as number;
    h2 ^= z2[i] as number;
    if (i < finite) {
      if (i > lastLinearized) lastLinearized = i;
      if (i === firstOpen) while (firstOpen < finite && isSet(firstOpen)) firstOpen++;
    }
  };
  const clear = (i: number): void => {
    bits[wordOf[i] as number] = (bits[wordOf[i] as number] as number) & ~(maskOf[i] as number);
    h1 ^= z1[i] as number;
    h2 ^= z2[i] as number;
    if (i < finite) {
      if (i < firstOpen) firstOpen = i;
      if (i === lastLinearized)
        while (lastLinearized >= 0 && !isSet(lastLinearized)) lastLinearized--;
    }
  };

  const memo = new Memo<S>({
    finiteWords,
    tailWords: words - finiteWords,
    equal: (a, b) => model.equal(a, b),
    expected: 2 * n,
  });
  /** Adds the current (set, state) pair; false if it was there already. */
  const remember = (state: S): boolean => {
    const sh = model.hash(state) | 0;
    return memo.add(
      h1 ^ sh,
      h2 ^ Math.imul(sh, 0x27d4eb2d),
      bits,
      firstOpen,
      lastLinearized,
      state,
    );
  };

  const observation = Uint8Array.from(ops, (op) => (model.observation?.(op) === true ? 1 : 0));
  const blind = Uint8Array.from(ops, (op) => (model.blind?.(op) === true ? 1 : 0));
  const stackOps = new Int32Array(n);
  const stackStates: S[] = new Array<S>(n);
  /** Whether the choice at that depth was an observation taken greedily (nothing to retry). */
  const greedy = new Uint8Array(n);
  let depth = 0;
  let state = model.init();
  let entry = next[0] as number;
  let unplaced = finite; // operations with a known return not linearized yet
  let horizon = -Infinity;
  // The longest prefix so far, kept in `bestOps` up to `bestDepth`; stack entries below `kept`
  // have not changed since it was taken, so taking the next one copies only what changed.
  const bestOps = explain ? new Int32Array(n) : new Int32Array(0);
  let bestDepth = -1;
  let kept = 0;
  let best: Explanation<S> | undefined;
  const now = (): number => performance.now();
  const violation = (): SearchResult<S> => ({
    type: "violation",
    explanation:
      best === undefined
        ? undefined
        : {
            ...best,
            longest: Array.from(bestOps.subarray(0, bestDepth), (i) => ops[i] as Operation),
          },
    horizon,
  });

  /**
   * Whether placing a blind operation (one that sets the state whatever it was) now would erase
   * the effect of an unknown-outcome operation that nobody needed: the last state-changing choice
   * on the stack is unknown-outcome, and every observation placed since would also hold in the
   * state before it. Then the same order without it — which the search tries too, and which
   * keeps it pending for later or never — is at least as good, and this one can be skipped.
   */
  const unseen = (): boolean => {
    let d = depth - 1;
    while (d >= 0 && observation[stackOps[d] as number] === 1) d--;
    if (d < 0 || (stackOps[d] as number) < finite) return false;
    const before = stackStates[d] as S;
    for (let j = d + 1; j < depth; j++)
      if (!model.step(before, ops[stackOps[j] as number] as Operation).ok) return false;
    return true;
  };

  /** Undoes choices until one leaves alternatives to try; false when none is left. */
  const backtrack = (): boolean => {
    for (;;) {
      if (depth === 0) return false;
      depth--;
      if (depth < kept) kept = depth;
      const i = stackOps[depth] as number;
      state = stackStates[depth] as S;
      clear(i);
      relink(2 * i + 2);
      relink(2 * i + 1);
      if (i < finite) unplaced++;
      if (greedy[depth] === 0) {
        entry = next[2 * i + 1] as number;
        return true;
      }
    }
  };

  // Operations of unknown outcome never force a backtrack, and staying last is "never took
  // effect", so once every operation with a known return is placed, the history is linearizable.
  while (unplaced > 0) {
    if (
      ++budget.steps > budget.maxSteps ||
      ((budget.steps & 1023) === 0 && now() > budget.deadline)
    )
      return { type: "out-of-budget", reason: "timeout" };
    if (memo.size > budget.maxMemo) return { type: "out-of-budget", reason: "memory" };
    if (entry & 1) {
      const i = (entry - 1) >> 1;
      if (blind[i] === 1 && unseen()) {
        entry = next[entry] as number;
        continue;
      }
      const result = model.step(state, ops[i] as Operation);
      if (!result.ok) {
        entry = next[entry] as number;
        continue;
      }
      // An unknown-outcome operation that would change nothing here is better left pending: it
      // can still take effect later, or never, which is the same as now.
      if (i >= finite && model.equal(result.state, state)) {
        entry = next[entry] as number;
        continue;
      }
      set(i);
      if (remember(result.state)) {
        stackOps[depth] = i;
        stackStates[depth] = state;
        // An observation the state allows now is taken now, for good: any linearization that
        // places it later could place it here instead, as it changes nothing.
        greedy[depth] = observation[i] as number;
        depth++;
        state = result.state;
        unlink(entry);
        unlink(entry + 1);
        if (i < finite) unplaced--;
        entry = next[0] as number;
        continue;
      }
      clear(i);
      // Reached before and failed; for an observation that means this configuration fails too.
      if (observation[i] === 1 && !backtrack()) return violation();
      else if (observation[i] !== 1) entry = next[entry] as number;
      continue;
    }
    // A return whose operation is not linearized: every choice before it failed.
    horizon = Math.max(horizon, timeOf(entry));
    if (explain && depth > bestDepth) {
      bestDepth = depth;
      best = explainAt(entry);
    }
    if (!backtrack()) return violation();
  }
  return { type: "linearizable" };

  function explainAt(returnNode: number): Explanation<S> {
    bestOps.set(stackOps.subarray(kept, depth), kept);
    kept = depth;
    const forced = ops[(returnNode - 1) >> 1] as Operation;
    const stuck = [forced];
    for (
      let node = next[0] as number;
      node !== returnNode && node !== NONE;
      node = next[node] as number
    ) {
      if ((node & 1) === 0) continue;
      const op = ops[(node - 1) >> 1] as Operation;
      if (op !== forced && !model.step(state, op).ok) stuck.push(op);
    }
    return { longest: [], state, stuck };
  }
}

import type { Operation } from "./history.js";
import type { Model } from "./model.js";

/** The checker's verdict. */
export type Verdict =
  | {
      readonly result: "linearizable";
      readonly operations: number;
      readonly partitions: number;
      readonly ms: number;
    }
  | {
      readonly result: "not-linearizable";
      readonly operations: number;
      readonly partitions: number;
      readonly ms: number;
      /** The first sub-history (e.g. one key) that cannot be linearized. */
      readonly counterexample: Counterexample;
    }
  | {
      readonly result: "unknown";
      readonly reason: "timeout";
      readonly operations: number;
      readonly ms: number;
    };

/** Where the search got stuck in a non-linearizable sub-history. */
export interface Counterexample {
  readonly key: string;
  /** The longest order of operations the search could linearize. */
  readonly linearized: readonly Operation[];
  /** Operations that had to come next (their return passed) but could not be placed. */
  readonly stuck: readonly Operation[];
  /** Every operation of the sub-history, by call time. */
  readonly operations: readonly Operation[];
}

interface Entry {
  op: Operation;
  isCall: boolean;
  time: number;
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

class Budget {
  private steps = 0;
  private readonly deadline: number;
  constructor(timeoutMs: number) {
    this.deadline = performance.now() + timeoutMs;
  }
  spent(): boolean {
    return (++this.steps & 1023) === 0 && performance.now() > this.deadline;
  }
}

type Outcome =
  { ok: true } | { ok: false; linearized: Operation[]; stuck: Operation[] } | { ok: "timeout" };

/**
 * Wing & Gong's search with Lowe's memoization, as Porcupine does it: walk the history's call and
 * return events; at a call, try to linearize that operation now (if the model allows it and the
 * (linearized set, state) pair was not tried before); at a return whose call is not linearized
 * yet, backtrack. `info` operations return at infinity, so they may be placed late, i.e. never.
 */
function search<S>(ops: readonly Operation[], model: Model<S>, budget: Budget): Outcome {
  const events: Entry[] = [];
  for (const op of ops) {
    const call: Entry = {
      op,
      isCall: true,
      time: op.call,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    const ret: Entry = {
      op,
      isCall: false,
      time: op.ret,
      match: call,
      prev: undefined,
      next: undefined,
    };
    call.match = ret;
    events.push(call, ret);
  }
  // By time; at equal times calls come first (overlapping operations are concurrent).
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry = {
    op: undefined as unknown as Operation,
    isCall: false,
    time: -Infinity,
    match: undefined,
    prev: undefined,
    next: undefined,
  };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  const n = ops.length;
  const index = new Map<number, number>(ops.map((op, i) => [op.id, i]));
  const linearized = new Uint32Array(Math.ceil(n / 32));
  const seen = new Set<string>();
  const stack: Array<{ entry: Entry; state: S }> = [];
  let state = model.init();
  let entry = head.next;
  let best: Operation[] = [];
  let stuckAtBest: Operation[] = [];

  const lift = (e: Entry): void => {
    const ret = e.match as Entry;
    (e.prev as Entry).next = e.next;
    if (e.next !== undefined) e.next.prev = e.prev;
    (ret.prev as Entry).next = ret.next;
    if (ret.next !== undefined) ret.next.prev = ret.prev;
  };
  const unlift = (e: Entry): void => {
    const ret = e.match as Entry;
    (ret.prev as Entry).next = ret;
    if (ret.next !== undefined) ret.next.prev = ret;
    (e.prev as Entry).next = e;
    if (e.next !== undefined) e.next.prev = e;
  };
  const flip = (op: Operation): void => {
    const i = index.get(op.id) as number;
    linearized[i >>> 5] = (linearized[i >>> 5] as number) ^ (1 << (i & 31));
  };

  while (head.next !== undefined) {
    if (budget.spent()) return { ok: "timeout" };
    if (entry === undefined) return { ok: false, linearized: best, stuck: stuckAtBest };
    if (entry.isCall) {
      const { ok, state: next } = model.step(state, entry.op);
      if (ok) {
        flip(entry.op);
        const key = `${Array.prototype.join.call(linearized, ",")}|${model.key(next)}`;
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ entry, state });
          state = next;
          lift(entry);
          if (stack.length > best.length) {
            best = stack.map((s) => s.entry.op);
            stuckAtBest = [];
          }
          entry = head.next;
          continue;
        }
        flip(entry.op);
      }
      entry = entry.next;
      continue;
    }
    // A return whose operation is not linearized yet: everything before it was tried.
    if (stack.length === best.length && !stuckAtBest.includes(entry.op)) stuckAtBest.push(entry.op);
    const top = stack.pop();
    if (top === undefined)
      return {
        ok: false,
        linearized: best,
        stuck: stuckAtBest.length > 0 ? stuckAtBest : [entry.op],
      };
    state = top.state;
    flip(top.entry.op);
    unlift(top.entry);
    entry = top.entry.next;
  }
  return { ok: true };
}

/**
 * Checks that a history of operations is linearizable with respect to `model`, partition by
 * partition (per key for registers). Returns `unknown` when the budget runs out.
 *
 * @example
 * checkLinearizable(pairOperations(events), registerModel(null), { timeoutMs: 10_000 });
 */
export function checkLinearizable<S>(
  operations: readonly Operation[],
  model: Model<S>,
  options: { readonly timeoutMs?: number } = {},
): Verdict {
  const started = performance.now();
  const ops = operations.filter((op) => model.irrelevant?.(op) !== true);
  const partitions = model.partition?.(ops) ?? [ops];
  const budget = new Budget(options.timeoutMs ?? 60_000);
  for (const part of partitions) {
    const outcome = search(part, model, budget);
    if (outcome.ok === "timeout") {
      return {
        result: "unknown",
        reason: "timeout",
        operations: ops.length,
        ms: performance.now() - started,
      };
    }
    if (outcome.ok === false) {
      return {
        result: "not-linearizable",
        operations: ops.length,
        partitions: partitions.length,
        ms: performance.now() - started,
        counterexample: {
          key: part[0]?.key ?? "",
          linearized: outcome.linearized,
          stuck: outcome.stuck,
          operations: [...part].sort((a, b) => a.call - b.call),
        },
      };
    }
  }
  return {
    result: "linearizable",
    operations: ops.length,
    partitions: partitions.length,
    ms: performance.now() - started,
  };
}

import type { HistoryEvent, Operation, Outcome } from "../history.js";
import type { Model } from "../model.js";

/**
 * One operation as its two events, for writing histories by hand: `call` and `ret` are its
 * times; `outcome: "info"` leaves it without a completion (the client never learned).
 */
export function op(
  process: number | string,
  f: string,
  input: unknown,
  output: unknown,
  call: number,
  ret: number,
  options: { readonly outcome?: Outcome; readonly key?: string } = {},
): HistoryEvent[] {
  const key = options.key === undefined ? {} : { key: options.key };
  const outcome = options.outcome ?? "ok";
  const invoke: HistoryEvent = { process, type: "invoke", f, value: input, time: call, ...key };
  if (outcome === "info") return [invoke];
  return [invoke, { process, type: outcome, f, value: output, time: ret, ...key }];
}

/** Register shorthands: `w(p, v, call, ret)`, `r(p, v, call, ret)`, `cas(p, [e, n], call, ret)`. */
export const w = (
  p: number | string,
  v: unknown,
  call: number,
  ret: number,
  outcome: Outcome = "ok",
) => op(p, "write", v, v, call, ret, { outcome });
export const r = (p: number | string, v: unknown, call: number, ret: number) =>
  op(p, "read", null, v, call, ret);
export const cas = (
  p: number | string,
  expectedAndNew: readonly [unknown, unknown],
  call: number,
  ret: number,
  outcome: Outcome = "ok",
) => op(p, "cas", expectedAndNew, expectedAndNew, call, ret, { outcome });

/** Events of several operations in time order (an invocation before a completion at ties). */
export function history(...ops: HistoryEvent[][]): HistoryEvent[] {
  return ops
    .flat()
    .map((event, index) => ({ event, index }))
    .sort(
      (a, b) =>
        (a.event.time ?? 0) - (b.event.time ?? 0) ||
        Number(a.event.type !== "invoke") - Number(b.event.type !== "invoke") ||
        a.index - b.index,
    )
    .map(({ event }) => event);
}

/**
 * The definition, by exhaustion: is there an order of the operations that respects real time
 * (an operation that returned before another was invoked comes first) and the model, in which
 * every operation with a known outcome appears and each unknown-outcome one appears or not?
 * Exponential; for histories of a handful of operations, to check the search against.
 */
export function linearizableByExhaustion<S>(
  operations: readonly Operation[],
  model: Model<S>,
): boolean {
  const ops = operations.filter((o) => model.irrelevant?.(o) !== true);
  const placed = new Array<boolean>(ops.length).fill(false);
  const mustPlace = ops.filter((o) => o.ret !== Infinity).length;
  const search = (state: S, count: number): boolean => {
    if (count === mustPlace) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i] === true) continue;
      const candidate = ops[i] as Operation;
      if (ops.some((other, j) => placed[j] !== true && other.ret < candidate.call)) continue;
      const result = model.step(state, candidate);
      if (!result.ok) continue;
      placed[i] = true;
      const done = search(result.state, count + (candidate.ret === Infinity ? 0 : 1));
      placed[i] = false;
      if (done) return true;
    }
    return false;
  };
  return search(model.init(), 0);
}

/** The sub-history a counterexample stands for: operations still running at `cut` made unknown. */
export function asOfCut(operations: readonly Operation[], cut: number | undefined): Operation[] {
  return operations.map((o) =>
    cut !== undefined && o.ret > cut
      ? { ...o, outcome: "info" as const, output: undefined, ret: Infinity }
      : o,
  );
}

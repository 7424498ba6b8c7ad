import type { Operation } from "./history.js";

/**
 * A sequential specification the checker linearizes against. `step` says whether `op` may take
 * effect in `state` with the result it recorded, and the state after it.
 */
export interface Model<S> {
  init(): S;
  step(state: S, op: Operation): { readonly ok: boolean; readonly state: S };
  /** A string that is equal for equal states (memoization). */
  key(state: S): string;
  /** Splits a history into independent sub-histories (P-compositionality); default: one. */
  partition?(ops: readonly Operation[]): Operation[][];
  /** Operations that carry no constraint and may be dropped before the search. */
  irrelevant?(op: Operation): boolean;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined)
    return a === b || (a ?? null) === (b ?? null);
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Per-key registers with `read`, `write` and `cas` (input `[expected, new]`), as Jepsen records
 * them. An `ok` read must return the current value; a failed cas is an observation that the
 * compare did not match; an `info` operation may have taken effect or not.
 */
export function registerModel(initial: unknown = null): Model<unknown> {
  return {
    init: () => initial,
    key: (state) => JSON.stringify(state ?? null),
    partition(ops) {
      const byKey = new Map<string, Operation[]>();
      for (const op of ops) byKey.set(op.key, [...(byKey.get(op.key) ?? []), op]);
      return [...byKey.values()];
    },
    irrelevant(op) {
      // A read whose result is unknown constrains nothing; a write or read that failed did not happen.
      return (
        (op.f === "read" && op.outcome === "info") || (op.outcome === "fail" && op.f !== "cas")
      );
    },
    step(state, op) {
      switch (op.f) {
        case "read":
          return { ok: same(op.output, state), state };
        case "write":
          return { ok: true, state: op.input };
        case "cas": {
          if (!Array.isArray(op.input) || op.input.length !== 2) return { ok: false, state };
          const [expected, next] = op.input as [unknown, unknown];
          const matches = same(state, expected);
          if (op.outcome === "ok") return { ok: matches, state: matches ? next : state };
          if (op.outcome === "fail") return { ok: !matches, state };
          return { ok: true, state: matches ? next : state }; // info: whatever happened is fine
        }
        default:
          return { ok: false, state };
      }
    },
  };
}

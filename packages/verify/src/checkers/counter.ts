import type { HistoryEvent, Operation } from "../history.js";
import {
  addExact,
  badOperation,
  capped,
  countOutcome,
  finalReadsByReplica,
  isNemesis,
  refOf,
  toOperations,
  wholeNumber,
  type CheckerOptions,
  type OperationRef,
  type OutcomeCounts,
} from "./common.js";

/** Options of the CRDT checkers. */
export interface ConvergenceOptions extends CheckerOptions {
  /** The replicas that must each end with a final read (default: the replicas read). */
  readonly replicas?: readonly string[];
}

/** Something wrong with a counter history. */
export type CounterAnomaly =
  | {
      /** The replicas' final reads differ: they did not converge. */
      readonly type: "diverged";
      readonly values: Readonly<Record<string, number>>;
      readonly reads: readonly OperationRef[];
    }
  | {
      /** A final read outside what the updates allow. */
      readonly type: "out-of-bounds";
      readonly replica: string;
      readonly value: number;
      readonly lower: number;
      readonly upper: number;
      readonly read: OperationRef;
    }
  | {
      /** A replica that has no final read, so its convergence is unknown. */
      readonly type: "no-final-read";
      readonly replica: string;
    };

/** The counter checker's verdict. */
export interface CounterVerdict {
  /** Every replica has a final read, all equal, within the bounds. */
  readonly valid: boolean;
  readonly counts: {
    readonly increments: OutcomeCounts;
    readonly decrements: OutcomeCounts;
    /** Reads that returned a value (`ok`), final or not. */
    readonly reads: number;
    readonly finalReads: number;
  };
  /**
   * The values the counter may end at: every ok change, plus any of the unknown-outcome ones
   * (the negative ones lower the floor, the positive ones raise the ceiling).
   */
  readonly bounds: { readonly lower: number; readonly upper: number };
  /** Each replica's final read. */
  readonly values: Readonly<Record<string, number>>;
  readonly anomalies: readonly CounterAnomaly[];
  readonly omitted: number;
}

/**
 * Checks a replicated counter (a G-counter or PN-counter CRDT) for convergence: after healing,
 * every replica reads the same value, and that value counts every acknowledged change and no
 * change nobody made.
 *
 * Input: `increment` (or `add`) operations whose value is the amount (default 1; `add` may be
 * negative), `decrement` operations (amount subtracted, default 1), and `read` operations whose
 * key names the replica read and whose `ok` value is the count. Amounts and counts are whole
 * JSON numbers within ±2^53. Each replica's final read is its last ok read begun after every
 * change was invoked and every ok one completed; earlier reads are only counted. Failed changes
 * did not happen; unknown-outcome ones may have.
 *
 * @throws {HistoryError} for an unknown operation, a non-numeric amount or count, or a read
 * without a replica key (or of a replica not in `replicas`).
 *
 * @example
 * checkCounter(parseJsonHistory(text), { replicas: ["n1", "n2", "n3"] });
 */
export function checkCounter(
  history: readonly HistoryEvent[] | readonly Operation[],
  options: ConvergenceOptions = {},
): CounterVerdict {
  const operations = toOperations(history).filter((op) => !isNemesis(op));
  const increments = { ok: 0, info: 0, fail: 0 };
  const decrements = { ok: 0, info: 0, fail: 0 };
  const updates: Operation[] = [];
  const reads: Operation[] = [];
  let lower = 0;
  let upper = 0;
  for (const op of operations) {
    let delta: number;
    switch (op.f) {
      case "increment":
      case "add":
        countOutcome(increments, op);
        delta = wholeNumber(op, op.input ?? 1, "the amount");
        if (op.f === "increment" && delta < 0)
          throw badOperation(op, `an increment's amount cannot be negative, got ${delta}`);
        break;
      case "decrement": {
        countOutcome(decrements, op);
        const amount = wholeNumber(op, op.input ?? 1, "the amount");
        if (amount < 0)
          throw badOperation(op, `a decrement's amount cannot be negative, got ${amount}`);
        delta = -amount;
        break;
      }
      case "read":
        reads.push(op);
        if (op.outcome === "ok") wholeNumber(op, op.output, "a read's value");
        continue;
      default:
        throw badOperation(
          op,
          `unknown operation "${op.f}" (a counter history has increment, add, decrement and read)`,
        );
    }
    updates.push(op);
    if (op.outcome === "fail") continue;
    if (op.outcome === "ok" || delta < 0) lower = addExact(lower, delta, op, "the counter");
    if (op.outcome === "ok" || delta > 0) upper = addExact(upper, delta, op, "the counter");
  }
  const { finals, unread } = finalReadsByReplica(reads, updates, options.replicas);
  const anomalies: CounterAnomaly[] = unread.map((replica) => ({
    type: "no-final-read",
    replica,
  }));
  const values: Record<string, number> = {};
  for (const { replica, op } of finals) values[replica] = op.output as number;
  if (new Set(Object.values(values)).size > 1)
    anomalies.push({ type: "diverged", values, reads: finals.map((f) => refOf(f.op)) });
  for (const { replica, op } of finals) {
    const value = op.output as number;
    if (value < lower || value > upper)
      anomalies.push({ type: "out-of-bounds", replica, value, lower, upper, read: refOf(op) });
  }
  const listed = capped(anomalies, options);
  return {
    valid: anomalies.length === 0,
    counts: {
      increments,
      decrements,
      reads: reads.filter((op) => op.outcome === "ok").length,
      finalReads: finals.length,
    },
    bounds: { lower, upper },
    values,
    anomalies: listed.anomalies,
    omitted: listed.omitted,
  };
}

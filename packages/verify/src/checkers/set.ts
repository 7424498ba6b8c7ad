import { HistoryError, type HistoryEvent, type Operation } from "../history.js";
import {
  badOperation,
  capped,
  countOutcome,
  elementKey,
  isNemesis,
  refOf,
  show,
  toOperations,
  type CheckerOptions,
  type OperationRef,
  type OutcomeCounts,
} from "./common.js";

/** Something wrong with a set history: each names the element and the operations involved. */
export type SetAnomaly =
  | {
      /** An acknowledged (`ok`) add whose element is missing from a final read. */
      readonly type: "lost";
      readonly element: unknown;
      /** The first ok add of the element. */
      readonly add: OperationRef;
      /** The final reads that do not contain it. */
      readonly missingFrom: readonly OperationRef[];
    }
  | {
      /** An element a single read returned more than once. */
      readonly type: "duplicated";
      readonly element: unknown;
      readonly read: OperationRef;
      readonly count: number;
    }
  | {
      /**
       * An element read that was never added (`never-attempted`) or whose every add failed
       * (`failed`: a `fail` means the add did not happen).
       */
      readonly type: "unexpected";
      readonly element: unknown;
      readonly reason: "never-attempted" | "failed";
      /** The first read that returned it, and how many reads did. */
      readonly read: OperationRef;
      readonly reads: number;
      /** The failed adds, for `failed`. */
      readonly adds: readonly OperationRef[];
    };

/** An add whose outcome the client did not learn (`info`) and whose element a final read has. */
export interface SetRecovered {
  readonly element: unknown;
  readonly add: OperationRef;
}

/** The set checker's verdict. */
export interface SetVerdict {
  /** No lost, duplicated or unexpected element. */
  readonly valid: boolean;
  readonly counts: {
    readonly adds: OutcomeCounts;
    /** Reads that returned a value (`ok`). */
    readonly reads: number;
    /** Of those, the final reads: begun after every add had completed or been given up on. */
    readonly finalReads: number;
    readonly lost: number;
    readonly duplicated: number;
    readonly unexpected: number;
    readonly recovered: number;
  };
  readonly anomalies: readonly SetAnomaly[];
  /** Recovered adds (not anomalies), listed up to `maxAnomalies`. */
  readonly recovered: readonly SetRecovered[];
  /** Anomalies and recovered adds left out of the lists beyond `maxAnomalies`. */
  readonly omitted: number;
}

interface Attempts {
  readonly element: unknown;
  readonly ok: Operation[];
  readonly info: Operation[];
  readonly fail: Operation[];
}

/**
 * Checks a set workload, as Jepsen's set checker does, from its final reads.
 *
 * Input: `add` operations whose invocation value is the element (any JSON value; elements
 * compare by value), and `read` operations whose `ok` value is an array of every element the
 * read saw — for a queue or stream workload, everything consumed. Keys are ignored (use them to
 * name the node a read went to). The final reads are the `ok` reads begun after every add had
 * completed (an `info` add: after it was invoked); there must be at least one. Failed and
 * unknown-outcome reads are ignored; the fault injector's operations (process `"nemesis"`) too.
 *
 * - `lost`: an `ok` add missing from a final read.
 * - `duplicated`: an element that one read (any `ok` read) returned more than once.
 * - `unexpected`: an element a read returned that no add attempted — or whose every add
 *   failed. Jepsen's `set` counts a failed add that turns up as recovered; here a `fail` means
 *   the operation certainly did not happen, so its element turning up is an anomaly.
 * - `recovered`: an `info` add whose element a final read has (it happened after all; fine).
 *
 * @throws {HistoryError} when the history is not a set history (an unknown operation, a read
 * that did not return an array, no final read), naming the line.
 *
 * @example
 * const verdict = checkSet(parseJsonHistory(text));
 * if (!verdict.valid) console.log(verdict.anomalies);
 */
export function checkSet(
  history: readonly HistoryEvent[] | readonly Operation[],
  options: CheckerOptions = {},
): SetVerdict {
  const operations = toOperations(history).filter((op) => !isNemesis(op));
  const attempts = new Map<string, Attempts>();
  const adds = { ok: 0, info: 0, fail: 0 };
  const reads: Array<{ readonly op: Operation; readonly values: readonly unknown[] }> = [];
  let quiet = -Infinity;
  for (const op of operations) {
    switch (op.f) {
      case "add": {
        countOutcome(adds, op);
        const key = elementKey(op.input);
        let entry = attempts.get(key);
        if (entry === undefined) {
          entry = { element: op.input ?? null, ok: [], info: [], fail: [] };
          attempts.set(key, entry);
        }
        entry[op.outcome].push(op);
        quiet = Math.max(quiet, op.outcome === "info" ? op.call : op.ret);
        break;
      }
      case "read":
        if (op.outcome !== "ok") break;
        if (!Array.isArray(op.output))
          throw badOperation(op, `a read returns an array of elements, got ${show(op.output)}`);
        reads.push({ op, values: op.output as readonly unknown[] });
        break;
      default:
        throw badOperation(op, `unknown operation "${op.f}" (a set history has add and read)`);
    }
  }
  const finals = reads.filter((r) => r.op.call >= quiet);
  if (finals.length === 0)
    throw new HistoryError(
      reads.length === 0
        ? "the set was never read: a set history ends with an ok read of the whole set"
        : "no final read: every ok read began before the last add completed; end the workload with a read of the whole set",
    );

  const anomalies: SetAnomaly[] = [];
  const unexpected = new Map<
    string,
    { element: unknown; first: Operation; reads: number; reason: "never-attempted" | "failed" }
  >();
  const finalSeen: Array<ReadonlySet<string>> = [];
  const isFinal = new Set(finals.map((r) => r.op));
  for (const { op, values } of reads) {
    const counts = new Map<string, { element: unknown; count: number }>();
    for (const value of values) {
      const key = elementKey(value);
      const seen = counts.get(key);
      if (seen === undefined) counts.set(key, { element: value ?? null, count: 1 });
      else seen.count++;
    }
    for (const [key, { element, count }] of counts) {
      if (count > 1) anomalies.push({ type: "duplicated", element, read: refOf(op), count });
      const tried = attempts.get(key);
      if (tried !== undefined && (tried.ok.length > 0 || tried.info.length > 0)) continue;
      const known = unexpected.get(key);
      if (known !== undefined) known.reads++;
      else
        unexpected.set(key, {
          element,
          first: op,
          reads: 1,
          reason: tried === undefined ? "never-attempted" : "failed",
        });
    }
    if (isFinal.has(op)) finalSeen.push(new Set(counts.keys()));
  }
  for (const [key, { element, first, reads: n, reason }] of unexpected)
    anomalies.push({
      type: "unexpected",
      element,
      reason,
      read: refOf(first),
      reads: n,
      adds: (attempts.get(key)?.fail ?? []).map(refOf),
    });

  const recovered: SetRecovered[] = [];
  for (const [key, entry] of attempts) {
    const first = entry.ok[0];
    if (first !== undefined) {
      const missing = finals.filter((_, i) => !(finalSeen[i] as ReadonlySet<string>).has(key));
      if (missing.length > 0)
        anomalies.push({
          type: "lost",
          element: entry.element,
          add: refOf(first),
          missingFrom: missing.map((r) => refOf(r.op)),
        });
      continue;
    }
    const info = entry.info[0];
    if (info !== undefined && finalSeen.some((seen) => seen.has(key)))
      recovered.push({ element: entry.element, add: refOf(info) });
  }
  anomalies.sort(byTime);
  const count = (type: SetAnomaly["type"]): number =>
    anomalies.filter((a) => a.type === type).length;
  const listed = capped(anomalies, options);
  const recoveredListed = capped(recovered, options);
  return {
    valid: anomalies.length === 0,
    counts: {
      adds,
      reads: reads.length,
      finalReads: finals.length,
      lost: count("lost"),
      duplicated: count("duplicated"),
      unexpected: count("unexpected"),
      recovered: recovered.length,
    },
    anomalies: listed.anomalies,
    recovered: recoveredListed.anomalies,
    omitted: listed.omitted + recoveredListed.omitted,
  };
}

const timeOf = (a: SetAnomaly): number => (a.type === "lost" ? a.add.call : a.read.call);
const byTime = (a: SetAnomaly, b: SetAnomaly): number => timeOf(a) - timeOf(b);

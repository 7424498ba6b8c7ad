import type { HistoryEvent, Operation } from "../history.js";
import {
  badOperation,
  capped,
  countOutcome,
  elementKey,
  finalReadsByReplica,
  isNemesis,
  refOf,
  show,
  toOperations,
  type OperationRef,
  type OutcomeCounts,
} from "./common.js";
import type { ConvergenceOptions } from "./counter.js";

/** Something wrong with an add-wins set history. */
export type CrdtSetAnomaly =
  | {
      /** The replicas' final reads differ; `differences` lists the elements not on all. */
      readonly type: "diverged";
      readonly reads: readonly OperationRef[];
      readonly differences: ReadonlyArray<{
        readonly element: unknown;
        readonly presentOn: readonly string[];
        readonly absentOn: readonly string[];
      }>;
    }
  | {
      /**
       * An element a replica lacks although an ok add of it came after every remove of it had
       * completed: no remove can have observed that add, so it must survive (add wins).
       */
      readonly type: "lost";
      readonly element: unknown;
      readonly add: OperationRef;
      readonly missingOn: readonly string[];
    }
  | {
      /** An element read that no add attempted, or whose every add failed. */
      readonly type: "unexpected";
      readonly element: unknown;
      readonly reason: "never-attempted" | "failed";
      readonly presentOn: readonly string[];
    }
  | {
      /** A read that returned an element more than once. */
      readonly type: "duplicated";
      readonly element: unknown;
      readonly replica: string;
      readonly read: OperationRef;
      readonly count: number;
    }
  | {
      /** A replica that has no final read, so its convergence is unknown. */
      readonly type: "no-final-read";
      readonly replica: string;
    };

/** The add-wins set checker's verdict. */
export interface CrdtSetVerdict {
  /** Every replica has a final read, all equal, with no lost, unexpected or repeated element. */
  readonly valid: boolean;
  readonly counts: {
    readonly adds: OutcomeCounts;
    readonly removes: OutcomeCounts;
    readonly reads: number;
    readonly finalReads: number;
    /** Elements that must be present (an ok add no remove can have observed). */
    readonly required: number;
  };
  readonly anomalies: readonly CrdtSetAnomaly[];
  readonly omitted: number;
}

interface ElementOps {
  readonly element: unknown;
  /** Latest invocation of an ok add, and that add. */
  lastOkAdd: Operation | undefined;
  attempted: boolean;
  failedOnly: boolean;
  /** Latest return of a remove that may have happened (ok or info): infinity for info. */
  lastRemove: number;
}

/**
 * Checks an add-wins observed-remove set (OR-Set CRDT) for convergence.
 *
 * Input: `add` and `remove` operations whose value is the element (any JSON value, compared by
 * value), and `read` operations whose key names the replica and whose `ok` value is an array of
 * the elements. Final reads as for `checkCounter`: one per replica, after every update.
 *
 * - all final reads are equal as sets (`diverged` otherwise);
 * - an element with an `ok` add that every remove of it (ok or unknown-outcome) completed before
 *   is on every replica (`lost`): no remove can have observed that add, and in an add-wins set
 *   only a remove that observed an add undoes it. An element whose adds may have been observed
 *   by a remove may be present or not; a client's history cannot tell which adds a remove saw;
 * - no element is read that was never added or whose every add failed (`unexpected`);
 * - `info` adds may or may not have taken effect.
 *
 * @throws {HistoryError} for an unknown operation, a read that is not an array, or a read without
 * a replica key.
 *
 * @example
 * checkCrdtSet(parseJsonHistory(text), { replicas: ["n1", "n2", "n3"] });
 */
export function checkCrdtSet(
  history: readonly HistoryEvent[] | readonly Operation[],
  options: ConvergenceOptions = {},
): CrdtSetVerdict {
  const operations = toOperations(history).filter((op) => !isNemesis(op));
  const adds = { ok: 0, info: 0, fail: 0 };
  const removes = { ok: 0, info: 0, fail: 0 };
  const elements = new Map<string, ElementOps>();
  const entry = (value: unknown): ElementOps => {
    const key = elementKey(value);
    let found = elements.get(key);
    if (found === undefined) {
      found = {
        element: value ?? null,
        lastOkAdd: undefined,
        attempted: false,
        failedOnly: true,
        lastRemove: -Infinity,
      };
      elements.set(key, found);
    }
    return found;
  };
  const updates: Operation[] = [];
  const reads: Operation[] = [];
  for (const op of operations) {
    switch (op.f) {
      case "add": {
        countOutcome(adds, op);
        updates.push(op);
        const e = entry(op.input);
        e.attempted = true;
        if (op.outcome !== "fail") e.failedOnly = false;
        if (op.outcome === "ok" && (e.lastOkAdd === undefined || op.call > e.lastOkAdd.call))
          e.lastOkAdd = op;
        break;
      }
      case "remove": {
        countOutcome(removes, op);
        updates.push(op);
        if (op.outcome !== "fail") {
          const e = entry(op.input);
          e.lastRemove = Math.max(e.lastRemove, op.ret);
        }
        break;
      }
      case "read":
        reads.push(op);
        if (op.outcome === "ok" && !Array.isArray(op.output))
          throw badOperation(op, `a read returns an array of elements, got ${show(op.output)}`);
        break;
      default:
        throw badOperation(
          op,
          `unknown operation "${op.f}" (an add-wins set history has add, remove and read)`,
        );
    }
  }
  const { finals, unread } = finalReadsByReplica(reads, updates, options.replicas);
  const anomalies: CrdtSetAnomaly[] = unread.map((replica) => ({
    type: "no-final-read",
    replica,
  }));

  // Each replica's final set, by element key.
  const present = new Map<string, { element: unknown; replicas: string[] }>();
  for (const { replica, op } of finals) {
    const counts = new Map<string, number>();
    for (const value of op.output as readonly unknown[]) {
      const key = elementKey(value);
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      if (n === 1) {
        const seen = present.get(key);
        if (seen === undefined) present.set(key, { element: value ?? null, replicas: [replica] });
        else seen.replicas.push(replica);
      }
    }
    for (const [key, count] of counts)
      if (count > 1)
        anomalies.push({
          type: "duplicated",
          element: present.get(key)?.element ?? null,
          replica,
          read: refOf(op),
          count,
        });
  }
  const names = finals.map((f) => f.replica);
  const differences = [...present.values()]
    .filter((p) => p.replicas.length < finals.length)
    .map((p) => ({
      element: p.element,
      presentOn: p.replicas,
      absentOn: names.filter((n) => !p.replicas.includes(n)),
    }));
  if (differences.length > 0)
    anomalies.push({
      type: "diverged",
      reads: finals.map((f) => refOf(f.op)),
      differences: capped(differences, options).anomalies,
    });

  let required = 0;
  for (const [key, e] of elements) {
    if (e.lastOkAdd === undefined || e.lastRemove >= e.lastOkAdd.call) continue;
    required++;
    const on = present.get(key)?.replicas ?? [];
    if (on.length < finals.length)
      anomalies.push({
        type: "lost",
        element: e.element,
        add: refOf(e.lastOkAdd),
        missingOn: names.filter((n) => !on.includes(n)),
      });
  }
  for (const [key, p] of present) {
    const e = elements.get(key);
    if (e !== undefined && e.attempted && !e.failedOnly) continue;
    anomalies.push({
      type: "unexpected",
      element: p.element,
      reason: e?.attempted === true ? "failed" : "never-attempted",
      presentOn: p.replicas,
    });
  }
  const listed = capped(anomalies, options);
  return {
    valid: anomalies.length === 0,
    counts: {
      adds,
      removes,
      reads: reads.filter((op) => op.outcome === "ok").length,
      finalReads: finals.length,
      required,
    },
    anomalies: listed.anomalies,
    omitted: listed.omitted,
  };
}

import { HistoryError, pairOperations, type HistoryEvent, type Operation } from "../history.js";
import { canonicalValue } from "../register-model.js";

/**
 * An operation as verdicts report it: enough to find it in the history (`id`, `line`) and to
 * place it in time. `ret` is `null` when the outcome is unknown (JSON has no infinity).
 */
export interface OperationRef {
  readonly id: number;
  readonly process: number | string;
  readonly f: string;
  readonly key?: string;
  readonly outcome: "ok" | "fail" | "info";
  readonly call: number;
  readonly ret: number | null;
  readonly line?: number;
}

/** Counts of one kind of operation by outcome. */
export interface OutcomeCounts {
  readonly ok: number;
  readonly info: number;
  readonly fail: number;
}

/** What every checker's options share. */
export interface CheckerOptions {
  /**
   * Anomalies listed in the verdict at most (default 1000); the counts always cover all of
   * them, and `omitted` says how many were left out of the list.
   */
  readonly maxAnomalies?: number;
}

export const DEFAULT_MAX_ANOMALIES = 1_000;

/** Events are paired into operations; operations are taken as they are. */
export function toOperations(
  history: readonly HistoryEvent[] | readonly Operation[],
): readonly Operation[] {
  const first = history[0];
  if (first !== undefined && "outcome" in first) return history as readonly Operation[];
  return pairOperations(history as readonly HistoryEvent[]);
}

export function refOf(op: Operation): OperationRef {
  return {
    id: op.id,
    process: op.process,
    f: op.f,
    ...(op.key === "" ? {} : { key: op.key }),
    outcome: op.outcome,
    call: op.call,
    ret: op.ret === Infinity ? null : op.ret,
    ...(op.line === undefined ? {} : { line: op.line }),
  };
}

/** `line 12` when the operation came from a file, else `operation 11`. */
export function placeOf(op: Operation): string {
  return op.line === undefined ? `operation ${op.id}` : `line ${op.line}`;
}

/** A HistoryError about one operation, naming its place. */
export function badOperation(op: Operation, message: string): HistoryError {
  return new HistoryError(
    `${placeOf(op)}: ${message}`,
    op.line === undefined ? {} : { line: op.line },
  );
}

/** A short, bounded rendering of a value for messages. */
export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = typeof value === "bigint" ? `${value}n` : (JSON.stringify(value) ?? typeof value);
  } catch {
    text = typeof value;
  }
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * An amount the checkers add up exactly: a JavaScript safe integer. Strings of digits, huge or
 * fractional numbers are refused — exact sums need exact numbers.
 */
export function wholeNumber(op: Operation, value: unknown, what: string): number {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  const why =
    typeof value === "string"
      ? "a string; record amounts as JSON numbers"
      : typeof value === "number"
        ? "not a whole number within ±2^53"
        : "not a number";
  throw badOperation(op, `${what} must be a whole number, got ${show(value)} (${why})`);
}

/** Adds exactly, refusing sums beyond ±2^53, where doubles stop counting by one. */
export function addExact(a: number, b: number, op: Operation, what: string): number {
  const sum = a + b;
  if (!Number.isSafeInteger(sum))
    throw badOperation(op, `${what} adds up beyond ±2^53, where sums are no longer exact`);
  return sum;
}

/** Elements compare by value (object keys in any order); this is their identity. */
export const elementKey = canonicalValue;

/** Keeps at most `max` anomalies, counting the rest. */
export function capped<A>(
  anomalies: readonly A[],
  options: CheckerOptions,
): {
  readonly anomalies: A[];
  readonly omitted: number;
} {
  const max = options.maxAnomalies ?? DEFAULT_MAX_ANOMALIES;
  return { anomalies: anomalies.slice(0, max), omitted: Math.max(0, anomalies.length - max) };
}

/** Operations of the fault injector, which Jepsen records beside the clients' ones. */
export const isNemesis = (op: Operation): boolean => op.process === "nemesis";

export function countOutcome(
  counts: { ok: number; info: number; fail: number },
  op: Operation,
): void {
  counts[op.outcome]++;
}

/** A replica's final read, as the CRDT checkers find them. */
export interface ReplicaRead {
  readonly replica: string;
  readonly op: Operation;
}

/**
 * The final read of each replica: its last `ok` read (the read's key names the replica) begun
 * after every update had been invoked and every `ok` one had completed — reads during the run
 * of an eventually consistent store may lag, and are only counted. `replicas` lists the
 * replicas expected (default: those read); the ones without a final read are returned apart.
 *
 * @throws {HistoryError} for a read without a key, or of a replica not in `replicas`.
 */
export function finalReadsByReplica(
  reads: readonly Operation[],
  updates: readonly Operation[],
  replicas: readonly string[] | undefined,
): { readonly finals: ReplicaRead[]; readonly unread: string[] } {
  let quiet = -Infinity;
  for (const op of updates) quiet = Math.max(quiet, op.outcome === "ok" ? op.ret : op.call);
  const expected = replicas === undefined ? undefined : new Set(replicas.map(String));
  const last = new Map<string, Operation>();
  for (const op of reads) {
    if (op.key === "") throw badOperation(op, "a read names the replica it read from in its key");
    if (expected !== undefined && !expected.has(op.key))
      throw badOperation(
        op,
        `reads replica ${show(op.key)}, which is not among the replicas (${[...expected].map((r) => show(r)).join(", ")})`,
      );
    if (op.outcome !== "ok" || op.call < quiet) continue;
    const previous = last.get(op.key);
    if (previous === undefined || op.call > previous.call) last.set(op.key, op);
  }
  const names = expected === undefined ? [...last.keys()] : [...expected];
  const finals: ReplicaRead[] = [];
  const unread: string[] = [];
  for (const replica of names) {
    const op = last.get(replica);
    if (op === undefined) unread.push(replica);
    else finals.push({ replica, op });
  }
  if (finals.length === 0 && unread.length === 0)
    throw new HistoryError(
      "no final read: end the workload with one ok read per replica, begun after every update",
    );
  return { finals, unread };
}

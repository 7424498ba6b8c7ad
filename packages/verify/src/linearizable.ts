import { HistoryError, pairOperations, type HistoryEvent, type Operation } from "./history.js";
import type { Model } from "./model.js";
import { registerModel, type RegisterModelOptions } from "./register-model.js";
import { searchLinearization, type Budget } from "./search.js";
import { shrinkViolation } from "./shrink.js";

/** Budgets for a check. */
export interface CheckOptions {
  /** Wall-clock budget for the whole check, in milliseconds (default 60 000). */
  readonly timeoutMs?: number;
  /** Search steps allowed over all partitions (default: no limit); deterministic, unlike time. */
  readonly maxSteps?: number;
  /**
   * (set, state) pairs one partition's search may remember (default 10 million, about 400 MB
   * plus the states). Proving a long single-key history not linearizable can need many.
   */
  readonly maxMemoEntries?: number;
  /** Shrink a violation to a small sub-history before reporting it (default true). */
  readonly shrink?: boolean;
}

/** Options of the register check. */
export interface RegisterCheckOptions extends CheckOptions, RegisterModelOptions {
  /** Every register's value before any write (default `null`: nil). */
  readonly initial?: unknown;
}

/** The checker's verdict. `ms` and `steps` say what the check cost. */
export type Verdict =
  | {
      readonly result: "linearizable";
      /** Operations in the history. */
      readonly operations: number;
      /** Independent parts (keys) checked. */
      readonly partitions: number;
      readonly ms: number;
      readonly steps: number;
    }
  | {
      readonly result: "not-linearizable";
      readonly operations: number;
      readonly partitions: number;
      readonly ms: number;
      readonly steps: number;
      readonly counterexample: Counterexample;
    }
  | {
      readonly result: "unknown";
      /** The time or step budget ran out, or the memo limit was reached. */
      readonly reason: "timeout" | "memory";
      readonly operations: number;
      readonly partitions: number;
      /** Partitions found linearizable before the budget ran out. */
      readonly checked: number;
      readonly ms: number;
      readonly steps: number;
    };

/** Why a history is not linearizable: one failing partition, shrunk. */
export interface Counterexample {
  /** The partition (the register's key; `""` without keys). */
  readonly key: string;
  /** How many operations that partition has. */
  readonly partitionOperations: number;
  /**
   * A small sub-history of the partition that is still not linearizable — so the whole is not —
   * in order of invocation, as recorded.
   */
  readonly operations: readonly Operation[];
  /**
   * The sub-history is the partition as it stood at this time: operations still running then
   * count as outcome unknown. Absent when the whole partition was needed.
   */
  readonly cut?: number;
  /** The longest order in which the sub-history's operations could be linearized. */
  readonly linearized: readonly Operation[];
  /** The model's state after `linearized` (a register's value). */
  readonly state: unknown;
  /**
   * Operations that had to come next and cannot be placed: first the one whose return forced
   * the issue, then others the model refuses in `state`.
   */
  readonly stuck: readonly Operation[];
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_MEMO = 10_000_000;
const SHRINK_MS = 10_000;
const SHRINK_ATTEMPTS = 2_000;

/**
 * Checks that a register history is linearizable: every key's reads, writes and compare-and-sets
 * can be put in one order that respects real time and a register's semantics. Registers start at
 * nil unless `initial` is given. Returns `unknown` rather than run past the budget.
 *
 * @throws {HistoryError} when the history is malformed (an unknown operation, a `cas` without
 * `[expected, new]`, events that do not pair up), naming the line.
 *
 * @example
 * const verdict = checkLinearizable(parseEdnHistory(text), { initial: 0, timeoutMs: 10_000 });
 * if (verdict.result === "not-linearizable") console.log(verdict.counterexample.stuck);
 */
export function checkLinearizable(
  history: readonly HistoryEvent[] | readonly Operation[],
  options?: RegisterCheckOptions,
): Verdict;
/**
 * Checks operations against any model — the same search serves registers, sets or queues.
 *
 * @example
 * checkLinearizable(pairOperations(events), registerModel(null), { timeoutMs: 10_000 });
 */
export function checkLinearizable<S>(
  operations: readonly Operation[],
  model: Model<S>,
  options?: CheckOptions,
): Verdict;
export function checkLinearizable<S>(
  input: readonly HistoryEvent[] | readonly Operation[],
  modelOrOptions?: Model<S> | RegisterCheckOptions,
  maybeOptions?: CheckOptions,
): Verdict {
  if (isModel(modelOrOptions))
    return check(input as readonly Operation[], modelOrOptions, maybeOptions ?? {});
  const options: RegisterCheckOptions = modelOrOptions ?? {};
  const operations = isOperations(input) ? input : pairOperations(input);
  return check(operations, registerModel(options.initial, options), options);
}

function isModel<S>(value: Model<S> | RegisterCheckOptions | undefined): value is Model<S> {
  return typeof value === "object" && typeof (value as Partial<Model<S>>).step === "function";
}

function isOperations(
  input: readonly HistoryEvent[] | readonly Operation[],
): input is readonly Operation[] {
  const first = input[0];
  return first !== undefined && "outcome" in first;
}

function check<S>(all: readonly Operation[], model: Model<S>, options: CheckOptions): Verdict {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const budget: Budget = {
    deadline: started + timeoutMs,
    maxSteps: options.maxSteps ?? Infinity,
    maxMemo: options.maxMemoEntries ?? DEFAULT_MAX_MEMO,
    steps: 0,
  };
  const ids = new Set<number>();
  for (const op of all) {
    const problem = model.validate?.(op);
    const where = op.line === undefined ? `operation ${op.id}` : `line ${op.line}`;
    if (problem !== undefined)
      throw new HistoryError(
        `${where}: ${problem}`,
        op.line === undefined ? {} : { line: op.line },
      );
    if (ids.has(op.id)) throw new HistoryError(`${where}: operation id ${op.id} is used twice`);
    ids.add(op.id);
  }
  const relevant = all.filter((op) => model.irrelevant?.(op) !== true);
  const parts = [...(model.partition?.(relevant) ?? new Map([["", relevant]]))].sort(
    ([, a], [, b]) => a.length - b.length,
  );
  const base = { operations: all.length, partitions: parts.length };
  const cost = (): { ms: number; steps: number } => ({
    ms: performance.now() - started,
    steps: budget.steps,
  });
  let checked = 0;
  let reason: "timeout" | "memory" = "timeout";
  for (const [key, part] of parts) {
    const before = budget.steps;
    const outcome = searchLinearization(part, model, budget);
    if (outcome.type === "out-of-budget") {
      reason = outcome.reason;
      break;
    }
    if (outcome.type === "violation") {
      const counterexample = explain(key, part, model, budget, options, {
        steps: budget.steps - before,
        horizon: outcome.horizon,
      });
      return { result: "not-linearizable", ...base, ...cost(), counterexample };
    }
    checked++;
  }
  if (checked < parts.length) return { result: "unknown", reason, ...base, checked, ...cost() };
  return { result: "linearizable", ...base, ...cost() };
}

function explain<S>(
  key: string,
  part: readonly Operation[],
  model: Model<S>,
  budget: Budget,
  options: CheckOptions,
  search: { readonly steps: number; readonly horizon: number },
): Counterexample {
  let witness = part;
  let cut: number | undefined;
  if (options.shrink !== false) {
    ({ operations: witness, cut } = shrinkViolation(part, search.horizon, model, budget, {
      attempts: SHRINK_ATTEMPTS,
      stepsPerAttempt: Math.max(100_000, 2 * search.steps),
      deadline: Math.min(budget.deadline, performance.now() + SHRINK_MS),
    }));
  }
  // Search the witness once more, keeping the longest linearizable prefix this time.
  const again: Budget = {
    deadline: Math.max(budget.deadline, performance.now() + 1_000),
    maxSteps: Math.max(1_000_000, 4 * search.steps),
    maxMemo: budget.maxMemo,
    steps: 0,
  };
  const outcome = searchLinearization(witness, model, again, true);
  budget.steps += again.steps;
  const original = new Map(part.map((op) => [op.id, op]));
  const recorded = (op: Operation): Operation => original.get(op.id) ?? op;
  const explanation = outcome.type === "violation" ? outcome.explanation : undefined;
  return {
    key,
    partitionOperations: part.length,
    operations: witness.map(recorded).sort((a, b) => a.call - b.call || a.id - b.id),
    ...(cut === undefined ? {} : { cut }),
    linearized: explanation?.longest.map(recorded) ?? [],
    state: explanation?.state ?? model.init(),
    stuck: explanation?.stuck.map(recorded) ?? [],
  };
}

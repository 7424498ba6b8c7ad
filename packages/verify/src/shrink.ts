import type { Operation } from "./history.js";
import type { Model } from "./model.js";
import { searchLinearization, type Budget } from "./search.js";

/**
 * Shrinks a non-linearizable sub-history to a small one that is still not linearizable, using
 * only changes that keep the verdict meaningful for the original: if the small history is not
 * linearizable, neither is the original.
 *
 * 1. Cut at a time T: keep the operations invoked by T; those still running at T become
 *    unknown-outcome. (A linearization of the whole, stopped at T, would linearize the cut.)
 *    Cuts are monotone — a later cut of a violation is a violation — so a binary search finds
 *    the earliest failing one: where the history first goes wrong.
 * 2. Drop the observations (reads, failed compare-and-sets) the violation does not need:
 *    removing an observation only removes a constraint.
 * 3. Drop, by delta debugging, whatever else the violation does not need, among the operations
 *    the model says can go without inventing a violation — for registers, writes of values no
 *    remaining operation reads or compares against. A write whose value is read stays: without
 *    it the read would look like a read of a value nobody wrote, a violation the original does
 *    not have.
 *
 * Every trial search has a step allowance; a trial that runs out counts as "does not fail", so
 * shrinking never makes the answer less sound, only less small.
 */
export function shrinkViolation<S>(
  operations: readonly Operation[],
  horizon: number,
  model: Model<S>,
  budget: Budget,
  limits: {
    readonly attempts: number;
    readonly stepsPerAttempt: number;
    readonly deadline: number;
  },
): { readonly operations: readonly Operation[]; readonly cut: number | undefined } {
  let attempts = limits.attempts;
  const fails = (candidate: readonly Operation[]): boolean => {
    if (attempts-- <= 0 || performance.now() > limits.deadline) return false;
    const trial: Budget = {
      deadline: Math.min(budget.deadline, limits.deadline),
      maxSteps: Math.min(budget.maxSteps - budget.steps, limits.stepsPerAttempt),
      maxMemo: budget.maxMemo,
      steps: 0,
    };
    const result = searchLinearization(candidate, model, trial);
    budget.steps += trial.steps;
    return result.type === "violation";
  };

  // 1. The earliest failing cut, among the return times (a violation shows at a return). It is
  //    usually at or just before the horizon where the search gave up, so search backwards from
  //    there in growing steps, then bisect.
  const times = [
    ...new Set(operations.filter((op) => op.ret !== Infinity).map((op) => op.ret)),
  ].sort((a, b) => a - b);
  let current = operations;
  let cut: number | undefined;
  const tryCut = (index: number): boolean => {
    const t = times[index] as number;
    const candidate = cutAt(operations, t, model);
    if (!fails(candidate)) return false;
    current = candidate;
    cut = t;
    return true;
  };
  let failing = times.length; // the earliest cut known to fail; times.length: the whole history
  let passing = -1; // a cut known to pass, below `failing`
  const atHorizon = times.findLastIndex((t) => t <= horizon);
  if (atHorizon >= 0 && tryCut(atHorizon)) {
    failing = atHorizon;
    for (let step = 1; failing > 0; step *= 2) {
      const index = Math.max(0, failing - step);
      if (!tryCut(index)) {
        passing = index;
        break;
      }
      failing = index;
    }
  }
  while (failing - passing > 1) {
    const middle = (passing + failing) >>> 1;
    if (tryCut(middle)) failing = middle;
    else passing = middle;
  }

  // 2. Drop observations the violation does not need, big groups first (cheap, and usually
  //    most of what can go).
  let observations = current.filter((op) => model.observation?.(op) === true);
  for (let size = observations.length; size >= 1; size = size === 1 ? 0 : Math.ceil(size / 2)) {
    for (let start = 0; start < observations.length;) {
      const group = new Set(observations.slice(start, start + size).map((op) => op.id));
      const rest = current.filter((op) => !group.has(op.id));
      if (rest.length > 0 && fails(rest)) {
        current = rest;
        observations = observations.filter((op) => !group.has(op.id));
      } else start += size;
    }
  }

  // 3. Delta debugging (Zeller's ddmin) over everything: keep one chunk, or drop one, as long as
  //    what is kept still fails and the model says what is dropped can go given what is kept.
  const removableGiven = (remain: readonly Operation[]): ((op: Operation) => boolean) =>
    model.removable?.(remain) ?? ((op: Operation) => model.observation?.(op) === true);
  const keeps = (from: readonly Operation[], kept: readonly Operation[]): boolean => {
    if (kept.length === 0 || kept.length === from.length) return false;
    const ids = new Set(kept.map((op) => op.id));
    const removable = removableGiven(kept);
    return from.every((op) => ids.has(op.id) || removable(op)) && fails(kept);
  };
  let chunks = 2;
  while (current.length >= 2) {
    const size = Math.ceil(current.length / chunks);
    const parts: Operation[][] = [];
    for (let i = 0; i < current.length; i += size) parts.push(current.slice(i, i + size));
    const smaller =
      parts.find((part) => keeps(current, part)) ??
      parts
        .map((part) => current.filter((op) => !part.includes(op)))
        .find((rest) => keeps(current, rest));
    if (smaller !== undefined) {
      chunks = smaller.length < current.length / 2 ? 2 : Math.max(chunks - 1, 2);
      current = smaller;
    } else if (chunks >= current.length) break;
    else chunks = Math.min(current.length, chunks * 2);
  }
  return { operations: current, cut };
}

/**
 * The history as it stood at time `t`: operations invoked by then, those still running made
 * unknown-outcome (and dropped if that makes them irrelevant, like a pending read).
 */
function cutAt<S>(operations: readonly Operation[], t: number, model: Model<S>): Operation[] {
  const out: Operation[] = [];
  for (const op of operations) {
    if (op.call > t) continue;
    if (op.ret <= t) {
      out.push(op);
      continue;
    }
    const pending: Operation = { ...op, outcome: "info", output: undefined, ret: Infinity };
    if (model.irrelevant?.(pending) !== true) out.push(pending);
  }
  return out;
}

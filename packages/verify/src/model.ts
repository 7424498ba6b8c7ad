import type { Operation } from "./history.js";

/** What a model says about applying one operation in a state. */
export type StepResult<S> = { readonly ok: true; readonly state: S } | { readonly ok: false };

/**
 * A sequential specification the linearizability search checks a history against: registers
 * here, sets or queues later. The search only ever calls these functions, so a new workload is a
 * new model, not a new checker.
 *
 * Rules the search relies on:
 * - `step` is pure: the same state and operation give the same answer.
 * - An `info` operation (outcome unknown) may be placed anywhere after its invocation, and
 *   "never took effect" is placing it after everything else, so `step` must accept an `info`
 *   operation in every state — with the effect it would have had, or none where it could not
 *   have taken effect — or the model must mark it `irrelevant`.
 * - `equal(a, b)` implies `hash(a) === hash(b)`.
 */
export interface Model<S> {
  /** The state before any operation. */
  init(): S;
  /** Applies `op` (its input, and for completed operations its output) in `state`. */
  step(state: S, op: Operation): StepResult<S>;
  /** Equality of states, for memoizing (linearized set, state) pairs. */
  equal(a: S, b: S): boolean;
  /** A 32-bit hash of a state, consistent with `equal`. */
  hash(state: S): number;
  /**
   * Splits a history into independent sub-histories (P-compositionality: the whole is
   * linearizable if and only if every part is), keyed by a label for reports. Default: one part.
   */
  partition?(ops: readonly Operation[]): ReadonlyMap<string, readonly Operation[]>;
  /** Operations that constrain nothing and are dropped before the search (a failed write). */
  irrelevant?(op: Operation): boolean;
  /**
   * Operations that never change the state (reads, failed compare-and-sets). The search places
   * one as soon as the state allows it, with no alternative tried; the shrinker may drop one, as
   * that only removes a constraint.
   */
  observation?(op: Operation): boolean;
  /**
   * Which operations may be dropped from a history, given the operations that will `remain`,
   * without turning a linearizable history into one that is not — so that a counterexample
   * shrunk by dropping them still proves the original wrong. Observations always may; the
   * register model adds writes whose value no remaining operation reads or compares against.
   * Default: only observations.
   */
  removable?(remain: readonly Operation[]): (op: Operation) => boolean;
  /**
   * Operations whose effect does not depend on the state and that observe nothing (a register's
   * write): whatever came just before one is overwritten unseen, which lets the search skip
   * orders that differ only in unknown-outcome operations nobody saw.
   */
  blind?(op: Operation): boolean;
  /** Why an operation is malformed for this model (an unknown `f`), or `undefined` if it is fine. */
  validate?(op: Operation): string | undefined;
  /** A short text for an operation in reports: `write 3`, `read -> 3`. */
  describe?(op: Operation): string;
  /** A short text for a state in reports. */
  describeState?(state: S): string;
}

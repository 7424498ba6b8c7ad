import { HistoryError, type HistoryEvent, type Operation } from "../history.js";
import {
  addExact,
  badOperation,
  capped,
  countOutcome,
  isNemesis,
  refOf,
  show,
  toOperations,
  wholeNumber,
  type CheckerOptions,
  type OperationRef,
  type OutcomeCounts,
} from "./common.js";

/** A bank account's lowest allowed balance: one for all, per account, or a function. */
export type LowerBound = number | Readonly<Record<string, number>> | ((account: string) => number);

/** What the bank checker needs to know about the workload. */
export interface BankOptions extends CheckerOptions {
  /** The sum of all balances, which transfers conserve. */
  readonly total: number;
  /** Every account; a read must return exactly these. */
  readonly accounts: readonly (string | number)[];
  /**
   * Lowest balance a read may show (default 0: no overdrafts). `-Infinity` allows any; an
   * account missing from a per-account record has no bound.
   */
  readonly lowerBound?: LowerBound;
  /**
   * The balances before the first transfer. With them the final read is checked too: it must
   * equal these plus every `ok` transfer plus some subset of the `info` ones.
   */
  readonly initial?: Readonly<Record<string, number>>;
  /**
   * Subsets of unknown-outcome transfers the final check may try (default 1,048,576). Identical
   * transfers count as one choice of how many; beyond the limit the final read is reported
   * unchecked rather than guessed.
   */
  readonly maxSubsets?: number;
}

/** Something wrong with a bank history. Each bad read is reported with its time. */
export type BankAnomaly =
  | {
      /** An ok read whose balances do not add up to the total. */
      readonly type: "wrong-total";
      readonly read: OperationRef;
      readonly total: number;
      readonly expected: number;
      readonly balances: Readonly<Record<string, number>>;
    }
  | {
      /** An ok read without some account, or with accounts there are not. */
      readonly type: "wrong-accounts";
      readonly read: OperationRef;
      readonly missing: readonly string[];
      readonly extra: readonly string[];
    }
  | {
      /** An ok read showing an account below its lower bound. */
      readonly type: "below-lower-bound";
      readonly read: OperationRef;
      readonly account: string;
      readonly balance: number;
      readonly bound: number;
    }
  | {
      /**
       * The final read is not the initial balances plus every ok transfer plus any subset of the
       * unknown-outcome ones. `difference`: final minus (initial plus ok transfers), by account.
       */
      readonly type: "wrong-final-balances";
      readonly read: OperationRef;
      readonly difference: Readonly<Record<string, number>>;
    };

/** What became of the final-read check. */
export type BankFinalCheck =
  | {
      readonly checked: true;
      readonly read: OperationRef;
      /**
       * Ids of unknown-outcome transfers that, taken as done, make the balances match; `null`
       * when no subset does (a `wrong-final-balances` anomaly).
       */
      readonly infoApplied: readonly number[] | null;
    }
  | {
      readonly checked: false;
      readonly reason:
        "no-initial-balances" | "no-final-read" | "too-many-info-transfers" | "final-read-invalid";
      readonly detail: string;
    };

/** The bank checker's verdict. */
export interface BankVerdict {
  /** Every ok read sums to the total, has exactly the accounts and respects the bounds; and the
   * final read, when checked, is reachable. */
  readonly valid: boolean;
  readonly counts: {
    readonly transfers: OutcomeCounts;
    /** Reads that returned balances (`ok`). */
    readonly reads: number;
    /** Of those, reads with at least one anomaly. */
    readonly badReads: number;
  };
  readonly final: BankFinalCheck;
  readonly anomalies: readonly BankAnomaly[];
  readonly omitted: number;
}

interface Transfer {
  readonly op: Operation;
  readonly from: string;
  readonly to: string;
  readonly amount: number;
}

const DEFAULT_MAX_SUBSETS = 1 << 20;

/**
 * Checks a bank workload, as Jepsen's bank checker does: money moves between accounts and is
 * never created or destroyed, so every snapshot read adds up to the same total.
 *
 * Input: `transfer` operations whose invocation value is `{ "from": "a", "to": "b", "amount":
 * 5 }` and `read` operations whose `ok` value is the full balance map `{ "a": 95, "b": 105 }`.
 * Amounts and balances are JSON numbers, whole and within ±2^53 (exact sums). Failed and
 * unknown-outcome reads are ignored; so are the fault injector's operations.
 *
 * With `initial`, the final read (the last ok read begun after every transfer was invoked) must
 * also equal the initial balances plus every ok transfer plus some subset of the `info` ones
 * (failed transfers did not happen). That is a subset-sum search, bounded by `maxSubsets`.
 *
 * @throws {HistoryError} when the history or options are not a bank workload's: an unknown
 * operation, a transfer without `from`/`to`/`amount` or naming an unknown account, a read that
 * is not a map of whole numbers.
 *
 * @example
 * checkBank(parseJsonHistory(text), { total: 100, accounts: ["a", "b"], lowerBound: 0 });
 */
export function checkBank(
  history: readonly HistoryEvent[] | readonly Operation[],
  options: BankOptions,
): BankVerdict {
  const accounts = validateOptions(options);
  const bound = lowerBoundOf(options.lowerBound ?? 0);
  const operations = toOperations(history).filter((op) => !isNemesis(op));
  const transfers: Transfer[] = [];
  const counts = { ok: 0, info: 0, fail: 0 };
  const reads: Array<{ readonly op: Operation; readonly balances: Record<string, number> }> = [];
  for (const op of operations) {
    switch (op.f) {
      case "transfer": {
        countOutcome(counts, op);
        transfers.push(transferOf(op, accounts));
        break;
      }
      case "read":
        if (op.outcome === "ok") reads.push({ op, balances: balancesOf(op) });
        break;
      default:
        throw badOperation(
          op,
          `unknown operation "${op.f}" (a bank history has transfer and read)`,
        );
    }
  }

  const anomalies: BankAnomaly[] = [];
  let badReads = 0;
  for (const { op, balances } of reads) {
    const before = anomalies.length;
    const read = refOf(op);
    const names = Object.keys(balances);
    const missing = [...accounts].filter((a) => !(a in balances));
    const extra = names.filter((a) => !accounts.has(a));
    if (missing.length > 0 || extra.length > 0)
      anomalies.push({ type: "wrong-accounts", read, missing, extra });
    let total = 0;
    for (const name of names) total = addExact(total, balances[name] as number, op, "the read");
    if (total !== options.total)
      anomalies.push({ type: "wrong-total", read, total, expected: options.total, balances });
    for (const account of names) {
      const balance = balances[account] as number;
      const lowest = bound(account);
      if (balance < lowest)
        anomalies.push({ type: "below-lower-bound", read, account, balance, bound: lowest });
    }
    if (anomalies.length > before) badReads++;
  }

  const final = checkFinal(reads, transfers, accounts, options, anomalies);
  const listed = capped(anomalies, options);
  return {
    valid: anomalies.length === 0,
    counts: { transfers: counts, reads: reads.length, badReads },
    final,
    anomalies: listed.anomalies,
    omitted: listed.omitted,
  };
}

function validateOptions(options: BankOptions): ReadonlySet<string> {
  if (!Number.isSafeInteger(options.total))
    throw new HistoryError(
      `the total must be a whole number within ±2^53, got ${show(options.total)}`,
    );
  const accounts = new Set(options.accounts.map(String));
  if (accounts.size === 0) throw new HistoryError("a bank needs at least one account");
  if (accounts.size !== options.accounts.length)
    throw new HistoryError("the accounts are not distinct");
  if (options.initial !== undefined) {
    let sum = 0;
    for (const [account, balance] of Object.entries(options.initial)) {
      if (!accounts.has(account))
        throw new HistoryError(`the initial balances name an unknown account ${show(account)}`);
      if (!Number.isSafeInteger(balance))
        throw new HistoryError(
          `the initial balance of ${show(account)} must be a whole number within ±2^53, got ${show(balance)}`,
        );
      sum += balance;
    }
    const absent = [...accounts].filter((a) => !(a in (options.initial ?? {})));
    if (absent.length > 0)
      throw new HistoryError(`the initial balances lack account ${show(absent[0])}`);
    if (sum !== options.total)
      throw new HistoryError(
        `the initial balances add up to ${sum}, not to the total ${options.total}`,
      );
  }
  const max = options.maxSubsets ?? DEFAULT_MAX_SUBSETS;
  if (!(max >= 1)) throw new HistoryError(`maxSubsets must be at least 1, got ${show(max)}`);
  return accounts;
}

function lowerBoundOf(bound: LowerBound): (account: string) => number {
  if (typeof bound === "function") return bound;
  if (typeof bound === "number") {
    if (Number.isNaN(bound)) throw new HistoryError("the lower bound must be a number, got NaN");
    return () => bound;
  }
  return (account) => bound[account] ?? -Infinity;
}

function transferOf(op: Operation, accounts: ReadonlySet<string>): Transfer {
  const value = op.input;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw badOperation(
      op,
      `a transfer's value is {"from": …, "to": …, "amount": …}, got ${show(value)}`,
    );
  const { from, to, amount } = value as Record<string, unknown>;
  const account = (name: unknown, role: string): string => {
    if (typeof name !== "string" && typeof name !== "number")
      throw badOperation(op, `a transfer's ${role} must name an account, got ${show(name)}`);
    const text = String(name);
    if (!accounts.has(text))
      throw badOperation(op, `a transfer's ${role} names an unknown account ${show(text)}`);
    return text;
  };
  return {
    op,
    from: account(from, "from"),
    to: account(to, "to"),
    amount: wholeNumber(op, amount, "a transfer's amount"),
  };
}

function balancesOf(op: Operation): Record<string, number> {
  const value = op.output;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw badOperation(op, `a read returns a map of balances, got ${show(value)}`);
  const balances: Record<string, number> = {};
  for (const [account, balance] of Object.entries(value as Record<string, unknown>))
    balances[account] = wholeNumber(op, balance, `the balance of ${show(account)}`);
  return balances;
}

function checkFinal(
  reads: ReadonlyArray<{ readonly op: Operation; readonly balances: Record<string, number> }>,
  transfers: readonly Transfer[],
  accounts: ReadonlySet<string>,
  options: BankOptions,
  anomalies: BankAnomaly[],
): BankFinalCheck {
  if (options.initial === undefined)
    return {
      checked: false,
      reason: "no-initial-balances",
      detail: "no initial balances were given",
    };
  let quiet = -Infinity;
  for (const t of transfers) quiet = Math.max(quiet, t.op.outcome === "ok" ? t.op.ret : t.op.call);
  let final: (typeof reads)[number] | undefined;
  for (const read of reads)
    if (read.op.call >= quiet && (final === undefined || read.op.call > final.op.call))
      final = read;
  if (final === undefined)
    return {
      checked: false,
      reason: "no-final-read",
      detail: "no ok read began after every transfer had been invoked and every ok one completed",
    };
  const read = refOf(final.op);
  if (anomalies.some((a) => a.type !== "below-lower-bound" && a.read.id === final.op.id))
    return {
      checked: false,
      reason: "final-read-invalid",
      detail: "the final read is itself anomalous (wrong accounts or total)",
    };
  // What the info transfers must add up to: final − (initial + ok transfers).
  const difference = new Map<string, number>();
  for (const account of accounts)
    difference.set(account, (final.balances[account] ?? 0) - (options.initial[account] ?? 0));
  const uncertain = new Map<string, { t: Transfer; ops: number[] }>();
  for (const t of transfers) {
    if (t.op.outcome === "fail" || t.from === t.to || t.amount === 0) continue;
    if (t.op.outcome === "ok") {
      difference.set(t.from, (difference.get(t.from) ?? 0) + t.amount);
      difference.set(t.to, (difference.get(t.to) ?? 0) - t.amount);
      continue;
    }
    const id = `${t.from}\u0000${t.to}\u0000${t.amount}`;
    const group = uncertain.get(id);
    if (group === undefined) uncertain.set(id, { t, ops: [t.op.id] });
    else group.ops.push(t.op.id);
  }
  const groups = [...uncertain.values()];
  let subsets = 1;
  for (const g of groups) subsets *= g.ops.length + 1;
  const max = options.maxSubsets ?? DEFAULT_MAX_SUBSETS;
  const zero = [...difference.values()].every((d) => d === 0);
  if (!zero && subsets > max)
    return {
      checked: false,
      reason: "too-many-info-transfers",
      detail: `${groups.reduce((n, g) => n + g.ops.length, 0)} unknown-outcome transfers make ${subsets > 1e15 ? "more than 10^15" : subsets} subsets to try, more than the ${max} allowed`,
    };
  const chosen = zero ? [] : findSubset(groups, difference);
  if (chosen === undefined) {
    anomalies.push({
      type: "wrong-final-balances",
      read,
      difference: Object.fromEntries([...difference].filter(([, d]) => d !== 0)),
    });
    return { checked: true, read, infoApplied: null };
  }
  return { checked: true, read, infoApplied: chosen };
}

/**
 * A choice of how many transfers to take from each group of identical unknown-outcome ones
 * whose net effect is `target`, as the ids taken; `undefined` when there is none.
 */
function findSubset(
  groups: ReadonlyArray<{ readonly t: Transfer; readonly ops: readonly number[] }>,
  target: ReadonlyMap<string, number>,
): number[] | undefined {
  const need = new Map(target);
  const taken: number[] = [];
  const remaining = (): boolean => [...need.values()].every((d) => d === 0);
  const search = (i: number): boolean => {
    if (remaining()) return true;
    const group = groups[i];
    if (group === undefined) return false;
    const { from, to, amount } = group.t;
    for (let k = 0; k <= group.ops.length; k++) {
      if (k > 0) {
        need.set(from, (need.get(from) ?? 0) + amount);
        need.set(to, (need.get(to) ?? 0) - amount);
        taken.push(group.ops[k - 1] as number);
      }
      if (search(i + 1)) return true;
    }
    need.set(from, (need.get(from) ?? 0) - amount * group.ops.length);
    need.set(to, (need.get(to) ?? 0) + amount * group.ops.length);
    taken.length -= group.ops.length;
    return false;
  };
  return search(0) ? taken.sort((a, b) => a - b) : undefined;
}

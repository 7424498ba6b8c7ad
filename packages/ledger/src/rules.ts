import { StrataError } from "@strata/core";
import type { TransferRecord } from "./entry.js";

/** What the rules need to know of an account. */
export interface AccountState {
  readonly currency: string;
  readonly lowerBound: bigint | null;
  balance: bigint;
}

/** Where the rules look accounts up. */
export interface AccountLookup {
  get(id: string): AccountState | undefined;
}

/**
 * Batches applied one after the other to copies of the accounts they touch (the accounts
 * themselves are not changed): what a group of postings would leave. `accept` decides what
 * happens to a batch that breaks a rule: a writer drops it (the others go on), a replica applying
 * a stored entry treats it as corruption.
 */
export class Scratch implements AccountLookup {
  private readonly copies = new Map<string, AccountState>();
  private readonly keys = new Set<string>();
  private readonly base: AccountLookup;
  private readonly applied: (key: string) => boolean;

  constructor(base: AccountLookup, applied: (key: string) => boolean) {
    this.base = base;
    this.applied = applied;
  }

  get(id: string): AccountState | undefined {
    let copy = this.copies.get(id);
    if (copy === undefined) {
      const a = this.base.get(id);
      if (a === undefined) return undefined;
      copy = { currency: a.currency, lowerBound: a.lowerBound, balance: a.balance };
      this.copies.set(id, copy);
    }
    return copy;
  }

  /** Applies `batch` to the copies, or returns the rule it breaks (nothing applied). */
  apply(batch: readonly TransferRecord[]): StrataError | undefined {
    const verdict = applyRules(batch, this, (key) => this.keys.has(key) || this.applied(key));
    if (verdict instanceof StrataError) return verdict;
    for (const [id, balance] of verdict) (this.get(id) as AccountState).balance = balance;
    for (const t of batch) this.keys.add(t.key);
    return undefined;
  }
}

/**
 * The ledger's rules for one posting, checked by writers before they append, by every replica as
 * it applies an entry, and by the audit as it replays storage: accounts exist, currencies match,
 * no key is applied twice, and no balance ends below its bound once the whole batch is applied
 * (a batch may pass through a low balance and end above it: it applies at once). Returns the
 * balances after the batch, or the first rule broken as an error with `details.reason`.
 */
export function applyRules(
  batch: readonly TransferRecord[],
  accounts: AccountLookup,
  applied: (key: string) => boolean,
): Map<string, bigint> | StrataError {
  const after = new Map<string, bigint>();
  const inBatch = new Set<string>();
  for (const t of batch) {
    if (applied(t.key) || inBatch.has(t.key)) {
      return new StrataError("ALREADY_EXISTS", `transfer ${t.key} was applied before`, {
        details: { reason: "key-reused", key: t.key },
      });
    }
    inBatch.add(t.key);
    for (const id of [t.debit, t.credit]) {
      const a = accounts.get(id);
      if (a === undefined) {
        return new StrataError("NOT_FOUND", `transfer ${t.key}: no account ${id}`, {
          details: { reason: "no-account", account: id },
        });
      }
      if (a.currency !== t.currency) {
        return new StrataError(
          "INVALID_ARGUMENT",
          `transfer ${t.key}: account ${id} holds ${a.currency}, not ${t.currency}`,
          { details: { reason: "currency", account: id } },
        );
      }
    }
    const debit = accounts.get(t.debit) as AccountState;
    const credit = accounts.get(t.credit) as AccountState;
    after.set(t.debit, (after.get(t.debit) ?? debit.balance) - t.amount);
    after.set(t.credit, (after.get(t.credit) ?? credit.balance) + t.amount);
  }
  for (const [id, balance] of after) {
    const bound = (accounts.get(id) as AccountState).lowerBound;
    if (bound !== null && balance < bound) {
      return new StrataError(
        "FAILED_PRECONDITION",
        `account ${id} would fall to ${balance}, below its bound ${bound}`,
        { details: { reason: "insufficient-funds", account: id } },
      );
    }
  }
  return after;
}

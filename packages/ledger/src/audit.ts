import { StrataError, isStrataError, type EventLog } from "@strata/core";
import { toHex } from "./encoding.js";
import { decodeEntry } from "./entry.js";
import { leafHash } from "./hash.js";
import { LEAF_HEADER, readHeadRecords } from "./ledger.js";
import { rootAt } from "./merkle.js";
import { Scratch, type AccountState } from "./rules.js";
import { MemoryMerkleStore } from "./store.js";
import { verifyTreeHead, type SthPublicKeys } from "./tree-head.js";

/** Why the audit stopped trusting an entry. */
export type TamperReason =
  /** The stored bytes do not hash to the leaf hash recorded with them. */
  | "leaf-mismatch"
  /** The entry does not parse as a ledger entry. */
  | "unreadable"
  /** The entry names a previous root other than the tree before it (inserted, removed, reordered). */
  | "chain-broken"
  /** The entry breaks a ledger rule (unknown account, currency, a balance below its bound). */
  | "invalid-posting"
  /** The log itself refused to read the entry (a checksum failed). */
  | "storage";

/** What {@link auditLedger} found. */
export interface AuditReport {
  readonly stream: string;
  readonly entries: number;
  /** True when every entry re-derived cleanly and every rule held. */
  readonly ok: boolean;
  /** Root (hex) of the tree re-derived from storage (up to the first tampered entry). */
  readonly root: string;
  /** The first entry that cannot be trusted, and why; later entries are not examined. */
  readonly firstTampered?: {
    readonly index: number;
    readonly reason: TamperReason;
    readonly detail: string;
  };
  /** Sum of all balances per currency: 0 when money is conserved (double entry). */
  readonly totals: Readonly<Record<string, string>>;
  readonly conserved: boolean;
  /**
   * Signed tree heads found in the heads stream, checked when public keys were given: both
   * signatures, and the root against the tree re-derived at the head's size.
   */
  readonly heads: {
    readonly checked: number;
    readonly invalid: ReadonlyArray<{ readonly size: number; readonly reason: string }>;
  };
  /** Roots after each size, for checking signed tree heads (see {@link auditLedger}). */
  rootAt(size: number): string;
}

/**
 * Re-derives the ledger from storage, trusting nothing the running replicas computed: every entry's
 * leaf hash from its stored bytes (against the hash recorded with it), the chain of previous roots,
 * every ledger rule replayed from zero, and money conserved per currency. Names the first entry
 * that fails. Signed tree heads are checked against {@link AuditReport.rootAt} by the caller that
 * holds the public keys.
 */
export async function auditLedger(
  log: EventLog,
  options: {
    readonly stream?: string;
    /** The signers' public keys: every stored tree head is then verified too. */
    readonly publicKeys?: SthPublicKeys;
    readonly signal?: AbortSignal;
  } = {},
): Promise<AuditReport> {
  const stream = options.stream ?? "ledger";
  const tree = new MemoryMerkleStore();
  const accounts = new Map<string, AccountState>();
  const keys = new Set<string>();
  let firstTampered: AuditReport["firstTampered"];
  let root = toHex(rootAt(tree, 0));
  const tamper = (index: number, reason: TamperReason, detail: string): void => {
    firstTampered = { index, reason, detail };
  };
  const info = await log.streamInfo(
    stream,
    options.signal === undefined ? {} : { signal: options.signal },
  );
  if (info.firstSeq !== 1) {
    tamper(0, "storage", `entries before ${info.firstSeq - 1} are gone from the stream`);
  }
  scan: while (firstTampered === undefined) {
    const from = tree.size() + 1;
    let records;
    try {
      records = await log.read(stream, {
        fromSeq: from,
        limit: 1_000,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      if (isStrataError(error, "DATA_LOSS")) {
        tamper(tree.size(), "storage", error.message);
        break;
      }
      throw error;
    }
    for (const record of records) {
      const index = tree.size();
      if (record.seq !== index + 1) {
        tamper(index, "storage", `the stream skips from entry ${index} to ${record.seq - 1}`);
        break scan;
      }
      const leaf = leafHash(record.payload);
      if (record.headers[LEAF_HEADER] !== toHex(leaf)) {
        tamper(index, "leaf-mismatch", "the stored bytes do not hash to the recorded leaf hash");
        break scan;
      }
      let entry;
      try {
        entry = decodeEntry(record.payload, index);
      } catch (error) {
        tamper(index, "unreadable", error instanceof Error ? error.message : String(error));
        break scan;
      }
      if (entry.prev !== root) {
        tamper(
          index,
          "chain-broken",
          `it follows root ${entry.prev}, the tree before it is ${root}`,
        );
        break scan;
      }
      const broken = replay(entry, accounts, keys);
      if (broken !== undefined) {
        tamper(index, "invalid-posting", broken);
        break scan;
      }
      tree.append(leaf);
      root = toHex(rootAt(tree, tree.size()));
    }
    if (records.length < 1_000) break;
  }
  const invalidHeads: Array<{ size: number; reason: string }> = [];
  let checked = 0;
  if (options.publicKeys !== undefined) {
    for (const { seq, head } of await readHeadRecords(log, `${stream}-heads`)) {
      checked++;
      if (head === undefined) {
        invalidHeads.push({ size: -1, reason: `head record ${seq} is unreadable` });
      } else if (!verifyTreeHead(head, options.publicKeys)) {
        invalidHeads.push({ size: head.size, reason: "a signature does not verify" });
      } else if (head.size > tree.size()) {
        invalidHeads.push({
          size: head.size,
          reason: `it signs ${head.size} entries; ${tree.size()} re-derive`,
        });
      } else if (toHex(head.root) !== toHex(rootAt(tree, head.size))) {
        invalidHeads.push({ size: head.size, reason: "its root differs from the stored entries'" });
      }
    }
  }
  const totals: Record<string, bigint> = {};
  for (const a of accounts.values()) totals[a.currency] = (totals[a.currency] ?? 0n) + a.balance;
  const conserved = Object.values(totals).every((t) => t === 0n);
  return {
    stream,
    entries: tree.size(),
    ok: firstTampered === undefined && conserved && invalidHeads.length === 0,
    root,
    ...(firstTampered === undefined ? {} : { firstTampered }),
    totals: Object.fromEntries(Object.entries(totals).map(([c, t]) => [c, t.toString()])),
    conserved,
    heads: { checked, invalid: invalidHeads },
    rootAt(size) {
      if (!Number.isSafeInteger(size) || size < 0 || size > tree.size()) {
        throw new StrataError("OUT_OF_RANGE", `the audited tree has ${tree.size()} entries`);
      }
      return toHex(rootAt(tree, size));
    },
  };
}

/** Applies one entry to the audit's own balances; returns what rule it breaks, if any. */
function replay(
  entry: ReturnType<typeof decodeEntry>,
  accounts: Map<string, AccountState>,
  keys: Set<string>,
): string | undefined {
  if (entry.type === "open") {
    if (accounts.has(entry.account)) return `account ${entry.account} is opened twice`;
    accounts.set(entry.account, {
      currency: entry.currency,
      lowerBound: entry.lowerBound,
      balance: 0n,
    });
    return undefined;
  }
  const scratch = new Scratch(accounts, (key) => keys.has(key));
  for (const batch of entry.batches) {
    const broken = scratch.apply(batch);
    if (broken !== undefined) return broken.message;
  }
  for (const batch of entry.batches) {
    for (const t of batch) {
      keys.add(t.key);
      (accounts.get(t.debit) as AccountState).balance -= t.amount;
      (accounts.get(t.credit) as AccountState).balance += t.amount;
    }
  }
  return undefined;
}

import { StrataError } from "@strata/core";

/**
 * What the ledger's log holds. Every entry is one leaf of the Merkle tree; its bytes are a
 * canonical JSON text (keys in a fixed order, amounts as decimal strings), so that an auditor can
 * re-derive every leaf from storage with nothing but a JSON parser and SHA-256.
 */
export type LedgerEntry = OpenAccountEntry | PostingEntry;

/** Opens an account. */
export interface OpenAccountEntry {
  readonly type: "open";
  readonly account: string;
  readonly currency: string;
  /** The lowest balance allowed (minor units); null: unbounded (an external or equity account). */
  readonly lowerBound: bigint | null;
  /** When the writer appended it (ms since the epoch). */
  readonly at: number;
  /** Root of the tree before this entry (hex): a chain an auditor can follow entry by entry. */
  readonly prev: string;
}

/** One transfer of a posting. */
export interface TransferRecord {
  /** The transfer's idempotency key. */
  readonly key: string;
  readonly debit: string;
  readonly credit: string;
  /** Minor units, > 0. */
  readonly amount: bigint;
  readonly currency: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Postings committed together (group commit): each batch applies all or nothing, in order; a
 * writer validates each against the state the batches before it leave.
 */
export interface PostingEntry {
  readonly type: "post";
  readonly batches: ReadonlyArray<readonly TransferRecord[]>;
  readonly at: number;
  readonly prev: string;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/;
const CURRENCY = /^[A-Z][A-Z0-9]{2,11}$/;
const KEY = /^[\x21-\x7e]{1,200}$/;
const META_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const HEX32 = /^[0-9a-f]{64}$/;
/** Amounts and bounds stay within what every engine and JSON reader can hold as an integer text. */
const MAX_AMOUNT = 10n ** 30n;

/** Throws INVALID_ARGUMENT unless `id` is a usable account id. */
export function checkAccountId(id: unknown, what = "account id"): string {
  if (typeof id !== "string" || !ID.test(id)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `${what} must be 1-128 of A-Z a-z 0-9 . _ : @ / -, starting with a letter or digit`,
    );
  }
  return id;
}

/** Throws INVALID_ARGUMENT unless `currency` is a currency code (ISO 4217 or a longer token). */
export function checkCurrency(currency: unknown): string {
  if (typeof currency !== "string" || !CURRENCY.test(currency)) {
    throw new StrataError("INVALID_ARGUMENT", "currency must be an upper-case code such as EUR");
  }
  return currency;
}

/** Throws INVALID_ARGUMENT unless `transfer` is a well-formed transfer; returns it normalised. */
export function checkTransfer(transfer: unknown): TransferRecord {
  if (typeof transfer !== "object" || transfer === null) {
    throw new StrataError("INVALID_ARGUMENT", "a transfer must be an object");
  }
  const t = transfer as Record<string, unknown>;
  if (typeof t.key !== "string" || !KEY.test(t.key)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "a transfer's key must be 1-200 printable ASCII characters without spaces",
    );
  }
  const debit = checkAccountId(t.debit, "debit");
  const credit = checkAccountId(t.credit, "credit");
  if (debit === credit) {
    throw new StrataError("INVALID_ARGUMENT", `transfer ${t.key}: debit and credit are the same`);
  }
  if (typeof t.amount !== "bigint" || t.amount <= 0n || t.amount > MAX_AMOUNT) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `transfer ${t.key}: amount must be a bigint of minor units, above 0 and at most 10^30`,
    );
  }
  const metadata: Record<string, string> = {};
  if (t.metadata !== undefined) {
    if (typeof t.metadata !== "object" || t.metadata === null || Array.isArray(t.metadata)) {
      throw new StrataError("INVALID_ARGUMENT", `transfer ${t.key}: metadata must be an object`);
    }
    const entries = Object.entries(t.metadata as Record<string, unknown>);
    if (entries.length > 16) {
      throw new StrataError("INVALID_ARGUMENT", `transfer ${t.key}: at most 16 metadata entries`);
    }
    for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!META_KEY.test(k) || typeof v !== "string" || v.length > 256) {
        throw new StrataError(
          "INVALID_ARGUMENT",
          `transfer ${t.key}: metadata keys are 1-64 of A-Z a-z 0-9 _ . -, values strings of at most 256 characters`,
        );
      }
      metadata[k] = v;
    }
  }
  return {
    key: t.key,
    debit,
    credit,
    amount: t.amount,
    currency: checkCurrency(t.currency),
    metadata,
  };
}

/** The entry's canonical bytes (what the leaf hash covers). */
export function encodeEntry(entry: LedgerEntry): Uint8Array {
  const value =
    entry.type === "open"
      ? {
          type: "open",
          account: entry.account,
          currency: entry.currency,
          lowerBound: entry.lowerBound === null ? null : entry.lowerBound.toString(),
          at: entry.at,
          prev: entry.prev,
        }
      : {
          type: "post",
          batches: entry.batches.map((batch) =>
            batch.map((t) => ({
              key: t.key,
              debit: t.debit,
              credit: t.credit,
              amount: t.amount.toString(),
              currency: t.currency,
              metadata: t.metadata,
            })),
          ),
          at: entry.at,
          prev: entry.prev,
        };
  return new TextEncoder().encode(JSON.stringify(value));
}

/**
 * Reads an entry back, checking every field: storage is not trusted (the audit reads with this
 * too). Throws DATA_LOSS naming what is wrong.
 */
export function decodeEntry(bytes: Uint8Array, index: number): LedgerEntry {
  const bad = (what: string): StrataError =>
    new StrataError("DATA_LOSS", `ledger entry ${index} is unreadable: ${what}`, {
      details: { index },
    });
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw bad("not JSON");
  }
  if (typeof value !== "object" || value === null) throw bad("not an object");
  const v = value as Record<string, unknown>;
  if (typeof v.at !== "number" || !Number.isSafeInteger(v.at)) throw bad("no time");
  if (typeof v.prev !== "string" || !HEX32.test(v.prev)) throw bad("no previous root");
  const integer = (text: unknown, what: string): bigint => {
    if (typeof text !== "string" || !/^-?[0-9]{1,31}$/.test(text)) throw bad(what);
    return BigInt(text);
  };
  try {
    if (v.type === "open") {
      return {
        type: "open",
        account: checkAccountId(v.account),
        currency: checkCurrency(v.currency),
        lowerBound: v.lowerBound === null ? null : integer(v.lowerBound, "bad lower bound"),
        at: v.at,
        prev: v.prev,
      };
    }
    if (v.type === "post") {
      if (!Array.isArray(v.batches) || v.batches.length === 0) throw bad("no batches");
      const batches = (v.batches as unknown[]).map((batch) => {
        if (!Array.isArray(batch) || batch.length === 0) throw bad("an empty batch");
        return (batch as unknown[]).map((t) => {
          if (typeof t !== "object" || t === null) throw bad("a transfer is not an object");
          const r = t as Record<string, unknown>;
          return checkTransfer({ ...r, amount: integer(r.amount, "bad amount") });
        });
      });
      return { type: "post", batches, at: v.at, prev: v.prev };
    }
  } catch (error) {
    if (error instanceof StrataError && error.code === "DATA_LOSS") throw error;
    throw bad(error instanceof Error ? error.message : String(error));
  }
  throw bad("unknown entry type");
}

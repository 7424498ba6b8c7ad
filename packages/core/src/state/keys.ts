import type { KvTransaction, KvTxnCheck, KvTxnWrite } from "../ports/strong-kv.js";
import { StrataError } from "../errors/index.js";

/**
 * Keys every StrongKV adapter accepts: letters, digits and `- / _ = .`, not starting or ending
 * with `.`, at most 1 024 characters. It is the intersection of what the engines allow (NATS KV's
 * rules are the strictest), so state moves between adapters without renaming.
 */
const KEY = /^[-/_=.A-Za-z0-9]+$/;

/** Throws INVALID_ARGUMENT unless `key` is a portable key. */
export function checkKey(key: unknown): string {
  if (typeof key !== "string" || key.length === 0 || key.length > 1024 || !KEY.test(key)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `invalid key ${JSON.stringify(key)}: use 1-1024 of A-Z a-z 0-9 - / _ = .`,
    );
  }
  if (key.startsWith(".") || key.endsWith(".")) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `invalid key ${JSON.stringify(key)}: it may not start or end with "."`,
    );
  }
  return key;
}

/** Throws INVALID_ARGUMENT unless `prefix` is empty or a portable key prefix. */
export function checkPrefix(prefix: unknown): string {
  if (prefix === "") return "";
  if (
    typeof prefix !== "string" ||
    prefix.length > 1024 ||
    !KEY.test(prefix) ||
    prefix.startsWith(".")
  ) {
    throw new StrataError("INVALID_ARGUMENT", `invalid key prefix ${JSON.stringify(prefix)}`);
  }
  return prefix;
}

/** Throws INVALID_ARGUMENT unless `value` is bytes; returns it. */
export function checkValue(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array))
    throw new StrataError("INVALID_ARGUMENT", "value must be a Uint8Array");
  return value;
}

/** Throws INVALID_ARGUMENT unless `revision` can be a compare-and-set's expected revision. */
export function checkExpectedRevision(revision: unknown): number {
  if (typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 0) {
    throw new StrataError("INVALID_ARGUMENT", "expectedRevision must be a non-negative integer");
  }
  return revision;
}

/** A listing's page size: default 1 000, at most 10 000. */
export function checkLimit(limit: unknown): number {
  const value = limit ?? 1_000;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 10_000) {
    throw new StrataError("INVALID_ARGUMENT", "limit must be an integer in 1..10000");
  }
  return value;
}

/** A lease's time to live: 10 ms to a day. */
export function checkLeaseTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs < 10 || ttlMs > 86_400_000) {
    throw new StrataError("INVALID_ARGUMENT", "lease ttlMs must be between 10 and 86400000");
  }
  return ttlMs;
}

/** The error every adapter raises when a conditional write meets another revision. */
export function revisionConflict(
  key: string,
  current: number,
  expected: number | undefined,
): StrataError {
  return new StrataError(
    "FAILED_PRECONDITION",
    `key ${key} is at revision ${current}, not ${String(expected)}`,
    {
      details: { key, currentRevision: current, expectedRevision: expected ?? null },
    },
  );
}

/** The error for a lease that does not exist or expired. */
export function leaseNotFound(lease: string | undefined): StrataError {
  return new StrataError("NOT_FOUND", `lease ${String(lease)} does not exist or expired`, {
    details: { lease: lease ?? null },
  });
}

/** Whether a value is an array, without narrowing it to `any[]`. */
const isList = (value: unknown): boolean => Array.isArray(value);

/** Most writes one transaction may carry. */
export const MAX_TXN_WRITES = 1_000;

/**
 * Checks a transaction's shape (keys, values, each key written at most once, at most
 * {@link MAX_TXN_WRITES} writes) and returns its checks and its writes in key order, the order
 * watchers see them in.
 */
export function checkTransaction(txn: KvTransaction): {
  checks: KvTxnCheck[];
  writes: KvTxnWrite[];
} {
  if (typeof txn !== "object" || txn === null || !isList(txn.writes)) {
    throw new StrataError("INVALID_ARGUMENT", "a transaction needs a writes array");
  }
  const checks: readonly KvTxnCheck[] = txn.checks ?? [];
  if (!isList(checks)) {
    throw new StrataError("INVALID_ARGUMENT", "checks must be an array");
  }
  if (txn.writes.length > MAX_TXN_WRITES || checks.length > MAX_TXN_WRITES) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `a transaction carries at most ${MAX_TXN_WRITES} writes and ${MAX_TXN_WRITES} checks`,
    );
  }
  const isRecord = (value: unknown): boolean => typeof value === "object" && value !== null;
  if (!checks.every(isRecord) || !txn.writes.every(isRecord)) {
    throw new StrataError("INVALID_ARGUMENT", "every check and write must be an object");
  }
  for (const check of checks) {
    checkKey(check.key);
    checkExpectedRevision(check.revision);
  }
  const seen = new Set<string>();
  for (const write of txn.writes) {
    checkKey(write.key);
    if (write.type === "put") checkValue(write.value);
    else if (write.type !== "delete") {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `unknown write type ${String((write as { type: unknown }).type)}`,
      );
    }
    if (seen.has(write.key)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `key ${write.key} is written twice in one transaction`,
      );
    }
    seen.add(write.key);
  }
  const writes = [...txn.writes].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { checks: [...checks], writes };
}

/** UNIMPLEMENTED for a store without multi-key transactions. */
export function noTransactions(store: string): StrataError {
  return new StrataError(
    "UNIMPLEMENTED",
    `${store} has no multi-key transactions (capabilities.transactions is false); use the embedded or PostgreSQL store`,
  );
}

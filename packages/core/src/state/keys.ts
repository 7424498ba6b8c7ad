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

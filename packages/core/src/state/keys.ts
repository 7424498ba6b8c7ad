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

import { StrataError } from "@strata/core";

/** Bytes in a SHA-256 hash, the only hash size the ledger uses. */
export const HASH_SIZE = 32;

/**
 * The longest proof the text parsers accept. An inclusion proof has at most 53 hashes for a tree
 * of 2^53 - 1 leaves and a consistency proof at most twice that; anything longer cannot verify,
 * and the cap keeps a hostile command line from making us decode megabytes of hashes.
 */
export const MAX_PROOF_HASHES = 128;

const HEX = /^[0-9a-fA-F]{64}$/;
// 32 bytes are 44 base64 characters whose last is one "=" of padding.
const BASE64 = /^[A-Za-z0-9+/]{43}=$/;

function invalid(message: string, details: Readonly<Record<string, unknown>> = {}): StrataError {
  return new StrataError("INVALID_ARGUMENT", message, { details });
}

/** Quotes user input in an error, cut short so a pasted megabyte stays readable. */
function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

/** Lower-case hex of some bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Standard (padded) base64 of some bytes. */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/**
 * Decodes standard, padded base64, refusing anything Node's lenient decoder would quietly accept
 * (whitespace, URL-safe letters, missing padding, non-zero trailing bits): two encodings of one
 * value would let the same hash be written two ways.
 */
export function fromBase64(text: string, what: string): Uint8Array {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw invalid(`${what} is not standard base64`);
  }
  const bytes = Buffer.from(text, "base64");
  if (bytes.toString("base64") !== text) throw invalid(`${what} is not canonical base64`);
  return new Uint8Array(bytes);
}

/**
 * Parses a SHA-256 hash written as 64 hex digits (either case) or as 44 characters of standard
 * base64. The two cannot be confused: they differ in length.
 *
 * @example parseHash("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
 */
export function parseHash(text: string, name = "hash"): Uint8Array {
  if (HEX.test(text)) return new Uint8Array(Buffer.from(text, "hex"));
  if (BASE64.test(text)) {
    const bytes = Buffer.from(text, "base64");
    if (bytes.length === HASH_SIZE && bytes.toString("base64") === text) {
      return new Uint8Array(bytes);
    }
  }
  throw invalid(
    `${name} must be a 32-byte hash as 64 hex digits or 44 characters of base64, got ${quote(text)}`,
    { name },
  );
}

/**
 * Parses a comma-separated list of hashes (hex or base64, mixed is fine; spaces around commas are
 * ignored). An empty string is the empty proof, which is what a one-leaf tree or two equal tree
 * sizes need.
 */
export function parseProof(text: string, name = "proof"): Uint8Array[] {
  if (text.trim() === "") return [];
  const parts = text.split(",");
  if (parts.length > MAX_PROOF_HASHES) {
    throw invalid(
      `${name} has ${parts.length} hashes; no valid proof has more than ${MAX_PROOF_HASHES}`,
      {
        name,
      },
    );
  }
  return parts.map((part, i) => {
    const trimmed = part.trim();
    if (trimmed === "") throw invalid(`${name} has an empty entry at position ${i + 1}`, { name });
    return parseHash(trimmed, `${name} entry ${i + 1}`);
  });
}

/**
 * Parses a tree size or leaf index: decimal digits only, at most 2^53 - 1 (the largest integer a
 * JavaScript number holds exactly). Signs, decimals, exponents and spaces are refused rather than
 * rounded, so "1e3" or "2.0" never silently names some other leaf.
 */
export function parseCount(text: string, name = "count"): number {
  if (!/^\d+$/.test(text)) {
    throw invalid(`${name} must be a non-negative integer, got ${quote(text)}`, { name });
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw invalid(`${name} must be at most ${Number.MAX_SAFE_INTEGER}, got ${quote(text)}`, {
      name,
    });
  }
  return value;
}

/** Checks a hash argument of the library API; a wrong one is a programming error, not a "no". */
export function assertHash(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw invalid(`${name} must be a ${HASH_SIZE}-byte Uint8Array`, { name });
  }
}

/** Checks a size or index argument of the library API. */
export function assertCount(value: unknown, name: string): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${name} must be a non-negative safe integer`, { name });
  }
}

/** Checks a proof argument of the library API. */
export function assertProof(value: unknown, name: string): asserts value is readonly Uint8Array[] {
  if (!Array.isArray(value)) throw invalid(`${name} must be an array of hashes`, { name });
  value.forEach((hash, i) => assertHash(hash, `${name}[${i}]`));
}

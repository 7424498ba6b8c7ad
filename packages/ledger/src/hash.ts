import { createHash } from "node:crypto";
import { StrataError } from "@strata/core";
import { assertHash } from "./encoding.js";

// RFC 9162 §2.1.1: leaves and interior nodes hash under different one-byte prefixes, so no leaf
// can be passed off as an interior node (second-preimage resistance of the tree).
const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/**
 * A plain Uint8Array view of a digest: a Buffer's `slice` shares memory where Uint8Array's copies,
 * and callers of a Uint8Array API expect the latter.
 */
function plain(digest: Buffer): Uint8Array {
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

/**
 * The RFC 9162 leaf hash of one entry: SHA-256(0x00 || data).
 *
 * @example toHex(leafHash(new Uint8Array())) // "6e340b9c…afa01d", the root of a one-leaf tree
 */
export function leafHash(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) {
    throw new StrataError("INVALID_ARGUMENT", "leaf data must be a Uint8Array");
  }
  return plain(createHash("sha256").update(LEAF_PREFIX).update(data).digest());
}

/** The RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  assertHash(left, "left");
  assertHash(right, "right");
  return plain(createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest());
}

/** The root of the empty tree: SHA-256 of no bytes (RFC 9162 §2.1.1). */
export function emptyRoot(): Uint8Array {
  return plain(createHash("sha256").digest());
}

/** Whether two hashes are the same bytes. Roots and proofs are public, so no constant time. */
export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

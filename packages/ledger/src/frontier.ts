import { StrataError } from "@strata/core";
import { HASH_SIZE, assertCount, assertHash, parseHash, toHex } from "./encoding.js";
import { emptyRoot, nodeHash } from "./hash.js";

/** The JSON form of a {@link Frontier}: the tree size and the subtree roots in hex, largest first. */
export interface FrontierJson {
  readonly size: number;
  readonly hashes: readonly string[];
}

function popcount(n: number): number {
  let bits = 0;
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2)) bits += rest % 2;
  return bits;
}

function malformed(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `malformed frontier: ${message}`);
}

/**
 * The compact frontier of an append-only Merkle tree: the roots of the perfect subtrees that
 * cover its leaves, one per set bit of the size, largest (leftmost) first. It is all a log needs
 * to append and to know its current root, in O(log n) space: at most 53 hashes for any size a
 * number can hold. It cannot produce proofs; those need the stored leaves (see MerkleStore).
 *
 * @example
 * const frontier = new Frontier();
 * frontier.append(leafHash(entry));
 * await persist(JSON.stringify(frontier));
 * const again = Frontier.fromJSON(JSON.parse(saved));
 */
export class Frontier {
  #size = 0;
  #hashes: Uint8Array[] = [];

  /** The number of leaves appended. */
  get size(): number {
    return this.#size;
  }

  /** Appends a leaf hash: amortised O(1) hashes, at most log2(n). */
  append(hash: Uint8Array): void {
    assertHash(hash, "leaf hash");
    if (this.#size === Number.MAX_SAFE_INTEGER) {
      throw new StrataError("OUT_OF_RANGE", "the tree is at its largest size");
    }
    // Adding one to the size carries through its trailing ones; each carry merges two equal
    // perfect subtrees into one twice the size, exactly as the bits merge.
    let carry: Uint8Array = new Uint8Array(hash);
    for (let rest = this.#size; rest % 2 === 1; rest = (rest - 1) / 2) {
      carry = nodeHash(this.#hashes.pop() as Uint8Array, carry);
    }
    this.#hashes.push(carry);
    this.#size++;
  }

  /** The tree's root, MTH of all leaves appended: folds the subtree roots from the right. */
  root(): Uint8Array {
    const last = this.#hashes.length - 1;
    if (last < 0) return emptyRoot();
    let root = this.#hashes[last] as Uint8Array;
    for (let i = last - 1; i >= 0; i--) root = nodeHash(this.#hashes[i] as Uint8Array, root);
    return root;
  }

  /** Copies of the subtree roots, largest first. */
  hashes(): Uint8Array[] {
    return this.#hashes.map((hash) => new Uint8Array(hash));
  }

  /** A copy that appends independently. */
  clone(): Frontier {
    return Frontier.#of(this.#size, this.hashes());
  }

  toJSON(): FrontierJson {
    return { size: this.#size, hashes: this.#hashes.map(toHex) };
  }

  /**
   * Reads the JSON form back, checking it: the size must be a safe integer and there must be
   * exactly one 32-byte hash per set bit of it.
   */
  static fromJSON(value: unknown): Frontier {
    if (typeof value !== "object" || value === null) throw malformed("not an object");
    const { size, hashes } = value as Record<string, unknown>;
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      throw malformed("size must be a non-negative safe integer");
    }
    if (!Array.isArray(hashes) || !hashes.every((h): h is string => typeof h === "string")) {
      throw malformed("hashes must be an array of strings");
    }
    return Frontier.#of(
      size,
      hashes.map((h, i) => parseHash(h, `frontier hash ${i}`)),
    );
  }

  /** A compact binary form: the size as a big-endian u64, then the hashes, largest first. */
  toBytes(): Uint8Array {
    const bytes = new Uint8Array(8 + this.#hashes.length * HASH_SIZE);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(this.#size));
    this.#hashes.forEach((hash, i) => bytes.set(hash, 8 + i * HASH_SIZE));
    return bytes;
  }

  /** Reads {@link toBytes}'s form back, with the same checks as {@link fromJSON}. */
  static fromBytes(bytes: Uint8Array): Frontier {
    if (!(bytes instanceof Uint8Array) || bytes.length < 8) throw malformed("too short");
    const size = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed("size is too large");
    if ((bytes.length - 8) % HASH_SIZE !== 0) throw malformed("not a whole number of hashes");
    const hashes: Uint8Array[] = [];
    for (let at = 8; at < bytes.length; at += HASH_SIZE) {
      hashes.push(bytes.slice(at, at + HASH_SIZE));
    }
    return Frontier.#of(Number(size), hashes);
  }

  static #of(size: number, hashes: Uint8Array[]): Frontier {
    assertCount(size, "size");
    if (hashes.length !== popcount(size)) {
      throw malformed(
        `a tree of ${size} leaves has ${popcount(size)} subtree roots, not ${hashes.length}`,
      );
    }
    const frontier = new Frontier();
    frontier.#size = size;
    frontier.#hashes = hashes;
    return frontier;
  }
}

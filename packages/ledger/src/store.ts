import { StrataError } from "@strata/core";
import { HASH_SIZE, assertCount, assertHash } from "./encoding.js";
import { nodeHash } from "./hash.js";

/**
 * Where proof generation reads a tree from. A ledger backs it with its stored entries; the only
 * required reads are the tree size and leaf hashes.
 *
 * `subtreeHash(level, index)` is the optional fast path: the hash of the perfect subtree of 2^level
 * leaves starting at leaf `index * 2^level`. Every range a proof names splits into O(log n) such
 * subtrees, so a store that answers it in O(1) makes each proof O(log n) reads. Without it, a
 * perfect subtree is recomputed from its leaves, which costs O(n) for proofs near the root.
 * Return `undefined` for subtrees the store does not keep (for example, a store that persists
 * only levels above some height) and they are computed from the level below.
 */
export interface MerkleStore {
  /** The number of leaves. */
  size(): number;
  /** The RFC 9162 leaf hash (SHA-256 of 0x00 || entry) of leaf `index`. */
  leafHash(index: number): Uint8Array;
  subtreeHash?(level: number, index: number): Uint8Array | undefined;
}

/** {@link MerkleStore} for storage that answers asynchronously (a database, a remote log). */
export interface AsyncMerkleStore {
  size(): number | Promise<number>;
  leafHash(index: number): Uint8Array | Promise<Uint8Array>;
  subtreeHash?(
    level: number,
    index: number,
  ): Uint8Array | undefined | Promise<Uint8Array | undefined>;
}

/**
 * An in-memory {@link MerkleStore} that keeps the hash of every complete perfect subtree, level by
 * level: leaf hashes at level 0, their pairs at level 1, and so on.
 *
 * The trade-off: about 2n hashes (64 bytes a leaf; 64 MB for a million leaves) buy O(log n) proof
 * generation and O(log n) historical roots, and each append does amortised O(1) hashing because a
 * subtree's hash is written once, when its last leaf arrives, and never changes after. A ledger that
 * persists entries can persist the same per-level table beside them (append-only, write-once rows
 * keyed by level and index); keeping only levels from some height h up divides the space by 2^h at
 * the cost of 2^h leaf reads per lookup.
 *
 * Hashes live in one flat, doubling buffer per level rather than one object per hash: a million
 * small Uint8Arrays would cost several times the 32 bytes each holds.
 *
 * @example
 * const tree = new MemoryMerkleStore();
 * for (const entry of entries) tree.append(leafHash(entry));
 * const proof = inclusionProof(tree, 3, tree.size());
 */
export class MemoryMerkleStore implements MerkleStore {
  readonly #levels: { bytes: Uint8Array; count: number }[] = [];

  /** Adds a leaf hash and returns its index. */
  append(hash: Uint8Array): number {
    assertHash(hash, "leaf hash");
    const index = this.size();
    let carry = hash;
    let position = index;
    for (let level = 0; ; level++) {
      this.#push(level, carry);
      // A left child waits for its sibling; a right child completes its parent.
      if (position % 2 === 0) break;
      carry = nodeHash(this.#read(level, position - 1), carry);
      position = (position - 1) / 2;
    }
    return index;
  }

  size(): number {
    return this.#levels[0]?.count ?? 0;
  }

  leafHash(index: number): Uint8Array {
    return this.#get(0, index);
  }

  subtreeHash(level: number, index: number): Uint8Array | undefined {
    const row = this.#levels[level];
    if (row === undefined || !Number.isSafeInteger(index) || index < 0 || index >= row.count) {
      return undefined;
    }
    return this.#read(level, index).slice();
  }

  /** Bytes held for hashes (not counting spare capacity); for capacity planning and the bench. */
  storedBytes(): number {
    return this.#levels.reduce((sum, row) => sum + row.count * HASH_SIZE, 0);
  }

  #get(level: number, index: number): Uint8Array {
    assertCount(index, "index");
    const row = this.#levels[level];
    if (row === undefined || index >= row.count) {
      throw new StrataError("OUT_OF_RANGE", `leaf ${index} is beyond the tree of ${this.size()}`, {
        details: { index, size: this.size() },
      });
    }
    // A copy: a caller writing into the returned bytes must not corrupt the tree.
    return this.#read(level, index).slice();
  }

  #read(level: number, index: number): Uint8Array {
    const row = this.#levels[level] as { bytes: Uint8Array };
    return row.bytes.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE);
  }

  #push(level: number, hash: Uint8Array): void {
    let row = this.#levels[level];
    if (row === undefined) {
      row = { bytes: new Uint8Array(HASH_SIZE * 16), count: 0 };
      this.#levels[level] = row;
    }
    if ((row.count + 1) * HASH_SIZE > row.bytes.length) {
      const grown = new Uint8Array(row.bytes.length * 2);
      grown.set(row.bytes);
      row.bytes = grown;
    }
    row.bytes.set(hash, row.count * HASH_SIZE);
    row.count++;
  }
}

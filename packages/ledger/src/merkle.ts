import { StrataError } from "@strata/core";
import { HASH_SIZE, assertCount, assertHash, assertProof } from "./encoding.js";
import { emptyRoot, nodeHash, sameHash } from "./hash.js";
import type { AsyncMerkleStore, MerkleStore } from "./store.js";

/** Leaf hashes in order, or a store that reads them (and, ideally, cached subtrees). */
export type LeafSource = readonly Uint8Array[] | MerkleStore;

/** The leaves [start, end) of a tree, whose RFC 9162 hash MTH(D[start:end]) a proof carries. */
interface Span {
  readonly start: number;
  readonly end: number;
}

/** The largest power of two strictly below n (n >= 2): RFC 9162's split point k. */
function splitPoint(n: number): number {
  // Multiplication, not `<<`: bit operators truncate to 32 bits and sizes go up to 2^53 - 1.
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && splitPoint(n * 2) === n;
}

function log2(powerOfTwo: number): number {
  let level = 0;
  for (let n = powerOfTwo; n > 1; n /= 2) level++;
  return level;
}

/**
 * The subtrees whose hashes form the inclusion proof of leaf `index` (RFC 9162 §2.1.3.1, PATH),
 * nearest the leaf first. Descending from the root keeps it a loop rather than a recursion.
 */
function inclusionSpans(index: number, size: number): Span[] {
  const spans: Span[] = [];
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      spans.push({ start: start + k, end });
      end = start + k;
    } else {
      spans.push({ start, end: start + k });
      start += k;
    }
  }
  return spans.reverse();
}

/**
 * The subtrees whose hashes form the consistency proof from `size1` to `size2` (RFC 9162 §2.1.4.1,
 * SUBPROOF), in proof order; requires 0 < size1 < size2.
 */
function consistencySpans(size1: number, size2: number): Span[] {
  const spans: Span[] = [];
  let start = 0;
  let end = size2;
  let m = size1;
  // Whether the current subtree is the whole old tree's left edge, whose hash the verifier has.
  let known = true;
  while (m !== end - start) {
    const k = splitPoint(end - start);
    if (m <= k) {
      spans.push({ start: start + k, end });
      end = start + k;
    } else {
      spans.push({ start, end: start + k });
      start += k;
      m -= k;
      known = false;
    }
  }
  if (!known) spans.push({ start, end });
  return spans.reverse();
}

function checked(hash: unknown, what: string): Uint8Array {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_SIZE) {
    // The store handed back something that is not a hash: its data is damaged or it has a bug.
    throw new StrataError("DATA_LOSS", `the Merkle store returned a malformed ${what}`);
  }
  return hash;
}

function perfectHash(store: MerkleStore, level: number, index: number): Uint8Array {
  if (level === 0) return checked(store.leafHash(index), `leaf hash ${index}`);
  const cached = store.subtreeHash?.(level, index);
  if (cached !== undefined) return checked(cached, `subtree hash (${level}, ${index})`);
  return nodeHash(
    perfectHash(store, level - 1, index * 2),
    perfectHash(store, level - 1, index * 2 + 1),
  );
}

/** MTH(D[start:end]) from the store: O(log n) perfect-subtree reads for the spans proofs use. */
function spanHash(store: MerkleStore, { start, end }: Span): Uint8Array {
  const n = end - start;
  if (n === 0) return emptyRoot();
  if (isPowerOfTwo(n) && start % n === 0) return perfectHash(store, log2(n), start / n);
  const k = splitPoint(n);
  return nodeHash(
    spanHash(store, { start, end: start + k }),
    spanHash(store, { start: start + k, end }),
  );
}

async function perfectHashAsync(
  store: AsyncMerkleStore,
  level: number,
  index: number,
): Promise<Uint8Array> {
  if (level === 0) return checked(await store.leafHash(index), `leaf hash ${index}`);
  const cached = await store.subtreeHash?.(level, index);
  if (cached !== undefined) return checked(cached, `subtree hash (${level}, ${index})`);
  // One side after the other: an uncached subtree has 2^level leaves, too many reads to start at once.
  const left = await perfectHashAsync(store, level - 1, index * 2);
  return nodeHash(left, await perfectHashAsync(store, level - 1, index * 2 + 1));
}

async function spanHashAsync(store: AsyncMerkleStore, { start, end }: Span): Promise<Uint8Array> {
  const n = end - start;
  if (n === 0) return emptyRoot();
  if (isPowerOfTwo(n) && start % n === 0) return perfectHashAsync(store, log2(n), start / n);
  const k = splitPoint(n);
  const [left, right] = await Promise.all([
    spanHashAsync(store, { start, end: start + k }),
    spanHashAsync(store, { start: start + k, end }),
  ]);
  return nodeHash(left, right);
}

function arrayStore(leaves: readonly Uint8Array[]): MerkleStore {
  return {
    size: () => leaves.length,
    leafHash: (index) => checked(leaves[index], `leaf hash ${index}`),
  };
}

function toStore(source: LeafSource): MerkleStore {
  if (Array.isArray(source)) return arrayStore(source as readonly Uint8Array[]);
  return source as MerkleStore;
}

function checkAvailable(available: number, size: number): void {
  if (size > available) {
    throw new StrataError(
      "OUT_OF_RANGE",
      `tree size ${size} is beyond the ${available} leaves stored`,
      {
        details: { size, available },
      },
    );
  }
}

function checkInclusionArgs(index: number, size: number): void {
  assertCount(index, "index");
  assertCount(size, "size");
  if (index >= size) {
    throw new StrataError("OUT_OF_RANGE", `leaf index ${index} is not below tree size ${size}`, {
      details: { index, size },
    });
  }
}

function checkConsistencyArgs(size1: number, size2: number): void {
  assertCount(size1, "size1");
  assertCount(size2, "size2");
  if (size1 > size2) {
    throw new StrataError("INVALID_ARGUMENT", `size1 ${size1} is larger than size2 ${size2}`, {
      details: { size1, size2 },
    });
  }
}

/**
 * The Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes.
 *
 * @example toHex(rootOf([leafHash(new Uint8Array())])) // "6e340b9c…afa01d"
 */
export function rootOf(leafHashes: readonly Uint8Array[]): Uint8Array {
  return spanHash(arrayStore(leafHashes), { start: 0, end: leafHashes.length });
}

/** The root of the first `size` leaves of a source: the root the tree had at that size. */
export function rootAt(source: LeafSource, size: number): Uint8Array {
  assertCount(size, "size");
  const store = toStore(source);
  checkAvailable(store.size(), size);
  return spanHash(store, { start: 0, end: size });
}

/**
 * The inclusion proof (RFC 9162 §2.1.3.1) of leaf `index` in the tree of the first `size` leaves
 * of `source`, nearest the leaf first. `size` may be below the source's size: a proof against an
 * older tree head.
 *
 * @example
 * const proof = inclusionProof(tree, 5, tree.size());
 * verifyInclusion({ leafHash: tree.leafHash(5), index: 5, size: tree.size(), proof, root });
 */
export function inclusionProof(source: LeafSource, index: number, size: number): Uint8Array[] {
  checkInclusionArgs(index, size);
  const store = toStore(source);
  checkAvailable(store.size(), size);
  return inclusionSpans(index, size).map((span) => spanHash(store, span));
}

/**
 * The consistency proof (RFC 9162 §2.1.4.1) that the tree of `size2` leaves extends the tree of
 * `size1` leaves. It is empty when the sizes are equal or `size1` is 0.
 */
export function consistencyProof(source: LeafSource, size1: number, size2: number): Uint8Array[] {
  checkConsistencyArgs(size1, size2);
  const store = toStore(source);
  checkAvailable(store.size(), size2);
  if (size1 === 0 || size1 === size2) return [];
  return consistencySpans(size1, size2).map((span) => spanHash(store, span));
}

/** {@link inclusionProof} over a store that answers asynchronously; reads run concurrently. */
export async function inclusionProofAsync(
  store: AsyncMerkleStore,
  index: number,
  size: number,
): Promise<Uint8Array[]> {
  checkInclusionArgs(index, size);
  checkAvailable(await store.size(), size);
  return Promise.all(inclusionSpans(index, size).map((span) => spanHashAsync(store, span)));
}

/** {@link consistencyProof} over a store that answers asynchronously. */
export async function consistencyProofAsync(
  store: AsyncMerkleStore,
  size1: number,
  size2: number,
): Promise<Uint8Array[]> {
  checkConsistencyArgs(size1, size2);
  checkAvailable(await store.size(), size2);
  if (size1 === 0 || size1 === size2) return [];
  return Promise.all(consistencySpans(size1, size2).map((span) => spanHashAsync(store, span)));
}

/** A claim that a leaf is entry `index` (0-based) of the tree of `size` leaves with `root`. */
export interface InclusionClaim {
  readonly leafHash: Uint8Array;
  readonly index: number;
  readonly size: number;
  readonly proof: readonly Uint8Array[];
  readonly root: Uint8Array;
}

/** A claim that the tree of `size2` leaves with `root2` extends the one of `size1` with `root1`. */
export interface ConsistencyClaim {
  readonly size1: number;
  readonly size2: number;
  readonly root1: Uint8Array;
  readonly root2: Uint8Array;
  readonly proof: readonly Uint8Array[];
}

/**
 * Verifies an inclusion proof exactly as RFC 9162 §2.1.3.2 specifies. Returns false for a claim
 * that does not hold (including an index not below the size) and throws INVALID_ARGUMENT only
 * for arguments of the wrong type or length.
 *
 * A proof binds the leaf to the root; the size only shapes the path, and some other sizes share
 * that shape. Take size and root together from a verified signed tree head.
 */
export function verifyInclusion(claim: InclusionClaim): boolean {
  const { leafHash, index, size, proof, root } = claim;
  assertHash(leafHash, "leafHash");
  assertCount(index, "index");
  assertCount(size, "size");
  assertProof(proof, "proof");
  assertHash(root, "root");
  if (index >= size) return false;
  // fn walks up from the leaf, sn from the last leaf; where they meet, the right edge of the tree
  // has no sibling at that level and the step is skipped. Arithmetic rather than bit operators
  // keeps sizes above 2^32 exact.
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && sameHash(r, root);
}

/**
 * Verifies a consistency proof exactly as RFC 9162 §2.1.4.2 specifies, plus the cases that
 * algorithm leaves out: equal sizes verify with an empty proof and equal roots; an empty old tree
 * verifies with an empty proof when `root1` is the empty tree's root. Returns false for a claim
 * that does not hold (including size1 > size2).
 */
export function verifyConsistency(claim: ConsistencyClaim): boolean {
  const { size1, size2, root1, root2, proof } = claim;
  assertCount(size1, "size1");
  assertCount(size2, "size2");
  assertHash(root1, "root1");
  assertHash(root2, "root2");
  assertProof(proof, "proof");
  if (size1 > size2) return false;
  if (size1 === 0) {
    const empty = emptyRoot();
    return proof.length === 0 && sameHash(root1, empty) && (size2 > 0 || sameHash(root2, empty));
  }
  if (size1 === size2) return proof.length === 0 && sameHash(root1, root2);
  if (proof.length === 0) return false;
  // The old tree's root is itself a node of the new tree when its size is a power of two, so
  // the proof leaves it out and the verifier supplies it.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && sameHash(fr, root1) && sameHash(sr, root2);
}

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MemoryMerkleStore,
  consistencyProof,
  consistencyProofAsync,
  emptyRoot,
  inclusionProof,
  inclusionProofAsync,
  leafHash,
  nodeHash,
  rootAt,
  rootOf,
  toHex,
  verifyConsistency,
  verifyInclusion,
  type MerkleStore,
} from "./index.js";

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));

// The RFC 6962 test tree, as published by google/certificate-transparency and by
// transparency-dev/merkle (testonly/constants.go; proof/verify_test.go for the proofs).
const LEAVES = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
].map((data) => leafHash(hex(data)));
const ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
// Every complete subtree of the eight-leaf tree, by level and index.
const NODES = [
  [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
  ],
  [
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
  ],
  [
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
  ],
  ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];
// transparency-dev/merkle's vectors, with its 1-based leaf numbers turned into 0-based indexes.
const INCLUSION_VECTORS: Array<{ index: number; size: number; proof: string[] }> = [
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [NODES[0]![1]!, NODES[1]![1]!, NODES[2]![1]!],
  },
  {
    index: 5,
    size: 8,
    proof: [NODES[0]![4]!, NODES[1]![3]!, NODES[2]![0]!],
  },
  { index: 2, size: 3, proof: [NODES[1]![0]!] },
  {
    index: 1,
    size: 5,
    proof: [NODES[0]![0]!, NODES[1]![1]!, NODES[0]![4]!],
  },
];
const CONSISTENCY_VECTORS: Array<{ size1: number; size2: number; proof: string[] }> = [
  { size1: 1, size2: 1, proof: [] },
  { size1: 1, size2: 8, proof: [NODES[0]![1]!, NODES[1]![1]!, NODES[2]![1]!] },
  { size1: 6, size2: 8, proof: [NODES[1]![2]!, NODES[1]![3]!, NODES[2]![0]!] },
  { size1: 2, size2: 5, proof: [NODES[1]![1]!, NODES[0]![4]!] },
  { size1: 6, size2: 7, proof: [NODES[1]![2]!, NODES[0]![6]!, NODES[2]![0]!] },
];

function storeOf(leaves: readonly Uint8Array[]): MemoryMerkleStore {
  const store = new MemoryMerkleStore();
  for (const leaf of leaves) store.append(leaf);
  return store;
}

const KNOWN = storeOf(LEAVES);
const root = (size: number): Uint8Array => hex(ROOTS[size] as string);

describe("Merkle tree hashes: RFC 6962/9162 known answers", () => {
  it("gives the published root after each of the eight leaves, and SHA-256('') when empty", () => {
    for (let n = 0; n <= 8; n++) {
      expect(toHex(rootOf(LEAVES.slice(0, n))), `n=${n}`).toBe(ROOTS[n]);
      expect(toHex(rootAt(KNOWN, n)), `rootAt n=${n}`).toBe(ROOTS[n]);
    }
    expect(toHex(emptyRoot())).toBe(ROOTS[0]);
  });

  it("keeps every published complete subtree hash in the memory store", () => {
    NODES.forEach((row, level) =>
      row.forEach((expected, index) =>
        expect(toHex(KNOWN.subtreeHash(level, index) as Uint8Array)).toBe(expected),
      ),
    );
    expect(KNOWN.subtreeHash(3, 1)).toBeUndefined();
    expect(KNOWN.subtreeHash(4, 0)).toBeUndefined();
  });

  it("separates leaves from nodes with the 0x00 and 0x01 prefixes", () => {
    const a = LEAVES[2] as Uint8Array;
    const b = LEAVES[3] as Uint8Array;
    expect(toHex(nodeHash(a, b))).toBe(NODES[1]![1]);
    // The same 64 bytes hashed as a leaf give a different hash: no node passes for a leaf.
    expect(toHex(leafHash(new Uint8Array([...a, ...b])))).not.toBe(NODES[1]![1]);
  });

  it("generates and verifies the published inclusion proofs", async () => {
    for (const v of INCLUSION_VECTORS) {
      const proof = inclusionProof(KNOWN, v.index, v.size);
      expect(proof.map(toHex), `${v.index}/${v.size}`).toEqual(v.proof);
      expect((await inclusionProofAsync(KNOWN, v.index, v.size)).map(toHex)).toEqual(v.proof);
      expect(inclusionProof(LEAVES, v.index, v.size).map(toHex)).toEqual(v.proof);
      const claim = {
        leafHash: LEAVES[v.index]!,
        index: v.index,
        size: v.size,
        root: root(v.size),
      };
      expect(verifyInclusion({ ...claim, proof: v.proof.map(hex) })).toBe(true);
    }
  });

  it("generates and verifies the published consistency proofs", async () => {
    for (const v of CONSISTENCY_VECTORS) {
      const proof = consistencyProof(KNOWN, v.size1, v.size2);
      expect(proof.map(toHex), `${v.size1}->${v.size2}`).toEqual(v.proof);
      expect((await consistencyProofAsync(KNOWN, v.size1, v.size2)).map(toHex)).toEqual(v.proof);
      const claim = { size1: v.size1, size2: v.size2, root1: root(v.size1), root2: root(v.size2) };
      expect(verifyConsistency({ ...claim, proof: v.proof.map(hex) })).toBe(true);
    }
  });

  it("rejects transparency-dev's corrupted variants of the published proofs", () => {
    const some = hex("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (const v of INCLUSION_VECTORS.filter((x) => x.proof.length > 0)) {
      const proof = v.proof.map(hex);
      const good = {
        leafHash: LEAVES[v.index]!,
        index: v.index,
        size: v.size,
        proof,
        root: root(v.size),
      };
      const bad = [
        { ...good, index: v.index + 1 },
        { ...good, index: v.index ^ 2 },
        { ...good, size: v.size * 2 },
        { ...good, size: Math.floor(v.size / 2) },
        { ...good, root: emptyRoot() },
        { ...good, root: some },
        { ...good, proof: [...proof, good.root] },
        { ...good, proof: [good.root, ...proof] },
        { ...good, proof: proof.slice(0, -1) },
      ];
      if (v.index > 0) bad.push({ ...good, index: v.index - 1 });
      for (const claim of bad) expect(verifyInclusion(claim), JSON.stringify(claim)).toBe(false);
    }
    for (const v of CONSISTENCY_VECTORS.filter((x) => x.proof.length > 0)) {
      const proof = v.proof.map(hex);
      const good = {
        size1: v.size1,
        size2: v.size2,
        root1: root(v.size1),
        root2: root(v.size2),
        proof,
      };
      const bad = [
        { ...good, size1: v.size1 - 1 },
        { ...good, size1: v.size1 + 1 },
        { ...good, size1: v.size1 ^ 2 },
        { ...good, size2: v.size2 * 2 },
        { ...good, size2: Math.floor(v.size2 / 2) },
        { ...good, root1: some },
        { ...good, root2: some },
        { ...good, root1: good.root2, root2: good.root1 },
        { ...good, proof: [] },
        { ...good, proof: [...proof, good.root1] },
        { ...good, proof: [...proof, good.root2] },
        { ...good, proof: [good.root1, ...proof] },
        { ...good, proof: [good.root2, ...proof] },
        { ...good, proof: [proof[0]!, ...proof] },
        { ...good, proof: proof.slice(0, -1) },
      ];
      for (const claim of bad) expect(verifyConsistency(claim), JSON.stringify(claim)).toBe(false);
    }
  });

  it("handles the edge sizes: empty old trees, equal sizes, sizes out of order", () => {
    const r = (n: number): Uint8Array => root(n);
    expect(verifyConsistency({ size1: 0, size2: 5, root1: r(0), root2: r(5), proof: [] })).toBe(
      true,
    );
    expect(verifyConsistency({ size1: 0, size2: 0, root1: r(0), root2: r(0), proof: [] })).toBe(
      true,
    );
    // Stricter than some verifiers: the empty tree has one root, and a size-0 head claiming another
    // root is false.
    expect(verifyConsistency({ size1: 0, size2: 5, root1: r(5), root2: r(5), proof: [] })).toBe(
      false,
    );
    expect(verifyConsistency({ size1: 0, size2: 5, root1: r(0), root2: r(5), proof: [r(0)] })).toBe(
      false,
    );
    expect(verifyConsistency({ size1: 4, size2: 4, root1: r(4), root2: r(4), proof: [] })).toBe(
      true,
    );
    expect(verifyConsistency({ size1: 4, size2: 4, root1: r(4), root2: r(3), proof: [] })).toBe(
      false,
    );
    expect(verifyConsistency({ size1: 4, size2: 4, root1: r(4), root2: r(4), proof: [r(4)] })).toBe(
      false,
    );
    expect(verifyConsistency({ size1: 5, size2: 4, root1: r(5), root2: r(4), proof: [] })).toBe(
      false,
    );
    expect(
      verifyInclusion({ leafHash: LEAVES[0]!, index: 0, size: 0, proof: [], root: r(0) }),
    ).toBe(false);
    expect(
      verifyInclusion({ leafHash: LEAVES[0]!, index: 1, size: 1, proof: [], root: r(1) }),
    ).toBe(false);
    expect(consistencyProof(KNOWN, 0, 8)).toEqual([]);
    expect(consistencyProof(KNOWN, 8, 8)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests over random trees. Leaves are distinct (each starts with its index), so no
// subtree hash repeats and a proof for one position cannot honestly serve another.

function distinctLeaves(size: number, salt: number): Uint8Array[] {
  return Array.from({ length: size }, (_, i) => {
    const data = new Uint8Array(12);
    const view = new DataView(data.buffer);
    view.setUint32(0, i);
    view.setFloat64(4, salt);
    return leafHash(data);
  });
}

function largestPowerBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The shape of an inclusion proof straight from RFC 9162's recursive PATH definition: for each
 * hash, nearest the leaf first, whether it is the left (L) or right (R) sibling. Two claims with
 * the same shape and proof make the verifier compute exactly the same hashes.
 */
function inclusionShape(index: number, size: number): string {
  if (size <= 1) return "";
  const k = largestPowerBelow(size);
  return index < k ? `${inclusionShape(index, k)}R` : `${inclusionShape(index - k, size - k)}L`;
}

/**
 * What a consistency proof asserts, from RFC 9162's recursive SUBPROOF definition: the old and
 * new roots as expressions over the proof hashes p0, p1, … (and R1, the old root the verifier
 * already has). Equal expressions mean the verifier checks exactly the same equations.
 */
function consistencyShape(size1: number, size2: number): string {
  let next = 0;
  const sub = (m: number, n: number, known: boolean): { old: string; now: string } => {
    if (m === n) {
      if (known) return { old: "R1", now: "R1" };
      const p = `p${next++}`;
      return { old: p, now: p };
    }
    const k = largestPowerBelow(n);
    if (m <= k) {
      const inner = sub(m, k, known);
      return { old: inner.old, now: `H(${inner.now},p${next++})` };
    }
    const inner = sub(m - k, n - k, false);
    const p = `p${next++}`;
    return { old: `H(${p},${inner.old})`, now: `H(${p},${inner.now})` };
  };
  const { old, now } = sub(size1, size2, true);
  return `${old}|${now}|${next}`;
}

const flipBit = (bytes: Uint8Array, bit: number): Uint8Array => {
  const copy = new Uint8Array(bytes);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
};
const flipNumberBit = (n: number, bit: number): number =>
  Math.floor(n / 2 ** bit) % 2 === 1 ? n - 2 ** bit : n + 2 ** bit;

const tree = fc
  .record({ size: fc.integer({ min: 1, max: 300 }), salt: fc.double({ noNaN: true }) })
  .map(({ size, salt }) => {
    const leaves = distinctLeaves(size, salt);
    return { leaves, store: storeOf(leaves) };
  });

const inclusionCase = tree.chain(({ leaves, store }) =>
  fc
    .integer({ min: 1, max: leaves.length })
    .chain((size) =>
      fc.record({ size: fc.constant(size), index: fc.integer({ min: 0, max: size - 1 }) }),
    )
    .map(({ size, index }) => ({
      claim: {
        leafHash: leaves[index]!,
        index,
        size,
        proof: inclusionProof(store, index, size),
        root: rootAt(store, size),
      },
      store,
    })),
);

const consistencyCase = tree.chain(({ leaves, store }) =>
  fc
    .integer({ min: 0, max: leaves.length })
    .chain((size2) =>
      fc.record({ size2: fc.constant(size2), size1: fc.integer({ min: 0, max: size2 }) }),
    )
    .map(({ size1, size2 }) => ({
      claim: {
        size1,
        size2,
        root1: rootAt(store, size1),
        root2: rootAt(store, size2),
        proof: consistencyProof(store, size1, size2),
      },
      store,
    })),
);

const RUNS = { numRuns: 300 };

describe("Merkle proofs: properties over random trees", () => {
  it("every inclusion proof verifies, and matches RFC 9162's PATH over the plain leaf list", () => {
    fc.assert(
      fc.property(inclusionCase, ({ claim, store }) => {
        expect(verifyInclusion(claim)).toBe(true);
        expect(claim.proof.length).toBe(inclusionShape(claim.index, claim.size).length);
        // The cached store and the uncached leaf list must agree hash for hash.
        const leaves = Array.from({ length: claim.size }, (_, i) => store.leafHash(i));
        expect(inclusionProof(leaves, claim.index, claim.size)).toEqual(claim.proof);
        expect(rootOf(leaves)).toEqual(claim.root);
      }),
      RUNS,
    );
  });

  it("every consistency proof verifies", () => {
    fc.assert(
      fc.property(consistencyCase, ({ claim, store }) => {
        expect(verifyConsistency(claim)).toBe(true);
        const leaves = Array.from({ length: claim.size2 }, (_, i) => store.leafHash(i));
        expect(consistencyProof(leaves, claim.size1, claim.size2)).toEqual(claim.proof);
      }),
      RUNS,
    );
  });

  it("rejects an inclusion claim with one bit changed in the leaf, a proof hash or the root", () => {
    fc.assert(
      fc.property(
        inclusionCase,
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        ({ claim }, bit, pick) => {
          expect(verifyInclusion({ ...claim, leafHash: flipBit(claim.leafHash, bit) })).toBe(false);
          expect(verifyInclusion({ ...claim, root: flipBit(claim.root, bit) })).toBe(false);
          if (claim.proof.length > 0) {
            const at = pick % claim.proof.length;
            const proof = claim.proof.map((h, i) => (i === at ? flipBit(h, bit) : h));
            expect(verifyInclusion({ ...claim, proof })).toBe(false);
          }
        },
      ),
      RUNS,
    );
  });

  it("rejects an inclusion claim with one bit of the index changed", () => {
    fc.assert(
      fc.property(inclusionCase, fc.integer({ min: 0, max: 52 }), ({ claim }, bit) => {
        expect(verifyInclusion({ ...claim, index: flipNumberBit(claim.index, bit) })).toBe(false);
      }),
      RUNS,
    );
  });

  it("accepts a size with one bit changed only when RFC 9162 gives it the very same path shape", () => {
    // An inclusion proof binds leaf and root; the size only shapes the path. Sizes that share
    // the shape (index 0 in sizes 6 and 7, say) verify alike, which is why size and root must
    // come together from a signed tree head. Every other size must be rejected.
    let sameShape = 0;
    fc.assert(
      fc.property(inclusionCase, fc.integer({ min: 0, max: 52 }), ({ claim }, bit) => {
        const size = flipNumberBit(claim.size, bit);
        const expected =
          claim.index < size &&
          inclusionShape(claim.index, size) === inclusionShape(claim.index, claim.size);
        if (expected) sameShape++;
        expect(verifyInclusion({ ...claim, size })).toBe(expected);
      }),
      RUNS,
    );
    expect(
      verifyInclusion({
        leafHash: LEAVES[0]!,
        index: 0,
        size: 7,
        root: root(6),
        proof: inclusionProof(KNOWN, 0, 6),
      }),
    ).toBe(true);
    expect(sameShape).toBeLessThan(RUNS.numRuns);
  });

  it("rejects truncated, extended and reordered inclusion proofs", () => {
    fc.assert(
      fc.property(inclusionCase, fc.nat(), fc.nat(), ({ claim }, a, b) => {
        const { proof } = claim;
        const extra = leafHash(new Uint8Array([a % 256]));
        expect(verifyInclusion({ ...claim, proof: [...proof, extra] })).toBe(false);
        expect(verifyInclusion({ ...claim, proof: [...proof, claim.root] })).toBe(false);
        expect(verifyInclusion({ ...claim, proof: [extra, ...proof] })).toBe(false);
        if (proof.length === 0) return;
        expect(verifyInclusion({ ...claim, proof: proof.slice(0, -1) })).toBe(false);
        expect(verifyInclusion({ ...claim, proof: proof.slice(1) })).toBe(false);
        if (proof.length < 2) return;
        const i = a % proof.length;
        const j = (i + 1 + (b % (proof.length - 1))) % proof.length;
        const swapped = [...proof];
        [swapped[i], swapped[j]] = [proof[j]!, proof[i]!];
        expect(verifyInclusion({ ...claim, proof: swapped })).toBe(false);
      }),
      RUNS,
    );
  });

  it("rejects a consistency claim with one bit changed in a root or a proof hash", () => {
    fc.assert(
      fc.property(
        consistencyCase,
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        ({ claim }, bit, pick) => {
          expect(verifyConsistency({ ...claim, root1: flipBit(claim.root1, bit) })).toBe(false);
          // Growing from the empty tree is consistent with any new root: nothing to check it by.
          if (claim.size1 > 0) {
            expect(verifyConsistency({ ...claim, root2: flipBit(claim.root2, bit) })).toBe(false);
          }
          if (claim.proof.length > 0) {
            const at = pick % claim.proof.length;
            const proof = claim.proof.map((h, i) => (i === at ? flipBit(h, bit) : h));
            expect(verifyConsistency({ ...claim, proof })).toBe(false);
          }
        },
      ),
      RUNS,
    );
  });

  it("accepts sizes with one bit changed only when RFC 9162 gives them the very same equations", () => {
    fc.assert(
      fc.property(
        consistencyCase.filter(({ claim }) => claim.proof.length > 0),
        fc.integer({ min: 0, max: 52 }),
        fc.boolean(),
        ({ claim }, bit, first) => {
          const size1 = first ? flipNumberBit(claim.size1, bit) : claim.size1;
          const size2 = first ? claim.size2 : flipNumberBit(claim.size2, bit);
          const expected =
            size1 > 0 &&
            size1 < size2 &&
            consistencyShape(size1, size2) === consistencyShape(claim.size1, claim.size2);
          expect(verifyConsistency({ ...claim, size1, size2 })).toBe(expected);
        },
      ),
      RUNS,
    );
  });

  it("rejects truncated, extended and reordered consistency proofs", () => {
    fc.assert(
      fc.property(
        consistencyCase.filter(({ claim }) => claim.proof.length > 0),
        fc.nat(),
        fc.nat(),
        ({ claim }, a, b) => {
          const { proof } = claim;
          const extra = leafHash(new Uint8Array([a % 256]));
          expect(verifyConsistency({ ...claim, proof: [...proof, extra] })).toBe(false);
          expect(verifyConsistency({ ...claim, proof: [extra, ...proof] })).toBe(false);
          expect(verifyConsistency({ ...claim, proof: [...proof, claim.root2] })).toBe(false);
          expect(verifyConsistency({ ...claim, proof: proof.slice(0, -1) })).toBe(false);
          expect(verifyConsistency({ ...claim, proof: proof.slice(1) })).toBe(false);
          if (proof.length < 2) return;
          const i = a % proof.length;
          const j = (i + 1 + (b % (proof.length - 1))) % proof.length;
          const swapped = [...proof];
          [swapped[i], swapped[j]] = [proof[j]!, proof[i]!];
          expect(verifyConsistency({ ...claim, proof: swapped })).toBe(false);
        },
      ),
      RUNS,
    );
  });
});

describe("Merkle proofs: stores and large trees", () => {
  it("reads O(log n) hashes per proof from a store that keeps subtree hashes", () => {
    const store = storeOf(distinctLeaves(100_003, 1));
    let reads = 0;
    const counting: MerkleStore = {
      size: () => store.size(),
      leafHash: (i) => (reads++, store.leafHash(i)),
      subtreeHash: (level, i) => (reads++, store.subtreeHash(level, i)),
    };
    for (const index of [0, 1, 65_535, 65_536, 99_999, 100_002]) {
      reads = 0;
      inclusionProof(counting, index, 100_003);
      expect(reads, `inclusion ${index}`).toBeLessThanOrEqual(2 * 17 + 2);
    }
    for (const size1 of [1, 3, 65_536, 70_001, 100_002]) {
      reads = 0;
      consistencyProof(counting, size1, 100_003);
      expect(reads, `consistency ${size1}`).toBeLessThanOrEqual(4 * 17 + 4);
    }
  });

  it("computes subtrees from leaves when the store keeps only some of them", async () => {
    const leaves = distinctLeaves(77, 2);
    const full = storeOf(leaves);
    // Keeps levels 0 and 3 and above only, the way a ledger might keep every eighth node.
    const sparse: MerkleStore = {
      size: () => full.size(),
      leafHash: (i) => full.leafHash(i),
      subtreeHash: (level, i) => (level >= 3 ? full.subtreeHash(level, i) : undefined),
    };
    const slow = {
      size: () => Promise.resolve(full.size()),
      leafHash: (i: number) => Promise.resolve(full.leafHash(i)),
    };
    for (let index = 0; index < 77; index += 7) {
      expect(inclusionProof(sparse, index, 77)).toEqual(inclusionProof(full, index, 77));
      expect(await inclusionProofAsync(slow, index, 77)).toEqual(inclusionProof(full, index, 77));
    }
    for (let size1 = 0; size1 <= 77; size1 += 11) {
      expect(await consistencyProofAsync(slow, size1, 77)).toEqual(
        consistencyProof(full, size1, 77),
      );
    }
  });

  it("stays exact for sizes and indexes beyond 2^32", () => {
    // A tree of 2^40 equal leaves: every perfect subtree of a level has the same hash, so a store
    // can answer in O(1) without holding anything, and the verifier's index arithmetic is tested
    // where 32-bit bit operators would silently wrap.
    const levels = [leafHash(new Uint8Array([7]))];
    for (let l = 1; l <= 41; l++) levels.push(nodeHash(levels[l - 1]!, levels[l - 1]!));
    const size = 2 ** 40 + 12_345;
    const big: MerkleStore = {
      size: () => size,
      leafHash: () => levels[0]!,
      subtreeHash: (level) => levels[level],
    };
    const root2 = rootAt(big, size);
    for (const index of [2 ** 33 + 5, 2 ** 40 + 12_000, size - 1]) {
      const proof = inclusionProof(big, index, size);
      expect(verifyInclusion({ leafHash: levels[0]!, index, size, proof, root: root2 })).toBe(true);
      expect(
        verifyInclusion({ leafHash: levels[0]!, index, size: size + 2 ** 41, proof, root: root2 }),
      ).toBe(false);
    }
    const size1 = 2 ** 35 + 3;
    const proof = consistencyProof(big, size1, size);
    const claim = { size1, size2: size, root1: rootAt(big, size1), root2, proof };
    expect(verifyConsistency(claim)).toBe(true);
    expect(verifyConsistency({ ...claim, size1: size1 + 2 ** 33 })).toBe(false);
  });

  it("refuses proofs the store cannot back and arguments of the wrong kind", () => {
    expect(() => inclusionProof(KNOWN, 8, 8)).toThrow(/not below tree size/);
    expect(() => inclusionProof(KNOWN, 0, 9)).toThrow(/beyond the 8 leaves/);
    expect(() => consistencyProof(KNOWN, 5, 4)).toThrow(/larger than size2/);
    expect(() => consistencyProof(KNOWN, 1, 9)).toThrow(/beyond the 8 leaves/);
    expect(() => inclusionProof(KNOWN, -1, 8)).toThrow(/index must be a non-negative/);
    expect(() => inclusionProof(KNOWN, 1.5, 8)).toThrow(/index must be a non-negative/);
    expect(() => rootAt(KNOWN, Number.NaN)).toThrow(/size must be/);
    const claim = { leafHash: LEAVES[0]!, index: 0, size: 1, proof: [], root: root(1) };
    expect(() => verifyInclusion({ ...claim, leafHash: new Uint8Array(31) })).toThrow(
      /leafHash must be a 32-byte/,
    );
    expect(() => verifyInclusion({ ...claim, root: "00" as unknown as Uint8Array })).toThrow(
      /root must be/,
    );
    expect(() => verifyInclusion({ ...claim, proof: [new Uint8Array(33)] })).toThrow(/proof\[0\]/);
    expect(() => verifyInclusion({ ...claim, proof: "x" as unknown as Uint8Array[] })).toThrow(
      /array/,
    );
    expect(() => verifyInclusion({ ...claim, size: 2 ** 53 })).toThrow(/size must be/);
    expect(() =>
      verifyConsistency({ size1: -1, size2: 1, root1: root(1), root2: root(1), proof: [] }),
    ).toThrow(/size1/);
    const broken: MerkleStore = { size: () => 4, leafHash: () => new Uint8Array(3) };
    expect(() => inclusionProof(broken, 0, 4)).toThrow(/malformed leaf hash/);
    expect(() => new MemoryMerkleStore().append(new Uint8Array(10))).toThrow(/leaf hash must be/);
    expect(() => KNOWN.leafHash(8)).toThrow(/beyond the tree/);
  });

  it("hands out copies, so a caller writing into a hash cannot corrupt the store", () => {
    const store = storeOf(LEAVES);
    store.leafHash(3).fill(0);
    inclusionProof(store, 0, 8)[0]!.fill(0);
    (store.subtreeHash(1, 1) as Uint8Array).fill(0);
    expect(toHex(rootAt(store, 8))).toBe(ROOTS[8]);
  });
});

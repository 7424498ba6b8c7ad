import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Frontier, leafHash, rootOf, toHex } from "./index.js";

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));
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

describe("Frontier", () => {
  it("holds transparency-dev's compact trees for the RFC 6962 test tree", () => {
    // testonly/constants.go CompactTrees(): the subtree roots after each leaf, largest first.
    const expected = [
      [],
      ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
      ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
      [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
      ],
      ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
      [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      ],
      [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      ],
      [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      ],
      ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];
    const frontier = new Frontier();
    expect(frontier.hashes()).toEqual([]);
    expect(toHex(frontier.root())).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    LEAVES.forEach((leaf, i) => {
      frontier.append(leaf);
      expect(frontier.size).toBe(i + 1);
      expect(frontier.hashes().map(toHex)).toEqual(expected[i + 1]);
    });
  });

  it("has the root of all its leaves after any number of appends, in O(log n) hashes", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 200 }), (entries) => {
        const frontier = new Frontier();
        const leaves: Uint8Array[] = [];
        for (const entry of entries) {
          const leaf = leafHash(entry);
          leaves.push(leaf);
          frontier.append(leaf);
          expect(frontier.root()).toEqual(rootOf(leaves));
        }
        // One subtree root per set bit of the size.
        const bits = [...frontier.size.toString(2)].filter((b) => b === "1").length;
        expect(frontier.hashes()).toHaveLength(bits);
      }),
    );
  });

  it("survives a round trip through JSON and bytes and keeps appending from there", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 40 }), (n, more) => {
        const frontier = new Frontier();
        const leaves: Uint8Array[] = [];
        const add = (f: Frontier, i: number): void => {
          const leaf = leafHash(new Uint8Array([i & 255, i >> 8]));
          f.append(leaf);
          leaves.push(leaf);
        };
        for (let i = 0; i < n; i++) add(frontier, i);
        const fromJson = Frontier.fromJSON(JSON.parse(JSON.stringify(frontier)));
        const fromBytes = Frontier.fromBytes(frontier.toBytes());
        expect(frontier.toBytes()).toHaveLength(8 + 32 * frontier.hashes().length);
        for (const copy of [fromJson, fromBytes]) {
          expect(copy.size).toBe(n);
          expect(copy.root()).toEqual(frontier.root());
        }
        const leavesAtN = leaves.length;
        for (let i = n; i < n + more; i++) add(fromJson, i);
        expect(fromJson.root()).toEqual(rootOf(leaves));
        leaves.length = leavesAtN;
        for (let i = n; i < n + more; i++)
          fromBytes.append(leafHash(new Uint8Array([i & 255, i >> 8])));
        expect(fromBytes.root()).toEqual(fromJson.root());
      }),
    );
  });

  it("keeps clones independent and hands out copies of its hashes", () => {
    const frontier = new Frontier();
    for (const leaf of LEAVES.slice(0, 3)) frontier.append(leaf);
    const clone = frontier.clone();
    clone.append(LEAVES[3]!);
    expect(frontier.size).toBe(3);
    expect(toHex(frontier.root())).toBe(
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    );
    frontier.hashes()[0]!.fill(0);
    LEAVES[2]!.slice().fill(0);
    expect(toHex(frontier.root())).toBe(
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    );
  });

  it("refuses malformed saved forms with a clear error", () => {
    const h = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
    const cases: Array<[unknown, RegExp]> = [
      [null, /not an object/],
      ["x", /not an object/],
      [{ size: -1, hashes: [] }, /size must be/],
      [{ size: 1.5, hashes: [h] }, /size must be/],
      [{ size: 2 ** 53, hashes: [h] }, /size must be/],
      [{ size: "1", hashes: [h] }, /size must be/],
      [{ size: 1 }, /hashes must be an array/],
      [{ size: 1, hashes: [1] }, /hashes must be an array of strings/],
      [{ size: 3, hashes: [h] }, /3 leaves has 2 subtree roots, not 1/],
      [{ size: 0, hashes: [h] }, /0 leaves has 0 subtree roots, not 1/],
      [{ size: 1, hashes: ["abc"] }, /frontier hash 0 must be a 32-byte hash/],
    ];
    for (const [value, message] of cases) expect(() => Frontier.fromJSON(value)).toThrow(message);
    expect(() => Frontier.fromBytes(new Uint8Array(4))).toThrow(/too short/);
    expect(() => Frontier.fromBytes(new Uint8Array(8 + 31))).toThrow(/whole number of hashes/);
    const huge = new Uint8Array(8).fill(255);
    expect(() => Frontier.fromBytes(huge)).toThrow(/too large/);
    const three = new Uint8Array(8 + 32);
    three[7] = 3;
    expect(() => Frontier.fromBytes(three)).toThrow(/subtree roots/);
    expect(() => new Frontier().append(new Uint8Array(16))).toThrow(/leaf hash must be/);
  });
});

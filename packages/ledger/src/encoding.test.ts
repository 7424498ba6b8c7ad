import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_PROOF_HASHES,
  fromBase64,
  parseCount,
  parseHash,
  parseProof,
  toBase64,
  toHex,
} from "./index.js";

const H = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
const B64 = Buffer.from(H, "hex").toString("base64");

describe("text encodings of hashes, proofs and counts", () => {
  it("reads a hash as hex in either case or as standard base64", () => {
    expect(toHex(parseHash(H))).toBe(H);
    expect(toHex(parseHash(H.toUpperCase()))).toBe(H);
    expect(toHex(parseHash(B64))).toBe(H);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        expect(parseHash(toHex(bytes))).toEqual(bytes);
        expect(parseHash(toBase64(bytes))).toEqual(bytes);
      }),
    );
  });

  it("refuses anything that is not exactly 32 bytes in one canonical form", () => {
    const bad = [
      "",
      H.slice(2),
      `${H}00`,
      `${H.slice(1)}g`,
      ` ${H}`,
      `0x${H}`,
      B64.replace("=", ""),
      B64.replace(/\+/g, "-").replace(/\//g, "_").replace("=", "") + "x",
      Buffer.alloc(31).toString("base64"),
      Buffer.alloc(33).toString("base64"),
      // Non-zero padding bits: Node decodes this to the same bytes as the canonical string.
      nonCanonical(B64),
    ];
    expect(Buffer.from(nonCanonical(B64), "base64").toString("hex")).toBe(H);
    for (const text of bad) {
      expect(() => parseHash(text, "--root"), JSON.stringify(text)).toThrow(
        /--root must be a 32-byte hash/,
      );
    }
    const long = "a".repeat(10_000);
    expect(() => parseHash(long)).toThrow(/\.\.\."$/);
  });

  it("reads proofs as comma-separated hashes, empty for the empty proof", () => {
    expect(parseProof("")).toEqual([]);
    expect(parseProof("  ")).toEqual([]);
    expect(parseProof(`${H}, ${B64} ,${H}`).map(toHex)).toEqual([H, H, H]);
    expect(() => parseProof(`${H},,${H}`, "--proof")).toThrow(
      /--proof has an empty entry at position 2/,
    );
    expect(() => parseProof(`${H},`, "--proof")).toThrow(/empty entry at position 2/);
    expect(() => parseProof(`${H},zz`, "--proof")).toThrow(
      /--proof entry 2 must be a 32-byte hash/,
    );
    const tooMany = Array.from({ length: MAX_PROOF_HASHES + 1 }, () => H).join(",");
    expect(() => parseProof(tooMany)).toThrow(/no valid proof has more than 128/);
    expect(parseProof(Array.from({ length: MAX_PROOF_HASHES }, () => H).join(","))).toHaveLength(
      128,
    );
  });

  it("reads counts as plain decimal integers up to 2^53 - 1", () => {
    expect(parseCount("0")).toBe(0);
    expect(parseCount("007")).toBe(7);
    expect(parseCount("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER);
    for (const text of ["", "-1", "+1", "1.0", "1e3", "0x10", " 1", "1 ", "Infinity", "NaN", "١"]) {
      expect(() => parseCount(text, "--size"), text).toThrow(
        /--size must be a non-negative integer/,
      );
    }
    expect(() => parseCount("9007199254740992", "--size")).toThrow(
      /--size must be at most 9007199254740991/,
    );
    expect(() => parseCount("99999999999999999999999")).toThrow(/at most/);
  });

  it("decodes only canonical standard base64", () => {
    expect(fromBase64("", "x")).toEqual(new Uint8Array());
    expect(fromBase64("AAE=", "x")).toEqual(new Uint8Array([0, 1]));
    for (const text of ["AAE", "AAE==", "AA E=", "AA-_", "AAF="]) {
      expect(() => fromBase64(text, "sig"), text).toThrow(/sig is not (standard|canonical) base64/);
    }
  });
});

/** The same bytes with the unused low bit of the last base64 digit set. */
function nonCanonical(base64: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const last = base64.length - 2;
  return `${base64.slice(0, last)}${alphabet[alphabet.indexOf(base64[last] as string) ^ 1]}=`;
}

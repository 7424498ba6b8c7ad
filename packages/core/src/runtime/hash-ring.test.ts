import { describe, expect, it } from "vitest";
import { HashRing, hash32 } from "./hash-ring.js";

const keys = Array.from({ length: 30_000 }, (_, i) => `order-${i}`);

describe("hash32", () => {
  it("is a deterministic unsigned 32-bit hash", () => {
    expect(hash32("sku-42")).toBe(hash32("sku-42"));
    expect(hash32("sku-42")).not.toBe(hash32("sku-43"));
    for (const key of ["", "a", "ünïcødé", "x".repeat(1_000)]) {
      const h = hash32(key);
      expect(Number.isInteger(h) && h >= 0 && h < 2 ** 32).toBe(true);
    }
  });
});

describe("HashRing", () => {
  it("gives every key the same owner whatever the member order", () => {
    const a = new HashRing(["n1", "n2", "n3"]);
    const b = new HashRing(["n3", "n1", "n2"]);
    for (const key of keys.slice(0, 2_000)) {
      expect(a.owner(key)).toBe(b.owner(key));
      expect(a.owner(key)).toBe(a.owner(key));
    }
  });

  it("has no owner when empty and one owner when alone", () => {
    expect(new HashRing([]).owner("k")).toBeUndefined();
    const solo = new HashRing(["only"]);
    expect(new Set(keys.slice(0, 100).map((k) => solo.owner(k)))).toEqual(new Set(["only"]));
  });

  it("spreads keys roughly evenly over three members", () => {
    for (const members of [
      ["n1", "n2", "n3"],
      ["node-a", "node-b", "node-c"],
      ["eu-1", "us-1", "us-2"],
    ]) {
      const ring = new HashRing(members);
      const counts = new Map<string, number>();
      for (const key of keys) {
        const owner = ring.owner(key) ?? "none";
        counts.set(owner, (counts.get(owner) ?? 0) + 1);
      }
      expect([...counts.keys()].sort()).toEqual([...members].sort());
      for (const [member, count] of counts) {
        const share = count / keys.length;
        expect(share, `${member} in ${members.join(",")}`).toBeGreaterThan(0.2);
        expect(share, `${member} in ${members.join(",")}`).toBeLessThan(0.47);
      }
    }
  });

  it("moves only the leaving member's keys when one of four leaves", () => {
    const before = new HashRing(["n1", "n2", "n3", "n4"]);
    const after = new HashRing(["n1", "n2", "n4"]);
    let moved = 0;
    for (const key of keys) {
      const was = before.owner(key);
      const is = after.owner(key);
      if (was === "n3") {
        expect(is).not.toBe("n3");
        moved++;
      } else {
        expect(is, key).toBe(was);
      }
    }
    // About a quarter of the keys belonged to n3.
    expect(moved / keys.length).toBeGreaterThan(0.15);
    expect(moved / keys.length).toBeLessThan(0.35);
  });

  it("moves only keys to a joining member", () => {
    const before = new HashRing(["n1", "n2", "n3"]);
    const after = new HashRing(["n1", "n2", "n3", "n4"]);
    for (const key of keys) {
      const is = after.owner(key);
      if (is !== "n4") expect(is).toBe(before.owner(key));
    }
  });
});

import { describe, expect, it } from "vitest";
import { manualClock } from "./clock.js";
import { compareHlc, createHlc, decodeHlc, encodeHlc } from "./hlc.js";

describe("hybrid logical clock", () => {
  it("is monotonic even when the wall clock stands still or the peer is ahead", () => {
    const clock = manualClock({ start: 1_000_000 });
    const a = createHlc(clock, "a");
    const t1 = a.now();
    const t2 = a.now();
    expect(compareHlc(t2, t1)).toBeGreaterThan(0);
    expect(t2).toMatchObject({ wall: t1.wall, logical: 1 });
    const remote = { wall: t2.wall + 500, logical: 7, node: "b" };
    const t3 = a.receive(remote);
    expect(compareHlc(t3, remote)).toBeGreaterThan(0);
    const t4 = a.now();
    expect(compareHlc(t4, t3)).toBeGreaterThan(0);
    clock.advance(1_000);
    expect(a.now()).toMatchObject({ wall: 1_001_000, logical: 0 });
  });

  it("refuses a timestamp too far in the future", () => {
    const clock = manualClock({ start: 0 });
    const a = createHlc(clock, "a", { maxDriftMs: 1_000 });
    expect(() => a.receive({ wall: 5_000, logical: 0, node: "evil" })).toThrow(
      /ahead of this node's clock/,
    );
  });

  it("encodes to strings that sort like the timestamps, and back", () => {
    const ts = [
      { wall: 5, logical: 0, node: "b" },
      { wall: 5, logical: 0, node: "a" },
      { wall: 1_700_000_000_000, logical: 3, node: "a" },
      { wall: 5, logical: 12, node: "a" },
    ];
    const byEncoding = [...ts].sort((x, y) => (encodeHlc(x) < encodeHlc(y) ? -1 : 1));
    expect(byEncoding).toEqual([...ts].sort(compareHlc));
    for (const t of ts) expect(decodeHlc(encodeHlc(t))).toEqual(t);
    expect(() => decodeHlc("nope")).toThrow(/not a hybrid logical timestamp/);
  });
});

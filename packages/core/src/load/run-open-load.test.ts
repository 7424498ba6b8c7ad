import { describe, expect, it } from "vitest";
import { manualClock } from "../ports/index.js";
import { runOpenLoad } from "./run-open-load.js";

describe("runOpenLoad", () => {
  it("starts calls at a fixed rate whatever the replies do", async () => {
    const clock = manualClock();
    const run = runOpenLoad({ rate: 100, durationMs: 1_000, clock, call: () => Promise.resolve() });
    for (let t = 0; t < 1_010; t += 5) clock.advance(5);
    const report = await run;
    expect(report.started).toBeGreaterThanOrEqual(99);
    expect(report.started).toBeLessThanOrEqual(101);
  });

  it("follows a rate profile: a spike starts ten times the calls of the baseline", async () => {
    const clock = manualClock();
    const starts: number[] = [];
    const t0 = clock.monotonic();
    const run = runOpenLoad({
      rate: (ms) => (ms >= 1_000 && ms < 2_000 ? 500 : 50),
      durationMs: 3_000,
      clock,
      call: () => {
        starts.push(clock.monotonic() - t0);
        return Promise.resolve();
      },
    });
    for (let t = 0; t < 3_010; t += 5) clock.advance(5);
    await run;
    const inSecond = (s: number) =>
      starts.filter((t) => t >= s * 1_000 && t < (s + 1) * 1_000).length;
    expect(inSecond(0)).toBeGreaterThanOrEqual(45);
    expect(inSecond(0)).toBeLessThanOrEqual(55);
    expect(inSecond(1)).toBeGreaterThanOrEqual(480);
    expect(inSecond(1)).toBeLessThanOrEqual(520);
    expect(inSecond(2)).toBeLessThanOrEqual(55);
  });

  it("refuses a rate that is not positive", async () => {
    await expect(
      runOpenLoad({ rate: 0, durationMs: 10, call: () => Promise.resolve() }),
    ).rejects.toThrow(/positive rate/);
  });
});

import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createProgressView } from "./progress.js";

class Screen extends Writable {
  text = "";
  isTTY: boolean;
  constructor(tty: boolean) {
    super();
    this.isTTY = tty;
  }
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

describe("the demo's progress view", () => {
  it("redraws its panel in place on a terminal, with incidents above it", () => {
    const screen = new Screen(true);
    const view = createProgressView({ stream: screen, durationMs: 60_000 });
    view.state.elapsedMs = 30_000;
    view.state.spike = true;
    view.state.browse = { calls: 1_000, errors: 3, rate: 2_990 };
    view.state.carts = { eu: 5, us: 7 };
    view.render();
    const first = screen.text;
    expect(first.split("\n")).toHaveLength(5);
    expect(first).toContain("30.0s / 60s  BLACK-FRIDAY SPIKE");
    expect(first).toContain("browse     1000 calls, 2990/s, 3 errors");
    expect(first).toContain("eu 5, us 7 edits");
    view.incident("regions partitioned");
    const after = screen.text.slice(first.length);
    // Up four lines and clear, the incident, then the panel again.
    expect(after.startsWith("\x1b[4F\x1b[J  ! 30.0s regions partitioned\n")).toBe(true);
    expect(after.split("\n").slice(1, 5).join("\n")).toContain("30.0s / 60s  BLACK-FRIDAY SPIKE");
  });

  it("prints a line a second elsewhere, and nothing at all when quiet", () => {
    const log = new Screen(false);
    const view = createProgressView({ stream: log, durationMs: 10_000 });
    for (const ms of [100, 400, 900, 1_100, 1_500, 2_050]) {
      view.state.elapsedMs = ms;
      view.render();
    }
    expect(log.text.trim().split("\n")).toHaveLength(3);
    view.incident("fault injected");
    expect(log.text).toContain("  ! 2.0s fault injected\n");
    const quiet = new Screen(true);
    const silent = createProgressView({ stream: quiet, durationMs: 10_000, quiet: true });
    silent.render();
    silent.incident("anything");
    expect(quiet.text).toBe("");
  });
});

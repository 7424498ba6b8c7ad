import { describe, expect, it } from "vitest";
import { tempDir, waitFor } from "./index.js";
import { access } from "node:fs/promises";

describe("waitFor", () => {
  it("returns once the condition holds", async () => {
    let calls = 0;
    await waitFor(() => ++calls >= 3, { intervalMs: 1 });
    expect(calls).toBe(3);
  });

  it("throws with the message after the deadline, keeping the last error as cause", async () => {
    const failure = waitFor(
      () => {
        throw new Error("still broken");
      },
      { timeoutMs: 30, intervalMs: 5, message: "never ready" },
    );
    await expect(failure).rejects.toThrow(/never ready \(after 30 ms\)/);
    await expect(failure).rejects.toMatchObject({ cause: { message: "still broken" } });
  });

  it("stops when its signal aborts", async () => {
    const controller = new AbortController();
    const waiting = waitFor(() => false, { timeoutMs: 10_000, signal: controller.signal });
    controller.abort(new Error("gave up"));
    await expect(waiting).rejects.toThrow("gave up");
  });
});

describe("tempDir", () => {
  it("removes the folder on dispose", async () => {
    let path = "";
    {
      await using dir = await tempDir("strata-harness-test-");
      path = dir.path;
      await access(path);
    }
    await expect(access(path)).rejects.toThrow();
  });
});

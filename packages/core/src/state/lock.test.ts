import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openEmbeddedKv, type EmbeddedKv } from "../adapters/embedded/embedded-kv.js";
import { manualClock } from "../ports/clock.js";
import { acquireLock } from "./lock.js";

let dir: string;
let kv: EmbeddedKv;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "strata-lock-"));
  kv = await openEmbeddedKv({ dir });
});

afterEach(async () => {
  await kv.close();
  await rm(dir, { recursive: true, force: true });
});

describe("acquireLock", () => {
  it("stops waiting for a held lock as soon as its signal aborts, mid-backoff", async () => {
    // A clock whose timers fire only when advanced: the waiter's backoff can end only by abort.
    const clock = manualClock();
    const held = await acquireLock(kv, "relay", { ttlMs: 60_000, clock });
    const controller = new AbortController();
    const waiting = acquireLock(kv, "relay", {
      ttlMs: 60_000,
      waitMs: 2 ** 31 - 1,
      signal: controller.signal,
      clock,
    });
    // Let the first attempt fail and the backoff start.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await expect(waiting).rejects.toThrow();
    await held.release();
  });
});

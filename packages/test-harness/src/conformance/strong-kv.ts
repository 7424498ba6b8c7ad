import { acquireLock, isStrataError, type KvEvent, type StrongKV } from "@strata/core";
import {
  checkLinearizable,
  pairOperations,
  registerModel,
  type HistoryEvent,
} from "@strata/verify";
import { describe, expect, it } from "vitest";

/** How the suite opens a fresh, empty store for each test. */
export interface StrongKvFixture {
  open(): Promise<StrongKV & AsyncDisposable>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

/**
 * The StrongKV conformance suite: every adapter of the port must pass it. Declares a vitest
 * `describe` block; call it from an adapter's test file with a fixture that opens a fresh store.
 *
 * @example
 * describeStrongKvConformance("embedded", { open: () => openEmbeddedKv({ dir: fresh() }) });
 */
export function describeStrongKvConformance(name: string, fixture: StrongKvFixture): void {
  describe(`StrongKV conformance: ${name}`, () => {
    it("is linearizable under concurrent clients (a checked register history)", async () => {
      await using kv = await fixture.open();
      const history: HistoryEvent[] = [];
      const now = (): number => performance.now();
      let unique = 0;
      const client = async (process: number): Promise<void> => {
        const seen = new Map<string, { value: number | null; revision: number }>();
        for (let i = 0; i < 40; i++) {
          const key = `lin/${(process * 7 + i) % 3}`;
          const roll = (process * 31 + i * 17) % 10;
          if (roll < 4) {
            history.push({ process, type: "invoke", f: "read", value: null, key, time: now() });
            try {
              const entry = await kv.get(key);
              const value = entry === undefined ? null : Number(dec(entry.value));
              seen.set(key, { value, revision: entry?.revision ?? 0 });
              history.push({ process, type: "ok", f: "read", value, key, time: now() });
            } catch {
              history.push({ process, type: "info", f: "read", value: null, key, time: now() });
            }
          } else if (roll < 7 || !seen.has(key)) {
            const value = ++unique;
            history.push({ process, type: "invoke", f: "write", value, key, time: now() });
            try {
              const revision = await kv.put(key, enc(String(value)));
              seen.set(key, { value, revision });
              history.push({ process, type: "ok", f: "write", value, key, time: now() });
            } catch {
              history.push({ process, type: "info", f: "write", value, key, time: now() });
            }
          } else {
            // Values are unique per write, so compare-and-set on the revision last read is a
            // compare-and-set on that value.
            const last = seen.get(key) as { value: number | null; revision: number };
            const value = ++unique;
            const input = [last.value, value];
            history.push({ process, type: "invoke", f: "cas", value: input, key, time: now() });
            try {
              const revision = await kv.compareAndSet(key, enc(String(value)), last.revision);
              seen.set(key, { value, revision });
              history.push({ process, type: "ok", f: "cas", value: input, key, time: now() });
            } catch (error) {
              const type = isStrataError(error, "FAILED_PRECONDITION") ? "fail" : "info";
              history.push({ process, type, f: "cas", value: input, key, time: now() });
            }
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, p) => client(p)));
      const verdict = checkLinearizable(pairOperations(history), registerModel(null), {
        timeoutMs: 20_000,
      });
      expect(verdict.result, JSON.stringify(verdict).slice(0, 2_000)).toBe("linearizable");
    });

    it("reads its own writes with strictly increasing revisions", async () => {
      await using kv = await fixture.open();
      const r1 = await kv.put("c/a", enc("1"));
      const r2 = await kv.put("c/a", enc("2"));
      const r3 = await kv.put("c/b", enc("3"));
      expect(r2).toBeGreaterThan(r1);
      expect(r3).toBeGreaterThan(r2);
      const a = await kv.get("c/a");
      expect(dec(a?.value)).toBe("2");
      expect(a?.revision).toBe(r2);
      expect(await kv.get("c/missing")).toBeUndefined();
      expect(await kv.revision()).toBeGreaterThanOrEqual(r3);
    });

    it("creates only absent keys, also after a delete", async () => {
      await using kv = await fixture.open();
      const r1 = await kv.create("c/x", enc("1"));
      await expect(kv.create("c/x", enc("2"))).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
      expect(await kv.delete("c/x", { expectedRevision: r1 })).toBe(true);
      expect(await kv.get("c/x")).toBeUndefined();
      await expect(kv.create("c/x", enc("3"))).resolves.toBeGreaterThan(r1);
      expect(dec((await kv.get("c/x"))?.value)).toBe("3");
    });

    it("compare-and-set succeeds only at the current revision and reports the current one", async () => {
      await using kv = await fixture.open();
      const r1 = await kv.put("c/k", enc("1"));
      const r2 = await kv.compareAndSet("c/k", enc("2"), r1);
      const error: unknown = await kv.compareAndSet("c/k", enc("x"), r1).catch((e: unknown) => e);
      expect(isStrataError(error, "FAILED_PRECONDITION")).toBe(true);
      expect((error as { details: Record<string, unknown> }).details["currentRevision"]).toBe(r2);
      await expect(kv.compareAndSet("c/new", enc("n"), 0)).resolves.toBeGreaterThan(r2);
      await expect(kv.compareAndSet("c/new", enc("n"), 0)).rejects.toMatchObject({
        code: "FAILED_PRECONDITION",
      });
    });

    it("lets exactly one of many concurrent compare-and-sets on one revision win", async () => {
      await using kv = await fixture.open();
      const base = await kv.put("c/race", enc("0"));
      const results = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) => kv.compareAndSet("c/race", enc(`w${i}`), base)),
      );
      const wins = results.filter((r) => r.status === "fulfilled");
      expect(wins).toHaveLength(1);
      for (const r of results)
        if (r.status === "rejected")
          expect(isStrataError(r.reason, "FAILED_PRECONDITION")).toBe(true);
      const creates = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => kv.create("c/once", enc(`c${i}`))),
      );
      expect(creates.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    });

    it("deletes, conditionally or not", async () => {
      await using kv = await fixture.open();
      const r1 = await kv.put("c/d", enc("1"));
      await expect(kv.delete("c/d", { expectedRevision: r1 + 1000 })).rejects.toMatchObject({
        code: "FAILED_PRECONDITION",
      });
      expect(await kv.delete("c/d")).toBe(true);
      expect(await kv.delete("c/d")).toBe(false);
      expect(await kv.get("c/d")).toBeUndefined();
    });

    it("lists a prefix in key order, page by page, without deleted keys", async () => {
      await using kv = await fixture.open();
      for (const k of ["l/3", "l/1", "l/2", "l/4", "lx", "m/1"]) await kv.put(k, enc(k));
      await kv.delete("l/4");
      const first = await kv.list("l/", { limit: 2 });
      expect(first.entries.map((e) => e.key)).toEqual(["l/1", "l/2"]);
      expect(first.next).toBeDefined();
      const second = await kv.list("l/", { limit: 2, after: first.next ?? "" });
      expect(second.entries.map((e) => e.key)).toEqual(["l/3"]);
      expect(second.next).toBeUndefined();
      expect(dec(second.entries[0]?.value)).toBe("l/3");
    });

    it("watches a prefix in revision order, and resumes after a revision", async () => {
      await using kv = await fixture.open();
      const start = await kv.put("w/a", enc("0"));
      const controller = new AbortController();
      const seen: KvEvent[] = [];
      const reading = (async () => {
        for await (const event of kv.watch("w/", {
          signal: controller.signal,
          fromRevision: start,
        })) {
          seen.push(event);
          if (seen.length === 3) controller.abort();
        }
      })();
      await kv.put("w/b", enc("1"));
      await kv.put("z/other", enc("x"));
      await kv.delete("w/a");
      await kv.put("w/a", enc("2"));
      await reading;
      expect(
        seen.map((e) => (e.type === "put" ? `put ${e.entry.key}` : `delete ${e.key}`)),
      ).toEqual(["put w/b", "delete w/a", "put w/a"]);
      const revisions = seen.map((e) => (e.type === "put" ? e.entry.revision : e.revision));
      expect([...revisions].sort((a, b) => a - b)).toEqual(revisions);
    });

    it("refuses non-portable keys and bad arguments with INVALID_ARGUMENT", async () => {
      await using kv = await fixture.open();
      for (const key of ["", ".a", "a.", "a b", "a*", "a>", "ключ"]) {
        await expect(kv.put(key, enc("v"))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      }
      await expect(kv.put("ok", "text" as never)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(kv.compareAndSet("ok", enc("v"), -1)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(kv.list("", { limit: 0 })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    });

    it("gives locks to one holder at a time, with fencing tokens that only grow", async () => {
      await using kv = await fixture.open();
      const first = await acquireLock(kv, "job", { ttlMs: 2_000 });
      await expect(acquireLock(kv, "job", { ttlMs: 2_000 })).rejects.toMatchObject({
        code: "ABORTED",
      });
      await first.release();
      expect(first.signal.aborted).toBe(true);
      let inside = 0;
      let overlaps = 0;
      const tokens: number[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          const lock = await acquireLock(kv, "job", { ttlMs: 2_000, waitMs: 20_000 });
          inside++;
          if (inside > 1) overlaps++;
          tokens.push(lock.token);
          await new Promise((resolve) => setTimeout(resolve, 5));
          inside--;
          await lock.release();
        }),
      );
      expect(overlaps).toBe(0);
      expect(tokens[0]).toBeGreaterThan(first.token);
      expect([...tokens].sort((a, b) => a - b)).toEqual(tokens);
    });

    it("declares its lease capability and honours it", async () => {
      await using kv = await fixture.open();
      if (!kv.capabilities.leases) {
        await expect(kv.grantLease(1_000)).rejects.toMatchObject({ code: "UNIMPLEMENTED" });
        await expect(kv.put("c/l", enc("v"), { lease: "x" })).rejects.toMatchObject({
          code: "UNIMPLEMENTED",
        });
        return;
      }
      const lease = await kv.grantLease(60_000);
      await kv.put("c/l", enc("v"), { lease });
      expect((await kv.get("c/l"))?.lease).toBe(lease);
      await kv.revokeLease(lease);
      expect(await kv.get("c/l")).toBeUndefined();
      await expect(kv.keepAlive(lease)).rejects.toMatchObject({ code: "NOT_FOUND" });
    });

    it("serves stale reads only where it says it can, and linearizable reads see the last write", async () => {
      await using kv = await fixture.open();
      const revision = await kv.put("c/s", enc("v1"));
      const fresh = await kv.get("c/s", { consistency: "linearizable" });
      expect(fresh?.revision).toBe(revision);
      if (kv.capabilities.staleReads) {
        const stale = await kv.get("c/s", { consistency: { maxStalenessMs: 1_000 } });
        expect(stale === undefined || stale.revision <= revision).toBe(true);
      }
    });

    it("commits a transaction's writes all together, or none when a check fails", async () => {
      await using kv = await fixture.open();
      if (!kv.capabilities.transactions) {
        const error = await kv
          .transaction({ writes: [{ type: "put", key: "t/a", value: enc("1") }] })
          .catch((e: unknown) => e);
        expect(isStrataError(error, "UNIMPLEMENTED")).toBe(true);
        expect(await kv.get("t/a")).toBeUndefined();
        return;
      }
      const base = await kv.put("t/a", enc("a0"));
      const gone = await kv.put("t/gone", enc("x"));
      const events: KvEvent[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (const event of kv.watch("t/", {
          fromRevision: base,
          signal: controller.signal,
        })) {
          const revision = event.type === "put" ? event.entry.revision : event.revision;
          if (revision > gone) events.push(event);
          if (event.type === "put" && event.entry.key === "t/z") controller.abort();
        }
      })().catch(() => undefined);
      const revision = await kv.transaction({
        checks: [
          { key: "t/a", revision: base },
          { key: "t/new", revision: 0 },
        ],
        writes: [
          { type: "put", key: "t/new", value: enc("n") },
          { type: "put", key: "t/a", value: enc("a1") },
          { type: "delete", key: "t/gone" },
        ],
      });
      const a = await kv.get("t/a");
      const created = await kv.get("t/new");
      expect(dec(a?.value)).toBe("a1");
      expect(dec(created?.value)).toBe("n");
      expect(await kv.get("t/gone")).toBeUndefined();
      expect(Math.max(a?.revision ?? 0, created?.revision ?? 0)).toBeLessThanOrEqual(revision);
      expect(a?.revision).not.toBe(created?.revision);
      // A failed check: nothing is written, and the error names the key.
      const error = await kv
        .transaction({
          checks: [{ key: "t/a", revision: base }],
          writes: [
            { type: "put", key: "t/a", value: enc("a2") },
            { type: "put", key: "t/other", value: enc("o") },
          ],
        })
        .catch((e: unknown) => e);
      expect(isStrataError(error, "FAILED_PRECONDITION")).toBe(true);
      expect(
        (error as { details: { key: string; currentRevision: number } }).details,
      ).toMatchObject({
        key: "t/a",
        currentRevision: a?.revision,
      });
      expect(dec((await kv.get("t/a"))?.value)).toBe("a1");
      expect(await kv.get("t/other")).toBeUndefined();
      await kv.put("t/z", enc("z"));
      await watching;
      // The watch sees the transaction's writes in key order, before the later put.
      const keys = events.map((e) => (e.type === "put" ? e.entry.key : e.key));
      expect(keys).toEqual(["t/a", "t/gone", "t/new", "t/z"]);
      expect(events[1]?.type).toBe("delete");
    });

    it("lets one of two conflicting transactions win", async () => {
      await using kv = await fixture.open();
      if (!kv.capabilities.transactions) return;
      const base = await kv.put("race/k", enc("0"));
      const attempt = (who: string) =>
        kv
          .transaction({
            checks: [{ key: "race/k", revision: base }],
            writes: [
              { type: "put", key: "race/k", value: enc(who) },
              { type: "put", key: `race/by-${who}`, value: enc("1") },
            ],
          })
          .then(
            () => "won",
            (e: unknown) => (isStrataError(e, "FAILED_PRECONDITION") ? "lost" : String(e)),
          );
      const results = await Promise.all([attempt("x"), attempt("y"), attempt("z")]);
      expect(results.filter((r) => r === "won")).toHaveLength(1);
      expect(results.filter((r) => r === "lost")).toHaveLength(2);
      const winner = dec((await kv.get("race/k"))?.value) as string;
      expect((await kv.list("race/by-")).entries.map((e) => e.key)).toEqual([`race/by-${winner}`]);
    });

    it("refuses malformed transactions with INVALID_ARGUMENT", async () => {
      await using kv = await fixture.open();
      const bad = [
        { writes: "nope" },
        { writes: [{ type: "put", key: "bad key", value: enc("v") }] },
        { writes: [{ type: "put", key: "k", value: "text" }] },
        { writes: [{ type: "rename", key: "k" }] },
        {
          writes: [
            { type: "put", key: "k", value: enc("1") },
            { type: "delete", key: "k" },
          ],
        },
        { checks: [{ key: "k", revision: -1 }], writes: [] },
        { writes: Array.from({ length: 1_001 }, (_, i) => ({ type: "delete", key: `k${i}` })) },
      ];
      for (const txn of bad) {
        const error = await kv.transaction(txn as never).catch((e: unknown) => e);
        expect(isStrataError(error, "INVALID_ARGUMENT"), JSON.stringify(txn).slice(0, 80)).toBe(
          true,
        );
      }
    });
  });
}

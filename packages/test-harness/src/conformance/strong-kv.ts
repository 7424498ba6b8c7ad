import { acquireLock, isStrataError, type KvEvent, type StrongKV } from "@strata/core";
import {
  checkLinearizable,
  pairOperations,
  registerModel,
  type HistoryEvent,
  type Verdict,
} from "@strata/verify";
import { describe, expect, it } from "vitest";

/** How the suite opens a fresh, empty store for each test. */
export interface StrongKvFixture {
  open(): Promise<StrongKV & AsyncDisposable>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);
const keyOf = (e: KvEvent): string => (e.type === "put" ? e.entry.key : e.key);
const revisionOf = (e: KvEvent): number => (e.type === "put" ? e.entry.revision : e.revision);

/**
 * Watches `prefix` after `fromRevision` until an event satisfies `last` (which is kept), or for
 * 20 s at most (the caller's assertions then show what was missing); resolves with every event
 * seen, in delivery order.
 */
function collect(
  kv: StrongKV,
  prefix: string,
  fromRevision: number,
  last: (event: KvEvent) => boolean,
): Promise<KvEvent[]> {
  const controller = new AbortController();
  const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(20_000)]);
  const events: KvEvent[] = [];
  return (async () => {
    for await (const event of kv.watch(prefix, { fromRevision, signal })) {
      events.push(event);
      if (last(event)) controller.abort();
    }
    return events;
  })();
}

/**
 * Runs concurrent clients doing reads, writes and compare-and-sets on a few keys, records the
 * history and checks it against a register model. `kvOf(process)` picks the store each client
 * uses (one store, or one of several views of the same data, such as routers of a sharded
 * store); `during` runs alongside the clients (a fault, a rebalance).
 */
export async function checkRegisterHistory(
  kvOf: (process: number) => StrongKV,
  options: {
    readonly clients?: number;
    readonly operations?: number;
    readonly keys?: number;
    readonly during?: () => Promise<unknown>;
  } = {},
): Promise<Verdict> {
  const clients = options.clients ?? 8;
  const operations = options.operations ?? 40;
  const keys = options.keys ?? 3;
  const history: HistoryEvent[] = [];
  const now = (): number => performance.now();
  let unique = 0;
  const client = async (process: number): Promise<void> => {
    const seen = new Map<string, { value: number | null; revision: number }>();
    for (let i = 0; i < operations; i++) {
      const key = `lin/${(process * 7 + i) % keys}`;
      const roll = (process * 31 + i * 17) % 10;
      if (roll < 4) {
        history.push({ process, type: "invoke", f: "read", value: null, key, time: now() });
        try {
          const entry = await kvOf(process).get(key);
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
          const revision = await kvOf(process).put(key, enc(String(value)));
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
          const revision = await kvOf(process).compareAndSet(
            key,
            enc(String(value)),
            last.revision,
          );
          seen.set(key, { value, revision });
          history.push({ process, type: "ok", f: "cas", value: input, key, time: now() });
        } catch (error) {
          const type = isStrataError(error, "FAILED_PRECONDITION") ? "fail" : "info";
          history.push({ process, type, f: "cas", value: input, key, time: now() });
        }
      }
    }
  };
  await Promise.all([
    Promise.all(Array.from({ length: clients }, (_, p) => client(p))),
    options.during?.(),
  ]);
  return checkLinearizable(pairOperations(history), registerModel(null), { timeoutMs: 20_000 });
}

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
      const verdict = await checkRegisterHistory(() => kv);
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
      // One revision per write, increasing in key order (t/a, t/gone, t/new); the last returned.
      expect(a?.revision).toBeGreaterThan(gone);
      expect(created?.revision).toBeGreaterThan(a?.revision ?? Infinity);
      expect(created?.revision).toBe(revision);
      expect(created?.createRevision ?? revision).toBe(revision);
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
      // The watch sees the transaction's writes in key order, before the later put, and nothing
      // of the failed one.
      expect(events.map(keyOf)).toEqual(["t/a", "t/gone", "t/new", "t/z"]);
      expect(events[1]?.type).toBe("delete");
      expect(events.slice(0, 3).map(revisionOf)).toEqual([
        a?.revision,
        revisionOf(events[1] as KvEvent),
        revision,
      ]);
      const revisions = events.map(revisionOf);
      expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
    });

    it("creates if absent, deletes and checks inside transactions", async () => {
      await using kv = await fixture.open();
      if (!kv.capabilities.transactions) return;
      // Create-if-absent: a check at revision 0.
      const created = await kv.transaction({
        checks: [{ key: "tc/x", revision: 0 }],
        writes: [{ type: "put", key: "tc/x", value: enc("1") }],
      });
      const again = await kv
        .transaction({
          checks: [{ key: "tc/x", revision: 0 }],
          writes: [
            { type: "put", key: "tc/x", value: enc("2") },
            { type: "put", key: "tc/y", value: enc("2") },
          ],
        })
        .catch((e: unknown) => e);
      expect(isStrataError(again, "FAILED_PRECONDITION")).toBe(true);
      expect((again as { details: Record<string, unknown> }).details).toMatchObject({
        key: "tc/x",
        currentRevision: created,
      });
      expect(await kv.get("tc/y")).toBeUndefined();
      // The first failing check is reported, in the order given.
      const first = await kv
        .transaction({
          checks: [
            { key: "tc/absent", revision: 7 },
            { key: "tc/x", revision: 0 },
          ],
          writes: [{ type: "delete", key: "tc/x" }],
        })
        .catch((e: unknown) => e);
      expect((first as { details: Record<string, unknown> }).details).toMatchObject({
        key: "tc/absent",
        currentRevision: 0,
      });
      expect((await kv.get("tc/x"))?.revision).toBe(created);
      // A delete of an absent key takes no revision; a delete of a present one does.
      const deleted = await kv.transaction({
        checks: [{ key: "tc/x", revision: created }],
        writes: [
          { type: "delete", key: "tc/x" },
          { type: "delete", key: "tc/never" },
        ],
      });
      expect(deleted).toBeGreaterThan(created);
      expect(await kv.get("tc/x")).toBeUndefined();
      expect(await kv.revision()).toBeGreaterThanOrEqual(deleted);
      // Checks alone (or only no-op writes) change nothing and answer the current revision.
      const nothing = await kv.transaction({
        checks: [{ key: "tc/x", revision: 0 }],
        writes: [{ type: "delete", key: "tc/never" }],
      });
      expect(nothing).toBeGreaterThanOrEqual(deleted);
      expect(await kv.get("tc/never")).toBeUndefined();
      // Recreated after the delete: a new create revision.
      const recreated = await kv.transaction({
        checks: [{ key: "tc/x", revision: 0 }],
        writes: [{ type: "put", key: "tc/x", value: enc("3") }],
      });
      const entry = await kv.get("tc/x");
      expect(entry?.revision).toBe(recreated);
      expect(entry?.createRevision ?? recreated).toBe(recreated);
      if (kv.capabilities.leases) {
        const lease = await kv.grantLease(60_000);
        await kv.transaction({
          writes: [
            { type: "put", key: "tc/leased", value: enc("l"), lease },
            { type: "put", key: "tc/plain", value: enc("p") },
          ],
        });
        expect((await kv.get("tc/leased"))?.lease).toBe(lease);
        await expect(
          kv.transaction({
            writes: [
              { type: "put", key: "tc/other", value: enc("o") },
              { type: "put", key: "tc/orphan", value: enc("o"), lease: "lease-none" },
            ],
          }),
        ).rejects.toMatchObject({ code: "NOT_FOUND" });
        expect(await kv.get("tc/other")).toBeUndefined();
        await kv.revokeLease(lease);
        expect(await kv.get("tc/leased")).toBeUndefined();
        expect(dec((await kv.get("tc/plain"))?.value)).toBe("p");
      }
    });

    it("keeps an invariant under concurrent transactions, and a watch replays to the same state", async () => {
      await using kv = await fixture.open();
      if (!kv.capabilities.transactions) return;
      const accounts = 4;
      let start = 0;
      for (let i = 0; i < accounts; i++) start = await kv.put(`bank/acct/${i}`, enc("100"));
      const watched = collect(kv, "bank/", start, (e) => keyOf(e) === "bank/zz-end");
      let transfers = 0;
      const worker = async (w: number): Promise<void> => {
        for (let n = 0; n < 12;) {
          const from = `bank/acct/${(w + n) % accounts}`;
          const to = `bank/acct/${(w + n + 1 + (n % 2)) % accounts}`;
          const [a, b] = await Promise.all([kv.get(from), kv.get(to)]);
          if (a === undefined || b === undefined) throw new Error("an account vanished");
          try {
            await kv.transaction({
              checks: [
                { key: from, revision: a.revision },
                { key: to, revision: b.revision },
              ],
              writes: [
                { type: "put", key: from, value: enc(String(Number(dec(a.value)) - 1)) },
                { type: "put", key: to, value: enc(String(Number(dec(b.value)) + 1)) },
                { type: "put", key: `bank/log/${w}-${n}`, value: enc(`${from} ${to}`) },
              ],
            });
            transfers++;
            n++;
          } catch (error) {
            // Another transfer moved one of the accounts first: read again and retry.
            if (!isStrataError(error, "FAILED_PRECONDITION")) throw error;
          }
        }
      };
      await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
      await kv.put("bank/zz-end", enc(""));
      const events = await watched;
      expect(transfers).toBe(72);
      const balances = await kv.list("bank/acct/");
      const total = balances.entries.reduce((sum, e) => sum + Number(dec(e.value)), 0);
      expect(total).toBe(accounts * 100);
      expect((await kv.list("bank/log/")).entries).toHaveLength(transfers);
      // Replaying the watch gives the same state, and revisions never go back.
      const revisions = events.map(revisionOf);
      expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
      const replayed = new Map<string, string>();
      for (const e of events)
        if (e.type === "put") replayed.set(e.entry.key, dec(e.entry.value) ?? "");
        else replayed.delete(e.key);
      for (const e of balances.entries) expect(replayed.get(e.key), e.key).toBe(dec(e.value));
      expect([...replayed.keys()].filter((k) => k.startsWith("bank/log/"))).toHaveLength(transfers);
    });

    it("lets exactly one of several conflicting transactions win", async () => {
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
      const results = await Promise.all(["p", "q", "r", "s", "t", "u", "v", "w"].map(attempt));
      expect(results.filter((r) => r === "won")).toHaveLength(1);
      expect(results.filter((r) => r === "lost")).toHaveLength(7);
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
        { checks: [{ key: "k", revision: 1.5 }], writes: [] },
        { checks: [{ key: "k*", revision: 0 }], writes: [] },
        { checks: "k", writes: [] },
        { writes: Array.from({ length: 1_001 }, (_, i) => ({ type: "delete", key: `k${i}` })) },
        {
          checks: Array.from({ length: 1_001 }, (_, i) => ({ key: `k${i}`, revision: 0 })),
          writes: [],
        },
      ];
      for (const txn of bad) {
        const error = await kv.transaction(txn as never).catch((e: unknown) => e);
        expect(isStrataError(error, "INVALID_ARGUMENT"), JSON.stringify(txn).slice(0, 80)).toBe(
          true,
        );
      }
      expect(await kv.get("k")).toBeUndefined();
      // Exactly the limit is fine.
      if (kv.capabilities.transactions) {
        const writes = Array.from({ length: 1_000 }, (_, i) => ({
          type: "put" as const,
          key: `max/${String(i).padStart(4, "0")}`,
          value: enc(String(i)),
        }));
        const revision = await kv.transaction({ writes });
        expect((await kv.get("max/0999"))?.revision).toBe(revision);
        expect((await kv.list("max/")).entries).toHaveLength(1_000);
      }
    });

    it("watches every write of concurrent writers exactly once, in revision order", async () => {
      await using kv = await fixture.open();
      const start = await kv.put("cw/start", enc(""));
      const watched = collect(kv, "cw/", start, (e) => keyOf(e) === "cw/zz-end");
      const acknowledged = new Map<string, number>();
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          const present = new Set<string>();
          for (let n = 0; n < 25; n++) {
            const key = `cw/${w}/${n % 5}`;
            if (n % 7 === 6 && present.has(key)) {
              expect(await kv.delete(key)).toBe(true);
              present.delete(key);
              acknowledged.set(`${key} deleted ${n}`, 0);
            } else {
              acknowledged.set(`${key} ${n}`, await kv.put(key, enc(`${w}-${n}`)));
              present.add(key);
            }
          }
        }),
      );
      const end = await kv.put("cw/zz-end", enc(""));
      const events = await watched;
      const revisions = events.map(revisionOf);
      expect(new Set(revisions).size).toBe(revisions.length);
      expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
      expect(revisions.at(-1)).toBe(end);
      const puts = new Set(
        events.filter((e) => e.type === "put").map((e) => `${keyOf(e)}@${revisionOf(e)}`),
      );
      for (const [what, revision] of acknowledged) {
        if (revision === 0) continue;
        expect(puts.has(`${what.split(" ")[0] ?? ""}@${revision}`), what).toBe(true);
      }
      const deletes = [...acknowledged.values()].filter((r) => r === 0).length;
      expect(events.filter((e) => e.type === "delete")).toHaveLength(deletes);
      expect(events).toHaveLength(acknowledged.size + 1);
    });
  });
}

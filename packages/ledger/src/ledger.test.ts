import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  isStrataError,
  openEmbeddedLog,
  seededRandom,
  type EventLog,
  type LogRecord,
} from "@strata/core";
import { afterEach, describe, expect, it } from "vitest";
import { auditLedger } from "./audit.js";
import { toHex } from "./encoding.js";
import { leafHash } from "./hash.js";
import { openLedger, type Ledger } from "./ledger.js";
import { inclusionProof, verifyConsistency, verifyInclusion } from "./merkle.js";
import { createSthSigner, generateSthKeys, verifyTreeHead } from "./tree-head.js";

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function freshLog(): Promise<{ log: EventLog; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "strata-ledger-"));
  dirs.push(dir);
  const log = await openEmbeddedLog({ dir });
  closers.push(() => log.close());
  return { log, dir };
}

async function ledgerOn(log: EventLog): Promise<Ledger> {
  const ledger = await openLedger({ log });
  closers.push(() => ledger.close());
  return ledger;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isStrataError(error)) throw new Error(`expected a StrataError, got ${String(error)}`);
  return error.code;
}

async function shop(ledger: Ledger): Promise<void> {
  await ledger.openAccount({ id: "bank", currency: "EUR", lowerBound: null });
  await ledger.openAccount({ id: "alice", currency: "EUR" });
  await ledger.openAccount({ id: "shop", currency: "EUR" });
  await ledger.transfer({
    key: "fund-alice",
    debit: "bank",
    credit: "alice",
    amount: 10_000n,
    currency: "EUR",
  });
}

describe("ledger", () => {
  it("moves money between accounts, double entry, and never below a bound", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    await shop(ledger);
    await ledger.transfer({
      key: "order-1",
      debit: "alice",
      credit: "shop",
      amount: 2_500n,
      currency: "EUR",
      metadata: { order: "o-1" },
    });
    expect((await ledger.balance("alice")).balance).toBe(7_500n);
    expect((await ledger.balance("shop")).balance).toBe(2_500n);
    expect((await ledger.balance("bank")).balance).toBe(-10_000n);
    // Overdraft refused, nothing applied.
    const refused = await ledger
      .transfer({ key: "order-2", debit: "alice", credit: "shop", amount: 7_501n, currency: "EUR" })
      .catch((e: unknown) => e);
    expect(isStrataError(refused, "FAILED_PRECONDITION")).toBe(true);
    expect(isStrataError(refused) && refused.details.reason).toBe("insufficient-funds");
    expect((await ledger.balance("alice")).balance).toBe(7_500n);
    // Unknown accounts, other currencies, bad amounts.
    expect(
      await codeOf(
        ledger.transfer({
          key: "x1",
          debit: "alice",
          credit: "nobody",
          amount: 1n,
          currency: "EUR",
        }),
      ),
    ).toBe("NOT_FOUND");
    expect(
      await codeOf(
        ledger.transfer({ key: "x2", debit: "alice", credit: "shop", amount: 1n, currency: "USD" }),
      ),
    ).toBe("INVALID_ARGUMENT");
    for (const amount of [0n, -5n, 1.5, "10"] as unknown[]) {
      expect(
        await codeOf(
          ledger.transfer({
            key: "x3",
            debit: "alice",
            credit: "shop",
            amount: amount as bigint,
            currency: "EUR",
          }),
        ),
      ).toBe("INVALID_ARGUMENT");
    }
    expect(
      await codeOf(
        ledger.transfer({
          key: "x4",
          debit: "alice",
          credit: "alice",
          amount: 1n,
          currency: "EUR",
        }),
      ),
    ).toBe("INVALID_ARGUMENT");
    expect(ledger.stats().refused).toMatchObject({
      "insufficient-funds": 1,
      "no-account": 1,
      currency: 1,
    });
  });

  it("applies a transfer once however often it is posted, and refuses a key reused for another", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    await shop(ledger);
    const t = {
      key: "pay-7",
      debit: "alice",
      credit: "shop",
      amount: 100n,
      currency: "EUR",
    } as const;
    const first = await ledger.transfer(t);
    const again = await ledger.transfer(t);
    const concurrent = await Promise.all([ledger.transfer(t), ledger.transfer(t)]);
    expect(first.duplicate).toBe(false);
    expect(again).toMatchObject({ duplicate: true, index: first.index });
    expect(concurrent.every((r) => r.duplicate)).toBe(true);
    expect((await ledger.balance("shop")).balance).toBe(100n);
    expect(await codeOf(ledger.transfer({ ...t, amount: 101n }))).toBe("ALREADY_EXISTS");
    // Reopening an account as it is: a no-op; differently: refused.
    await ledger.openAccount({ id: "shop", currency: "EUR" });
    expect(await codeOf(ledger.openAccount({ id: "shop", currency: "USD" }))).toBe(
      "ALREADY_EXISTS",
    );
  });

  it("posts a batch all or nothing, checking bounds after the whole batch", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    await shop(ledger);
    await ledger.openAccount({ id: "fees", currency: "EUR" });
    // Payment with a fee: customer → shop (amount - fee) and customer → fees.
    const ok = await ledger.post([
      { key: "p1", debit: "alice", credit: "shop", amount: 970n, currency: "EUR" },
      { key: "p1-fee", debit: "alice", credit: "fees", amount: 30n, currency: "EUR" },
    ]);
    expect(ok.keys).toEqual(["p1", "p1-fee"]);
    // The second transfer overdraws: neither applies.
    expect(
      await codeOf(
        ledger.post([
          { key: "p2", debit: "alice", credit: "shop", amount: 5_000n, currency: "EUR" },
          { key: "p2-fee", debit: "alice", credit: "fees", amount: 5_000n, currency: "EUR" },
        ]),
      ),
    ).toBe("FAILED_PRECONDITION");
    // A batch that passes through a low balance but ends above it is fine (it applies at once).
    await ledger.post([
      { key: "p3", debit: "alice", credit: "shop", amount: 9_500n, currency: "EUR" },
      { key: "p3-back", debit: "shop", credit: "alice", amount: 600n, currency: "EUR" },
    ]);
    const all = await ledger.balances();
    expect(Object.fromEntries(all.balances)).toEqual({
      bank: -10_000n,
      alice: 100n,
      shop: 9_870n,
      fees: 30n,
    });
  });

  it("commits concurrent postings together, refusing only those that break a rule", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    await shop(ledger);
    const before = ledger.tree.size();
    // 40 postings at once: 39 fit alice's 10 000, one overdraws and is refused on its own.
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        ledger.transfer({
          key: `g-${i}`,
          debit: "alice",
          credit: "shop",
          amount: i === 17 ? 1_000_000n : 100n,
          currency: "EUR",
        }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(39);
    const refused = results[17];
    expect(
      refused?.status === "rejected" && isStrataError(refused.reason, "FAILED_PRECONDITION"),
    ).toBe(true);
    expect((await ledger.balance("alice")).balance).toBe(10_000n - 3_900n);
    // Fewer entries than postings: they shared appends.
    expect(ledger.tree.size() - before).toBeLessThan(39);
    expect((await auditLedger(log)).ok).toBe(true);
  });

  it("serves stale reads from a replica that has not caught up, and fresh ones that have", async () => {
    const { log } = await freshLog();
    const writer = await ledgerOn(log);
    await shop(writer);
    const replica = await ledgerOn(log);
    expect((await replica.balance("alice")).balance).toBe(10_000n);
    await writer.transfer({
      key: "t1",
      debit: "alice",
      credit: "shop",
      amount: 1n,
      currency: "EUR",
    });
    const stale = await replica.balance("alice", { consistency: "stale" });
    expect(stale).toMatchObject({ balance: 10_000n, stale: true });
    expect(stale.asOf).toBe(writer.tree.size() - 1);
    const fresh = await replica.balance("alice");
    expect(fresh).toMatchObject({ balance: 9_999n, stale: false, stalenessMs: 0 });
    expect(fresh.asOf).toBe(writer.tree.size());
    expect(replica.root()).toBe(writer.root());
  });

  it("lets writers race on one log without forking it: balances stay within bounds, money is conserved", async () => {
    const { log } = await freshLog();
    const writers = [await ledgerOn(log), await ledgerOn(log), await ledgerOn(log)];
    const first = writers[0] as Ledger;
    await first.openAccount({ id: "bank", currency: "EUR", lowerBound: null });
    const ids = Array.from({ length: 6 }, (_, i) => `acct-${i}`);
    for (const id of ids) {
      await first.openAccount({ id, currency: "EUR" });
      await first.transfer({
        key: `fund-${id}`,
        debit: "bank",
        credit: id,
        amount: 1_000n,
        currency: "EUR",
      });
    }
    const random = seededRandom(5);
    let ok = 0;
    let refused = 0;
    await Promise.all(
      writers.map(async (w, n) => {
        for (let i = 0; i < 60; i++) {
          const from = ids[Math.floor(random() * ids.length)] as string;
          const to = ids[Math.floor(random() * ids.length)] as string;
          if (from === to) continue;
          try {
            await w.transfer({
              key: `w${n}-${i}`,
              debit: from,
              credit: to,
              amount: BigInt(1 + Math.floor(random() * 400)),
              currency: "EUR",
            });
            ok++;
          } catch (error) {
            if (!isStrataError(error, "FAILED_PRECONDITION")) throw error;
            refused++;
          }
        }
      }),
    );
    expect(ok).toBeGreaterThan(100);
    expect(writers.reduce((n, w) => n + w.stats().conflicts, 0)).toBeGreaterThan(0);
    for (const w of writers) {
      const { balances } = await w.balances();
      let total = 0n;
      for (const [id, b] of balances) {
        total += b;
        if (id !== "bank") expect(b).toBeGreaterThanOrEqual(0n);
      }
      expect(total).toBe(0n);
      expect(w.root()).toBe(first.root());
    }
    const audit = await auditLedger(log);
    expect(audit).toMatchObject({ ok: true, conserved: true, entries: first.tree.size() });
    expect(audit.root).toBe(first.root());
    void refused;
  });

  it("pages through an account's history", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    await shop(ledger);
    for (let i = 0; i < 25; i++) {
      await ledger.transfer({
        key: `h-${i}`,
        debit: "alice",
        credit: "shop",
        amount: 10n,
        currency: "EUR",
      });
    }
    const seen: bigint[] = [];
    let after: string | undefined;
    do {
      const page = await ledger.history("alice", {
        limit: 10,
        ...(after === undefined ? {} : { after }),
      });
      seen.push(...page.items.map((i) => i.balanceAfter));
      after = page.next;
    } while (after !== undefined);
    expect(seen).toHaveLength(26);
    expect(seen[0]).toBe(10_000n);
    expect(seen[25]).toBe(10_000n - 250n);
    expect(await codeOf(ledger.history("alice", { after: "-1" }))).toBe("INVALID_ARGUMENT");
    expect(await codeOf(ledger.history("nobody"))).toBe("NOT_FOUND");
  });

  it("rebuilds the same state and tree from the log after a restart", async () => {
    const { dir } = await freshLog();
    const log1 = await openEmbeddedLog({ dir: join(dir, "l") });
    const before = await openLedger({ log: log1 });
    await shop(before);
    const root = before.root();
    const size = before.tree.size();
    await before.close();
    await log1.close();
    const log2 = await openEmbeddedLog({ dir: join(dir, "l") });
    closers.push(() => log2.close());
    const after = await ledgerOn(log2);
    expect(after.root()).toBe(root);
    expect(after.tree.size()).toBe(size);
    expect((await after.balance("alice")).balance).toBe(10_000n);
    // Every entry's inclusion proof verifies against the root.
    for (let i = 0; i < size; i++) {
      const proof = inclusionProof(after.tree, i, size);
      expect(
        verifyInclusion({
          leafHash: after.tree.leafHash(i),
          index: i,
          size,
          proof,
          root: Buffer.from(root, "hex"),
        }),
      ).toBe(true);
    }
  });

  it("signs tree heads the audit verifies, and proves entries and growth against them", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    const { publicKeys, privateKeys } = generateSthKeys();
    const signer = createSthSigner(privateKeys);
    await shop(ledger);
    const first = await ledger.signHead(signer);
    for (let i = 0; i < 6; i++) {
      await ledger.transfer({
        key: `s-${i}`,
        debit: "alice",
        credit: "shop",
        amount: 3n,
        currency: "EUR",
      });
    }
    const second = await ledger.signHead(signer);
    expect(verifyTreeHead(second, publicKeys)).toBe(true);
    expect((await ledger.heads()).map((h) => h.size)).toEqual([first.size, second.size]);
    // Every entry is in the signed tree; the signed trees grew append-only.
    for (let i = 0; i < second.size; i++) {
      const p = ledger.proveInclusion(i, second.size);
      expect(p.root).toBe(toHex(second.root));
      expect(
        verifyInclusion({
          leafHash: Buffer.from(p.leafHash, "hex"),
          index: i,
          size: p.size,
          proof: p.proof.map((h) => Buffer.from(h, "hex")),
          root: second.root,
        }),
      ).toBe(true);
    }
    const c = ledger.proveConsistency(first.size, second.size);
    expect(
      verifyConsistency({
        size1: first.size,
        size2: second.size,
        root1: first.root,
        root2: second.root,
        proof: c.proof.map((h) => Buffer.from(h, "hex")),
      }),
    ).toBe(true);
    expect(() => ledger.proveInclusion(second.size)).toThrow(/index/);
    expect(ledger.lookup("s-3")).toEqual({ index: expect.any(Number) as number });
    expect(ledger.lookup("never")).toBeUndefined();
    const audit = await auditLedger(log, { publicKeys });
    expect(audit).toMatchObject({ ok: true, heads: { checked: 2, invalid: [] } });
    // Heads signed by someone else, or over a root the entries do not give, fail the audit.
    const rogue = createSthSigner(generateSthKeys().privateKeys);
    await ledger.signHead(rogue);
    const other = await auditLedger(log, { publicKeys });
    expect(other.ok).toBe(false);
    expect(other.heads.invalid).toEqual([
      { size: second.size, reason: "a signature does not verify" },
    ]);
  });

  it("signs heads on a timer while the tree grows", async () => {
    const { log } = await freshLog();
    const { publicKeys, privateKeys } = generateSthKeys();
    const ledger = await openLedger({
      log,
      heads: { signer: createSthSigner(privateKeys), everyMs: 20 },
    });
    closers.push(() => ledger.close());
    await shop(ledger);
    await waitUntil(() => ledger.lastHead?.size === ledger.tree.size());
    const signed = (await ledger.heads()).length;
    // Nothing new: three more rounds of the timer sign no new head.
    const rounds = ledger.stats().headRounds;
    await waitUntil(() => ledger.stats().headRounds >= rounds + 3);
    expect((await ledger.heads()).length).toBe(signed);
    await ledger.transfer({
      key: "h1",
      debit: "alice",
      credit: "shop",
      amount: 1n,
      currency: "EUR",
    });
    await waitUntil(() => ledger.lastHead?.size === ledger.tree.size());
    expect((await auditLedger(log, { publicKeys })).heads).toMatchObject({ invalid: [] });
    await expect(
      openLedger({ log, heads: { signer: createSthSigner(privateKeys), everyMs: 0 } }),
    ).rejects.toThrow(/everyMs/);
  });

  it("audit names the first entry whose stored bytes were changed", async () => {
    const { log } = await freshLog();
    const ledger = await ledgerOn(log);
    await shop(ledger);
    for (let i = 0; i < 5; i++) {
      await ledger.transfer({
        key: `a-${i}`,
        debit: "alice",
        credit: "shop",
        amount: 7n,
        currency: "EUR",
      });
    }
    expect((await auditLedger(log)).ok).toBe(true);
    // Storage that returns entry 5 with one byte changed (the amount 7 becomes 9): an insider
    // editing the store, or a disk that flipped a bit the engine did not catch.
    const tampered = tamperedLog(log, 5, (bytes) => {
      const text = new TextDecoder().decode(bytes).replace('"amount":"7"', '"amount":"9"');
      return new TextEncoder().encode(text);
    });
    const report = await auditLedger(tampered);
    expect(report.ok).toBe(false);
    expect(report.firstTampered).toMatchObject({ index: 5, reason: "leaf-mismatch" });
    // Bytes and leaf header rewritten together: the chain of roots gives it away at the next entry.
    const rewritten = tamperedLog(
      log,
      5,
      (bytes) =>
        new TextEncoder().encode(
          new TextDecoder().decode(bytes).replace('"amount":"7"', '"amount":"9"'),
        ),
      true,
    );
    expect((await auditLedger(rewritten)).firstTampered).toMatchObject({
      index: 6,
      reason: "chain-broken",
    });
    // A replica refuses to apply a log that does not chain.
    expect(await codeOf(openLedger({ log: rewritten }))).toBe("DATA_LOSS");
  });
});

/** A view of `log` whose record at entry `index` reads back changed. */
function tamperedLog(
  log: EventLog,
  index: number,
  change: (bytes: Uint8Array) => Uint8Array,
  rewriteLeaf = false,
): EventLog {
  const alter = (r: LogRecord): LogRecord => {
    if (r.seq !== index + 1) return r;
    const payload = change(r.payload);
    return {
      ...r,
      payload,
      headers: rewriteLeaf ? { ...r.headers, "ledger-leaf": toHex(leafHash(payload)) } : r.headers,
    };
  };
  return new Proxy(log, {
    get(target, prop, receiver) {
      if (prop === "read") {
        return async (...args: Parameters<EventLog["read"]>) =>
          (await target.read(...args)).map(alter);
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function"
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(done()).toBe(true);
}

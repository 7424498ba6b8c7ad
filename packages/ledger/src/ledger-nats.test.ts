import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { isStrataError, seededRandom } from "@strata/core";
import { openNatsLog } from "@strata/nats";
import { startNatsCluster, waitFor, type NatsCluster } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLedger } from "./audit.js";
import { openLedger, type Ledger } from "./ledger.js";

let cluster: NatsCluster;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  // A server restarted under the writers' load can take longer than the default 20 s to be
  // counted current by the meta leader on a busy 2-core machine.
  cluster = await startNatsCluster({ nodes: 3, syncAlways: true, startTimeoutMs: 45_000 });
});

afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close()));
  await cluster?.stop();
});

async function replica(stream: string): Promise<Ledger> {
  const nc = await connect({
    servers: cluster.urls as string[],
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  connections.push(nc);
  const log = await openNatsLog({
    connection: nc,
    replicas: 3,
    serversSyncAlways: true,
    timeoutMs: 2_000,
  });
  return openLedger({ log, stream, replicas: 3 });
}

/** Errors after which a transfer's outcome is unknown: it is posted again with its key. */
const UNKNOWN_OUTCOME = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL"]);

/**
 * A bank on a JetStream R3 stream: three replicas post concurrent random transfers while a reader
 * checks every balance; a server is killed and the stream's leader is cut off (SIGSTOP). Every
 * acknowledged transfer is applied exactly once, no balance ever goes below its bound, the total
 * stays zero, and the replicas end with the same tree.
 */
describe("ledger on a replicated log", () => {
  it("conserves money and applies each transfer once through a killed server and a stopped leader", async () => {
    const stream = "bank";
    const writers = [await replica(stream), await replica(stream), await replica(stream)];
    const reader = await replica(stream);
    const first = writers[0] as Ledger;
    await first.openAccount({ id: "mint", currency: "EUR", lowerBound: null });
    const ids = Array.from({ length: 8 }, (_, i) => `acct-${i}`);
    for (const id of ids) {
      await first.openAccount({ id, currency: "EUR" });
      await first.transfer({
        key: `fund-${id}`,
        debit: "mint",
        credit: id,
        amount: 500n,
        currency: "EUR",
      });
    }
    const acknowledged = new Set<string>();
    const violations: string[] = [];
    let reads = 0;
    let running = true;
    const random = seededRandom(17);

    const post = async (w: Ledger, key: string, from: string, to: string, amount: bigint) => {
      // A transfer whose outcome is unknown is posted again with its key until it has an answer.
      for (let attempt = 0; attempt < 200; attempt++) {
        try {
          await w.transfer({ key, debit: from, credit: to, amount, currency: "EUR" });
          acknowledged.add(key);
          return;
        } catch (error) {
          if (isStrataError(error, "FAILED_PRECONDITION")) return; // insufficient funds
          if (!isStrataError(error) || !UNKNOWN_OUTCOME.has(error.code)) throw error;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      throw new Error(`transfer ${key} never got an answer`);
    };

    const work = writers.map(async (w, n) => {
      for (let i = 0; running; i++) {
        const from = ids[Math.floor(random() * ids.length)] as string;
        let to = ids[Math.floor(random() * ids.length)] as string;
        if (to === from) to = "mint";
        await post(w, `w${n}-${i}`, from, to, BigInt(1 + Math.floor(random() * 150)));
      }
    });
    const checking = (async () => {
      while (running) {
        try {
          const { balances } = await reader.balances();
          let total = 0n;
          for (const [id, b] of balances) {
            total += b;
            if (id !== "mint" && b < 0n) violations.push(`${id} at ${b}`);
          }
          if (total !== 0n) violations.push(`total ${total}`);
          reads++;
        } catch (error) {
          // While the quorum is lost a fresh read fails; it never answers wrongly.
          if (!isStrataError(error, "UNAVAILABLE")) throw error;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    await waitFor(() => acknowledged.size >= 40, { timeoutMs: 30_000 });
    // A server dies.
    await cluster.servers[1]?.kill();
    const afterKill = acknowledged.size;
    await waitFor(() => acknowledged.size >= afterKill + 40, { timeoutMs: 30_000 });
    await cluster.servers[1]?.restart();
    // The stream's leader stops answering (a partition that leaves it alone), then comes back.
    const jsm = await jetstreamManager(connections[0] as NatsConnection);
    const info = await jsm.streams.info(`LOG_${stream}`);
    const leader = cluster.servers.find((s) => s.name === info.cluster?.leader);
    expect(leader).toBeDefined();
    leader?.pause();
    await new Promise((r) => setTimeout(r, 3_000));
    leader?.resume();
    const afterPause = acknowledged.size;
    await waitFor(() => acknowledged.size >= afterPause + 40, { timeoutMs: 40_000 });
    running = false;
    await Promise.all([...work, checking]);

    expect(violations).toEqual([]);
    expect(reads).toBeGreaterThan(10);
    // Every replica converges on the same tree; every acknowledged key is applied, once.
    for (const w of [...writers, reader]) await w.sync();
    const root = first.root();
    for (const w of [...writers, reader]) expect(w.root()).toBe(root);
    const audit = await auditLedger(
      await openNatsLog({
        connection: connections[0] as NatsConnection,
        replicas: 3,
        serversSyncAlways: true,
      }),
      { stream },
    );
    expect(audit).toMatchObject({ ok: true, conserved: true, root });
    const history = new Map<string, number>();
    for (const id of ids) {
      let after: string | undefined;
      do {
        const page = await first.history(id, {
          limit: 1_000,
          ...(after === undefined ? {} : { after }),
        });
        for (const item of page.items)
          if (item.amount < 0n) history.set(item.key, (history.get(item.key) ?? 0) + 1);
        after = page.next;
      } while (after !== undefined);
    }
    for (const key of acknowledged) expect(history.get(key), key).toBe(1);
    await Promise.all([...writers, reader].map((w) => w.close()));
  }, 150_000);

  it("refuses writes while the quorum is lost and keeps answering stale reads, marked stale", async () => {
    const stream = "quorum";
    const writer = await replica(stream);
    await writer.openAccount({ id: "mint", currency: "EUR", lowerBound: null });
    await writer.openAccount({ id: "a", currency: "EUR" });
    await writer.transfer({ key: "q-1", debit: "mint", credit: "a", amount: 5n, currency: "EUR" });
    const root = writer.root();
    // Two of three servers stop answering: the stream has no quorum.
    const [s0, s1] = cluster.servers;
    s0?.pause();
    s1?.pause();
    try {
      const refused = await writer
        .transfer({ key: "q-2", debit: "mint", credit: "a", amount: 5n, currency: "EUR" })
        .catch((e: unknown) => e);
      expect(
        isStrataError(refused, "UNAVAILABLE") || isStrataError(refused, "DEADLINE_EXCEEDED"),
      ).toBe(true);
      // A fresh read fails; only a leader that has not yet noticed it is alone may still answer,
      // and then with what the quorum last acknowledged.
      const fresh = await writer.balance("a").catch((e: unknown) => e);
      if (fresh instanceof Error)
        expect(isStrataError(fresh, "UNAVAILABLE"), String(fresh)).toBe(true);
      else expect(fresh).toMatchObject({ balance: 5n, stale: false });
      const stale = await writer.balance("a", { consistency: "stale" });
      expect(stale).toMatchObject({ balance: 5n, stale: true });
      expect(stale.stalenessMs).toBeGreaterThan(0);
    } finally {
      s0?.resume();
      s1?.resume();
    }
    // The quorum back, the write that was refused is posted again with its key: once.
    await waitFor(
      async () => {
        try {
          await writer.transfer({
            key: "q-2",
            debit: "mint",
            credit: "a",
            amount: 5n,
            currency: "EUR",
          });
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect((await writer.balance("a")).balance).toBe(10n);
    expect(writer.root()).not.toBe(root);
    await writer.close();
  }, 90_000);
});

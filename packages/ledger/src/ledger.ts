import { createHash } from "node:crypto";
import {
  StrataError,
  isStrataError,
  silentLogger,
  systemClock,
  type Clock,
  type EventLog,
  type LogRecord,
  type Logger,
  type Timer,
} from "@strata/core";
import { toHex } from "./encoding.js";
import {
  checkAccountId,
  checkCurrency,
  checkTransfer,
  decodeEntry,
  encodeEntry,
  type LedgerEntry,
  type TransferRecord,
} from "./entry.js";
import { leafHash } from "./hash.js";
import { MemoryMerkleStore } from "./store.js";
import { consistencyProof, inclusionProof, rootAt } from "./merkle.js";
import {
  parseSignedTreeHead,
  signTreeHead,
  treeHeadToJson,
  type SignedTreeHead,
  type SthSigner,
} from "./tree-head.js";
import { Scratch, type AccountState } from "./rules.js";

/** The log record header that repeats an entry's leaf hash (hex), checked by the audit. */
export const LEAF_HEADER = "ledger-leaf";

/** Options for {@link openLedger}. */
export interface LedgerOptions {
  /**
   * Where entries live: the embedded log (durable on local disk), or JetStream (a Raft-replicated
   * stream; use replicas 3 and servers with `sync_interval: always` for money).
   */
  readonly log: EventLog;
  /** Stream name; default `ledger`. */
  readonly stream?: string;
  /** Stream replicas (NATS: 1 or 3); default the adapter's. */
  readonly replicas?: number;
  /** Conditional appends tried before giving up under contention; default 50. */
  readonly maxAttempts?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /**
   * Signs a tree head every `everyMs` (default 1 000) while the tree grows, and stores it with
   * the ledger's heads: auditors then hold recent heads without asking for them.
   */
  readonly heads?: { readonly signer: SthSigner; readonly everyMs?: number };
}

/** A transfer as a caller posts it. */
export interface Transfer {
  /** Idempotency key: the transfer applies once however often it is posted. */
  readonly key: string;
  readonly debit: string;
  readonly credit: string;
  /** Minor units (cents), > 0. */
  readonly amount: bigint;
  readonly currency: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** What a posting returns. */
export interface PostingReceipt {
  /** The entry's index in the log (its Merkle leaf). */
  readonly index: number;
  /** True when these transfers had been posted before: nothing new was applied. */
  readonly duplicate: boolean;
  readonly keys: readonly string[];
}

/** How fresh a read must be. */
export type ReadConsistency =
  /** Reads the log's tip first (fails with UNAVAILABLE when the log cannot be reached). */
  | "linearizable"
  /** Answers from this replica, whatever its age (reported). */
  | "stale"
  /** Answers from this replica if it caught up at most this long ago; else reads the tip. */
  | { readonly maxStalenessMs: number };

/** An account's balance, with how fresh it is. */
export interface Balance {
  readonly account: string;
  readonly currency: string;
  readonly balance: bigint;
  readonly lowerBound: bigint | null;
  /** Entries applied when this was read (the tree size). */
  readonly asOf: number;
  /** False only for a read that caught up with the log's tip first. */
  readonly stale: boolean;
  /** How long ago this replica last caught up with the tip (0 for a linearizable read). */
  readonly stalenessMs: number;
}

/** One line of an account's history. */
export interface HistoryItem {
  readonly index: number;
  readonly key: string;
  readonly counterparty: string;
  /** Positive: money in (credit); negative: money out (debit). */
  readonly amount: bigint;
  readonly balanceAfter: bigint;
  readonly at: number;
  readonly metadata: Readonly<Record<string, string>>;
}

/** A page of history, oldest first; `next` continues it. */
export interface HistoryPage {
  readonly items: readonly HistoryItem[];
  readonly next: string | undefined;
}

/** Counters. */
export interface LedgerStats {
  readonly entries: number;
  readonly accounts: number;
  readonly postings: number;
  readonly transfers: number;
  readonly duplicates: number;
  /** Conditional appends that lost to another writer and were retried. */
  readonly conflicts: number;
  readonly refused: Readonly<Record<string, number>>;
  /** Rounds of the `heads` timer run so far (each signs a head only if the tree grew). */
  readonly headRounds: number;
}

interface Account extends AccountState {
  readonly id: string;
  readonly history: HistoryItem[];
}

/** The ledger: accounts and double-entry transfers on a replicated, tamper-evident log. */
export interface Ledger extends AsyncDisposable {
  readonly stream: string;
  /** Opens an account; opening it again with the same currency and bound is a no-op. */
  openAccount(account: {
    readonly id: string;
    readonly currency: string;
    /** Default 0n; null for an unbounded account (money entering or leaving the ledger). */
    readonly lowerBound?: bigint | null;
  }): Promise<PostingReceipt>;
  /** Posts one transfer. */
  transfer(transfer: Transfer): Promise<PostingReceipt>;
  /** Posts transfers all or nothing, as one entry. */
  post(transfers: readonly Transfer[]): Promise<PostingReceipt>;
  balance(account: string, options?: { readonly consistency?: ReadConsistency }): Promise<Balance>;
  /** Balances of every account (one consistent cut). */
  balances(options?: { readonly consistency?: ReadConsistency }): Promise<{
    readonly asOf: number;
    readonly stale: boolean;
    readonly balances: ReadonlyMap<string, bigint>;
  }>;
  history(
    account: string,
    options?: { readonly after?: string; readonly limit?: number },
  ): Promise<HistoryPage>;
  /** Catches up with the log's tip; returns the number of entries. */
  sync(): Promise<number>;
  /** The entry a transfer key was posted in, if it was (as far as this replica has applied). */
  lookup(key: string): { readonly index: number } | undefined;
  /**
   * Signs a tree head for every entry applied after catching up, and stores it in the heads
   * stream (`<stream>-heads`) where audits find it.
   */
  signHead(signer: SthSigner): Promise<SignedTreeHead>;
  /** Heads stored so far, oldest first. */
  heads(): Promise<SignedTreeHead[]>;
  /** The last head this replica signed (by {@link signHead} or the `heads` timer). */
  readonly lastHead: SignedTreeHead | undefined;
  /** An inclusion proof of entry `index` in the tree of `size` entries (default: all applied). */
  proveInclusion(index: number, size?: number): InclusionProof;
  /** A consistency proof between the trees of `size1` and `size2` entries. */
  proveConsistency(size1: number, size2?: number): ConsistencyProof;
  /** The tree this replica has applied (for proofs and heads). */
  readonly tree: MemoryMerkleStore;
  /** The root (hex) after the first `size` entries; default all applied. */
  root(size?: number): string;
  stats(): LedgerStats;
  close(): Promise<void>;
}

const PAGE = 1_000;
/** Postings committed in one entry at most. */
const MAX_GROUP = 256;
const NOTHING: PostingReceipt = { index: -1, duplicate: true, keys: [] };

/** A posting waiting for the writer. */
interface Pending {
  readonly batch: readonly TransferRecord[];
  readonly keys: readonly string[];
  resolve(receipt: PostingReceipt): void;
  reject(error: unknown): void;
  settled: boolean;
}

/** An inclusion proof with what it proves, hashes in hex. */
export interface InclusionProof {
  readonly index: number;
  readonly size: number;
  readonly leafHash: string;
  readonly root: string;
  readonly proof: readonly string[];
}

/** A consistency proof with what it proves, hashes in hex. */
export interface ConsistencyProof {
  readonly size1: number;
  readonly size2: number;
  readonly root1: string;
  readonly root2: string;
  readonly proof: readonly string[];
}

/**
 * Opens a ledger on a log stream. Every replica (any process that opens the same stream) applies
 * the same entries in the same order; writers append only after the entry they last applied (a
 * conditional append), so the log cannot fork, and a writer that loses the race catches up and
 * validates again. Balances never cross their bounds: a posting is checked against the state at
 * the entry it will follow.
 */
export async function openLedger(options: LedgerOptions): Promise<Ledger> {
  const stream = options.stream ?? "ledger";
  const log = options.log;
  const clock = options.clock ?? systemClock();
  const logger = options.logger ?? silentLogger;
  const maxAttempts = options.maxAttempts ?? 50;
  if (!(Number.isInteger(maxAttempts) && maxAttempts > 0)) {
    throw new StrataError("INVALID_ARGUMENT", "maxAttempts must be a positive integer");
  }
  await log.ensureStream({
    name: stream,
    partitions: 1,
    critical: true,
    ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
  });

  const tree = new MemoryMerkleStore();
  const accounts = new Map<string, Account>();
  /** Transfer key → the entry it was posted in and a digest of what it said. */
  const keys = new Map<string, { index: number; digest: string }>();
  let rootHex = toHex(rootAt(tree, 0));
  /** Monotonic time at which the last successful catch-up started. */
  let caughtUpAt = Number.NEGATIVE_INFINITY;
  let closed = false;
  let postings = 0;
  let transfers = 0;
  let duplicates = 0;
  let conflicts = 0;
  const refused: Record<string, number> = {};

  const apply = (entry: LedgerEntry, payload: Uint8Array, index: number): void => {
    if (entry.prev !== rootHex) {
      throw new StrataError(
        "DATA_LOSS",
        `ledger entry ${index} does not follow the tree it claims to (previous root ${entry.prev}, applied ${rootHex}): the log was forked or altered`,
        { details: { index } },
      );
    }
    const broken = (what: string): StrataError =>
      new StrataError("DATA_LOSS", `ledger entry ${index} breaks the ledger's rules: ${what}`, {
        details: { index },
      });
    if (entry.type === "open") {
      if (accounts.has(entry.account)) throw broken(`account ${entry.account} is opened twice`);
      accounts.set(entry.account, {
        id: entry.account,
        currency: entry.currency,
        lowerBound: entry.lowerBound,
        balance: 0n,
        history: [],
      });
    } else {
      // Replicas check what they apply as writers checked it: storage is not trusted.
      const scratch = new Scratch(accounts, (key) => keys.has(key));
      for (const batch of entry.batches) {
        const rule = scratch.apply(batch);
        if (rule !== undefined) throw broken(rule.message);
      }
      for (const t of entry.batches.flat()) {
        const debit = accounts.get(t.debit) as Account;
        const credit = accounts.get(t.credit) as Account;
        debit.balance -= t.amount;
        credit.balance += t.amount;
        const common = { index, key: t.key, at: entry.at, metadata: t.metadata };
        debit.history.push({
          ...common,
          counterparty: t.credit,
          amount: -t.amount,
          balanceAfter: debit.balance,
        });
        credit.history.push({
          ...common,
          counterparty: t.debit,
          amount: t.amount,
          balanceAfter: credit.balance,
        });
        keys.set(t.key, { index, digest: digest(t) });
        transfers++;
      }
      postings += entry.batches.length;
    }
    tree.append(leafHash(payload));
    rootHex = toHex(rootAt(tree, tree.size()));
  };

  const readPage = async (): Promise<LogRecord[]> =>
    log.read(stream, { fromSeq: tree.size() + 1, limit: PAGE });

  const catchUpOnce = async (): Promise<void> => {
    const started = clock.monotonic();
    for (;;) {
      const records = await readPage();
      for (const record of records) {
        const index = record.seq - 1;
        if (index !== tree.size()) {
          throw new StrataError(
            "DATA_LOSS",
            `ledger stream ${stream} skips from entry ${tree.size()} to ${index}: entries were removed`,
          );
        }
        apply(decodeEntry(record.payload, index), record.payload, index);
      }
      if (records.length < PAGE) break;
    }
    caughtUpAt = started;
  };

  // One catch-up at a time; a caller that arrives while one runs gets a fresh one after it, so
  // what it reads includes everything appended before it asked.
  let catching: Promise<void> = Promise.resolve();
  const catchUp = (): Promise<void> => {
    const next = catching.then(catchUpOnce, catchUpOnce);
    catching = next.catch(() => undefined);
    return next;
  };

  /** Catches up until at least `size` entries are applied (or a second has passed). */
  const waitForSize = async (size: number): Promise<void> => {
    const until = clock.monotonic() + 1_000;
    while (tree.size() < size && clock.monotonic() < until) {
      await catchUp();
      if (tree.size() < size) await sleep(clock, 2);
    }
  };

  // Local writers take turns: contention between processes is settled by the log.
  let writing: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = writing.then(fn, fn);
    writing = next.catch(() => undefined);
    return next;
  };

  const count = (reason: string): void => {
    refused[reason] = (refused[reason] ?? 0) + 1;
  };
  const refuse = (reason: string, error: StrataError): never => {
    count(reason);
    throw error;
  };

  const checkOpen = (): void => {
    if (closed) throw new StrataError("FAILED_PRECONDITION", `ledger ${stream} is closed`);
  };

  /** Appends `make()`'s entry after the last applied one, catching up and retrying on conflict. */
  const appendEntry = async (
    id: string,
    decide: () => { entry: LedgerEntry } | { receipt: PostingReceipt },
  ): Promise<PostingReceipt> => {
    for (let attempt = 1; ; attempt++) {
      checkOpen();
      await catchUp();
      const decision = decide();
      if ("receipt" in decision) return decision.receipt;
      const payload = encodeEntry(decision.entry);
      const index = tree.size();
      try {
        const result = await log.append(stream, {
          partition: 0,
          // Per attempt: the log's duplicate window then only absorbs a resend of this very
          // append (an acknowledgement lost in a failover), never a later attempt.
          id: `${id}@${index}`,
          key: stream,
          payload,
          headers: { [LEAF_HEADER]: toHex(leafHash(payload)) },
          expectedLastSeq: index,
        });
        // A duplicate: this very append was stored before (its acknowledgement was lost); the
        // next catch-up applies it and the decision finds it there.
        if (result.duplicate) {
          if (attempt >= maxAttempts) {
            throw new StrataError(
              "UNAVAILABLE",
              `ledger ${stream}: the log reports entry ${result.seq} as stored but it cannot be read yet`,
            );
          }
          continue;
        }
        if (result.seq !== index + 1) {
          throw new StrataError(
            "INTERNAL",
            `ledger ${stream}: appended at ${result.seq} while expecting ${index + 1}`,
          );
        }
        await catchUp();
        return { index, duplicate: false, keys: [] };
      } catch (error) {
        if (isStrataError(error, "ABORTED") && error.details.reason === "wrong-last-seq") {
          conflicts++;
          // The winner's entry may not be readable yet (acknowledged appends become readable
          // once durable): wait until the log shows it, with jitter so that losers spread out.
          const actual = error.details.actual;
          await sleep(clock, Math.min(100, 2 ** Math.min(attempt, 7)) * clock.random());
          if (typeof actual === "number") await waitForSize(actual);
          if (attempt >= maxAttempts) {
            throw new StrataError(
              "ABORTED",
              `ledger ${stream}: lost ${attempt} conditional appends to other writers; try again`,
              { details: { reason: "contention" } },
            );
          }
          continue;
        }
        throw error;
      }
    }
  };

  const consistentRead = async (consistency: ReadConsistency): Promise<number> => {
    const age = (): number => clock.monotonic() - caughtUpAt;
    if (consistency === "stale") return age();
    if (consistency !== "linearizable") {
      if (!(
        typeof consistency === "object" &&
        Number.isFinite(consistency.maxStalenessMs) &&
        consistency.maxStalenessMs >= 0
      )) {
        throw new StrataError(
          "INVALID_ARGUMENT",
          'consistency must be "linearizable", "stale" or { maxStalenessMs }',
        );
      }
      if (age() <= consistency.maxStalenessMs) return age();
    }
    try {
      await catchUp();
    } catch (error) {
      const failure = isStrataError(error) ? error : undefined;
      if (failure?.code === "DATA_LOSS") throw error;
      throw new StrataError(
        "UNAVAILABLE",
        `ledger ${stream}: cannot reach the log's tip for a fresh read (read with consistency "stale" to get this replica's, ${Math.round(age())} ms old)`,
        { cause: error, details: { stalenessMs: Math.round(age()) } },
      );
    }
    return 0;
  };

  /**
   * Group commit: postings that arrive while the writer is busy wait in a queue and go into the
   * log together as one entry (one conditional append, one fsync), each batch still all or
   * nothing. Each is validated against the state the ones before it leave; one that breaks a
   * rule is refused alone.
   */
  const queue: Pending[] = [];
  let flushing = false;
  const flush = async (): Promise<void> => {
    flushing = false;
    while (queue.length > 0) await commitGroup(queue.splice(0, MAX_GROUP));
  };
  const commitGroup = async (group: Pending[]): Promise<void> => {
    const settle = (p: Pending, fn: () => void): void => {
      if (p.settled) return;
      p.settled = true;
      fn();
    };
    let accepted: Pending[] = [];
    const allKeys = group.flatMap((p) => p.keys).join("\n");
    const id = `post:${createHash("sha256").update(allKeys).digest("hex").slice(0, 40)}`;
    try {
      const receipt = await appendEntry(id, () => {
        const scratch = new Scratch(accounts, (key) => keys.has(key));
        accepted = [];
        for (const p of group) {
          if (p.settled) continue;
          const known = p.batch
            .map((t) => ({ t, k: keys.get(t.key) }))
            .filter((x) => x.k !== undefined);
          const reused = known.find(({ t, k }) => k?.digest !== digest(t));
          if (reused !== undefined) {
            count("key-reused");
            settle(p, () =>
              p.reject(
                new StrataError(
                  "ALREADY_EXISTS",
                  `transfer key ${reused.t.key} was used before for a different transfer`,
                  { details: { key: reused.t.key, index: reused.k?.index } },
                ),
              ),
            );
            continue;
          }
          if (known.length === p.batch.length) {
            duplicates++;
            const index = Math.min(...known.map((x) => x.k?.index ?? 0));
            settle(p, () => p.resolve({ index, duplicate: true, keys: p.keys }));
            continue;
          }
          if (known.length > 0) {
            count("partly-posted");
            settle(p, () =>
              p.reject(
                new StrataError(
                  "FAILED_PRECONDITION",
                  `transfers ${known.map((x) => x.t.key).join(", ")} were posted in another batch`,
                ),
              ),
            );
            continue;
          }
          const rule = scratch.apply(p.batch);
          if (rule !== undefined) {
            count(String(rule.details.reason));
            settle(p, () => p.reject(rule));
            continue;
          }
          accepted.push(p);
        }
        if (accepted.length === 0) return { receipt: NOTHING };
        return {
          entry: {
            type: "post",
            batches: accepted.map((p) => p.batch),
            at: clock.now(),
            prev: rootHex,
          },
        };
      });
      if (receipt !== NOTHING) {
        for (const p of accepted) {
          settle(p, () => p.resolve({ index: receipt.index, duplicate: false, keys: p.keys }));
        }
      }
    } catch (error) {
      // The outcome is unknown (the log did not answer) or the replica broke: every posting
      // still waiting hears it; posted again with the same keys, each applies at most once.
      for (const p of group) settle(p, () => p.reject(error));
    }
  };

  await catchUp();
  const headsStream = `${stream}-heads`;
  let lastHead: SignedTreeHead | undefined;
  let headTimer: Timer | undefined;
  let headRounds = 0;
  let headsRunning: Promise<void> = Promise.resolve();
  await log.ensureStream({
    name: headsStream,
    partitions: 1,
    critical: true,
    ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
  });
  const sizeArg = (size: number | undefined, what: string): number => {
    const n = size ?? tree.size();
    if (!Number.isSafeInteger(n) || n < 0 || n > tree.size()) {
      throw new StrataError(
        "OUT_OF_RANGE",
        `${what} must be an integer in 0..${tree.size()} (the entries this replica has applied)`,
      );
    }
    return n;
  };

  const ledger: Ledger = {
    stream,
    tree,
    root: (size = tree.size()) => toHex(rootAt(tree, size)),
    async openAccount(spec) {
      checkOpen();
      const id = checkAccountId(spec.id);
      const currency = checkCurrency(spec.currency);
      const lowerBound = spec.lowerBound === undefined ? 0n : spec.lowerBound;
      if (lowerBound !== null && typeof lowerBound !== "bigint") {
        throw new StrataError("INVALID_ARGUMENT", "lowerBound must be a bigint or null");
      }
      return serially(() =>
        appendEntry(`open:${id}`, () => {
          const existing = accounts.get(id);
          if (existing !== undefined) {
            if (existing.currency !== currency || existing.lowerBound !== lowerBound) {
              refuse(
                "account-exists",
                new StrataError(
                  "ALREADY_EXISTS",
                  `account ${id} exists with currency ${existing.currency} and lower bound ${String(existing.lowerBound)}`,
                ),
              );
            }
            return { receipt: { index: -1, duplicate: true, keys: [] } };
          }
          return {
            entry: {
              type: "open",
              account: id,
              currency,
              lowerBound,
              at: clock.now(),
              prev: rootHex,
            },
          };
        }),
      );
    },
    transfer(transfer) {
      return ledger.post([transfer]);
    },
    async post(input) {
      checkOpen();
      if (!Array.isArray(input) || input.length === 0 || input.length > 1_000) {
        throw new StrataError("INVALID_ARGUMENT", "post takes 1 to 1000 transfers");
      }
      const batch = input.map((t) => checkTransfer(t));
      const batchKeys = batch.map((t) => t.key);
      if (new Set(batchKeys).size !== batchKeys.length) {
        throw new StrataError("INVALID_ARGUMENT", "a batch names the same transfer key twice");
      }
      return new Promise<PostingReceipt>((resolve, reject) => {
        queue.push({ batch, keys: batchKeys, resolve, reject, settled: false });
        if (!flushing) {
          flushing = true;
          void serially(flush);
        }
      });
    },
    async balance(account, opts = {}) {
      checkOpen();
      const id = checkAccountId(account);
      const stalenessMs = await consistentRead(opts.consistency ?? "linearizable");
      const a = accounts.get(id);
      if (a === undefined) throw new StrataError("NOT_FOUND", `no account ${id}`);
      return {
        account: id,
        currency: a.currency,
        balance: a.balance,
        lowerBound: a.lowerBound,
        asOf: tree.size(),
        stale: stalenessMs > 0 || opts.consistency === "stale",
        stalenessMs: Math.round(stalenessMs),
      };
    },
    async balances(opts = {}) {
      checkOpen();
      const stalenessMs = await consistentRead(opts.consistency ?? "linearizable");
      return {
        asOf: tree.size(),
        stale: stalenessMs > 0 || opts.consistency === "stale",
        balances: new Map([...accounts.values()].map((a) => [a.id, a.balance])),
      };
    },
    async history(account, opts = {}) {
      checkOpen();
      const id = checkAccountId(account);
      const limit = opts.limit ?? 100;
      if (!(Number.isInteger(limit) && limit > 0 && limit <= 1_000)) {
        throw new StrataError("INVALID_ARGUMENT", "limit must be an integer in 1..1000");
      }
      let from = 0;
      if (opts.after !== undefined) {
        if (!/^[0-9]{1,15}$/.test(opts.after)) {
          throw new StrataError("INVALID_ARGUMENT", "after must be a cursor from a previous page");
        }
        from = Number(opts.after);
      }
      await consistentRead("linearizable");
      const a = accounts.get(id);
      if (a === undefined) throw new StrataError("NOT_FOUND", `no account ${id}`);
      const items = a.history.slice(from, from + limit);
      const end = from + items.length;
      return { items, next: end < a.history.length ? String(end) : undefined };
    },
    async sync() {
      checkOpen();
      await catchUp();
      return tree.size();
    },
    lookup(key) {
      const found = keys.get(key);
      return found === undefined ? undefined : { index: found.index };
    },
    get lastHead() {
      return lastHead;
    },
    async signHead(signer) {
      checkOpen();
      await catchUp();
      const size = tree.size();
      const head = signTreeHead(signer, { size, root: rootAt(tree, size), timestamp: clock.now() });
      const json = treeHeadToJson(head);
      await log.append(headsStream, {
        partition: 0,
        id: `head:${size}:${json.timestamp}`,
        key: headsStream,
        payload: new TextEncoder().encode(JSON.stringify(json)),
      });
      lastHead = head;
      return head;
    },
    async heads() {
      checkOpen();
      return readHeads(log, headsStream);
    },
    proveInclusion(index, size) {
      const n = sizeArg(size, "size");
      if (!Number.isSafeInteger(index) || index < 0 || index >= n) {
        throw new StrataError("OUT_OF_RANGE", `index must be an integer in 0..${n - 1}`);
      }
      return {
        index,
        size: n,
        leafHash: toHex(tree.leafHash(index)),
        root: toHex(rootAt(tree, n)),
        proof: inclusionProof(tree, index, n).map(toHex),
      };
    },
    proveConsistency(size1, size2) {
      const n2 = sizeArg(size2, "size2");
      const n1 = sizeArg(size1, "size1");
      if (n1 > n2) throw new StrataError("OUT_OF_RANGE", "size1 must not exceed size2");
      return {
        size1: n1,
        size2: n2,
        root1: toHex(rootAt(tree, n1)),
        root2: toHex(rootAt(tree, n2)),
        proof: consistencyProof(tree, n1, n2).map(toHex),
      };
    },
    stats: () => ({
      entries: tree.size(),
      accounts: accounts.size,
      postings,
      transfers,
      duplicates,
      conflicts,
      refused: { ...refused },
      headRounds,
    }),
    async close() {
      if (closed) return;
      closed = true;
      headTimer?.clear();
      await headsRunning;
      await writing;
      await catching;
      logger.debug({ stream, entries: tree.size() }, "ledger closed");
    },
    [Symbol.asyncDispose]: () => ledger.close(),
  };
  if (options.heads !== undefined) {
    const { signer } = options.heads;
    const everyMs = options.heads.everyMs ?? 1_000;
    if (!(Number.isFinite(everyMs) && everyMs >= 10)) {
      throw new StrataError("INVALID_ARGUMENT", "heads.everyMs must be at least 10");
    }
    const tick = (): void => {
      if (closed) return;
      headsRunning = (async () => {
        try {
          await catchUp();
          if (lastHead === undefined || lastHead.size < tree.size()) await ledger.signHead(signer);
        } catch (error) {
          // A head is retried on the next tick; the log being unreachable is logged, not thrown.
          logger.warn({ stream, err: error }, "could not sign a tree head");
        }
        headRounds++;
      })();
      void headsRunning.then(() => {
        if (!closed) headTimer = clock.setTimer(tick, everyMs);
      });
    };
    headTimer = clock.setTimer(tick, everyMs);
  }
  return ledger;
}

/** A transfer's identity for idempotency: the same key must always mean the same transfer. */
function digest(t: TransferRecord): string {
  return createHash("sha256")
    .update(
      JSON.stringify([
        t.debit,
        t.credit,
        t.amount.toString(),
        t.currency,
        Object.entries(t.metadata),
      ]),
    )
    .digest("hex");
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}

/**
 * Every record of a heads stream, oldest first, with the head it holds or undefined when it does
 * not parse (none when the stream does not exist).
 */
export async function readHeadRecords(
  log: EventLog,
  headsStream: string,
): Promise<Array<{ readonly seq: number; readonly head: SignedTreeHead | undefined }>> {
  const out: Array<{ seq: number; head: SignedTreeHead | undefined }> = [];
  for (let from = 1; ;) {
    let page: LogRecord[];
    try {
      page = await log.read(headsStream, { fromSeq: from, limit: PAGE });
    } catch (error) {
      if (isStrataError(error, "NOT_FOUND")) break;
      throw error;
    }
    for (const record of page) {
      let head: SignedTreeHead | undefined;
      try {
        head = parseSignedTreeHead(JSON.parse(new TextDecoder().decode(record.payload)));
      } catch {
        head = undefined;
      }
      out.push({ seq: record.seq, head });
    }
    const last = page.at(-1);
    if (last === undefined || page.length < PAGE) break;
    from = last.seq + 1;
  }
  return out;
}

/** Every signed tree head stored in a heads stream, oldest first; unreadable ones are skipped. */
export async function readHeads(log: EventLog, headsStream: string): Promise<SignedTreeHead[]> {
  return (await readHeadRecords(log, headsStream))
    .map((r) => r.head)
    .filter((h): h is SignedTreeHead => h !== undefined);
}

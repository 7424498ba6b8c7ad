/**
 * A chaos node: one Strata node in its own process, serving the workload services over NATS.
 * Started by the chaos cluster with its {@link NodeConfig} as the one argument (JSON). It prints
 * `{"ready":true}` on stdout once it serves, and takes commands as JSON lines on stdin:
 * `{"skewMs": 5000}` moves its wall clock (the clock port) by that much.
 */
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  StrataError,
  awSet,
  createCrdtSpace,
  emptyFun,
  mvRegister,
  orMap,
  createEvents,
  createNode,
  isStrataError,
  openEmbeddedKv,
  ShardedKv,
  systemClock,
  type CrdtSpace,
  type DotFun,
  type StrataNode,
  type StrongKV,
} from "@strata/core";
import { openLedger, type Ledger } from "@strata/ledger";
import { createNatsTransport, openNatsKv, openNatsLog } from "@strata/nats";
import { openPostgresKv } from "@strata/postgres";
import { createLogger } from "@strata/telemetry";
import {
  CONSUMED_FILE,
  STAY_ON_PROXIES,
  bankService,
  crdtService,
  pgRegisterService,
  registerService,
  setService,
  shardedRegisterService,
  shardsService,
  type NodeConfig,
} from "./services.js";
import { skewedClock } from "./clock.js";

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(bytes));

function parseConfig(text: string | undefined): NodeConfig {
  if (text === undefined) throw new Error("usage: node-main <config JSON>");
  const config = JSON.parse(text) as NodeConfig;
  if (typeof config.id !== "string" || !Array.isArray(config.servers)) {
    throw new Error("config needs id and servers");
  }
  return config;
}

function serveRegister(
  node: StrataNode,
  kv: StrongKV,
  service: typeof registerService,
  config: NodeConfig,
) {
  const pending = new Set<Promise<unknown>>();
  node.serve(
    service.implement({
      read: async ({ key }) => {
        const entry = await kv.get(key);
        return { value: entry === undefined ? null : (decode(entry.value) as number) };
      },
      write: async ({ key, value }) => {
        if (config.breakage === "ack-before-write") {
          // Deliberately wrong: acknowledge first, write a little later.
          const late = new Promise((r) => setTimeout(r, 30)).then(() => kv.put(key, encode(value)));
          pending.add(late);
          void late.finally(() => pending.delete(late)).catch(() => undefined);
          return { revision: 0 };
        }
        return { revision: await kv.put(key, encode(value)) };
      },
      cas: async ({ key, from, to }) => {
        // The compare runs on the current entry; a concurrent change between the read and the
        // conditional write is noticed by the revision check, and the compare runs again.
        for (let attempt = 0; attempt < 8; attempt++) {
          const entry = await kv.get(key);
          const current = entry === undefined ? null : (decode(entry.value) as number);
          if (current !== from) {
            throw new StrataError("FAILED_PRECONDITION", `register ${key} is ${current}`, {
              details: { reason: "mismatch" },
            });
          }
          try {
            return { revision: await kv.compareAndSet(key, encode(to), entry?.revision ?? 0) };
          } catch (error) {
            // Another write came first, or (sharded) the key moved since it was read: compare
            // again on the current entry.
            const moved = isStrataError(error, "ABORTED") && error.details["reason"] === "moved";
            if (!(isStrataError(error, "FAILED_PRECONDITION") || moved)) throw error;
          }
        }
        throw new StrataError("ABORTED", `register ${key}: too much contention`);
      },
    }),
  );
  return async () => {
    await Promise.allSettled([...pending]);
    await kv[Symbol.asyncDispose]();
  };
}

async function serveBank(node: StrataNode, nc: NatsConnection, config: NodeConfig) {
  const log = await openNatsLog({
    connection: nc,
    replicas: config.replicas,
    serversSyncAlways: true,
    timeoutMs: 2_000,
    streamPrefix: "CHAOS_",
    subjectPrefix: "chaos",
  });
  const ledger: Ledger = await openLedger({
    log,
    stream: "bank",
    replicas: config.replicas,
    clock: node.clock,
  });
  node.serve(
    bankService.implement({
      setup: async ({ accounts, initial }) => {
        await ledger.openAccount({ id: "mint", currency: "EUR", lowerBound: null });
        for (const id of accounts) {
          await ledger.openAccount({ id, currency: "EUR" });
          await ledger.transfer({
            key: `fund-${id}`,
            debit: "mint",
            credit: id,
            amount: BigInt(initial),
            currency: "EUR",
          });
        }
        return { root: ledger.root() };
      },
      transfer: async ({ key, from, to, amount }) => {
        const receipt = await ledger.transfer({
          key,
          debit: from,
          credit: to,
          amount: BigInt(amount),
          currency: "EUR",
        });
        return { duplicate: receipt.duplicate };
      },
      read: async () => {
        const { balances } = await ledger.balances();
        const out: Record<string, number> = {};
        for (const [id, balance] of balances) out[id] = Number(balance);
        return { balances: out };
      },
    }),
  );
  return async () => {
    await ledger.close();
    await log[Symbol.asyncDispose]();
  };
}

/**
 * Warnings and errors as JSON lines on stderr, which the cluster keeps as the node's log (stdout
 * carries the ready line).
 */
const logger = createLogger({ level: "warn", destination: process.stderr });

async function serveSet(node: StrataNode, nc: NatsConnection, config: NodeConfig) {
  const log = await openNatsLog({
    connection: nc,
    replicas: config.replicas,
    serversSyncAlways: true,
    timeoutMs: 2_000,
    streamPrefix: "CHAOSSET_",
    subjectPrefix: "chaosset",
  });
  const kv = await openNatsKv({
    connection: nc,
    bucket: "chaos_set",
    replicas: config.replicas,
    timeoutMs: 2_000,
  });
  const events = createEvents({
    log,
    kv,
    source: `strata://${config.id}`,
    partitions: 4,
    replicas: config.replicas,
    critical: true,
    leaseMs: 3_000,
    rebalanceMs: 250,
    commitMs: 50,
    clock: node.clock,
    logger: logger.child({ workload: "set" }),
  });
  const file: FileHandle = await open(join(config.dir, CONSUMED_FILE), "a");
  let seen = 0;
  await events.subscribe(setService, {
    group: "chaos",
    idempotent: true,
    on: {
      added: async (event) => {
        seen++;
        if (config.breakage === "lose-events" && seen % 25 === 0) return;
        // The effect: one line per consumed element, on disk before the event is acknowledged.
        await file.appendFile(`${event.data.element}\n`);
        await file.datasync();
      },
    },
  });
  node.serve(
    setService.implement({
      add: async ({ element }) => {
        const receipt = await events.publish(
          setService,
          "added",
          { element },
          { key: String(element), id: `element-${element}` },
        );
        return { seq: receipt.seq, duplicate: receipt.duplicate };
      },
    }),
  );
  return async () => {
    await events[Symbol.asyncDispose]();
    await file.close();
    await kv[Symbol.asyncDispose]();
    await log[Symbol.asyncDispose]();
  };
}

async function serveCrdt(node: StrataNode, config: NodeConfig) {
  if (config.breakage === "skip-crdt-replication") {
    // Deliberately wrong: a set kept by this node alone, never replicated.
    const local = new Set<number>();
    let count = 0;
    node.serve(
      crdtService.implement({
        add: ({ element }) => Promise.resolve({ size: local.add(element).size }),
        read: () => Promise.resolve({ elements: [...local].sort((a, b) => a - b) }),
        increment: ({ by }) => Promise.resolve({ value: (count += by) }),
        count: () => Promise.resolve({ value: count }),
        sync: () => Promise.resolve({ peers: 0 }),
      }),
    );
    return () => Promise.resolve();
  }
  const dir = join(config.dir, "crdt");
  await mkdir(dir, { recursive: true });
  const store = await openEmbeddedKv({ dir, clock: node.clock });
  const space: CrdtSpace = await createCrdtSpace(node, { name: "chaos", store, shipEveryMs: 50 });
  const elements = (): number[] =>
    awSet
      .values(space.get("set") ?? awSet.empty())
      .map(Number)
      .sort((a, b) => a - b);
  const totals = (replica: string): number[] =>
    mvRegister.values<number>(orMap.get(space.get("counter") ?? orMap.empty(), replica, emptyFun));
  const counted = (): number => {
    const state = space.get("counter") ?? orMap.empty();
    return orMap.keys(state).reduce((sum, replica) => sum + Math.max(0, ...totals(replica)), 0);
  };
  node.serve(
    crdtService.implement({
      increment: async ({ by }) => {
        if (!(Number.isSafeInteger(by) && by >= 0)) {
          throw new StrataError("INVALID_ARGUMENT", "by must be a whole number >= 0");
        }
        // Each replica writes only its own running total, so its register never has siblings.
        await space.update("counter", (state, replica) =>
          orMap.update<DotFun>(
            state,
            replica,
            replica,
            (total, r) => mvRegister.write(total, r, Math.max(0, ...totals(replica)) + by),
            emptyFun,
          ),
        );
        return { value: counted() };
      },
      count: () => Promise.resolve({ value: counted() }),
      add: async ({ element }) => {
        await space.update("set", (state, replica) => awSet.add(state, replica, String(element)));
        return { size: elements().length };
      },
      read: () => Promise.resolve({ elements: elements() }),
      sync: async () => ({ peers: await space.syncAll() }),
    }),
  );
  return async () => {
    await space[Symbol.asyncDispose]();
    await store[Symbol.asyncDispose]();
  };
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv[2]);
  await mkdir(config.dir, { recursive: true });
  const skew = { ms: config.skewMs ?? 0 };
  const clock = skewedClock(systemClock(), skew);
  const node = createNode({
    id: config.id,
    region: config.region,
    clock,
    logger,
    transport: createNatsTransport({
      servers: config.servers,
      cluster: config.cluster,
      name: config.id,
      connection: STAY_ON_PROXIES,
    }),
  });
  const nc = await connect({
    servers: [...config.servers],
    name: `${config.id}-js`,
    ...STAY_ON_PROXIES,
  });
  const closers: Array<() => Promise<void>> = [];
  // JetStream may still be placing the first streams (or electing leaders) when a node boots:
  // opening its stores is tried again for a while, as a service under a supervisor would be.
  const opening = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const deadline = performance.now() + 30_000;
    for (;;) {
      try {
        return await fn();
      } catch (error) {
        if (performance.now() > deadline || !isStrataError(error, "UNAVAILABLE")) throw error;
        process.stderr.write(`${what}: ${error.message}; trying again\n`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  for (const workload of config.workloads) {
    if (workload === "register") {
      const kv = await opening("register", () =>
        openNatsKv({
          connection: nc,
          bucket: "chaos_register",
          replicas: config.replicas,
          timeoutMs: 2_000,
        }),
      );
      closers.push(serveRegister(node, kv, registerService, config));
    }
    if (workload === "pg-register") {
      const url = config.postgresUrl;
      if (url === undefined) throw new Error("pg-register needs postgresUrl");
      const kv = await opening("pg-register", () =>
        openPostgresKv({ url, namespace: "chaos_register", poolSize: 4, clock: node.clock }),
      );
      closers.push(serveRegister(node, kv, pgRegisterService, config));
    }
    if (workload === "sharded-register") {
      const url = config.postgresUrl;
      if (url === undefined) throw new Error("sharded-register needs postgresUrl");
      const group = async (id: string) => ({
        id,
        region: "eu",
        kv: await openPostgresKv({
          url,
          namespace: `chaos_shard_${id}`,
          watch: false,
          poolSize: 2,
          clock: node.clock,
        }),
      });
      const kv = await opening("sharded-register", async () =>
        ShardedKv.open([await group("a"), await group("b")], {
          coordination: {
            kv: await openPostgresKv({
              url,
              namespace: "chaos_shard_map",
              watch: false,
              poolSize: 2,
              clock: node.clock,
            }),
            routerId: config.id,
            leaseMs: 3_000,
            pollMs: 100,
            batchSlots: 64,
            disposeWithStore: true,
            resolveGroup: (g) => group(g.id),
            clock: node.clock,
          },
        }),
      );
      closers.push(serveRegister(node, kv, shardedRegisterService, config));
      node.serve(
        shardsService.implement({
          addGroup: async ({ id }) => {
            const keys = await kv.addGroup(await group(id));
            return { keys, epoch: kv.map().epoch };
          },
          status: () =>
            Promise.resolve({
              groups: kv.map().groups.map((g) => g.id),
              epoch: kv.map().epoch,
              rebalancing: kv.map().rebalance !== undefined,
            }),
        }),
      );
    }
    if (workload === "bank") closers.push(await opening("bank", () => serveBank(node, nc, config)));
    if (workload === "set") closers.push(await opening("set", () => serveSet(node, nc, config)));
    if (workload === "crdt") closers.push(await serveCrdt(node, config));
  }
  await node.start();
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    try {
      const command = JSON.parse(line) as { skewMs?: unknown };
      if (typeof command.skewMs === "number" && Number.isFinite(command.skewMs)) {
        skew.ms = command.skewMs;
        process.stdout.write(`${JSON.stringify({ skewMs: skew.ms })}\n`);
      }
    } catch {
      process.stderr.write(`ignored a command that is not JSON: ${line.slice(0, 80)}\n`);
    }
  });
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    lines.close();
    await node.stop({ drainTimeoutMs: 1_000 }).catch(() => undefined);
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown());
  process.once("SIGINT", () => void shutdown());
  process.stdout.write(`${JSON.stringify({ ready: true, id: config.id, pid: process.pid })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `chaos node failed: ${error instanceof Error ? error.stack : String(error)}\n`,
    () => process.exit(1),
  );
});

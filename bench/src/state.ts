import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import { runLoad, type StrongKV } from "@strata/core";
import { openNatsKv } from "@strata/nats";
import { openPostgresKv } from "@strata/postgres";
import { startNatsCluster, startPostgres } from "@strata/test-harness";
import pg from "pg";

/** One row: an operation through Strata and through the raw client on the same engine. */
export interface StateRow {
  readonly engine: "nats-r1" | "postgres" | "postgres-no-log";
  readonly op: "get" | "put" | "cas";
  readonly concurrency: number;
  readonly strata: number;
  readonly raw: number;
  readonly ratio: number;
  readonly strataP99Ms: number;
  readonly rawP99Ms: number;
}

export interface StateResults {
  readonly when: string;
  readonly rows: readonly StateRow[];
}

interface Ops {
  get(i: number): Promise<unknown>;
  put(i: number): Promise<unknown>;
  cas(i: number): Promise<unknown>;
}

const VALUE = new TextEncoder().encode(
  JSON.stringify({ sku: "sku-00042", available: 120, reserved: 7 }),
);
const KEYS = 1_000;

function strataOps(kv: StrongKV): Ops {
  const revisions = new Map<number, number>();
  return {
    get: (i) => kv.get(`k/${i % KEYS}`),
    put: async (i) => revisions.set(i % KEYS, await kv.put(`k/${i % KEYS}`, VALUE)),
    // Each worker owns its keys, so compare-and-set measures the path, not contention.
    cas: async (i) => {
      const key = i % KEYS;
      revisions.set(key, await kv.compareAndSet(`k/${key}`, VALUE, revisions.get(key) ?? 0));
    },
  };
}

/** The round with the median throughput. */
function median(rounds: ReadonlyArray<{ rps: number; p99: number }>): { rps: number; p99: number } {
  return [...rounds].sort((a, b) => a.rps - b.rps)[Math.floor(rounds.length / 2)] as {
    rps: number;
    p99: number;
  };
}

async function measure(
  ops: Ops,
  op: keyof Ops,
  concurrency: number,
  calls: number,
): Promise<{ rps: number; p99: number }> {
  // Workers take keys i, i + concurrency, …: no two workers touch the same key at once.
  const r = await runLoad({
    concurrency,
    calls,
    warmupCalls: Math.min(2_000, calls / 5),
    call: (i) => ops[op](i),
  });
  if (r.ok !== r.calls)
    throw new Error(`${op}: ${r.calls - r.ok} calls failed: ${JSON.stringify(r.errors)}`);
  return { rps: Math.round(r.throughput), p99: r.latency.p99 };
}

/**
 * The same operations with node-postgres: a table of keys with revisions from a sequence, and
 * (`withLog`) a change-log row written in the same statement as each change.
 */
async function rawPostgresOps(pool: pg.Pool, table: string, withLog: boolean): Promise<Ops> {
  await pool.query(
    `CREATE TABLE ${table} (key text PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL)`,
  );
  await pool.query(
    `CREATE TABLE ${table}_log (revision bigint PRIMARY KEY, key text NOT NULL, value bytea)`,
  );
  await pool.query(`CREATE SEQUENCE ${table}_rev`);
  const logged = (change: string): string =>
    withLog
      ? `WITH c AS (${change} RETURNING key, revision, value) INSERT INTO ${table}_log SELECT revision, key, value FROM c RETURNING revision`
      : `${change} RETURNING revision`;
  const put = logged(
    `INSERT INTO ${table} VALUES ($1, $2, nextval('${table}_rev')) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision`,
  );
  const cas = logged(
    `UPDATE ${table} SET value = $2, revision = nextval('${table}_rev') WHERE key = $1 AND revision = $3`,
  );
  const revisions = new Map<number, number>();
  // Named statements, parsed and planned once per connection (Strata's adapter does the same).
  const named = (name: string, text: string, values: unknown[]): pg.QueryConfig => ({
    name: `${table}_${name}`,
    text,
    values,
  });
  return {
    get: (i) =>
      pool.query(
        named("get", `SELECT value, revision FROM ${table} WHERE key = $1`, [`k/${i % KEYS}`]),
      ),
    put: async (i) => {
      const r = await pool.query<{ revision: string }>(
        named("put", put, [`k/${i % KEYS}`, Buffer.from(VALUE)]),
      );
      revisions.set(i % KEYS, Number(r.rows[0]?.revision));
    },
    cas: async (i) => {
      const r = await pool.query<{ revision: string }>(
        named("cas", cas, [`k/${i % KEYS}`, Buffer.from(VALUE), revisions.get(i % KEYS) ?? 0]),
      );
      if (r.rows[0] === undefined) throw new Error("raw compare-and-set lost");
      revisions.set(i % KEYS, Number(r.rows[0].revision));
    },
  };
}

/** Strata's StrongKV against the raw nats.js KV client and raw node-postgres, same servers. */
export async function runStateBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<StateResults> {
  const rows: StateRow[] = [];
  const calls = options.quick ? 2_000 : 10_000;
  const rounds = options.quick ? 1 : 3;
  const levels = [1, 32];
  // Measures Strata and the raw client side by side on one engine, level by level: the two take
  // turns for a few rounds, and the median round of each counts (single runs swing by ±10% here).
  const compare = async (engine: StateRow["engine"], strata: Ops, raw: Ops): Promise<void> => {
    for (const c of levels)
      for (const op of ["put", "cas", "get"] as const) {
        const s: Array<{ rps: number; p99: number }> = [];
        const r: Array<{ rps: number; p99: number }> = [];
        for (let round = 0; round < rounds; round++) {
          s.push(await measure(strata, op, c, calls));
          r.push(await measure(raw, op, c, calls));
        }
        record(engine, op, c, median(s), median(r));
      }
  };
  const record = (
    engine: StateRow["engine"],
    op: keyof Ops,
    c: number,
    s: { rps: number; p99: number },
    r: { rps: number; p99: number },
  ): void => {
    const row = {
      engine,
      op,
      concurrency: c,
      strata: s.rps,
      raw: r.rps,
      ratio: Math.round((s.rps / r.rps) * 100) / 100,
      strataP99Ms: s.p99,
      rawP99Ms: r.p99,
    };
    options.log(
      `${engine.padEnd(9)} ${op.padEnd(4)} c=${String(c).padStart(3)}  strata ${String(s.rps).padStart(7)}/s  raw ${String(r.rps).padStart(7)}/s  (${row.ratio}x)  p99 ${s.p99} vs ${r.p99} ms`,
    );
    rows.push(row);
  };

  {
    await using cluster = await startNatsCluster({ nodes: 1, syncAlways: true });
    const nc = await connect({ servers: cluster.url });
    try {
      const strata = strataOps(await openNatsKv({ connection: nc, bucket: "bench_strata" }));
      const raw = await new Kvm(jetstream(nc)).create("bench_raw", {
        history: 1,
        allow_direct: true,
      });
      const rawRevisions = new Map<number, number>();
      const rawOps: Ops = {
        // Strata's linearizable get asks the stream leader; so does the raw client with a
        // bucket whose reads must be linearizable.
        get: (i) => raw.get(`k/${i % KEYS}`),
        put: async (i) => rawRevisions.set(i % KEYS, await raw.put(`k/${i % KEYS}`, VALUE)),
        cas: async (i) =>
          rawRevisions.set(
            i % KEYS,
            await raw.update(`k/${i % KEYS}`, VALUE, rawRevisions.get(i % KEYS) ?? 0),
          ),
      };
      await compare("nats-r1", strata, rawOps);
    } finally {
      await nc.close();
    }
  }
  {
    await using postgres = await startPostgres();
    const pool = new pg.Pool({ connectionString: postgres.primary.url, max: 10 });
    const logged = await openPostgresKv({ url: postgres.primary.url, namespace: "bench" });
    const unlogged = await openPostgresKv({
      url: postgres.primary.url,
      namespace: "bench_no_log",
      watch: false,
    });
    try {
      // Strata's namespaces keep a change log unless opened with watch: false: each is compared
      // with the raw client doing the same work (an upsert and a log row in one statement; a
      // bare upsert).
      await compare("postgres", strataOps(logged), await rawPostgresOps(pool, "raw_logged", true));
      await compare(
        "postgres-no-log",
        strataOps(unlogged),
        await rawPostgresOps(pool, "raw_plain", false),
      );
    } finally {
      await logged.close();
      await unlogged.close();
      await pool.end();
    }
  }
  return { when: new Date().toISOString(), rows };
}

export function renderStateMarkdown(results: StateResults, command: string): string {
  const lines = [
    `Measured ${results.when.slice(0, 10)} with \`${command}\`: StrongKV operations through Strata against the raw client on the same server (nats.js KV on a 1-node JetStream with sync_interval always; node-postgres on a local PostgreSQL 15 with fsync on), 1 000 keys, each worker on its own keys; Strata and the raw client take turns for three rounds of 10 000 calls, and the median round counts.`,
    "",
    "| engine | op | concurrency | Strata ops/s | raw ops/s | ratio | Strata p99 ms | raw p99 ms |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    ...results.rows.map(
      (r) =>
        `| ${r.engine} | ${r.op} | ${r.concurrency} | ${r.strata.toLocaleString("en-US")} | ${r.raw.toLocaleString("en-US")} | ${r.ratio}x | ${r.strataP99Ms} | ${r.rawP99Ms} |`,
    ),
    "",
    "`postgres` is a namespace with a change log (the default: it can be watched), against node-postgres writing the row and a change-log row in one statement; `postgres-no-log` is a namespace opened with `watch: false`, against a bare upsert or compare-and-set. What Strata does beyond the raw client in both: take the written key's advisory lock (and the namespace's, shared), so create-if-absent and transactions over absent keys are exact; with a log, watches read it in revision order up to a horizon below which no running writer can still commit. Writes to different keys commit concurrently and share WAL flushes. Both NATS buckets are R1 with direct get on: the raw client's get and Strata's linearizable get are both answered by the stream's only server (on R3, Strata's linearizable get publishes a read barrier and asks the leader instead).",
  ];
  return lines.join("\n");
}

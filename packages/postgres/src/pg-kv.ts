import pg from "pg";
import {
  EventQueue,
  StrataError,
  checkExpectedRevision,
  checkKey,
  checkLeaseTtl,
  checkLimit,
  checkPrefix,
  checkTransaction,
  checkValue,
  isStrataError,
  leaseNotFound,
  revisionConflict,
  systemClock,
  type Clock,
  type KvCallOptions,
  type KvCapabilities,
  type KvEntry,
  type KvEvent,
  type KvPage,
  type KvTransaction,
  type ReadConsistency,
  type StrongKV,
  type Timer,
} from "@strata/core";

/** Options for {@link openPostgresKv}. */
export interface PostgresKvOptions {
  /** Connection string of the primary. */
  readonly url: string;
  /** Connection string of a hot standby, for stale reads; without it, stale reads go to the primary. */
  readonly standbyUrl?: string;
  /** Namespace: one table (plus a change log and leases) per namespace. Letters, digits, `_`. */
  readonly namespace: string;
  /** Pool size; default 10. */
  readonly poolSize?: number;
  readonly clock?: Clock;
  /** How often watches poll for changes they were not notified of, and leases are swept (ms); default 250. */
  readonly pollMs?: number;
  /** Changes kept in the log for watches that resume; default 100 000. */
  readonly logRetention?: number;
}

const NAMESPACE = /^[a-z][a-z0-9_]{0,40}$/;

function pgError(error: unknown, what: string): StrataError {
  if (isStrataError(error)) return error;
  const e = error as { code?: string; message?: string };
  const message = e.message ?? String(error);
  // 40001 serialization failure, 40P01 deadlock: the transaction may be retried.
  if (e.code === "40001" || e.code === "40P01")
    return new StrataError("ABORTED", `${what}: ${message}`, { cause: error });
  if (e.code === "25006")
    return new StrataError("FAILED_PRECONDITION", `${what}: the server is read-only (a standby)`, {
      cause: error,
    });
  return new StrataError("UNAVAILABLE", `${what}: ${message}`, {
    cause: error,
    details: { outcome: "unknown", pgCode: e.code ?? null },
  });
}

/**
 * The namespace's write function: lock, check, write, log, notify, in the caller's (implicit)
 * transaction, so a write costs one round trip. The transaction-scoped advisory lock makes
 * revisions commit in order, which keeps watches in revision order.
 */
function writeFunction(t: {
  data: string;
  log: string;
  leases: string;
  seq: string;
  lockKey: string;
  fn: string;
}): string {
  return `CREATE OR REPLACE FUNCTION ${t.fn}(p_op text, p_key text, p_value bytea, p_lease text, p_expected bigint)
RETURNS TABLE(outcome text, revision bigint, current_revision bigint) LANGUAGE plpgsql AS $fn$
DECLARE cur bigint; rev bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('${t.lockKey}'));
  SELECT d.revision INTO cur FROM ${t.data} d WHERE d.key = p_key;
  cur := COALESCE(cur, 0);
  IF p_op = 'create' AND cur <> 0 THEN RETURN QUERY SELECT 'exists'::text, 0::bigint, cur; RETURN; END IF;
  IF p_expected IS NOT NULL AND cur <> p_expected THEN RETURN QUERY SELECT 'conflict'::text, 0::bigint, cur; RETURN; END IF;
  IF p_op = 'delete' THEN
    IF cur = 0 THEN RETURN QUERY SELECT 'absent'::text, 0::bigint, 0::bigint; RETURN; END IF;
    rev := nextval('${t.seq}');
    DELETE FROM ${t.data} d WHERE d.key = p_key;
    INSERT INTO ${t.log} (revision, key, value) VALUES (rev, p_key, NULL);
  ELSE
    IF p_lease IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${t.leases} l WHERE l.id = p_lease AND l.expires_at > now()) THEN
      RETURN QUERY SELECT 'no-lease'::text, 0::bigint, cur; RETURN;
    END IF;
    rev := nextval('${t.seq}');
    INSERT INTO ${t.data} AS d (key, value, revision, create_revision, lease) VALUES (p_key, p_value, rev, rev, p_lease)
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, lease = EXCLUDED.lease;
    INSERT INTO ${t.log} (revision, key, value, lease) VALUES (rev, p_key, p_value, p_lease);
  END IF;
  PERFORM pg_notify('${t.data}', '');
  RETURN QUERY SELECT 'ok'::text, rev, cur;
END
$fn$`;
}

function escapeLike(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`);
}

interface Row {
  key: string;
  value: Buffer;
  revision: string;
  create_revision: string;
  lease: string | null;
}

function toEntry(row: Row): KvEntry {
  const entry = {
    key: row.key,
    value: new Uint8Array(row.value),
    revision: Number(row.revision),
    createRevision: Number(row.create_revision),
  };
  return row.lease === null ? entry : { ...entry, lease: row.lease };
}

/**
 * StrongKV on PostgreSQL: one table per namespace, a change log for watches, and a leases table.
 * Writes to a namespace take a transaction-scoped advisory lock, so revisions (from a sequence)
 * commit in order and watchers never see them out of order; each write commits with the log row
 * in one transaction. Reads go to the primary; stale reads to the standby when one is
 * configured. Leases are swept by every open adapter (the first to see an expiry deletes).
 */
class PostgresKvStore implements StrongKV {
  readonly name = "postgres";
  readonly capabilities: KvCapabilities;
  private readonly pool: pg.Pool;
  private readonly standby: pg.Pool | undefined;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly retention: number;
  private readonly t: {
    data: string;
    log: string;
    leases: string;
    seq: string;
    lockKey: string;
    fn: string;
  };
  private readonly watchers = new Set<() => void>();
  private sweeper: Timer | undefined;
  private listener: pg.PoolClient | undefined;
  private closed = false;

  constructor(options: PostgresKvOptions) {
    this.pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    this.standby =
      options.standbyUrl === undefined
        ? undefined
        : new pg.Pool({ connectionString: options.standbyUrl, max: options.poolSize ?? 10 });
    this.pool.on("error", () => undefined);
    this.standby?.on("error", () => undefined);
    this.clock = options.clock ?? systemClock();
    this.pollMs = options.pollMs ?? 250;
    this.retention = options.logRetention ?? 100_000;
    const ns = options.namespace;
    this.t = {
      data: `strata_kv_${ns}`,
      log: `strata_kv_${ns}_log`,
      leases: `strata_kv_${ns}_leases`,
      seq: `strata_kv_${ns}_rev`,
      lockKey: `strata_kv_${ns}`,
      fn: `strata_kv_${ns}_write`,
    };
    this.capabilities = {
      staleReads: this.standby !== undefined,
      leases: true,
      watch: true,
      transactions: true,
    };
  }

  async init(): Promise<void> {
    const { data, log, leases, seq } = this.t;
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(hashtext('strata_kv_schema'))");
      await client.query(`CREATE SEQUENCE IF NOT EXISTS ${seq}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${leases} (id text PRIMARY KEY, ttl_ms integer NOT NULL, expires_at timestamptz NOT NULL)`,
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${data} (key text PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL, create_revision bigint NOT NULL, lease text REFERENCES ${leases}(id) ON DELETE SET NULL)`,
      );
      await client.query(
        `CREATE INDEX IF NOT EXISTS ${data}_lease ON ${data}(lease) WHERE lease IS NOT NULL`,
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${log} (revision bigint PRIMARY KEY, key text NOT NULL, value bytea, lease text)`,
      );
      await client.query(writeFunction(this.t));
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw pgError(error, "create tables");
    } finally {
      client.release();
    }
    this.listener = await this.pool.connect();
    this.listener.on("notification", () => {
      for (const wake of this.watchers) wake();
    });
    await this.listener.query(`LISTEN ${this.t.data}`);
    this.scheduleSweep();
  }

  private check(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the store is closed");
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  /** Runs `fn` in a transaction that holds the namespace's write lock. */
  private async write<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw pgError(error, what);
    }
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [this.t.lockKey]);
      const result = await fn(client);
      await client.query(`SELECT pg_notify('${this.t.data}', '')`);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw pgError(error, what);
    } finally {
      client.release();
    }
  }

  private async removeKey(client: pg.PoolClient, key: string): Promise<number> {
    const { data, log, seq } = this.t;
    const rev = await client.query<{ r: string }>(`SELECT nextval('${seq}') AS r`);
    const revision = Number(rev.rows[0]?.r);
    await client.query(`DELETE FROM ${data} WHERE key = $1`, [key]);
    await client.query(`INSERT INTO ${log} (revision, key, value) VALUES ($1, $2, NULL)`, [
      revision,
      key,
    ]);
    return revision;
  }

  async get(
    key: string,
    options: KvCallOptions & { readonly consistency?: ReadConsistency } = {},
  ): Promise<KvEntry | undefined> {
    this.check(options.signal);
    checkKey(key);
    const stale =
      options.consistency !== undefined &&
      options.consistency !== "linearizable" &&
      this.standby !== undefined;
    try {
      const r = await (stale ? this.standby : this.pool).query<Row>(
        `SELECT key, value, revision, create_revision, lease FROM ${this.t.data} WHERE key = $1`,
        [key],
      );
      return r.rows[0] === undefined ? undefined : toEntry(r.rows[0]);
    } catch (error) {
      throw pgError(error, `get ${key}`);
    }
  }

  /**
   * One write in one round trip: the namespace's write function takes the lock, checks the
   * condition, writes the row and its log entry, and notifies watchers, in one transaction.
   */
  private async writeOne(
    op: "put" | "create" | "delete",
    key: string,
    value: Uint8Array | null,
    lease: string | undefined,
    expected: number | undefined,
  ): Promise<{ outcome: string; revision: number; current: number }> {
    try {
      const r = await this.pool.query<{
        outcome: string;
        revision: string;
        current_revision: string;
      }>(`SELECT * FROM ${this.t.fn}($1::text, $2::text, $3::bytea, $4::text, $5::bigint)`, [
        op,
        key,
        value === null ? null : Buffer.from(value),
        lease ?? null,
        expected ?? null,
      ]);
      const row = r.rows[0];
      if (row === undefined)
        throw new StrataError("INTERNAL", `${op} ${key}: the write function returned nothing`);
      return {
        outcome: row.outcome,
        revision: Number(row.revision),
        current: Number(row.current_revision),
      };
    } catch (error) {
      throw pgError(error, `${op} ${key}`);
    }
  }

  private refuse(
    outcome: string,
    key: string,
    current: number,
    expected: number | undefined,
    lease: string | undefined,
  ): never {
    switch (outcome) {
      case "exists":
        throw new StrataError("ALREADY_EXISTS", `key ${key} already exists`, {
          details: { key, currentRevision: current },
        });
      case "conflict":
        throw revisionConflict(key, current, expected);
      case "no-lease":
        throw leaseNotFound(lease);
      default:
        throw new StrataError("INTERNAL", `write of ${key} answered ${outcome}`);
    }
  }

  async put(
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    return this.writeValue("put", key, value, options, undefined);
  }

  async create(
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    return this.writeValue("create", key, value, options, undefined);
  }

  async compareAndSet(
    key: string,
    value: Uint8Array,
    expectedRevision: number,
    options: KvCallOptions & { readonly lease?: string } = {},
  ): Promise<number> {
    return this.writeValue("put", key, value, options, expectedRevision);
  }

  /** put, create and compareAndSet: check the input, run the write function, refuse its no. */
  private async writeValue(
    op: "put" | "create",
    key: string,
    value: Uint8Array,
    options: KvCallOptions & { readonly lease?: string },
    expected: number | undefined,
  ): Promise<number> {
    this.check(options.signal);
    checkKey(key);
    checkValue(value);
    if (expected !== undefined) checkExpectedRevision(expected);
    const r = await this.writeOne(op, key, value, options.lease, expected);
    if (r.outcome !== "ok") this.refuse(r.outcome, key, r.current, expected, options.lease);
    return r.revision;
  }

  async delete(
    key: string,
    options: KvCallOptions & { readonly expectedRevision?: number } = {},
  ): Promise<boolean> {
    this.check(options.signal);
    checkKey(key);
    const r = await this.writeOne("delete", key, null, undefined, options.expectedRevision);
    if (r.outcome === "absent") return false;
    if (r.outcome !== "ok")
      this.refuse(r.outcome, key, r.current, options.expectedRevision, undefined);
    return true;
  }

  async list(
    prefix: string,
    options: KvCallOptions & { readonly after?: string; readonly limit?: number } = {},
  ): Promise<KvPage> {
    this.check(options.signal);
    checkPrefix(prefix);
    const limit = checkLimit(options.limit);
    try {
      const r = await this.pool.query<Row>(
        `SELECT key, value, revision, create_revision, lease FROM ${this.t.data}
         WHERE key LIKE $1 ESCAPE '\\' AND key COLLATE "C" > $2 ORDER BY key COLLATE "C" LIMIT $3`,
        [`${escapeLike(prefix)}%`, options.after ?? "", limit + 1],
      );
      const rows = r.rows.slice(0, limit);
      const entries = rows.map(toEntry);
      const last = entries[entries.length - 1];
      return r.rows.length > limit && last !== undefined
        ? { entries, next: last.key }
        : { entries };
    } catch (error) {
      throw pgError(error, `list ${prefix}`);
    }
  }

  /**
   * Several writes in one SQL transaction under the namespace's write lock: the checks read
   * the rows, the writes take consecutive revisions in key order, and watchers (which read the
   * change log of committed transactions) see all of them or none.
   */
  async transaction(txn: KvTransaction, options: KvCallOptions = {}): Promise<number> {
    this.check(options.signal);
    const { checks, writes } = checkTransaction(txn);
    const { data, log, leases, seq } = this.t;
    return this.write("transaction", async (client) => {
      for (const check of checks) {
        const r = await client.query<{ revision: string }>(
          `SELECT revision FROM ${data} WHERE key = $1`,
          [check.key],
        );
        const current = Number(r.rows[0]?.revision ?? 0);
        if (current !== check.revision) throw revisionConflict(check.key, current, check.revision);
      }
      let last = 0;
      for (const write of writes) {
        if (write.type === "delete") {
          const r = await client.query(`SELECT 1 FROM ${data} WHERE key = $1`, [write.key]);
          if (r.rows.length > 0) last = await this.removeKey(client, write.key);
          continue;
        }
        if (write.lease !== undefined) {
          const l = await client.query(
            `SELECT 1 FROM ${leases} WHERE id = $1 AND expires_at > now()`,
            [write.lease],
          );
          if (l.rows.length === 0) throw leaseNotFound(write.lease);
        }
        const rev = await client.query<{ r: string }>(`SELECT nextval('${seq}') AS r`);
        last = Number(rev.rows[0]?.r);
        await client.query(
          `INSERT INTO ${data} AS d (key, value, revision, create_revision, lease) VALUES ($1, $2, $3, $3, $4)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, lease = EXCLUDED.lease`,
          [write.key, Buffer.from(write.value), last, write.lease ?? null],
        );
        await client.query(
          `INSERT INTO ${log} (revision, key, value, lease) VALUES ($1, $2, $3, $4)`,
          [last, write.key, Buffer.from(write.value), write.lease ?? null],
        );
      }
      if (last === 0) {
        const r = await client.query<{ r: string | null }>(`SELECT max(revision) AS r FROM ${log}`);
        last = Number(r.rows[0]?.r ?? 0);
      }
      return last;
    });
  }

  async revision(options: KvCallOptions = {}): Promise<number> {
    this.check(options.signal);
    try {
      const r = await this.pool.query<{ r: string | null }>(
        `SELECT max(revision) AS r FROM ${this.t.log}`,
      );
      return Number(r.rows[0]?.r ?? 0);
    } catch (error) {
      throw pgError(error, "revision");
    }
  }

  watch(
    prefix: string,
    options: KvCallOptions & { readonly fromRevision?: number } = {},
  ): AsyncIterable<KvEvent> {
    this.check(options.signal);
    checkPrefix(prefix);
    let wake: (() => void) | undefined;
    const queue = new EventQueue<KvEvent>({
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onClose: () => {
        if (wake !== undefined) this.watchers.delete(wake);
        wake?.();
      },
    });
    void (async () => {
      try {
        let after = options.fromRevision ?? (await this.revision());
        if (options.fromRevision !== undefined) {
          const oldest = await this.pool.query<{ r: string | null }>(
            `SELECT min(revision) AS r FROM ${this.t.log}`,
          );
          const min =
            oldest.rows[0]?.r === null || oldest.rows[0] === undefined
              ? undefined
              : Number(oldest.rows[0].r);
          if (min !== undefined && after < min - 1) {
            throw new StrataError(
              "OUT_OF_RANGE",
              `revision ${after} is compacted; the oldest watchable is ${min - 1}`,
              {
                details: { fromRevision: after, oldest: min - 1 },
              },
            );
          }
        }
        let done = false;
        options.signal?.addEventListener("abort", () => (done = true), { once: true });
        while (!done && !this.closed) {
          const r = await this.pool.query<{
            revision: string;
            key: string;
            value: Buffer | null;
            lease: string | null;
          }>(
            `SELECT revision, key, value, lease FROM ${this.t.log} WHERE revision > $1 AND key LIKE $2 ESCAPE '\\' ORDER BY revision LIMIT 1000`,
            [after, `${escapeLike(prefix)}%`],
          );
          for (const row of r.rows) {
            const revision = Number(row.revision);
            after = revision;
            if (row.value === null) queue.push({ type: "delete", key: row.key, revision });
            else {
              const entry = { key: row.key, value: new Uint8Array(row.value), revision };
              queue.push({
                type: "put",
                entry: row.lease === null ? entry : { ...entry, lease: row.lease },
              });
            }
          }
          if (r.rows.length === 1000) continue;
          // Without a matching row, the newest revision overall is still a safe place to resume.
          await new Promise<void>((resolve) => {
            const timer = this.clock.setTimer(resolve, this.pollMs);
            wake = () => {
              timer.clear();
              if (wake !== undefined) this.watchers.delete(wake);
              resolve();
            };
            this.watchers.add(wake);
          });
        }
        queue.end();
      } catch (error) {
        queue.fail(pgError(error, `watch ${prefix}`));
      }
    })();
    return queue;
  }

  // ---- leases ----------------------------------------------------------------------------------

  async grantLease(ttlMs: number, options: KvCallOptions = {}): Promise<string> {
    this.check(options.signal);
    checkLeaseTtl(ttlMs);
    const id = `lease-${Math.floor(this.clock.random() * 2 ** 48).toString(36)}${Math.floor(this.clock.now()).toString(36)}`;
    try {
      await this.pool.query(
        `INSERT INTO ${this.t.leases} (id, ttl_ms, expires_at) VALUES ($1, $2::integer, now() + $2::integer * interval '1 millisecond')`,
        [id, Math.round(ttlMs)],
      );
    } catch (error) {
      throw pgError(error, "grant lease");
    }
    return id;
  }

  async keepAlive(lease: string, options: KvCallOptions = {}): Promise<void> {
    this.check(options.signal);
    let r: pg.QueryResult;
    try {
      r = await this.pool.query(
        `UPDATE ${this.t.leases} SET expires_at = now() + ttl_ms * interval '1 millisecond' WHERE id = $1 AND expires_at > now()`,
        [lease],
      );
    } catch (error) {
      throw pgError(error, "keep lease alive");
    }
    if (r.rowCount === 0) throw leaseNotFound(lease);
  }

  async revokeLease(lease: string, options: KvCallOptions = {}): Promise<void> {
    this.check(options.signal);
    const ended = await this.endLeases(`id = $1 AND expires_at > now()`, [lease]);
    if (ended === 0) throw leaseNotFound(lease);
  }

  /** Deletes matching leases and their keys (each delete logged); returns how many leases ended. */
  private endLeases(where: string, params: unknown[]): Promise<number> {
    return this.write("end leases", async (c) => {
      // Keys first: deleting a lease row sets its keys' lease column to NULL.
      const ending = await c.query<{ id: string }>(
        `SELECT id FROM ${this.t.leases} WHERE ${where} FOR UPDATE`,
        params,
      );
      for (const { id } of ending.rows) {
        const keys = await c.query<{ key: string }>(
          `SELECT key FROM ${this.t.data} WHERE lease = $1 ORDER BY key`,
          [id],
        );
        for (const { key } of keys.rows) await this.removeKey(c, key);
        await c.query(`DELETE FROM ${this.t.leases} WHERE id = $1`, [id]);
      }
      return ending.rowCount ?? 0;
    });
  }

  private scheduleSweep(): void {
    this.sweeper = this.clock.setTimer(() => {
      if (this.closed) return;
      void this.sweep().finally(() => {
        if (!this.closed) this.scheduleSweep();
      });
    }, this.pollMs);
  }

  private async sweep(): Promise<void> {
    try {
      await this.endLeases("expires_at <= now()", []);
      await this.pool.query(
        `DELETE FROM ${this.t.log} WHERE revision < (SELECT max(revision) FROM ${this.t.log}) - $1`,
        [this.retention],
      );
    } catch {
      // The next sweep tries again; a lost connection is reported by the calls that need it.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sweeper?.clear();
    for (const wake of [...this.watchers]) wake();
    this.listener?.release();
    await this.pool.end();
    await this.standby?.end();
  }
}

/** The PostgreSQL store, with `close()`. */
export interface PostgresKv extends StrongKV {
  close(): Promise<void>;
}

/**
 * Opens a StrongKV namespace on PostgreSQL (>= 15), creating its tables if needed.
 *
 * @example
 * const kv = await openPostgresKv({ url: process.env.DATABASE_URL, namespace: "shop" });
 */
export async function openPostgresKv(options: PostgresKvOptions): Promise<PostgresKv> {
  if (!NAMESPACE.test(options.namespace)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `namespace "${options.namespace}" must match ${NAMESPACE.source}`,
    );
  }
  const kv = new PostgresKvStore(options);
  try {
    await kv.init();
  } catch (error) {
    await kv.close().catch(() => undefined);
    throw pgError(error, `open namespace ${options.namespace}`);
  }
  return kv;
}

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
  instrumentKv,
  type TelemetryOptions,
} from "@strata/core";

/** Options for {@link openPostgresKv}. */
export interface PostgresKvOptions {
  /** Where operation spans and latencies go; default the global OpenTelemetry providers. */
  readonly telemetry?: TelemetryOptions;
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
  /**
   * Keep a change log so the namespace can be watched; default true. Without it a write is one
   * row (about the cost of a plain upsert) and `watch` fails with UNIMPLEMENTED. Chosen when the
   * namespace is created and kept in it: opening it with the other choice fails.
   */
  readonly watch?: boolean;
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

/** Names of a namespace's tables, sequence, lock and functions. */
interface Names {
  readonly data: string;
  readonly log: string;
  readonly meta: string;
  readonly leases: string;
  readonly seq: string;
  readonly lockKey: string;
  readonly fn: string;
  readonly txnFn: string;
  readonly horizonFn: string;
  /** The channel on which new watchers announce themselves. */
  readonly watchChannel: string;
}

/**
 * Locks a writer takes, as SQL. A writer takes each key's own advisory lock (absent keys
 * included) in one global order, then the namespace's advisory lock in shared mode, and holds
 * both until it commits: writes to one key are serialised, writes to different keys commit in
 * parallel and share WAL flushes. Lease sweeps and transactions over many keys take the
 * namespace lock alone instead. (Older versions took the namespace lock alone for every write,
 * so old and new writers still exclude each other correctly.) Holding the namespace lock from
 * before its revisions are drawn until its commit is what lets watchers find a safe horizon.
 */
const namespaceLock = (t: Names): string => `hashtext('${t.lockKey}')`;
const keyLock = (t: Names, key: string): string => `hashtextextended('${t.lockKey}/' || ${key}, 0)`;

/** A pg_locks condition (alias l) for holders of a single-key (bigint) advisory lock. */
const holdsLock = (
  lock: string,
): string => `l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    AND l.classid = ((${lock}::bigint >> 32) & 4294967295)::text::oid
    AND l.objid = (${lock}::bigint & 4294967295)::text::oid`;

/**
 * Held in shared mode by the listening connection of every adapter that has watchers, so that
 * writers notify other processes only when some process other than theirs is watching.
 */
const watchLock = (t: Names): string => `hashtext('${t.lockKey}/watch')`;

/** Longest wait before a watcher looks again at a horizon held back by open writers. */
const MAX_HORIZON_RETRY_MS = 200;

/** Least time between two notifications of other processes' watchers, under steady writes. */
const NOTIFY_GAP_MS = 5;

/** Above this many keys a transaction takes the namespace lock alone, not one lock per key. */
const MAX_KEY_LOCKS = 64;

/**
 * One write in one round trip: lock, check, write the row and its change-log entry. The common
 * put and compare-and-set take the plain statements of {@link fastWrite} instead; this serves
 * the rest (create, delete, leases) and reports the current revision of a compare-and-set that
 * lost. A refused write writes nothing, so it costs no WAL flush. Revisions may be left unused (a refused
 * compare-and-set draws one): revisions increase, with gaps.
 */
function writeFunction(t: Names, logged: boolean): string {
  const log = (values: string, columns = "revision, key, value"): string =>
    logged ? `INSERT INTO ${t.log} (${columns}) VALUES (${values});` : "";
  return `CREATE OR REPLACE FUNCTION ${t.fn}(p_op text, p_key text, p_value bytea, p_lease text, p_expected bigint)
RETURNS TABLE(outcome text, revision bigint, current_revision bigint) LANGUAGE plpgsql AS $fn$
DECLARE cur bigint; rev bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(${keyLock(t, "p_key")});
  PERFORM pg_advisory_xact_lock_shared(${namespaceLock(t)});
  SELECT d.revision INTO cur FROM ${t.data} d WHERE d.key = p_key;
  cur := COALESCE(cur, 0);
  IF p_op = 'create' AND cur <> 0 THEN RETURN QUERY SELECT 'exists'::text, 0::bigint, cur; RETURN; END IF;
  IF p_expected IS NOT NULL AND cur <> p_expected THEN RETURN QUERY SELECT 'conflict'::text, 0::bigint, cur; RETURN; END IF;
  IF p_op = 'delete' AND cur = 0 THEN RETURN QUERY SELECT 'absent'::text, 0::bigint, 0::bigint; RETURN; END IF;
  IF p_op <> 'delete' AND p_lease IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${t.leases} l WHERE l.id = p_lease AND l.expires_at > now()) THEN
    RETURN QUERY SELECT 'no-lease'::text, 0::bigint, cur; RETURN;
  END IF;
  rev := nextval('${t.seq}');
  IF p_op = 'delete' THEN
    DELETE FROM ${t.data} d WHERE d.key = p_key;
    ${log("rev, p_key, NULL")}
  ELSE
    -- The key's lock is held: the row is there exactly when cur <> 0.
    IF cur = 0 THEN
      INSERT INTO ${t.data} (key, value, revision, create_revision, lease) VALUES (p_key, p_value, rev, rev, p_lease);
    ELSE
      UPDATE ${t.data} d SET value = p_value, revision = rev, lease = p_lease WHERE d.key = p_key;
    END IF;
    ${log("rev, p_key, p_value, p_lease", "revision, key, value, lease")}
  END IF;
  RETURN QUERY SELECT 'ok'::text, rev, cur;
END
$fn$`;
}

/**
 * The common writes as one plain statement, without the function's PL/pgSQL (which costs about
 * a tenth of a write): a put without a lease (`cas` false: an upsert) or a compare-and-set on an
 * existing revision (`cas` true: an update at that revision, $3). The same locks, taken in the
 * same order: the materialised `l` takes them before `r` draws the revision (a row of `r` is
 * made from a row of `l`), and both are held until the commit, as the watch horizon needs.
 * Returns the new revision, or no row when a compare-and-set found another revision (the caller
 * then asks the function, which reports the current one).
 */
function fastWrite(t: Names, logged: boolean, cas: boolean): string {
  const write = cas
    ? `UPDATE ${t.data} d SET value = $2, revision = r.v, lease = NULL FROM r
       WHERE d.key = $1 AND d.revision = $3 RETURNING d.key, d.revision`
    : `INSERT INTO ${t.data} AS d (key, value, revision, create_revision) SELECT $1, $2, r.v, r.v FROM r
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, lease = NULL
       RETURNING d.key, d.revision`;
  return `WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(${keyLock(t, "$1::text")}),
      pg_advisory_xact_lock_shared(${namespaceLock(t)})),
    r AS MATERIALIZED (SELECT nextval('${t.seq}') AS v FROM l),
    w AS (${write})
  ${
    logged
      ? `INSERT INTO ${t.log} (revision, key, value) SELECT w.revision, w.key, $2 FROM w RETURNING revision`
      : `SELECT w.revision FROM w`
  }`;
}

/**
 * A transaction in one round trip: the key locks in lock order (or the namespace lock alone for
 * many keys), the checks in the order given, then one revision per effective write, in the
 * order given (key order). Refused, it returns the failing check's or write's index (from 1)
 * before writing anything.
 */
function transactionFunction(t: Names, logged: boolean): string {
  const log = (values: string, columns = "revision, key, value"): string =>
    logged ? `INSERT INTO ${t.log} (${columns}) VALUES (${values});` : "";
  return `CREATE OR REPLACE FUNCTION ${t.txnFn}(p_check_keys text[], p_check_revisions bigint[], p_deletes boolean[], p_keys text[], p_values bytea[], p_leases text[])
RETURNS TABLE(outcome text, last_revision bigint, failed_index integer, current_revision bigint) LANGUAGE plpgsql AS $fn$
DECLARE cur bigint; rev bigint := 0; i integer; lock_id bigint;
BEGIN
  IF (SELECT count(DISTINCT k) FROM unnest(p_check_keys || p_keys) AS k) > ${MAX_KEY_LOCKS} THEN
    PERFORM pg_advisory_xact_lock(${namespaceLock(t)});
  ELSE
    FOR lock_id IN SELECT DISTINCT ${keyLock(t, "k")} FROM unnest(p_check_keys || p_keys) AS k ORDER BY 1 LOOP
      PERFORM pg_advisory_xact_lock(lock_id);
    END LOOP;
    PERFORM pg_advisory_xact_lock_shared(${namespaceLock(t)});
  END IF;
  FOR i IN 1 .. COALESCE(array_length(p_check_keys, 1), 0) LOOP
    SELECT d.revision INTO cur FROM ${t.data} d WHERE d.key = p_check_keys[i];
    cur := COALESCE(cur, 0);
    IF cur <> p_check_revisions[i] THEN
      RETURN QUERY SELECT 'conflict'::text, 0::bigint, i, cur; RETURN;
    END IF;
  END LOOP;
  FOR i IN 1 .. COALESCE(array_length(p_keys, 1), 0) LOOP
    IF p_leases[i] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${t.leases} l WHERE l.id = p_leases[i] AND l.expires_at > now()) THEN
      RETURN QUERY SELECT 'no-lease'::text, 0::bigint, i, 0::bigint; RETURN;
    END IF;
  END LOOP;
  FOR i IN 1 .. COALESCE(array_length(p_keys, 1), 0) LOOP
    IF p_deletes[i] AND NOT EXISTS (SELECT 1 FROM ${t.data} d WHERE d.key = p_keys[i]) THEN CONTINUE; END IF;
    rev := nextval('${t.seq}');
    IF p_deletes[i] THEN
      DELETE FROM ${t.data} d WHERE d.key = p_keys[i];
      ${log("rev, p_keys[i], NULL")}
    ELSE
      INSERT INTO ${t.data} AS d (key, value, revision, create_revision, lease) VALUES (p_keys[i], p_values[i], rev, rev, p_leases[i])
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, lease = EXCLUDED.lease;
      ${log("rev, p_keys[i], p_values[i], p_leases[i]", "revision, key, value, lease")}
    END IF;
  END LOOP;
  IF rev = 0 THEN ${
    logged
      ? `SELECT COALESCE(max(l.revision), 0) INTO rev FROM ${t.log} l;`
      : `SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END INTO rev FROM ${t.seq} q;`
  } END IF;
  RETURN QUERY SELECT 'ok'::text, rev, 0, 0::bigint;
END
$fn$`;
}

/**
 * Where watchers may read up to. Writers commit in any order, so a watcher must not pass a
 * revision that a running transaction could still commit. A writer holds the namespace lock
 * from before it draws a revision until it has committed; so once every transaction that held
 * the lock just after the sequence stood at V has ended, every revision up to V is final
 * (committed or abandoned), and a later query sees all of those committed.
 *
 * The function reads the sequence, then (in a later statement) the transactions holding the
 * namespace lock; the caller keeps the pair as a candidate and settles it when none of those
 * transactions holds the lock any more. Only this namespace's writers count: a long
 * transaction of another application does not hold watchers back.
 */
function horizonFunction(t: Names): string {
  const lock = namespaceLock(t);
  return `CREATE OR REPLACE FUNCTION ${t.horizonFn}()
RETURNS TABLE(candidate bigint, writers text[]) LANGUAGE plpgsql AS $fn$
DECLARE v bigint; w text[];
BEGIN
  SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END INTO v FROM ${t.seq} q;
  SELECT COALESCE(array_agg(l.virtualtransaction), '{}') INTO w FROM pg_locks l
  WHERE ${holdsLock(lock)};
  RETURN QUERY SELECT v, w;
END
$fn$`;
}

/** The bytes as a Buffer for the driver, without copying them. */
function asBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
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

/** Result row of the horizon function. */
interface HorizonRow {
  candidate: string;
  writers: string[];
}

/**
 * StrongKV on PostgreSQL: one table per namespace, a change log for watches, and a leases table.
 * Each write commits its row and its log entry in one transaction under its key's lock, so
 * writes to different keys commit concurrently and share WAL flushes; revisions come from a
 * sequence. Watchers read the log only up to a horizon below which no running transaction can
 * still commit (see {@link horizonFunction}), so they see every change in revision order.
 * Reads go to the primary; stale reads to the standby when one is configured. Leases are swept
 * by every open adapter (the first to see an expiry deletes). A namespace created with
 * `watch: false` keeps no change log: a write is one row, and watches are refused.
 */
class PostgresKvStore implements StrongKV {
  readonly name = "postgres";
  readonly capabilities: KvCapabilities;
  private readonly pool: pg.Pool;
  private readonly standby: pg.Pool | undefined;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly retention: number;
  private readonly t: Names;
  /** Whether the namespace keeps a change log (and so can be watched). */
  private readonly logged: boolean;
  private readonly namespace: string;
  /** The plain statements of a put and a compare-and-set (see {@link fastWrite}). */
  private readonly putSql: string;
  private readonly casSql: string;
  private readonly watchers = new Set<() => void>();
  private sweeper: Timer | undefined;
  private listener: pg.PoolClient | undefined;
  private closed = false;
  /** Every revision up to this one is final: committed or abandoned. */
  private safe = 0;
  /** A candidate horizon waiting for the writers that held the lock when it was taken to end. */
  private pending: { candidate: number; writers: ReadonlySet<string> } | undefined;
  private horizonRun: Promise<number> | undefined;
  private horizonNext: Promise<number> | undefined;
  private retryTimer: Timer | undefined;
  private retryMs = 1;
  private notifying: Promise<void> | undefined;
  private notifyAgain = false;
  /** Whether another process has watchers on this namespace (see {@link watchLock}). */
  private othersWatch = true;
  /** Bumped by every announcement of another process's new watcher (see {@link lookForWatchers}). */
  private announcements = 0;
  /** The listening connection's backend, to tell our own announcements from others'. */
  private listenerPid = 0;
  /** The last announcement of this adapter's watchers; a new watcher reads after it. */
  private announced: Promise<void> = Promise.resolve();
  private notifyTimer: Timer | undefined;
  private notifyWait: (() => void) | undefined;

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
      meta: `strata_kv_${ns}_meta`,
      leases: `strata_kv_${ns}_leases`,
      seq: `strata_kv_${ns}_rev`,
      lockKey: `strata_kv_${ns}`,
      fn: `strata_kv_${ns}_write`,
      txnFn: `strata_kv_${ns}_txn`,
      horizonFn: `strata_kv_${ns}_horizon`,
      watchChannel: `strata_kv_${ns}_watch`,
    };
    this.logged = options.watch ?? true;
    this.namespace = options.namespace;
    this.putSql = fastWrite(this.t, this.logged, false);
    this.casSql = fastWrite(this.t, this.logged, true);
    this.capabilities = {
      staleReads: this.standby !== undefined,
      leases: true,
      watch: this.logged,
      transactions: true,
    };
  }

  async init(): Promise<void> {
    const { data, log, leases, seq, meta } = this.t;
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(hashtext('strata_kv_schema'))");
      // Whether the namespace keeps a change log is fixed at its creation (namespaces made
      // before the choice existed all keep one): every process must write it, or none.
      const existed = await client.query<{ e: boolean }>(
        "SELECT to_regclass($1) IS NOT NULL AS e",
        [data],
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${meta} (name text PRIMARY KEY, value text NOT NULL)`,
      );
      await client.query(
        `INSERT INTO ${meta} (name, value) VALUES ('watch', $1) ON CONFLICT (name) DO NOTHING`,
        [existed.rows[0]?.e === true || this.logged ? "on" : "off"],
      );
      const kept = await client.query<{ value: string }>(
        `SELECT value FROM ${meta} WHERE name = 'watch'`,
      );
      const keptLog = kept.rows[0]?.value !== "off";
      if (keptLog !== this.logged) {
        throw new StrataError(
          "FAILED_PRECONDITION",
          `namespace ${this.namespace} was created ${keptLog ? "with" : "without"} a change log; open it with watch: ${String(keptLog)}`,
        );
      }
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
      if (this.logged) {
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${log} (revision bigint PRIMARY KEY, key text NOT NULL, value bytea, lease text)`,
        );
        await client.query(horizonFunction(this.t));
      }
      await client.query(writeFunction(this.t, this.logged));
      await client.query(transactionFunction(this.t, this.logged));
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw pgError(error, "create tables");
    } finally {
      client.release();
    }
    if (this.logged) await this.listen();
    this.scheduleSweep();
  }

  /** Listens for other processes' changes and watchers (namespaces with a change log). */
  private async listen(): Promise<void> {
    this.listener = await this.pool.connect();
    // Errors surface on the calls that use the pool; a lost listener only delays watchers.
    this.listener.on("error", () => undefined);
    this.listener.on("notification", (message) => {
      if (message.channel !== this.t.watchChannel) this.wakeWatchers();
      else if (message.processId !== this.listenerPid) {
        this.announcements++;
        this.othersWatch = true;
      }
    });
    const pid = await this.listener.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    this.listenerPid = pid.rows[0]?.pid ?? 0;
    await this.listener.query(`LISTEN ${this.t.data}`);
    await this.listener.query(`LISTEN ${this.t.watchChannel}`);
    await this.lookForWatchers();
  }

  private check(signal?: AbortSignal): void {
    if (this.closed) throw new StrataError("UNAVAILABLE", "the store is closed");
    if (signal?.aborted === true) throw new StrataError("CANCELLED", "cancelled");
  }

  private wakeWatchers(): void {
    for (const wake of [...this.watchers]) wake();
  }

  /**
   * After a commit: wakes this adapter's watchers, and other processes' through NOTIFY. The
   * NOTIFY is sent after the commit, on its own: PostgreSQL serialises the commits of notifying
   * transactions, which would stop writes from sharing WAL flushes. The first change notifies at
   * once; changes while one is in flight are gathered into one more, at most every
   * `NOTIFY_GAP_MS` (watchers read everything new whenever they wake). Nothing is sent while
   * no other process watches the namespace: a new watcher announces itself before its first read,
   * and every poll interval the adapter looks again (a watcher that goes away is noticed there).
   */
  private changed(): void {
    if (!this.logged) return;
    this.wakeWatchers();
    if (!this.othersWatch) return;
    if (this.notifying !== undefined) {
      this.notifyAgain = true;
      return;
    }
    this.notifying = (async () => {
      for (let again = true; again && !this.closed;) {
        this.notifyAgain = false;
        const started = this.clock.monotonic();
        // Nothing depends on the notification being durable: do not wait for a WAL flush.
        await this.listener
          ?.query(`SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`, [
            this.t.data,
          ])
          .catch(() => undefined);
        again = this.notifyAgain;
        const gap = NOTIFY_GAP_MS - (this.clock.monotonic() - started);
        if (again && gap > 0 && !this.closed) {
          await new Promise<void>((resolve) => {
            this.notifyTimer = this.clock.setTimer(resolve, gap);
            this.notifyWait = resolve;
          });
          this.notifyTimer = undefined;
          this.notifyWait = undefined;
        }
      }
      this.notifying = undefined;
    })();
  }

  /** Runs `fn` in a transaction that holds the namespace's write lock alone (lease sweeps). */
  private async exclusive<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw pgError(error, what);
    }
    try {
      await client.query("BEGIN");
      await client.query(`SELECT pg_advisory_xact_lock(${namespaceLock(this.t)})`);
      const result = await fn(client);
      await client.query("COMMIT");
      this.changed();
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
    if (this.logged)
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
      // Named: each connection parses and plans it once.
      const r = await (stale ? this.standby : this.pool).query<Row>({
        name: `${this.t.data}_get`,
        text: `SELECT key, value, revision, create_revision, lease FROM ${this.t.data} WHERE key = $1`,
        values: [key],
      });
      return r.rows[0] === undefined ? undefined : toEntry(r.rows[0]);
    } catch (error) {
      throw pgError(error, `get ${key}`);
    }
  }

  /** One write in one round trip, through the namespace's write function. */
  private async writeOne(
    op: "put" | "create" | "delete",
    key: string,
    value: Uint8Array | null,
    lease: string | undefined,
    expected: number | undefined,
  ): Promise<{ outcome: string; revision: number; current: number }> {
    if (op === "put" && lease === undefined && (expected === undefined || expected > 0)) {
      let written: string | undefined;
      try {
        const cas = expected !== undefined;
        const r = await this.pool.query<{ revision: string }>({
          name: `${this.t.fn}_${cas ? "cas" : "put"}`,
          text: cas ? this.casSql : this.putSql,
          values: cas
            ? [key, asBuffer(value as Uint8Array), expected]
            : [key, asBuffer(value as Uint8Array)],
        });
        written = r.rows[0]?.revision;
      } catch (error) {
        throw pgError(error, `${op} ${key}`);
      }
      if (written !== undefined) {
        this.changed();
        return { outcome: "ok", revision: Number(written), current: expected ?? 0 };
      }
      // A compare-and-set that found another revision: the function reports the current one.
    }
    let row: { outcome: string; revision: string; current_revision: string } | undefined;
    try {
      const r = await this.pool.query<{
        outcome: string;
        revision: string;
        current_revision: string;
      }>({
        name: `${this.t.fn}_call`,
        text: `SELECT * FROM ${this.t.fn}($1::text, $2::text, $3::bytea, $4::text, $5::bigint)`,
        values: [op, key, value === null ? null : asBuffer(value), lease ?? null, expected ?? null],
      });
      row = r.rows[0];
    } catch (error) {
      throw pgError(error, `${op} ${key}`);
    }
    if (row === undefined)
      throw new StrataError("INTERNAL", `${op} ${key}: the write function returned nothing`);
    if (row.outcome === "ok") this.changed();
    return {
      outcome: row.outcome,
      revision: Number(row.revision),
      current: Number(row.current_revision),
    };
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
    if (options.expectedRevision !== undefined) checkExpectedRevision(options.expectedRevision);
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
   * Several writes in one SQL transaction, in one round trip (the namespace's transaction
   * function): the key locks, the checks, then one revision per write in key order. Watchers
   * see all of them once the transaction commits, and nothing before.
   */
  async transaction(txn: KvTransaction, options: KvCallOptions = {}): Promise<number> {
    this.check(options.signal);
    const { checks, writes } = checkTransaction(txn);
    let row:
      | { outcome: string; last_revision: string; failed_index: number; current_revision: string }
      | undefined;
    try {
      const r = await this.pool.query<NonNullable<typeof row>>(
        `SELECT * FROM ${this.t.txnFn}($1::text[], $2::bigint[], $3::boolean[], $4::text[], $5::bytea[], $6::text[])`,
        [
          checks.map((c) => c.key),
          checks.map((c) => c.revision),
          writes.map((w) => w.type === "delete"),
          writes.map((w) => w.key),
          writes.map((w) => (w.type === "put" ? asBuffer(w.value) : null)),
          writes.map((w) => (w.type === "put" ? (w.lease ?? null) : null)),
        ],
      );
      row = r.rows[0];
    } catch (error) {
      throw pgError(error, "transaction");
    }
    if (row === undefined)
      throw new StrataError("INTERNAL", "transaction: the transaction function returned nothing");
    switch (row.outcome) {
      case "ok":
        this.changed();
        return Number(row.last_revision);
      case "conflict": {
        const check = checks[row.failed_index - 1];
        if (check === undefined) break;
        throw revisionConflict(check.key, Number(row.current_revision), check.revision);
      }
      case "no-lease": {
        const write = writes[row.failed_index - 1];
        throw leaseNotFound(write?.type === "put" ? write.lease : undefined);
      }
    }
    throw new StrataError("INTERNAL", `transaction answered ${row.outcome}`);
  }

  /**
   * The newest committed revision (from the change log); in a namespace without one, the last
   * revision drawn, which a write still running may be about to commit.
   */
  async revision(options: KvCallOptions = {}): Promise<number> {
    this.check(options.signal);
    try {
      if (!this.logged) return await this.lastAllocated();
      const r = await this.pool.query<{ r: string | null }>(
        `SELECT max(revision) AS r FROM ${this.t.log}`,
      );
      return Number(r.rows[0]?.r ?? 0);
    } catch (error) {
      throw pgError(error, "revision");
    }
  }

  // ---- watches ---------------------------------------------------------------------------------

  /**
   * The newest revision up to which every transaction has ended, from a horizon query that
   * starts after this call (concurrent callers share one). See {@link horizonFunction}.
   */
  private horizon(): Promise<number> {
    if (this.horizonRun === undefined) {
      this.horizonRun = this.advanceHorizon().finally(() => (this.horizonRun = undefined));
      return this.horizonRun;
    }
    this.horizonNext ??= this.horizonRun
      .catch(() => undefined)
      .then(() => {
        this.horizonNext = undefined;
        return this.horizon();
      });
    return this.horizonNext;
  }

  private async advanceHorizon(): Promise<number> {
    const r = await this.pool.query<HorizonRow>(`SELECT * FROM ${this.t.horizonFn}()`);
    const row = r.rows[0];
    if (row === undefined)
      throw new StrataError("INTERNAL", "the horizon function returned nothing");
    const candidate = Number(row.candidate);
    const pending = this.pending;
    if (pending !== undefined && !row.writers.some((w) => pending.writers.has(w))) {
      this.safe = Math.max(this.safe, pending.candidate);
      this.pending = undefined;
    }
    if (row.writers.length === 0) {
      this.safe = Math.max(this.safe, candidate);
      this.pending = undefined;
    } else if (this.pending === undefined && candidate > this.safe) {
      this.pending = { candidate, writers: new Set(row.writers) };
    }
    this.retryHorizon();
    return this.safe;
  }

  /**
   * While a candidate waits, wake the watchers again soon (1 ms, doubling up to the poll
   * interval or 200 ms, whichever is less): its transactions may end without a commit of ours
   * to wake them. Under a steady stream of writes a candidate is nearly always waiting; without
   * the 200 ms cap a watcher with a long poll interval backed off for seconds.
   */
  private retryHorizon(): void {
    if (this.pending === undefined) {
      this.retryMs = 1;
      return;
    }
    if (this.retryTimer !== undefined || this.closed || this.watchers.size === 0) return;
    const ms = this.retryMs;
    this.retryMs = Math.min(this.pollMs, MAX_HORIZON_RETRY_MS, ms * 2);
    this.retryTimer = this.clock.setTimer(() => {
      this.retryTimer = undefined;
      this.wakeWatchers();
    }, ms);
  }

  /**
   * Takes or drops the watch lock on the listening connection (queries run in order there).
   * Taking it also announces the watcher, so writers in other processes start notifying at once
   * rather than at their next look for watchers; the watcher's first read waits for this.
   */
  private announceWatching(watching: boolean): void {
    if (!watching) {
      void this.listener
        ?.query(`SELECT pg_advisory_unlock_shared(${watchLock(this.t)})`)
        .catch(() => undefined);
      return;
    }
    this.announced =
      this.listener
        ?.query(`SELECT pg_advisory_lock_shared(${watchLock(this.t)}), pg_notify($1, '')`, [
          this.t.watchChannel,
        ])
        .then(
          () => undefined,
          () => undefined,
        ) ?? Promise.resolve();
  }

  /**
   * Whether a process other than this one watches the namespace; on error, assume one does. An
   * announcement that arrives while the query runs wins over a "no".
   */
  private async lookForWatchers(): Promise<void> {
    const before = this.announcements;
    try {
      const r = await this.listener?.query<{ others: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE ${holdsLock(watchLock(this.t))}
           AND l.pid <> pg_backend_pid()) AS others`,
      );
      this.othersWatch = (r?.rows[0]?.others ?? true) || this.announcements !== before;
    } catch {
      this.othersWatch = true;
    }
  }

  watch(
    prefix: string,
    options: KvCallOptions & { readonly fromRevision?: number } = {},
  ): AsyncIterable<KvEvent> {
    this.check(options.signal);
    checkPrefix(prefix);
    if (!this.logged) {
      throw new StrataError(
        "UNIMPLEMENTED",
        `namespace ${this.namespace} keeps no change log (opened with watch: false); it cannot be watched`,
      );
    }
    // Set by a wake that comes while the watcher is querying, so it is not lost.
    let woken = false;
    let resume: (() => void) | undefined;
    const wake = (): void => {
      woken = true;
      resume?.();
    };
    const queue = new EventQueue<KvEvent>({
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onClose: () => {
        this.watchers.delete(wake);
        if (this.watchers.size === 0) this.announceWatching(false);
        wake();
      },
    });
    this.watchers.add(wake);
    if (this.watchers.size === 1) this.announceWatching(true);
    void (async () => {
      try {
        await this.announced;
        let after = options.fromRevision ?? (await this.lastAllocated());
        if (options.fromRevision !== undefined) await this.checkWatchable(after);
        let done = false;
        options.signal?.addEventListener("abort", () => (done = true), { once: true });
        while (!done && !this.closed) {
          woken = false;
          const horizon = await this.horizon();
          const r = await this.pool.query<{
            revision: string;
            key: string;
            value: Buffer | null;
            lease: string | null;
          }>(
            `SELECT revision, key, value, lease FROM ${this.t.log}
             WHERE revision > $1 AND revision <= $2 AND key LIKE $3 ESCAPE '\\'
             ORDER BY revision LIMIT 1000`,
            [after, horizon, `${escapeLike(prefix)}%`],
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
          // Everything up to the horizon is final and read: resume from there.
          after = Math.max(after, horizon);
          if (woken || done || this.closed) continue;
          await new Promise<void>((resolve) => {
            const timer = this.clock.setTimer(resolve, this.pollMs);
            resume = () => {
              timer.clear();
              resolve();
            };
          });
          resume = undefined;
        }
        queue.end();
      } catch (error) {
        queue.fail(pgError(error, `watch ${prefix}`));
      }
    })();
    return queue;
  }

  /** The sequence's last value: no write that starts later can take a revision at or below it. */
  private async lastAllocated(): Promise<number> {
    const r = await this.pool.query<{ v: string }>(
      `SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS v FROM ${this.t.seq}`,
    );
    return Number(r.rows[0]?.v ?? 0);
  }

  /** OUT_OF_RANGE if the log no longer holds the changes after `after`. */
  private async checkWatchable(after: number): Promise<void> {
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
        { details: { fromRevision: after, oldest: min - 1 } },
      );
    }
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

  /**
   * Deletes matching leases and their keys (each delete logged); returns how many leases ended.
   * Under the namespace lock alone: no write that could attach a key to an ending lease runs.
   */
  private endLeases(where: string, params: unknown[]): Promise<number> {
    return this.exclusive("end leases", async (c) => {
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
    if (this.logged) await this.lookForWatchers();
    try {
      // Look first: ending leases takes the namespace lock alone, which pauses every writer.
      const expired = await this.pool.query(
        `SELECT 1 FROM ${this.t.leases} WHERE expires_at <= now() LIMIT 1`,
      );
      if (expired.rows.length > 0) await this.endLeases("expires_at <= now()", []);
      if (this.logged)
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
    this.retryTimer?.clear();
    this.wakeWatchers();
    this.notifyTimer?.clear();
    this.notifyWait?.();
    await this.notifying;
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
  return instrumentKv(kv, options.telemetry);
}

/** Strata's PostgreSQL adapters: StrongKV on tables (serializable writes, hot-standby stale reads). */
export { openPostgresKv } from "./pg-kv.js";
export type { PostgresKv, PostgresKvOptions } from "./pg-kv.js";

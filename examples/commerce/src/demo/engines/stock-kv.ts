import { ShardedKv, type Clock } from "@strata/core";
import { openPostgresKv, type PostgresKv } from "@strata/postgres";
import { DEMO_REGIONS } from "../cluster.js";

/**
 * Stock and reservations, sharded by key over a shard group per region: one PostgreSQL namespace
 * per region (`<namespace>_stock_eu`, `<namespace>_stock_us`). Every process builds the same
 * groups in the same order, so all of them map a key to the same group; the map never changes
 * while the demo runs (no rebalancing across processes).
 */
export async function openStockKv(options: {
  readonly url: string;
  readonly namespace: string;
  readonly poolSize: number;
  readonly clock?: Clock;
}): Promise<ShardedKv> {
  const opened: PostgresKv[] = [];
  try {
    const groups = [];
    for (const region of Object.keys(DEMO_REGIONS)) {
      const kv = await openPostgresKv({
        url: options.url,
        namespace: `${options.namespace}_stock_${region}`,
        poolSize: options.poolSize,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      });
      opened.push(kv);
      groups.push({ id: `stock-${region}`, region, kv });
    }
    return new ShardedKv(groups);
  } catch (error) {
    await Promise.allSettled(opened.map((kv) => kv.close()));
    throw error;
  }
}

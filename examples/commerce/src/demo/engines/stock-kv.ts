import { ShardedKv, type Clock, type ShardGroup } from "@strata/core";
import { openPostgresKv, type PostgresKv } from "@strata/postgres";
import { DEMO_REGIONS, STOCK_MAP_LEASE_MS, STOCK_MAP_POLL_MS } from "../cluster.js";

/** Where the stock store lives: the PostgreSQL server and the demo's namespace prefix. */
export interface StockStoreOptions {
  readonly url: string;
  readonly namespace: string;
  readonly poolSize: number;
  readonly clock?: Clock;
}

/** A stock shard group: its own PostgreSQL namespace (`stock-eu` → `<namespace>_stock_eu`). */
export async function openStockGroup(
  options: StockStoreOptions,
  id: string,
  region: string,
): Promise<ShardGroup> {
  const kv = await openPostgresKv({
    url: options.url,
    namespace: `${options.namespace}_${id.replaceAll("-", "_")}`,
    poolSize: options.poolSize,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  return { id, region, kv };
}

/**
 * Stock and reservations, sharded by key over a shard group per region, as a router of the map
 * every process shares (the driver and each node): the map lives in `<namespace>_stock_map`, a
 * namespace without a change log. A group another process adds is opened here when the map
 * names it.
 */
export async function openStockKv(
  options: StockStoreOptions & { readonly routerId: string },
): Promise<ShardedKv> {
  const opened: PostgresKv[] = [];
  try {
    const groups = [];
    for (const region of Object.keys(DEMO_REGIONS)) {
      const group = await openStockGroup(options, `stock-${region}`, region);
      opened.push(group.kv as PostgresKv);
      groups.push(group);
    }
    const map = await openPostgresKv({
      url: options.url,
      namespace: `${options.namespace}_stock_map`,
      watch: false,
      poolSize: 2,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
    opened.push(map);
    return await ShardedKv.open(groups, {
      coordination: {
        kv: map,
        prefix: "stock-map",
        routerId: options.routerId,
        pollMs: STOCK_MAP_POLL_MS,
        leaseMs: STOCK_MAP_LEASE_MS,
        batchSlots: 32,
        disposeWithStore: true,
        resolveGroup: (g) => openStockGroup(options, g.id, g.region),
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      },
    });
  } catch (error) {
    await Promise.allSettled(opened.map((kv) => kv.close()));
    throw error;
  }
}

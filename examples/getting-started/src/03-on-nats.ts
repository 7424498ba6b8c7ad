import { connect } from "@nats-io/transport-node";
import { createNatsTransport, openNatsLog } from "@strata/nats";
import { openPostgresKv } from "@strata/postgres";
import { runCatalog } from "./01-first-service.js";
import { runShop } from "./02-state-and-events.js";

export interface Servers {
  /** NATS with JetStream, server 2.10 or later: `nats://host:4222` (several: comma-separated). */
  readonly natsUrl: string;
  /** PostgreSQL 15 or later: `postgres://user@host:5432/db`. */
  readonly postgresUrl: string;
}

// Steps 1 and 2, unchanged, on real engines.
export async function main(servers: Servers) {
  // Calls: every node connects to NATS, and the nodes of cluster "shop" find each other there.
  const transport = () => createNatsTransport({ servers: servers.natsUrl, cluster: "shop" });
  const catalog = await runCatalog(transport);

  // Events on JetStream streams; strong state with transactions on PostgreSQL.
  const connection = await connect({ servers: servers.natsUrl.split(",") });
  try {
    await using log = await openNatsLog({ connection });
    await using kv = await openPostgresKv({ url: servers.postgresUrl, namespace: "shop" });
    const shop = await runShop({ transport, kv, log });
    return { catalog, shop };
  } finally {
    await connection.drain();
  }
}

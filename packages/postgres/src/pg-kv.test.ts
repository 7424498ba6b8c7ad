import {
  describeStrongKvConformance,
  startPostgres,
  waitFor,
  type PostgresCluster,
} from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresKv } from "./pg-kv.js";

let pg: PostgresCluster;
let namespaces = 0;

beforeAll(async () => {
  pg = await startPostgres({ standby: true });
});

afterAll(async () => {
  await pg.stop();
});

describeStrongKvConformance("PostgreSQL with a hot standby", {
  open: () =>
    openPostgresKv({
      url: pg.primary.url,
      standbyUrl: pg.standby?.url ?? "",
      namespace: `conformance${++namespaces}`,
      pollMs: 50,
    }),
});

describe("PostgreSQL StrongKV", () => {
  it("expires leases on the server's clock and deletes their keys", async () => {
    await using kv = await openPostgresKv({ url: pg.primary.url, namespace: "leases", pollMs: 25 });
    const lease = await kv.grantLease(150);
    await kv.put("lock/a", new TextEncoder().encode("me"), { lease });
    expect((await kv.get("lock/a"))?.lease).toBe(lease);
    await waitFor(async () => (await kv.get("lock/a")) === undefined, {
      timeoutMs: 5_000,
      message: "lease never expired",
    });
    await expect(kv.keepAlive(lease)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("serves stale reads from the standby, which catches up", async () => {
    await using kv = await openPostgresKv({
      url: pg.primary.url,
      standbyUrl: pg.standby?.url ?? "",
      namespace: "stale",
    });
    const revision = await kv.put("s/k", new TextEncoder().encode("v"));
    await waitFor(
      async () =>
        (await kv.get("s/k", { consistency: { maxStalenessMs: 1_000 } }))?.revision === revision,
      {
        timeoutMs: 5_000,
        message: "standby never caught up",
      },
    );
  });

  it("refuses bad namespaces and fails clearly when the server is gone", async () => {
    await expect(
      openPostgresKv({ url: pg.primary.url, namespace: "Bad-Name" }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(
      openPostgresKv({ url: "postgresql://strata@127.0.0.1:1/postgres", namespace: "gone" }),
    ).rejects.toMatchObject({
      code: "UNAVAILABLE",
    });
  });
});

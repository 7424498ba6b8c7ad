import { createEmbeddedNetwork, createNode, openEmbeddedKv } from "@strata/core";
import { tempDir } from "@strata/test-harness";
import { describe, expect, it } from "vitest";
import { seedInventory } from "../services/inventory.js";
import { AVAILABILITY_P99_SLO_MS, startAutoscaleLeg } from "./autoscale-leg.js";

/**
 * The demo's autoscaling, end to end: a five-fold spike on the availability service, its
 * utilisation read from the runtime, a target-tracking policy, and a supervisor that starts
 * replicas (each booting for a second). Replicas are added during the spike, p99 comes back
 * under the SLO for good, and replicas are removed after it.
 */
describe("the demo's autoscaling", () => {
  it("meets a traffic spike by adding replicas, then removes them", async () => {
    await using dir = await tempDir("strata-autoscale-demo-");
    const kv = await openEmbeddedKv({ dir: dir.path });
    const skus = ["sku-1", "sku-2", "sku-3"];
    await seedInventory(kv, new Map(skus.map((s) => [s, 10])));
    const network = createEmbeddedNetwork();
    const caller = createNode({ id: "gateway", transport: network.transport(), admin: false });
    await caller.start();
    const leg = await startAutoscaleLeg({ transport: () => network.transport(), kv, caller, skus });
    try {
      const summary = await leg.run(22_000);
      const lines = summary.timeline.map(
        (p) => `${p.second}s ${p.replicas} ${p.rps}/s p99 ${p.p99Ms}`,
      );
      expect(summary.peakReplicas, lines.join("\n")).toBeGreaterThan(summary.minReplicas);
      expect(summary.decisions.some((d) => d.to > d.from)).toBe(true);
      expect(summary.decisions.every((d) => d.reason.length > 10)).toBe(true);
      expect(summary.recoveredAfterSeconds, lines.join("\n")).not.toBeNull();
      const last = summary.timeline.slice(-2);
      for (const p of last) expect(p.p99Ms).toBeLessThanOrEqual(AVAILABILITY_P99_SLO_MS);
      // After the spike the replicas go back down.
      expect(summary.timeline.at(-1)?.replicas).toBeLessThan(summary.peakReplicas);
      expect(summary.startupMs).toBeGreaterThanOrEqual(1_000);
    } finally {
      await leg.stop();
      await caller.stop();
      await kv.close();
    }
  }, 60_000);
});

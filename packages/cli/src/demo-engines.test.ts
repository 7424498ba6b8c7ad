import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, type TempDir, TextCapture } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "./index.js";

let dir: TempDir;
beforeAll(async () => {
  dir = await tempDir("strata-demo-engines-");
});
afterAll(async () => {
  await dir?.[Symbol.asyncDispose]();
});

/**
 * `strata demo --engines nats,postgres`: the same demo with every service node a process of its
 * own on a NATS JetStream cluster and PostgreSQL started for the run; the partition between the
 * regions is real there, and with --chaos so are the nemeses (kill -9, SIGSTOP). Every invariant
 * must hold.
 */
describe("strata demo --engines nats,postgres", () => {
  it("runs the commerce system as node processes on real engines under real nemeses, and every invariant holds", async () => {
    const html = join(dir.path, "report.html");
    const io: Io & { out: TextCapture; err: TextCapture } = {
      out: new TextCapture(),
      err: new TextCapture(),
      env: {},
    };
    const code = await main(
      [
        "demo",
        "--engines",
        "nats,postgres",
        "--chaos",
        "--duration",
        "8",
        "--json",
        "--report",
        html,
      ],
      io,
    );
    const report = JSON.parse(io.out.text) as {
      profile: { mode: string; description: string };
      cluster: { nodes: Array<{ id: string; region: string; served: number }> };
      carts: { replicas: number; partition: unknown; converged: boolean };
      events: {
        orders: { confirmed: number; cancelled: number };
        published: number;
        notifications: number;
        handover: { node: string } | null;
      };
      documents: { rendered: number; orders: number };
      resilience: {
        faultHits: number;
        nemeses: Array<{ node: string; action: string }>;
      };
      verdicts: Record<string, boolean>;
    };
    // Name the verdicts that failed (the exit code alone would not say which).
    expect(
      Object.entries(report.verdicts).filter(([, ok]) => !ok),
      io.err.text.slice(-3_000),
    ).toEqual([]);
    expect(code).toBe(0);
    expect(report.profile.mode).toBe("engines");
    expect(report.profile.description).toMatch(/as processes; NATS .*PostgreSQL/);
    // Every service node served calls, from its own process.
    expect(report.cluster.nodes.map((n) => n.id)).toEqual(["n1", "n2", "n3", "n4"]);
    for (const node of report.cluster.nodes) expect(node.served).toBeGreaterThan(0);
    expect(report.carts.replicas).toBe(4);
    expect(report.carts.partition).not.toBeNull();
    const orders = report.events.orders.confirmed + report.events.orders.cancelled;
    expect(orders).toBeGreaterThan(5);
    expect(report.events.published).toBe(orders);
    expect(report.events.notifications).toBe(orders);
    expect(report.events.handover?.node).toBe("n4");
    expect(report.documents.rendered).toBe(report.events.orders.confirmed);
    expect(report.resilience.faultHits).toBeGreaterThan(0);
    // The nemeses were real: n3 killed with kill -9 and started again, n1 paused and resumed.
    expect(report.resilience.nemeses.map((n) => `${n.node} ${n.action}`).sort()).toEqual([
      "n1 paused (SIGSTOP)",
      "n1 resumed (SIGCONT)",
      "n3 killed (kill -9)",
      "n3 restarted",
    ]);
    // The traces of the node processes are not collected here: no verdict on them.
    expect(report.verdicts).not.toHaveProperty("orderTraced");
    expect(await readFile(html, "utf8")).toMatch(/Every invariant held/);
  }, 180_000);
});

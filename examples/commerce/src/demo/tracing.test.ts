import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEvents,
  createNode,
  createSagaRunner,
  openEmbeddedKv,
  openEmbeddedLog,
  type Events,
  type StrataNode,
  type Subscription,
} from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import { TraceCollector, criticalPath, startTracing, type SpanRecord } from "@strata/telemetry";
import { startNatsCluster, waitFor, type NatsCluster } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedCatalog, seedStock } from "../data/seed.js";
import { checkoutSaga, sagaCheckout } from "../services/checkout.js";
import { inventoryService, seedInventory } from "../services/inventory.js";
import { startOrderConsumers } from "../services/order-consumers.js";
import { orders, ordersService } from "../services/orders.js";
import { paymentsService } from "../services/payments.js";

/**
 * One order placed through a gateway on a NATS cluster of three service nodes (orders, inventory,
 * payments on different nodes) must give one trace: gateway call → orders → saga → steps →
 * inventory and payments, with the outbox event's creation in it and its consumers below it,
 * linked to it.
 */
describe("tracing across nodes over NATS", () => {
  const collector = new TraceCollector();
  let tracing: ReturnType<typeof startTracing>;
  let cluster: NatsCluster;
  let dir: string;
  const nodes: StrataNode[] = [];
  let events: Events;
  let consumers: { subscriptions: Subscription[] } | undefined;
  let closeSagas: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    tracing = startTracing({ processors: [collector], serviceName: "commerce-test" });
    cluster = await startNatsCluster({ nodes: 1, jetstream: false });
    dir = await mkdtemp(join(tmpdir(), "strata-trace-"));
    const kv = await openEmbeddedKv({ dir: join(dir, "kv") });
    const log = await openEmbeddedLog({ dir: join(dir, "events") });
    const products = seedCatalog();
    await seedInventory(kv, seedStock(products));
    const transport = () => createNatsTransport({ servers: cluster.url, cluster: "trace" });
    events = createEvents({ log, kv, source: "strata://n1", rebalanceMs: 100, commitMs: 20 });
    const n1 = createNode({ id: "n1", transport: transport(), heartbeatIntervalMs: 200 });
    const sagas = createSagaRunner({ kv, owner: "n1", scanIntervalMs: 200 });
    const saga = checkoutSaga(n1, events);
    sagas.register(saga);
    n1.serve(ordersService(events, sagaCheckout(sagas, saga, events)));
    const n2 = createNode({
      id: "n2",
      transport: transport(),
      heartbeatIntervalMs: 200,
      services: [inventoryService(kv)],
    });
    const n3 = createNode({
      id: "n3",
      transport: transport(),
      heartbeatIntervalMs: 200,
      services: [paymentsService(kv, { declinePercent: 0 })],
    });
    const gateway = createNode({ id: "gateway", transport: transport(), heartbeatIntervalMs: 200 });
    nodes.push(n1, n2, n3, gateway);
    await Promise.all(nodes.map((n) => n.start()));
    for (const service of ["orders", "inventory", "payments"]) {
      await gateway.waitForService(service, { timeoutMs: 10_000 });
      await n1.waitForService(service, { timeoutMs: 10_000 });
    }
    await events.startRelay();
    consumers = await startOrderConsumers(events);
    closeSagas = () => sagas.close();
  });

  afterAll(async () => {
    for (const sub of consumers?.subscriptions ?? []) await sub.close();
    await closeSagas?.();
    await events?.close();
    await Promise.all(nodes.map((n) => n.stop({ drainTimeoutMs: 200 })));
    await tracing?.shutdown();
    await cluster?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("one order is one trace with correct parents and links", async () => {
    const gateway = nodes[3] as StrataNode;
    const order = await gateway.client(orders).place({
      orderId: "order-traced-1",
      sku: "sku-00002",
      qty: 1,
      priceMinor: 1_000,
    });
    expect(order.status).toBe("confirmed");

    const findRoot = (): SpanRecord | undefined =>
      collector
        .spans()
        .find(
          (s) => s.name === "orders/place" && s.kind === "client" && s.parentSpanId === undefined,
        );
    await waitFor(() => findRoot() !== undefined, { timeoutMs: 10_000 });
    const root = findRoot() as SpanRecord;
    // The outbox event reaches its consumers, whose spans join the order's trace.
    await waitFor(
      () =>
        collector
          .trace(root.traceId)
          .filter(
            (s) =>
              s.kind === "consumer" &&
              s.attributes["messaging.consumer.group.name"] === "notifications",
          ).length > 0,
      { timeoutMs: 15_000 },
    );
    const spans = collector.trace(root.traceId);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: SpanRecord): SpanRecord | undefined =>
      s.parentSpanId === undefined ? undefined : byId.get(s.parentSpanId);
    const one = (pred: (s: SpanRecord) => boolean, what: string): SpanRecord => {
      const found = spans.filter(pred);
      expect(found.length, what).toBeGreaterThanOrEqual(1);
      return found[0] as SpanRecord;
    };

    // gateway → orders on n1
    expect(root.attributes["strata.node.id"]).toBe("gateway");
    const ordersServer = one(
      (s) => s.name === "orders/place" && s.kind === "server",
      "orders server",
    );
    expect(ordersServer.parentSpanId).toBe(root.spanId);
    expect(ordersServer.attributes["strata.node.id"]).toBe("n1");
    expect(ordersServer.attributes["rpc.system"]).toBe("strata");
    expect(ordersServer.attributes["rpc.service"]).toBe("orders");
    expect(ordersServer.attributes["rpc.method"]).toBe("place");

    // the saga runs inside the orders call; its steps inside the saga
    const saga = one((s) => s.name === "saga checkout", "saga span");
    expect(parentOf(saga)?.spanId).toBe(ordersServer.spanId);
    const reserveStep = one((s) => s.name === "step reserve", "reserve step");
    const chargeStep = one((s) => s.name === "step charge", "charge step");
    expect(reserveStep.parentSpanId).toBe(saga.spanId);
    expect(chargeStep.parentSpanId).toBe(saga.spanId);

    // steps call inventory (n2) and payments (n3) over NATS
    const reserveClient = one(
      (s) => s.name === "inventory/reserve" && s.kind === "client",
      "reserve client",
    );
    expect(reserveClient.parentSpanId).toBe(reserveStep.spanId);
    const reserveServer = one(
      (s) => s.name === "inventory/reserve" && s.kind === "server",
      "reserve server",
    );
    expect(reserveServer.parentSpanId).toBe(reserveClient.spanId);
    expect(reserveServer.attributes["strata.node.id"]).toBe("n2");
    const chargeClient = one(
      (s) => s.name === "payments/charge" && s.kind === "client",
      "charge client",
    );
    expect(chargeClient.parentSpanId).toBe(chargeStep.spanId);
    const chargeServer = one(
      (s) => s.name === "payments/charge" && s.kind === "server",
      "charge server",
    );
    expect(chargeServer.parentSpanId).toBe(chargeClient.spanId);
    expect(chargeServer.attributes["strata.node.id"]).toBe("n3");

    // state operations inside the handlers are spans with db.* attributes
    const stateOps = spans.filter(
      (s) =>
        s.attributes["db.system.name"] === "embedded" &&
        parentOf(s)?.spanId === reserveServer.spanId,
    );
    expect(stateOps.length).toBeGreaterThan(0);

    // the outbox event's creation is in the trace; its consumer is a child and links to it
    const created = one(
      (s) => s.kind === "producer" && s.attributes["messaging.operation.type"] === "create",
      "outbox create span",
    );
    expect(created.attributes["messaging.destination.name"]).toBe("ev-orders");
    const consumed = one(
      (s) =>
        s.kind === "consumer" && s.attributes["messaging.consumer.group.name"] === "notifications",
      "notifications consumer",
    );
    expect(consumed.parentSpanId).toBe(created.spanId);
    expect(consumed.links).toContainEqual({ traceId: root.traceId, spanId: created.spanId });
    expect(consumed.attributes["messaging.system"]).toBe("embedded");

    // every span of the order shares the root's trace id, and each parent is in the trace
    for (const span of spans) {
      expect(span.traceId).toBe(root.traceId);
      if (span !== root) expect(byId.has(span.parentSpanId ?? "")).toBe(true);
    }

    // the critical path starts at the gateway and runs through both remote services
    const path = criticalPath(spans, root.spanId);
    const names = path.map((p) => `${p.name}@${p.node ?? ""}`);
    expect(names[0]).toBe("orders/place@gateway");
    expect(names).toContain("inventory/reserve@n2");
    expect(names).toContain("payments/charge@n3");
    const onPath = path.reduce((sum, p) => sum + p.selfMs, 0);
    expect(onPath).toBeCloseTo(root.endMs - root.startMs, 0);
  });
});

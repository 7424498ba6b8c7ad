/**
 * A commerce service node in a process of its own, on NATS and PostgreSQL: the same services,
 * built by the same factories and with the same options, as a node of the embedded demo.
 *
 * Started by the engines cluster with an {@link EngineNodeConfig} (JSON) in its environment. It
 * prints `{"ready":true,...}` on stdout once it serves and its order consumers run, and takes
 * commands as JSON lines on stdin: `{"stopConsuming":true}` makes its order consumers and the
 * sales projection leave their groups (answered by `{"stoppedConsuming":true}`). Started with
 * `hold`, it says `{"loaded":true}` and waits for `{"serve":true}` before it opens anything.
 * SIGTERM, SIGINT or the end of stdin (its parent is gone) stop it cleanly; a stop that hangs
 * ends in an exit. Its stderr (the cluster keeps it as `node.log`) says how far it got, when.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { connect } from "@nats-io/transport-node";
import {
  createCrdtSpace,
  createEvents,
  createNode,
  createSagaRunner,
  isStrataError,
  openEmbeddedKv,
} from "@strata/core";
import { STH_KEY_FILES, createSthSigner, importSthPrivateKeys, openLedger } from "@strata/ledger";
import { createNatsTransport, openNatsLog } from "@strata/nats";
import { openPostgresKv } from "@strata/postgres";
import { cartService } from "../../services/cart.js";
import { catalogService, storeProducts } from "../../services/catalog.js";
import { checkoutSaga, sagaCheckout } from "../../services/checkout.js";
import { inventoryService } from "../../services/inventory.js";
import { startOrderConsumers } from "../../services/order-consumers.js";
import { ordersService } from "../../services/orders.js";
import { paymentsService } from "../../services/payments.js";
import { SERVICE_RESILIENCE } from "../embedded-cluster.js";
import { COMMERCE_SLOS } from "../slos.js";
import {
  LEDGER_STREAM,
  NATS_CONNECTION,
  NODE_CONFIG_ENV,
  enginesNames,
  parseNodeConfig,
} from "./node-config.js";
import { openStockKv } from "./stock-kv.js";

/** How long a stop may take before the process exits anyway. */
const STOP_BOUND_MS = 8_000;

/** A progress line in the node's log (its stderr), with the time since the process began. */
const note = (what: string): void => {
  process.stderr.write(`${Math.round(performance.now())} ms: ${what}\n`);
};

const say = (line: object): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

async function main(): Promise<void> {
  note("modules loaded");
  const config = parseNodeConfig(process.env[NODE_CONFIG_ENV]);
  const names = enginesNames(config.namespace);
  await mkdir(config.dir, { recursive: true });
  // Whatever happens from here on, a closed stdin (the parent died) ends this process.
  const lines = createInterface({ input: process.stdin });
  const closers: Array<[what: string, close: () => Promise<unknown>]> = [];
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    note("stopping");
    let closing = "";
    setTimeout(() => {
      note(`${closing} did not close in ${STOP_BOUND_MS} ms; exiting`);
      process.exit(1);
    }, STOP_BOUND_MS);
    lines.close();
    for (const [what, close] of closers.reverse()) {
      closing = what;
      const started = performance.now();
      await close().catch((error: unknown) => {
        process.stderr.write(`stopping ${what}: ${String(error)}\n`);
      });
      const tookMs = Math.round(performance.now() - started);
      if (tookMs >= 250) note(`${what} took ${tookMs} ms to close`);
    }
    note("stopped");
    process.exit(0);
  };
  lines.once("close", () => void shutdown());
  process.stdout.on("error", () => void shutdown());
  process.once("SIGTERM", () => void shutdown());
  process.once("SIGINT", () => void shutdown());

  /** Calls `handler` with each command (a JSON object a line); returns how to stop. */
  const onCommand = (handler: (command: Record<string, unknown>) => void): (() => void) => {
    const listener = (line: string): void => {
      let command: unknown;
      try {
        command = JSON.parse(line);
      } catch {
        // reported below
      }
      if (typeof command === "object" && command !== null) {
        handler(command as Record<string, unknown>);
      } else {
        process.stderr.write(`ignored a command that is not a JSON object: ${line.slice(0, 80)}\n`);
      }
    };
    lines.on("line", listener);
    return () => lines.off("line", listener);
  };
  if (config.hold === true) {
    say({ loaded: true, id: config.id, pid: process.pid });
    await new Promise<void>((resolve) => {
      const off = onCommand((command) => {
        if (command["serve"] !== true) return;
        off();
        resolve();
      });
    });
    note("told to serve");
  }

  const node = createNode({
    id: config.id,
    region: config.region,
    transport: createNatsTransport({
      servers: config.servers,
      cluster: names.cluster,
      name: config.id,
      connection: NATS_CONNECTION,
    }),
    heartbeatIntervalMs: 250,
    resilience: SERVICE_RESILIENCE,
    telemetry: { slos: COMMERCE_SLOS, sloEvaluateEveryMs: 500 },
  });
  const nc = await connect({
    servers: [...config.servers],
    name: `${config.id}-jetstream`,
    ...NATS_CONNECTION,
  });
  closers.push(["NATS connection", () => nc.close()]);
  note("NATS connected");
  // JetStream may still be electing stream leaders when a node boots: opening is tried again
  // for a while, as a service under a supervisor would be.
  const opening = async <T>(what: string, open: () => Promise<T>): Promise<T> => {
    const deadline = performance.now() + 20_000;
    for (;;) {
      try {
        return await open();
      } catch (error) {
        if (performance.now() > deadline || !isStrataError(error, "UNAVAILABLE")) throw error;
        process.stderr.write(`${what}: ${error.message}; trying again\n`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  };
  const kv = await opening("PostgreSQL", () =>
    openPostgresKv({
      url: config.postgresUrl,
      namespace: names.pgNamespace,
      poolSize: 8,
      clock: node.clock,
    }),
  );
  closers.push(["PostgreSQL", () => kv.close()]);
  const stockKv = await opening("PostgreSQL (stock)", () =>
    openStockKv({
      url: config.postgresUrl,
      namespace: names.pgNamespace,
      poolSize: 3,
      clock: node.clock,
      routerId: config.id,
    }),
  );
  closers.push(["PostgreSQL (stock)", async () => await stockKv[Symbol.asyncDispose]()]);
  note("PostgreSQL open");
  const log = await opening("event log", () =>
    openNatsLog({
      connection: nc,
      replicas: config.replicas,
      serversSyncAlways: true,
      // Fail fast when JetStream is out of reach (the us side of a partition is its minority).
      timeoutMs: 2_000,
      streamPrefix: names.streamPrefix,
      subjectPrefix: names.subjectPrefix,
      clock: node.clock,
    }),
  );
  closers.push(["event log", async () => await log[Symbol.asyncDispose]()]);
  note("event log open");
  // Every node posts to its own replica of the ledger (conditional appends keep them one
  // history) and signs tree heads with the deployment's keys.
  // The keys are the cluster's: a node reads them, and fails to start without them.
  const sthPrivateKeys = importSthPrivateKeys(
    await readFile(join(config.keysDir, STH_KEY_FILES.private), "utf8"),
  );
  const ledger = await opening("ledger", () =>
    openLedger({
      log,
      stream: LEDGER_STREAM,
      replicas: config.replicas,
      clock: node.clock,
      heads: { signer: createSthSigner(sthPrivateKeys), everyMs: 1_000 },
    }),
  );
  closers.push(["ledger", () => ledger.close()]);
  note("ledger replica caught up");
  const events = createEvents({
    log,
    kv,
    source: `strata://${config.id}`,
    critical: true,
    replicas: config.replicas,
    leaseMs: 2_000,
    rebalanceMs: 200,
    clock: node.clock,
  });
  closers.push(["events", () => events.close()]);
  // The catalog reads products from the sharded store; listings from an index of it.
  const products = await storeProducts(stockKv);
  closers.push(["catalog", () => Promise.resolve(products.close())]);
  node.serve(catalogService(products));
  node.serve(inventoryService(stockKv));
  node.serve(paymentsService(kv, { ledger }));
  // Checkout is a saga: any node's runner resumes one whose node died.
  const sagas = createSagaRunner({
    kv,
    owner: config.id,
    leaseMs: 2_000,
    scanIntervalMs: 500,
    clock: node.clock,
  });
  closers.push(["saga runner", () => sagas.close()]);
  const saga = checkoutSaga(node, events);
  sagas.register(saga);
  node.serve(ordersService(events, sagaCheckout(sagas, saga, events)));
  // Carts: this node's replica, kept on its disk, replicated to every node over NATS.
  const cartStore = await openEmbeddedKv({ dir: join(config.dir, "carts"), clock: node.clock });
  closers.push(["cart store", () => cartStore.close()]);
  const space = await createCrdtSpace(node, {
    name: "carts",
    store: cartStore,
    shipEveryMs: 25,
  });
  closers.push(["cart replica", async () => await space[Symbol.asyncDispose]()]);
  node.serve(cartService(space));
  note("cart replica loaded");
  await node.start();
  // Stopping drains the calls in flight before the stores they use close (closers run last first).
  closers.push(["node", () => node.stop({ drainTimeoutMs: 2_000 })]);
  await events.startRelay();
  note("serving; outbox relay running");
  const consumers = await startOrderConsumers(events);
  note("order consumers running");
  let consuming: Promise<unknown> | undefined;
  const stopConsuming = (): Promise<unknown> =>
    (consuming ??= Promise.all([
      ...consumers.subscriptions.map((s) => s.close()),
      consumers.sales.close(),
    ]));
  // The consumers leave their groups first, so that their partitions move at once.
  closers.push(["order consumers", stopConsuming]);
  onCommand((command) => {
    if (command["stopConsuming"] !== true) return;
    void stopConsuming().then(
      () => say({ stoppedConsuming: true }),
      (error: unknown) => say({ stoppedConsuming: false, error: String(error) }),
    );
  });
  say({ ready: true, id: config.id, pid: process.pid });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `commerce node failed: ${error instanceof Error ? error.stack : String(error)}\n`,
    () => process.exit(1),
  );
});

// Commits orders and their events through the outbox as fast as it can and prints each
// acknowledged order id; no relay runs here, so a test can kill -9 this process with events
// committed but not yet published, and check that a relay elsewhere publishes each exactly once.
// Usage: node outbox-producer.mjs <log dir> <kv dir>
import {
  action,
  createEvents,
  customSchema,
  defineService,
  objectSchema,
  openEmbeddedKv,
  openEmbeddedLog,
} from "@strata/core";

const [logDir, kvDir] = process.argv.slice(2);
const orders = defineService({
  name: "orders",
  version: "1.0.0",
  actions: { noop: action({ input: objectSchema(), output: objectSchema() }) },
  events: { placed: customSchema((value) => ({ value })) },
});
const log = await openEmbeddedLog({ dir: logDir });
const kv = await openEmbeddedKv({ dir: kvDir });
const events = createEvents({ log, kv, source: "strata://producer", partitions: 4 });
const enc = new TextEncoder();
process.stdout.write("ready\n");
let next = 0;
async function producer() {
  for (;;) {
    const n = next++;
    const orderId = `o${n}`;
    await events.transaction({
      checks: [{ key: `orders/${orderId}`, revision: 0 }],
      writes: [{ type: "put", key: `orders/${orderId}`, value: enc.encode("placed") }],
      events: [{ contract: orders, event: "placed", data: { orderId, n }, key: orderId }],
    });
    // Publish some through the relay path by hand, as a relay would, to leave a mix of
    // published-and-removed, published-not-removed and not-published entries behind.
    if (n % 3 === 0) await events.flushOutbox();
    process.stdout.write(`${orderId}\n`);
  }
}
await Promise.all(Array.from({ length: 8 }, producer));

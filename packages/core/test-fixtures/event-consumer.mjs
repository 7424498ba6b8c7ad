// Consumes the "orders" events of a test with effects committed through ctx.transaction and
// prints each applied effect, so a test can kill -9 this process mid-batch and check that the
// group, resumed elsewhere, applies every event exactly once.
// Usage: node event-consumer.mjs <log dir> <kv dir>
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
const events = createEvents({
  log,
  kv,
  source: "strata://consumer",
  partitions: 4,
  leaseMs: 500,
  rebalanceMs: 50,
  commitMs: 20,
});
const enc = new TextEncoder();
const dec = new TextDecoder();
await events.subscribe(orders, {
  group: "exact",
  maxInFlight: 16,
  on: {
    placed: async (event, ctx) => {
      const key = `effects/${event.data.n}`;
      const current = await kv.get(key);
      const count = current === undefined ? 0 : Number(dec.decode(current.value));
      await ctx.transaction({
        checks: [{ key, revision: current?.revision ?? 0 }],
        writes: [{ type: "put", key, value: enc.encode(String(count + 1)) }],
      });
      process.stdout.write(`applied ${event.data.n}\n`);
    },
  },
});
process.stdout.write("ready\n");

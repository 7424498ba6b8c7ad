// A Strata node in its own process, for tests that kill a node with SIGKILL.
// Usage: node echo-node.mjs <nats-url> <node-id> [cluster]
import { createNode, defineService } from "@strata/core";
import { createNatsTransport } from "@strata/nats";

const [url, id, cluster = "default"] = process.argv.slice(2);
const any = { "~standard": { version: 1, vendor: "test", validate: (value) => ({ value }) } };
const echo = defineService({
  name: "echo",
  version: "1.0.0",
  actions: { echo: { input: any, output: any, idempotent: true } },
});
const node = createNode({
  id,
  transport: createNatsTransport({ servers: url, cluster }),
  services: [
    echo.implement({
      echo: async (input) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return { input, node: id };
      },
    }),
  ],
  heartbeatIntervalMs: 200,
  deadAfterMs: 1000,
});
await node.start();
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  void node.stop().then(() => process.exit(0));
});

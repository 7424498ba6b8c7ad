import {
  createEmbeddedNetwork,
  createNode,
  customSchema,
  defineService,
  runLoad,
  type StrataNode,
} from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import { natsUrl, parse, positiveInt } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const BENCH_HELP = `usage: strata bench rpc [--nats <url>] [--concurrency 1,16,128] [--calls <n>] [--json]

Measures Strata's own call path on this machine: an echo of a ~100-byte object between two nodes
in this process, embedded or (with --nats) over that NATS server. The side-by-side comparison
with Moleculer and raw nats.js is run from a checkout with \`npm run bench -- rpc\`.

  --nats <url>             measure over NATS (default: embedded)
  --concurrency <list>     comma-separated concurrency levels (default 1,16,128)
  --calls <n>              measured calls per level, after a warm-up (default 20000)
  --json                   print JSON
  -h, --help               this text`;

const any = customSchema<unknown>((value) => ({ value }));
const echo = defineService({
  name: "bench-echo",
  version: "1.0.0",
  actions: { echo: { input: any, output: any, idempotent: true } },
});
const PAYLOAD = {
  id: "ord-000042",
  sku: "sku-1234-blue-xl",
  qty: 3,
  priceMinor: 129_900,
  currency: "EUR",
  tags: ["sale", "priority"],
  ok: true,
};

export async function benchCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    concurrency: { type: "string" },
    calls: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${BENCH_HELP}\n`);
    return EXIT.ok;
  }
  const [suite, ...extra] = positionals;
  if (suite !== "rpc")
    throw new UsageError(
      suite === undefined ? "missing suite (rpc)" : `unknown suite "${suite}" (rpc)`,
    );
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  const levels = (values.concurrency ?? "1,16,128")
    .split(",")
    .map((c) => positiveInt("concurrency", c.trim(), 1, 10_000));
  const calls = positiveInt("calls", values.calls, 20_000, 100_000_000);
  const url = natsUrl(values.nats, io.env);
  const network = createEmbeddedNetwork();
  const transport = () =>
    url === undefined
      ? network.transport()
      : createNatsTransport({ servers: url, cluster: `bench-${process.pid}` });
  const nodes: StrataNode[] = [
    createNode({
      id: "bench-server",
      transport: transport(),
      services: [echo.implement({ echo: (x) => x })],
      admin: false,
    }),
    createNode({ id: "bench-client", transport: transport(), admin: false }),
  ];
  try {
    for (const n of nodes) await n.start();
    const client = nodes[1] as StrataNode;
    await client.waitForService("bench-echo", { timeoutMs: 10_000 });
    const c = client.client(echo);
    const rows = [];
    for (const concurrency of levels) {
      const r = await runLoad({
        concurrency,
        calls,
        warmupCalls: Math.min(5_000, calls),
        call: () => c.echo(PAYLOAD),
      });
      const row = {
        transport: url === undefined ? "embedded" : "nats",
        concurrency,
        rps: Math.round(r.throughput),
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        errors: r.calls - r.ok,
      };
      rows.push(row);
      if (values.json !== true) {
        io.out.write(
          `${row.transport} c=${String(concurrency).padStart(4)}  ${String(row.rps).padStart(9)} req/s  p50 ${row.p50Ms} ms  p99 ${row.p99Ms} ms${row.errors > 0 ? `  errors ${row.errors}` : ""}\n`,
        );
      }
    }
    if (values.json === true) io.out.write(`${JSON.stringify(rows)}\n`);
    return EXIT.ok;
  } finally {
    for (const n of nodes) await n.stop({ drainTimeoutMs: 1_000 }).catch(() => undefined);
  }
}

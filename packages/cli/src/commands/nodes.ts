import { isAdminService } from "@strata/core";
import { natsUrl, parse, positiveInt } from "../args.js";
import { clientNode, settle } from "../cluster.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const NODES_HELP = `usage: strata nodes [--nats <url>] [--cluster <name>] [--wait <ms>] [--json]

Lists the nodes of a cluster: id, region, status, calls in flight, and the services (with
versions) each serves.

  --nats <url>       NATS server(s) (default: $STRATA_NATS_URL)
  --cluster <name>   Strata cluster name (default "default")
  --wait <ms>        how long to listen for nodes (default 1500)
  --json             print JSON
  -h, --help         this text`;

export async function nodesCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    cluster: { type: "string" },
    wait: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${NODES_HELP}\n`);
    return EXIT.ok;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument "${positionals[0] as string}"`);
  const wait = positiveInt("wait", values.wait, 1_500, 60_000);
  const node = await clientNode(
    { nats: natsUrl(values.nats, io.env), cluster: values.cluster },
    "strata nodes",
  );
  try {
    await settle(node, wait);
    const nodes = node.nodes().filter((n) => n.id !== node.id);
    if (values.json === true) {
      io.out.write(`${JSON.stringify(nodes)}\n`);
      return EXIT.ok;
    }
    if (nodes.length === 0) {
      io.out.write("no nodes answered\n");
      return EXIT.ok;
    }
    const rows = nodes.map((n) => [
      n.id,
      n.region,
      n.status,
      String(n.inFlight),
      n.services
        .filter((s) => !isAdminService(s.name))
        .map((s) => `${s.name}@${s.version}`)
        .join(" "),
    ]);
    const header = ["NODE", "REGION", "STATUS", "IN-FLIGHT", "SERVICES"];
    const widths = header.map((h, i) =>
      Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)),
    );
    for (const row of [header, ...rows]) {
      io.out.write(
        `${row
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd()}\n`,
      );
    }
    return EXIT.ok;
  } finally {
    await node.stop({ drainTimeoutMs: 500 });
  }
}

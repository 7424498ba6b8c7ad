import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createNode, type AnyServiceImplementation } from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import { natsUrl, parse } from "../args.js";
import { embeddedNetwork } from "../cluster.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const DEV_HELP = `usage: strata dev <module> [--nats <url>] [--id <node-id>] [--region <region>] [--cluster <name>]

Runs a node that serves every service implementation the module exports (the values returned by
contract.implement(...)). Without --nats the node runs embedded, alone in this process; with it,
it joins the cluster on that NATS server. Ctrl-C (or SIGTERM) drains and stops it.

  --nats <url>        NATS server(s), comma-separated (default: $STRATA_NATS_URL, else embedded)
  --id <node-id>      node id (default: a random one)
  --region <region>   region, for region-affine routing (default "default")
  --cluster <name>    Strata cluster name on the NATS system (default "default")
  -h, --help          this text`;

function isImplementation(value: unknown): value is AnyServiceImplementation {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const contract = v["contract"] as Record<string, unknown> | undefined;
  return (
    typeof contract === "object" &&
    contract !== null &&
    typeof contract["name"] === "string" &&
    typeof v["handlers"] === "object" &&
    typeof v["hooks"] === "object"
  );
}

/** The service implementations a module exports (directly, or in an exported array). */
export async function loadImplementations(path: string): Promise<AnyServiceImplementation[]> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(
      `cannot load module ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const found: AnyServiceImplementation[] = [];
  for (const value of Object.values(module)) {
    if (isImplementation(value)) found.push(value);
    else if (Array.isArray(value))
      for (const item of value) if (isImplementation(item)) found.push(item);
  }
  if (found.length === 0) {
    throw new UsageError(
      `module ${path} exports no service implementations (export the result of contract.implement(...))`,
    );
  }
  return found;
}

export async function devCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    id: { type: "string" },
    region: { type: "string" },
    cluster: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${DEV_HELP}\n`);
    return EXIT.ok;
  }
  const [path, ...extra] = positionals;
  if (path === undefined) throw new UsageError("missing <module>");
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  const implementations = await loadImplementations(path);
  const url = natsUrl(values.nats, io.env);
  const node = createNode({
    ...(values.id === undefined ? {} : { id: values.id }),
    ...(values.region === undefined ? {} : { region: values.region }),
    transport:
      url === undefined
        ? embeddedNetwork().transport()
        : createNatsTransport({
            servers: url,
            ...(values.cluster === undefined ? {} : { cluster: values.cluster }),
          }),
    services: implementations,
    validateOutput: true,
  });
  await node.start();
  io.out.write(
    `node ${node.id} (${node.region}) on ${url === undefined ? "the embedded transport" : url}\n`,
  );
  for (const impl of implementations) {
    io.out.write(
      `  serving ${impl.contract.name}@${impl.contract.version}: ${Object.keys(impl.contract.actions).join(", ")}\n`,
    );
  }
  io.out.write("Ctrl-C drains and stops.\n");
  await new Promise<void>((resolveStop) => {
    if (io.signal === undefined || io.signal.aborted) {
      resolveStop();
      return;
    }
    io.signal.addEventListener("abort", () => resolveStop(), { once: true });
  });
  io.out.write(`draining ${node.id}…\n`);
  await node.stop();
  io.out.write("stopped\n");
  return EXIT.ok;
}

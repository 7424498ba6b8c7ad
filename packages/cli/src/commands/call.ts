import { isStrataError } from "@strata/core";
import { natsUrl, parse, positiveInt } from "../args.js";
import { clientNode } from "../cluster.js";
import { EXIT, UsageError, type Io } from "../io.js";
import { printError } from "../print-error.js";

export const CALL_HELP = `usage: strata call <service>.<action> ['<json input>'] [--nats <url>] [--cluster <name>]
                   [--timeout <ms>] [--wait <ms>] [--node <id>] [--json]

Makes one call and prints the result as JSON. On failure, prints the error's code, message and
details (field paths for INVALID_ARGUMENT) to stderr and exits with 1.

  --nats <url>       NATS server(s) (default: $STRATA_NATS_URL)
  --cluster <name>   Strata cluster name (default "default")
  --timeout <ms>     call budget (default 5000)
  --wait <ms>        how long to wait for a node serving the service (default 3000)
  --node <id>        call this node rather than letting the router choose
  --json             print the result compactly on one line
  -h, --help         this text`;

const TARGET = /^([a-z][a-z0-9-]{0,62})\.([A-Za-z][A-Za-z0-9_]{0,62})$/;

export async function callCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    cluster: { type: "string" },
    timeout: { type: "string" },
    wait: { type: "string" },
    node: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${CALL_HELP}\n`);
    return EXIT.ok;
  }
  const [target, rawInput, ...extra] = positionals;
  if (target === undefined) throw new UsageError("missing <service>.<action>");
  if (extra.length > 0)
    throw new UsageError(`unexpected argument "${extra[0] as string}" (quote the JSON input)`);
  const match = TARGET.exec(target);
  if (match === null)
    throw new UsageError(`"${target}" is not <service>.<action>, for example catalog.getProduct`);
  const [, service, action] = match as unknown as [string, string, string];
  let input: unknown = {};
  if (rawInput !== undefined) {
    try {
      input = JSON.parse(rawInput);
    } catch (error) {
      throw new UsageError(
        `the input is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  const timeoutMs = positiveInt("timeout", values.timeout, 5_000, 3_600_000);
  const waitMs = positiveInt("wait", values.wait, 3_000, 600_000);
  const node = await clientNode(
    { nats: natsUrl(values.nats, io.env), cluster: values.cluster },
    "strata call",
  );
  try {
    await node.waitForService(service, { timeoutMs: waitMs });
    const result = await node.call(service, action, input, {
      timeoutMs,
      ...(values.node === undefined ? {} : { node: values.node }),
    });
    io.out.write(
      `${values.json === true ? JSON.stringify(result) : JSON.stringify(result, null, 2)}\n`,
    );
    return EXIT.ok;
  } catch (error) {
    if (!isStrataError(error)) throw error;
    printError(io, error);
    return EXIT.failed;
  } finally {
    await node.stop({ drainTimeoutMs: 500 });
  }
}

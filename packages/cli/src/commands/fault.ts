import { ADMIN_SERVICE, isStrataError, type FaultRule, type StrataNode } from "@strata/core";
import { natsUrl, parse, positiveInt, positiveNumber } from "../args.js";
import { clientNode, settle } from "../cluster.js";
import { EXIT, UsageError, type Io } from "../io.js";
import { printError } from "../print-error.js";

export const FAULT_HELP = `usage: strata fault inject --node <id> <effect> [--service <s>] [--action <a>] [--probability <p>]
       strata fault list  [--node <id>] [--json]
       strata fault clear [--node <id>] [--id <fault-id>]

Injects faults into the calls a node serves, lists and clears them, at run time (through each
node's built-in strata-admin service). Without --node, list and clear act on every node.

effects (one):
  --fail <CODE>         fail with this error code (for example UNAVAILABLE)
  --latency <ms>        delay the handler
  --drop-reply          run the handler but never answer
  --black-hole          neither run nor answer

  --nats <url>          NATS server(s) (default: $STRATA_NATS_URL)
  --cluster <name>      Strata cluster name (default "default")
  --probability <p>     chance (0..1] that a matching call is affected (default 1)
  -h, --help            this text`;

async function targets(node: StrataNode, only: string | undefined): Promise<string[]> {
  await settle(node, 1_500, () => only !== undefined && node.nodes().some((n) => n.id === only));
  const ids = node
    .nodes()
    .filter((n) => n.id !== node.id && n.services.some((s) => s.name === ADMIN_SERVICE))
    .map((n) => n.id);
  if (only === undefined) return ids;
  if (!ids.includes(only))
    throw new UsageError(`no node "${only}" answered (known: ${ids.join(", ") || "none"})`);
  return [only];
}

export async function faultCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    nats: { type: "string" },
    cluster: { type: "string" },
    node: { type: "string" },
    service: { type: "string" },
    action: { type: "string" },
    probability: { type: "string" },
    fail: { type: "string" },
    latency: { type: "string" },
    "drop-reply": { type: "boolean" },
    "black-hole": { type: "boolean" },
    id: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${FAULT_HELP}\n`);
    return EXIT.ok;
  }
  const [verb, ...extra] = positionals;
  if (verb !== "inject" && verb !== "list" && verb !== "clear") {
    throw new UsageError(
      verb === undefined ? "missing inject, list or clear" : `unknown fault command "${verb}"`,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  let spec: Record<string, unknown> | undefined;
  if (verb === "inject") {
    if (values.node === undefined) throw new UsageError("fault inject needs --node <id>");
    const effects = [
      values.fail === undefined ? undefined : { type: "fail", code: values.fail },
      values.latency === undefined
        ? undefined
        : { type: "latency", ms: positiveInt("latency", values.latency, 0, 600_000) },
      values["drop-reply"] === true ? { type: "drop-reply" } : undefined,
      values["black-hole"] === true ? { type: "black-hole" } : undefined,
    ].filter((e) => e !== undefined);
    if (effects.length !== 1)
      throw new UsageError(
        "give exactly one effect: --fail, --latency, --drop-reply or --black-hole",
      );
    const scope: Record<string, string> = {};
    if (values.service !== undefined) scope["service"] = values.service;
    if (values.action !== undefined) scope["action"] = values.action;
    spec = {
      effect: effects[0],
      probability: positiveNumber("probability", values.probability, 1, 1),
      scope,
    };
  }
  const node = await clientNode(
    { nats: natsUrl(values.nats, io.env), cluster: values.cluster },
    `strata fault ${verb}`,
  );
  try {
    const ids = await targets(node, values.node);
    const results: Record<string, unknown> = {};
    for (const id of ids) {
      if (verb === "inject")
        results[id] = await node.call(ADMIN_SERVICE, "faultInject", spec, { node: id });
      else if (verb === "list")
        results[id] = await node.call(ADMIN_SERVICE, "faultList", {}, { node: id });
      else
        results[id] = await node.call(
          ADMIN_SERVICE,
          "faultClear",
          values.id === undefined ? {} : { id: values.id },
          { node: id },
        );
    }
    if (values.json === true) {
      io.out.write(`${JSON.stringify(results)}\n`);
      return EXIT.ok;
    }
    for (const [id, result] of Object.entries(results)) {
      if (verb === "inject") io.out.write(`${id}: injected ${(result as FaultRule).id}\n`);
      else if (verb === "clear")
        io.out.write(`${id}: cleared ${(result as { removed: number }).removed}\n`);
      else {
        const rules = result as FaultRule[];
        if (rules.length === 0) io.out.write(`${id}: no faults\n`);
        for (const r of rules)
          io.out.write(
            `${id}: ${r.id} ${JSON.stringify(r.effect)} p=${r.probability} scope=${JSON.stringify(r.scope)} hits=${r.hits}\n`,
          );
      }
    }
    return EXIT.ok;
  } catch (error) {
    if (!isStrataError(error)) throw error;
    printError(io, error);
    return error.code === "INVALID_ARGUMENT" ? EXIT.usage : EXIT.failed;
  } finally {
    await node.stop({ drainTimeoutMs: 500 });
  }
}

import {
  BUILTIN_TRACES,
  DEFAULT_MODEL,
  POLICY_TYPES,
  compare,
  loadTrace,
  type PolicyConfigInput,
  type ServiceModel,
  type SimulationResult,
} from "@strata/autoscale";
import { isStrataError } from "@strata/core";
import { parse, positiveNumber } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const AUTOSCALE_HELP = `usage: strata autoscale simulate --trace <file|name> [--policy <p1,p2,...>] [--capacity N]
                                [--startup S] [--slo MS] [--max-replicas N] [--json]

Replays a load trace (CSV lines "seconds,rps") one second at a time through a model of a
service (replicas of fixed capacity that serve only after a start-up delay) under each scaling
policy, and compares them side by side: SLO-violation minutes (minutes whose p99 latency
exceeded the SLO), replica-minutes (replicas paid for, starting ones included), the most
replicas, and the number of scaling decisions.

  --trace         a CSV file, or a shipped trace: ${BUILTIN_TRACES.join(", ")}
  --policy        policies to compare (default all): ${POLICY_TYPES.join(", ")}
  --capacity      requests per second one replica serves at the SLO (default ${DEFAULT_MODEL.capacityPerReplica})
  --startup       seconds from asking for a replica to it serving (default ${DEFAULT_MODEL.startupMs / 1000});
                  the predictive policy looks this far ahead
  --slo           the p99 latency objective in ms (default ${DEFAULT_MODEL.sloMs})
  --max-replicas  the policies' upper bound (default 500)
  --json          print the results, decisions included, as JSON
  -h, --help      this text

Exit code: 0 simulated, 1 a run failed (unreadable trace), 2 unusable command line.`;

type PolicyType = (typeof POLICY_TYPES)[number];

function policiesOf(value: string | undefined): PolicyType[] {
  if (value === undefined) return [...POLICY_TYPES];
  const names = value.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(POLICY_TYPES as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new UsageError(
      `--policy takes a comma-separated list of ${POLICY_TYPES.join(", ")}; unknown: ${unknown.map((n) => JSON.stringify(n)).join(", ")}`,
    );
  }
  return [...new Set(names)] as PolicyType[];
}

/** The policy as the simulation runs it: defaults, the bound, the model's start-up time. */
function policyConfig(type: PolicyType, maxReplicas: number, startupMs: number): PolicyConfigInput {
  const bounds = { minReplicas: 1, maxReplicas };
  switch (type) {
    case "threshold":
      return { type, bounds };
    case "target-tracking":
      return { type, bounds };
    case "predictive":
      return { type, bounds, startupMs };
  }
}

function table(results: readonly SimulationResult[]): string {
  const rows = [
    ["policy", "SLO-violation min", "replica-minutes", "max replicas", "late %", "changes"],
    ...results.map((r) => [
      r.policy,
      String(r.violationMinutes),
      String(r.replicaMinutes),
      String(r.maxReplicas),
      (r.lateFraction * 100).toFixed(3),
      String(r.decisions.length),
    ]),
  ];
  const widths =
    rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join("  "),
    )
    .join("\n");
}

/** `strata autoscale simulate`: replays a load trace under scaling policies, side by side. */
export async function autoscaleCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    trace: { type: "string" },
    policy: { type: "string" },
    capacity: { type: "string" },
    startup: { type: "string" },
    slo: { type: "string" },
    "max-replicas": { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${AUTOSCALE_HELP}\n`);
    return EXIT.ok;
  }
  const [sub, ...extra] = positionals;
  if (sub !== "simulate") {
    throw new UsageError(
      sub === undefined ? "needs a subcommand: simulate" : `unknown subcommand "${sub}"`,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (values.trace === undefined || values.trace.trim() === "") {
    throw new UsageError("needs --trace <file|name>");
  }
  const policies = policiesOf(values.policy);
  const model: ServiceModel = {
    ...DEFAULT_MODEL,
    capacityPerReplica: positiveNumber(
      "capacity",
      values.capacity,
      DEFAULT_MODEL.capacityPerReplica,
      1e9,
    ),
    startupMs:
      positiveNumber("startup", values.startup, DEFAULT_MODEL.startupMs / 1000, 86_400) * 1000,
    sloMs: positiveNumber("slo", values.slo, DEFAULT_MODEL.sloMs, 3_600_000),
  };
  const maxReplicas = positiveNumber("max-replicas", values["max-replicas"], 500, 100_000);
  if (!Number.isInteger(maxReplicas)) {
    throw new UsageError(`--max-replicas must be an integer, got "${values["max-replicas"]}"`);
  }
  let trace;
  try {
    trace = await loadTrace(values.trace);
  } catch (error) {
    if (isStrataError(error)) {
      io.err.write(`strata autoscale: ${error.message}\n`);
      return EXIT.failed;
    }
    throw error;
  }
  const results = compare({
    trace,
    model,
    policies: policies.map((type) => policyConfig(type, maxReplicas, model.startupMs)),
  });
  if (values.json === true) {
    io.out.write(`${JSON.stringify({ trace: values.trace, model, results }, null, 2)}\n`);
    return EXIT.ok;
  }
  const first = trace[0]?.second ?? 0;
  const last = trace.at(-1)?.second ?? 0;
  io.out.write(
    `trace ${values.trace}: ${trace.length} points over ${((last - first) / 3600).toFixed(1)} h; ` +
      `${model.capacityPerReplica} rps per replica at p99 ${model.sloMs} ms, start-up ${model.startupMs / 1000} s\n\n` +
      `${table(results)}\n`,
  );
  return EXIT.ok;
}

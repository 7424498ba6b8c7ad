import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { defineExperiment, type Experiment } from "./experiment.js";
import { EXPERIMENTS } from "./experiments/index.js";
import { runExperiment } from "./runner.js";

export const CHAOS_HELP = `usage: strata chaos run <experiment> [--out <dir>] [--seed <n>] [--time-scale <x>] [--json]
       strata chaos list

Runs a chaos experiment: starts NATS servers and Strata nodes as processes behind
fault-injecting proxies, runs the register, bank, set, CRDT set and counter workloads, checks the
steady-state hypothesis, injects the method's faults on schedule (watching the abort
conditions), rolls them back, waits for the steady state to return, and runs the checkers
on the recorded histories. Needs nats-server >= 2.10 (npm run setup:engines).

<experiment> is a built-in name (see list) or a JavaScript module whose default export
(or export named "experiment") is an experiment (see defineExperiment in @strata/chaos).

  --out <dir>         write report.json, report.html and the histories here
                      (default ./chaos-reports/<experiment>-<time>)
  --seed <n>          seed of the random choices (default 1)
  --time-scale <x>    multiply the method's times by x (default 1)
  --json              print the report as JSON instead of progress lines
  -h, --help          this text

exit status: 0 passed, 1 an anomaly or the steady state was not met or did not come
back, 2 unusable command line or experiment.`;

/** Where the command writes. */
export interface ChaosIo {
  readonly out: { write(text: string): unknown };
  readonly err: { write(text: string): unknown };
  readonly signal?: AbortSignal;
}

const EXIT = { passed: 0, failed: 1, unusable: 2 } as const;

/** Loads an experiment by built-in name or from a module; a clear error otherwise. */
export async function loadExperiment(spec: string): Promise<Experiment> {
  const builtIn = EXPERIMENTS[spec];
  if (builtIn !== undefined) return builtIn;
  if (!/[./\\]/.test(spec)) {
    throw new TypeError(
      `unknown experiment "${spec}" (built in: ${Object.keys(EXPERIMENTS).join(", ")}; or give a module path)`,
    );
  }
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(resolve(spec)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new TypeError(
      `cannot load ${spec}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const candidate = module["default"] ?? module["experiment"];
  if (typeof candidate !== "object" || candidate === null) {
    throw new TypeError(`${spec} exports no experiment (a default export or "experiment")`);
  }
  return defineExperiment(candidate as Experiment);
}

/** `strata chaos …`, for the CLI to mount: `argv` starts after `chaos`. */
export async function runChaosCommand(argv: readonly string[], io: ChaosIo): Promise<number> {
  const usage = (message: string): number => {
    io.err.write(`strata chaos: ${message}\n\n${CHAOS_HELP}\n`);
    return EXIT.unusable;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        out: { type: "string" },
        seed: { type: "string" },
        "time-scale": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out.write(`${CHAOS_HELP}\n`);
    return EXIT.passed;
  }
  const [verb, spec, ...extra] = positionals;
  if (verb === "list") {
    for (const [name, e] of Object.entries(EXPERIMENTS))
      io.out.write(`${name.padEnd(20)} ${e.description}\n`);
    return EXIT.passed;
  }
  if (verb !== "run")
    return usage(verb === undefined ? "missing run or list" : `unknown chaos command "${verb}"`);
  if (spec === undefined) return usage("missing the experiment");
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (!Number.isSafeInteger(seed)) return usage("--seed must be an integer");
  const scale = values["time-scale"] === undefined ? 1 : Number(values["time-scale"]);
  if (!(Number.isFinite(scale) && scale > 0 && scale <= 100)) {
    return usage("--time-scale must be a number in (0, 100]");
  }
  let experiment: Experiment;
  try {
    experiment = await loadExperiment(spec);
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  const out =
    values.out ??
    resolve(
      "chaos-reports",
      `${experiment.name}-${new Date().toISOString().replace(/[:.]/g, "-")}`,
    );
  const json = values.json === true;
  try {
    const report = await runExperiment(experiment, {
      out,
      seed,
      timeScale: scale,
      ...(json ? {} : { log: (line: string) => void io.out.write(`${line}\n`) }),
      ...(io.signal === undefined ? {} : { signal: io.signal }),
    });
    if (json) io.out.write(`${JSON.stringify(report, null, 2)}\n`);
    return report.valid ? EXIT.passed : EXIT.failed;
  } catch (error) {
    io.err.write(
      `strata chaos: the experiment could not run: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return EXIT.unusable;
  }
}

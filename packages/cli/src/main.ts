import { isStrataError } from "@strata/core";
import { CHAOS_HELP, runChaosCommand } from "@strata/chaos";
import { CHECK_HELP, runCheckCommand } from "@strata/verify";
import { AUTOSCALE_HELP, autoscaleCommand } from "./commands/autoscale.js";
import { BENCH_HELP, benchCommand } from "./commands/bench.js";
import { CA_HELP, caCommand } from "./commands/ca.js";
import { CALL_HELP, callCommand } from "./commands/call.js";
import { DEMO_HELP, demoCommand } from "./commands/demo.js";
import { DEV_HELP, devCommand } from "./commands/dev.js";
import { FAULT_HELP, faultCommand } from "./commands/fault.js";
import { LEDGER_HELP, ledgerCommand } from "./commands/ledger.js";
import { NODES_HELP, nodesCommand } from "./commands/nodes.js";
import { POLICY_HELP, policyCommand } from "./commands/policy.js";
import { TOP_HELP, topCommand } from "./commands/top.js";
import { EXIT, UsageError, processIo, type Io } from "./io.js";
import { printError } from "./print-error.js";

export const HELP = `usage: strata <command> [options]

commands:
  demo       run the commerce demo on an embedded cluster
  dev        run a node serving the services a module exports
  nodes      list the nodes of a cluster
  top        a live view of a cluster: nodes, services, errors, breakers, SLOs
  call       make one call: strata call <service>.<action> '<json>'
  fault      inject, list and clear faults on nodes
  bench      measure the call path: strata bench rpc
  check      check a history: strata check linearizable|set|bank|counter|crdt-set <history>
  chaos      run a chaos experiment: strata chaos run <experiment> | list
  policy     test Cedar policies: strata policy test <dir>
  ca         the workload-identity CA: strata ca init | issue
  ledger     verify Merkle proofs: strata ledger verify-inclusion | verify-consistency
  autoscale  replay a load trace under scaling policies: strata autoscale simulate --trace <file>

Run \`strata <command> --help\` for a command's options.`;

type Command = (argv: readonly string[], io: Io) => Promise<number>;

const COMMANDS: Record<string, { run: Command; help: string }> = {
  demo: { run: demoCommand, help: DEMO_HELP },
  dev: { run: devCommand, help: DEV_HELP },
  nodes: { run: nodesCommand, help: NODES_HELP },
  top: { run: topCommand, help: TOP_HELP },
  call: { run: callCommand, help: CALL_HELP },
  fault: { run: faultCommand, help: FAULT_HELP },
  bench: { run: benchCommand, help: BENCH_HELP },
  check: { run: runCheckCommand, help: CHECK_HELP },
  chaos: { run: runChaosCommand, help: CHAOS_HELP },
  policy: { run: policyCommand, help: POLICY_HELP },
  ca: { run: caCommand, help: CA_HELP },
  ledger: { run: ledgerCommand, help: LEDGER_HELP },
  autoscale: { run: autoscaleCommand, help: AUTOSCALE_HELP },
};

/**
 * Runs the CLI and returns the exit code: 0 ok, 1 the operation failed, 2 unusable command line.
 * With no `io`, it uses the process's streams and stops long-running commands on SIGINT/SIGTERM.
 */
export async function main(argv: readonly string[], io?: Io): Promise<number> {
  let stop: AbortController | undefined;
  let onSignal: (() => void) | undefined;
  if (io === undefined) {
    stop = new AbortController();
    const controller = stop;
    let signals = 0;
    onSignal = () => {
      if (++signals > 1) process.exit(130); // a second Ctrl-C does not wait for the drain
      controller.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  const env = io ?? processIo(stop?.signal);
  // The core's timers are unref'd and the embedded transport holds no socket, so without this
  // `strata dev` (embedded) would exit as soon as it started, and a command whose calls were all
  // waiting out a deadline or a backoff would end with Node's exit code 13 instead of an answer.
  const alive = setInterval(() => undefined, 2 ** 31 - 1);
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === "-h" || name === "--help" || name === "help") {
      env.out.write(`${HELP}\n`);
      return name === undefined ? EXIT.usage : EXIT.ok;
    }
    const command = COMMANDS[name];
    if (command === undefined) {
      env.err.write(`strata: unknown command "${name}"\n\n${HELP}\n`);
      return EXIT.usage;
    }
    try {
      return await command.run(rest, env);
    } catch (error) {
      if (error instanceof UsageError) {
        env.err.write(`strata ${name}: ${error.message}\n\n${command.help}\n`);
        return EXIT.usage;
      }
      if (isStrataError(error)) {
        printError(env, error);
        return error.code === "INVALID_ARGUMENT" ? EXIT.usage : EXIT.failed;
      }
      env.err.write(
        `strata ${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      return EXIT.failed;
    }
  } finally {
    clearInterval(alive);
    if (onSignal !== undefined) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
}

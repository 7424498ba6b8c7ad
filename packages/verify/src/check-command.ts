import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { HistoryError, pairOperations, type HistoryEvent } from "./history.js";
import { checkLinearizable } from "./linearizable.js";
import { registerModel } from "./model.js";
import { parseEdnHistory, parseJepsenLog, parseJsonHistory } from "./parse.js";

export const CHECK_HELP = `usage: strata check linearizable <history> [--format json|edn|jepsen-log] [--initial <value>] [--timeout <ms>] [--json]

Checks that a history of register operations (read, write, cas) is linearizable, key by key.
Exit code: 0 linearizable, 1 not linearizable (a counterexample is printed), 2 unusable input or
the time budget ran out.

  --format <f>       json (default for .json), edn (default for .edn), or jepsen-log
  --initial <value>  the registers' initial value, as JSON (default null: nil)
  --timeout <ms>     time budget (default 60000)
  --json             print the verdict as JSON
  -h, --help         this text`;

interface Io {
  readonly out: { write(text: string): unknown };
  readonly err: { write(text: string): unknown };
}

/** `strata check linearizable …`; returns the exit code. */
export async function runCheckCommand(argv: readonly string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: "string" },
        initial: { type: "string" },
        timeout: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    io.err.write(
      `strata check: ${error instanceof Error ? error.message : String(error)}\n\n${CHECK_HELP}\n`,
    );
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out.write(`${CHECK_HELP}\n`);
    return 0;
  }
  const [what, file, ...extra] = positionals;
  const usage = (message: string): number => {
    io.err.write(`strata check: ${message}\n\n${CHECK_HELP}\n`);
    return 2;
  };
  if (what !== "linearizable")
    return usage(
      what === undefined ? "missing what to check (linearizable)" : `unknown check "${what}"`,
    );
  if (file === undefined) return usage("missing <history> file");
  if (extra.length > 0) return usage(`unexpected argument "${extra[0] as string}"`);
  const format =
    values.format ??
    (file.endsWith(".edn") ? "edn" : file.endsWith(".log") ? "jepsen-log" : "json");
  if (format !== "json" && format !== "edn" && format !== "jepsen-log")
    return usage(`unknown format "${format}"`);
  let initial: unknown = null;
  if (values.initial !== undefined) {
    try {
      initial = JSON.parse(values.initial);
    } catch {
      return usage(`--initial must be a JSON value, got "${values.initial}"`);
    }
  }
  const timeoutMs = values.timeout === undefined ? 60_000 : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
    return usage(`--timeout must be a positive integer, got "${values.timeout}"`);
  let events: HistoryEvent[];
  try {
    const text = await readFile(file, "utf8");
    events =
      format === "edn"
        ? parseEdnHistory(text)
        : format === "jepsen-log"
          ? parseJepsenLog(text)
          : parseJsonHistory(text);
  } catch (error) {
    const message =
      error instanceof HistoryError
        ? error.message
        : `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`;
    io.err.write(`strata check: ${message}\n`);
    return 2;
  }
  let verdict;
  try {
    verdict = checkLinearizable(pairOperations(events), registerModel(initial), { timeoutMs });
  } catch (error) {
    io.err.write(`strata check: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (values.json === true) {
    io.out.write(
      `${JSON.stringify(verdict, (_k, v: unknown) => (v === Infinity ? "Infinity" : v))}\n`,
    );
  } else if (verdict.result === "linearizable") {
    io.out.write(
      `linearizable: ${verdict.operations} operations in ${verdict.partitions} keys, checked in ${Math.round(verdict.ms)} ms\n`,
    );
  } else if (verdict.result === "unknown") {
    io.out.write(
      `unknown: the ${timeoutMs} ms budget ran out after ${Math.round(verdict.ms)} ms\n`,
    );
  } else {
    const c = verdict.counterexample;
    const show = (op: (typeof c.operations)[number]): string =>
      `  process ${String(op.process)} ${op.f} ${JSON.stringify(op.input)} -> ${op.outcome}${op.output === undefined ? "" : ` ${JSON.stringify(op.output)}`} [${op.call}, ${op.ret === Infinity ? "∞" : op.ret}]`;
    io.out.write(`NOT linearizable: key ${JSON.stringify(c.key)}\n`);
    io.out.write(
      `longest linearizable order (${c.linearized.length} operations):\n${c.linearized.map(show).join("\n")}\n`,
    );
    io.out.write(`cannot be placed next:\n${c.stuck.map(show).join("\n")}\n`);
  }
  return verdict.result === "linearizable" ? 0 : verdict.result === "not-linearizable" ? 1 : 2;
}

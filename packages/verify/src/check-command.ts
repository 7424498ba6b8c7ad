import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { EdnReader, toPlain } from "./formats/edn-reader.js";
import {
  HISTORY_FORMATS,
  detectFormat,
  parseHistory,
  type HistoryFormat,
} from "./formats/index.js";
import { HistoryError, pairOperations, type Operation } from "./history.js";
import { checkLinearizable, type Verdict } from "./linearizable.js";
import { registerModel } from "./register-model.js";

export const CHECK_HELP = `usage: strata check linearizable <history-file> [--format json|edn|jepsen-log] [--initial <value>] [--timeout <ms>] [--failed-cas mismatch|no-effect] [--json]

Checks that a history of register operations (read, write, cas) is linearizable, key by key.
Exit code: 0 linearizable; 1 not linearizable (a small failing sub-history is printed); 2 unusable
input, or the time budget ran out before an answer.

  --format <f>       json, edn or jepsen-log (default: from the file name, else its contents)
  --initial <value>  the registers' value before any write, as JSON or EDN (default nil)
  --timeout <ms>     time budget (default 60000)
  --failed-cas <m>   what a failed cas says: mismatch (default: the compare ran and did not
                     match) or no-effect (it only did not happen, as Knossos reads Jepsen's)
  --json             print the verdict as JSON
  -h, --help         this text

Formats (see packages/verify/README.md): Strata's JSON events
  {"process": 0, "type": "invoke", "f": "cas", "value": [1, 2], "key": "x", "time": 3.5},
Jepsen EDN maps {:process 0, :type :invoke, :f :cas, :value [1 2]}, and Jepsen log lines
  INFO  jepsen.util - 0<TAB>:invoke<TAB>:cas<TAB>[1 2]`;

/** Where the command writes. */
export interface CheckIo {
  readonly out: { write(text: string): unknown };
  readonly err: { write(text: string): unknown };
}

const EXIT = { linearizable: 0, violation: 1, unusable: 2 } as const;

/**
 * `strata check linearizable <history-file> …`, for the CLI to mount: `argv` starts after
 * `check`. Prints the verdict and returns the exit code: 0 linearizable, 1 not, 2 unusable input
 * or a spent budget. Never throws for bad input.
 *
 * @example
 * const code = await runCheckCommand(["linearizable", "history.edn"], {
 *   out: process.stdout,
 *   err: process.stderr,
 * });
 */
export async function runCheckCommand(argv: readonly string[], io: CheckIo): Promise<number> {
  const usage = (message: string): number => {
    io.err.write(`strata check: ${message}\n\n${CHECK_HELP}\n`);
    return EXIT.unusable;
  };
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
        "failed-cas": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out.write(`${CHECK_HELP}\n`);
    return EXIT.linearizable;
  }
  const [what, file, ...extra] = positionals;
  if (what !== "linearizable")
    return usage(
      what === undefined ? "missing what to check (linearizable)" : `unknown check "${what}"`,
    );
  if (file === undefined) return usage("missing <history-file>");
  if (extra.length > 0) return usage(`unexpected argument "${extra[0] as string}"`);
  if (
    values.format !== undefined &&
    !(HISTORY_FORMATS as readonly string[]).includes(values.format)
  )
    return usage(`unknown format "${values.format}" (json, edn or jepsen-log)`);
  const failedCas = values["failed-cas"] ?? "mismatch";
  if (failedCas !== "mismatch" && failedCas !== "no-effect")
    return usage(`--failed-cas must be mismatch or no-effect, got "${failedCas}"`);
  let initial: unknown = null;
  if (values.initial !== undefined) {
    const value = readValue(values.initial);
    if (!value.ok)
      return usage(`--initial must be a JSON or EDN value, got ${JSON.stringify(values.initial)}`);
    initial = value.value;
  }
  const timeoutMs = values.timeout === undefined ? 60_000 : Number(values.timeout);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1)
    return usage(
      `--timeout must be a positive whole number of milliseconds, got "${values.timeout}"`,
    );

  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    io.err.write(
      `strata check: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return EXIT.unusable;
  }
  const format = (values.format as HistoryFormat | undefined) ?? detectFormat(text, file);
  let operations: Operation[];
  let verdict: Verdict;
  try {
    operations = pairOperations(parseHistory(text, format));
    verdict = checkLinearizable(operations, { initial, timeoutMs, failedCas });
  } catch (error) {
    const message =
      error instanceof HistoryError
        ? error.message
        : `unexpected error: ${error instanceof Error ? error.message : String(error)}`;
    io.err.write(`strata check: ${file} (${format}): ${message}\n`);
    return EXIT.unusable;
  }
  if (values.json === true) io.out.write(`${JSON.stringify(verdict, jsonSafe)}\n`);
  else io.out.write(formatVerdict(verdict, { timeoutMs }));
  switch (verdict.result) {
    case "linearizable":
      return EXIT.linearizable;
    case "not-linearizable":
      return EXIT.violation;
    case "unknown":
      return EXIT.unusable;
  }
}

function readValue(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    try {
      const reader = new EdnReader(text);
      const { value } = reader.read();
      return reader.atEnd() ? { ok: true, value: toPlain(value) } : { ok: false };
    } catch {
      return { ok: false };
    }
  }
}

const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;

/** JSON has no Infinity: an unknown outcome's return time is written as null. */
function jsonSafe(_key: string, value: unknown): unknown {
  return value === Infinity ? null : value;
}

const register = registerModel();

/**
 * A register check's verdict as text for a terminal; `timeoutMs` is the budget it had.
 *
 * @example
 * process.stdout.write(formatVerdict(checkLinearizable(events), { timeoutMs: 60_000 }));
 */
export function formatVerdict(verdict: Verdict, context: { readonly timeoutMs: number }): string {
  const ms = `${Math.round(verdict.ms)} ms`;
  switch (verdict.result) {
    case "linearizable":
      return `linearizable: ${count(verdict.operations, "operation")} in ${count(verdict.partitions, "key")}, checked in ${ms}\n`;
    case "unknown":
      return verdict.reason === "timeout"
        ? `unknown: the ${context.timeoutMs} ms budget ran out after ${ms} (${verdict.checked} of ${count(verdict.partitions, "key")} checked, all linearizable); try a larger --timeout\n`
        : `unknown: the search of one key needed more memory than allowed, after ${ms} (${verdict.checked} of ${count(verdict.partitions, "key")} checked, all linearizable); shorter per-key histories check faster\n`;
    case "not-linearizable": {
      const c = verdict.counterexample;
      const show = (op: Operation): string => {
        const outcome =
          c.cut !== undefined && op.ret > c.cut && op.outcome !== "info"
            ? `unknown at the cut (${op.outcome} later)`
            : op.outcome;
        const ret = op.ret === Infinity ? "∞" : String(op.ret);
        const line = op.line === undefined ? "" : ` (line ${op.line})`;
        return `  process ${String(op.process)} ${register.describe?.(op) ?? op.f} ${outcome} [${op.call}, ${ret}]${line}`;
      };
      const lines = [
        `NOT linearizable: key ${JSON.stringify(c.key)}, found in ${ms}`,
        `sub-history that cannot be linearized (${c.operations.length} of the key's ${count(c.partitionOperations, "operation")}${c.cut === undefined ? "" : `, as it stood at time ${c.cut}`}):`,
        ...c.operations.map(show),
        `longest linearizable order (${count(c.linearized.length, "operation")}), leaving the register at ${register.describeState?.(c.state) ?? String(c.state)}:`,
        ...c.linearized.map(show),
        "cannot be placed next:",
        ...c.stuck.map(show),
      ];
      return `${lines.join("\n")}\n`;
    }
  }
}

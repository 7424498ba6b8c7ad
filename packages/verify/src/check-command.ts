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
import { checkBank, type BankOptions } from "./checkers/bank.js";
import { checkCounter } from "./checkers/counter.js";
import { checkCrdtSet } from "./checkers/crdt-set.js";
import {
  formatBankVerdict,
  formatCounterVerdict,
  formatCrdtSetVerdict,
  formatSetVerdict,
} from "./checkers/format.js";
import { checkSet } from "./checkers/set.js";
import { checkLinearizable, type Verdict } from "./linearizable.js";
import { registerModel } from "./register-model.js";

export const CHECK_HELP = `usage: strata check linearizable <history-file> [--format json|edn|jepsen-log] [--initial <value>] [--timeout <ms>] [--failed-cas mismatch|no-effect] [--json]
       strata check set <history-file> [--format <f>] [--json]
       strata check bank <history-file> [--total <n>] [--accounts <a,b,...>] [--initial <balances>] [--lower-bound <n>|none] [--format <f>] [--json]
       strata check counter <history-file> [--replicas <a,b,...>] [--format <f>] [--json]
       strata check crdt-set <history-file> [--replicas <a,b,...>] [--format <f>] [--json]

Checks a history a workload recorded. Exit code: 0 valid; 1 an anomaly (printed); 2 unusable
input, or (linearizable) the time budget ran out before an answer.

  linearizable  register operations (read, write, cas), key by key; a violation is printed as a
                small failing sub-history
  set           add, then final reads of the whole set: lost, duplicated, unexpected elements
  bank          transfer {from, to, amount} and read (the balance map): every read sums to the
                total, has exactly the accounts, respects the lower bound; with --initial, the
                final read is the initial balances plus the ok transfers plus some of the unknown
  counter       increment/add/decrement, then one final read per replica (key = replica): all
                equal, within the bounds the changes allow
  crdt-set      add/remove (add-wins OR-set), then one final read per replica: all equal, no
                lost or unexpected element

  --format <f>       json, edn or jepsen-log (default: from the file name, else its contents)
  --json             print the verdict as JSON
  -h, --help         this text
linearizable:
  --initial <value>  the registers' value before any write, as JSON or EDN (default nil)
  --timeout <ms>     time budget (default 60000)
  --failed-cas <m>   what a failed cas says: mismatch (default: the compare ran and did not
                     match) or no-effect (it only did not happen, as Knossos reads Jepsen's)
bank:
  --total <n>        the sum of all balances (default: the sum of --initial)
  --accounts <list>  the accounts, comma-separated or a JSON array (default: those of --initial)
  --initial <map>    the balances before any transfer, as JSON or EDN: {"a": 50, "b": 50}
  --lower-bound <n>  the lowest balance a read may show (default 0); none for no bound
counter, crdt-set:
  --replicas <list>  the replicas that must each have a final read (default: those read)

Formats (see docs/verify.md): Strata's JSON events
  {"process": 0, "type": "invoke", "f": "cas", "value": [1, 2], "key": "x", "time": 3.5},
Jepsen EDN maps {:process 0, :type :invoke, :f :cas, :value [1 2]}, and Jepsen log lines
  INFO  jepsen.util - 0<TAB>:invoke<TAB>:cas<TAB>[1 2]`;

/** Where the command writes. */
export interface CheckIo {
  readonly out: { write(text: string): unknown };
  readonly err: { write(text: string): unknown };
}

const EXIT = { linearizable: 0, violation: 1, unusable: 2 } as const;

/** The checks `strata check` runs, and the options each one takes besides --format and --json. */
const CHECKS = {
  linearizable: ["initial", "timeout", "failed-cas"],
  set: [],
  bank: ["total", "accounts", "initial", "lower-bound"],
  counter: ["replicas"],
  "crdt-set": ["replicas"],
} as const satisfies Record<string, readonly string[]>;

type CheckName = keyof typeof CHECKS;

const isCheck = (name: string): name is CheckName => Object.hasOwn(CHECKS, name);

interface Values {
  readonly format?: string;
  readonly initial?: string;
  readonly timeout?: string;
  readonly "failed-cas"?: string;
  readonly total?: string;
  readonly accounts?: string;
  readonly "lower-bound"?: string;
  readonly replicas?: string;
  readonly json?: boolean;
}

/** A command-line mistake, reported with the usage. */
class UsageProblem extends Error {}

/**
 * `strata check <linearizable|set|bank|counter|crdt-set> <history-file> …`, for the CLI to
 * mount: `argv` starts after `check`. Prints the verdict and returns the exit code: 0 valid, 1
 * an anomaly, 2 unusable input (or, for linearizable, a spent budget). Never throws for bad
 * input.
 *
 * @example
 * const code = await runCheckCommand(["bank", "history.json", "--total", "100"], {
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
        total: { type: "string" },
        accounts: { type: "string" },
        "lower-bound": { type: "string" },
        replicas: { type: "string" },
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
  const names = Object.keys(CHECKS).join(", ");
  if (what === undefined) return usage(`missing what to check (${names})`);
  if (!isCheck(what)) return usage(`unknown check "${what}" (${names})`);
  if (file === undefined) return usage("missing <history-file>");
  if (extra.length > 0) return usage(`unexpected argument "${extra[0] as string}"`);
  const allowed: readonly string[] = CHECKS[what];
  const stray = Object.keys(values).find(
    (name) => name !== "format" && name !== "json" && !allowed.includes(name),
  );
  if (stray !== undefined) return usage(`--${stray} does not apply to check ${what}`);
  if (
    values.format !== undefined &&
    !(HISTORY_FORMATS as readonly string[]).includes(values.format)
  )
    return usage(`unknown format "${values.format}" (json, edn or jepsen-log)`);
  if (what === "linearizable") return checkRegisters(file, values, io, usage);

  let run: (operations: readonly Operation[]) => Outcome;
  try {
    run = workloadCheck(what, values);
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  const input = await readHistory(file, values, io);
  if (input === undefined) return EXIT.unusable;
  let outcome: Outcome;
  try {
    outcome = run(pairOperations(parseHistory(input.text, input.format)));
  } catch (error) {
    return unusable(error, `${file} (${input.format})`, io);
  }
  if (values.json === true)
    io.out.write(`${JSON.stringify({ check: what, ...outcome.verdict }, jsonSafe)}\n`);
  else io.out.write(outcome.text());
  return outcome.verdict.valid ? EXIT.linearizable : EXIT.violation;
}

/** A workload check's verdict, and how to print it for a terminal. */
interface Outcome {
  readonly verdict: { readonly valid: boolean };
  text(): string;
}

function outcome<V extends { readonly valid: boolean }>(
  verdict: V,
  format: (verdict: V) => string,
): Outcome {
  return { verdict, text: () => format(verdict) };
}

/** The workload check's function, its options read from the command line. */
function workloadCheck(
  what: Exclude<CheckName, "linearizable">,
  values: Values,
): (operations: readonly Operation[]) => Outcome {
  switch (what) {
    case "set":
      return (ops) => outcome(checkSet(ops), formatSetVerdict);
    case "bank": {
      const options = bankOptions(values);
      return (ops) => outcome(checkBank(ops, options), formatBankVerdict);
    }
    case "counter": {
      const replicas = listOption(values.replicas, "--replicas");
      const options = replicas === undefined ? {} : { replicas };
      return (ops) => outcome(checkCounter(ops, options), formatCounterVerdict);
    }
    case "crdt-set": {
      const replicas = listOption(values.replicas, "--replicas");
      const options = replicas === undefined ? {} : { replicas };
      return (ops) => outcome(checkCrdtSet(ops, options), formatCrdtSetVerdict);
    }
  }
}

function bankOptions(values: Values): BankOptions {
  let initial: Record<string, number> | undefined;
  if (values.initial !== undefined) {
    const read = readValue(values.initial);
    if (
      !read.ok ||
      typeof read.value !== "object" ||
      read.value === null ||
      Array.isArray(read.value)
    )
      throw new UsageProblem(
        `--initial must map accounts to balances, as JSON or EDN ({"a": 50, "b": 50}), got ${JSON.stringify(values.initial.slice(0, 60))}`,
      );
    initial = {};
    for (const [account, balance] of Object.entries(read.value as Record<string, unknown>)) {
      if (typeof balance !== "number" || !Number.isSafeInteger(balance))
        throw new UsageProblem(
          `--initial: the balance of ${JSON.stringify(account)} must be a whole number within ±2^53, got ${JSON.stringify(balance) ?? typeof balance}`,
        );
      initial[account] = balance;
    }
  }
  const accounts = listOption(values.accounts, "--accounts") ?? Object.keys(initial ?? {});
  if (accounts.length === 0)
    throw new UsageProblem("bank needs the accounts: give --accounts or --initial");
  let total: number;
  if (values.total !== undefined) total = wholeOption(values.total, "--total");
  else if (initial !== undefined) {
    total = Object.values(initial).reduce((a, b) => a + b, 0);
    if (!Number.isSafeInteger(total))
      throw new UsageProblem("--initial: the balances add up beyond ±2^53");
  } else throw new UsageProblem("bank needs the total: give --total or --initial");
  const bound = values["lower-bound"];
  const lowerBound =
    bound === undefined ? 0 : bound === "none" ? -Infinity : wholeOption(bound, "--lower-bound");
  return { total, accounts, lowerBound, ...(initial === undefined ? {} : { initial }) };
}

function wholeOption(text: string, name: string): number {
  const value = /^-?\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value))
    throw new UsageProblem(
      `${name} must be a whole number within ±2^53, got ${JSON.stringify(text.slice(0, 40))}`,
    );
  return value;
}

/** `a,b,c` or a JSON array of names. */
function listOption(text: string | undefined, name: string): string[] | undefined {
  if (text === undefined) return undefined;
  let items: unknown = text.split(",").map((item) => item.trim());
  if (text.trim().startsWith("[")) {
    const read = readValue(text);
    items = read.ok ? read.value : undefined;
  }
  if (
    !Array.isArray(items) ||
    items.some((item) => (typeof item !== "string" || item === "") && typeof item !== "number")
  )
    throw new UsageProblem(
      `${name} must be names separated by commas, or a JSON array, got ${JSON.stringify(text.slice(0, 60))}`,
    );
  const names = (items as Array<string | number>).map(String);
  if (new Set(names).size !== names.length) throw new UsageProblem(`${name} repeats a name`);
  return names;
}

async function readHistory(
  file: string,
  values: Values,
  io: CheckIo,
): Promise<{ text: string; format: HistoryFormat } | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    io.err.write(
      `strata check: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return undefined;
  }
  return { text, format: (values.format as HistoryFormat | undefined) ?? detectFormat(text, file) };
}

function unusable(error: unknown, where: string, io: CheckIo): number {
  const message =
    error instanceof HistoryError
      ? error.message
      : `unexpected error: ${error instanceof Error ? error.message : String(error)}`;
  io.err.write(`strata check: ${where}: ${message}\n`);
  return EXIT.unusable;
}

async function checkRegisters(
  file: string,
  values: Values,
  io: CheckIo,
  usage: (message: string) => number,
): Promise<number> {
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

  const input = await readHistory(file, values, io);
  if (input === undefined) return EXIT.unusable;
  const { format } = input;
  let verdict: Verdict;
  try {
    const operations = pairOperations(parseHistory(input.text, format));
    verdict = checkLinearizable(operations, { initial, timeoutMs, failedCas });
  } catch (error) {
    return unusable(error, `${file} (${format})`, io);
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

import type { BankAnomaly, BankVerdict } from "./bank.js";
import type { OperationRef, OutcomeCounts } from "./common.js";
import type { CounterAnomaly, CounterVerdict } from "./counter.js";
import type { CrdtSetAnomaly, CrdtSetVerdict } from "./crdt-set.js";
import type { SetAnomaly, SetVerdict } from "./set.js";

/** Anomalies printed per verdict; `--json` gives them all. */
const SHOWN = 20;

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;
const value = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
};
const outcomes = (c: OutcomeCounts): string => `${c.ok} ok, ${c.info} info, ${c.fail} fail`;

/** `process 3 add, [12.5, 14] (line 40)`. */
export function describeRef(op: OperationRef): string {
  const line = op.line === undefined ? "" : ` (line ${op.line})`;
  const key = op.key === undefined ? "" : ` ${op.key}`;
  return `process ${String(op.process)} ${op.f}${key} ${op.outcome} [${op.call}, ${op.ret ?? "∞"}]${line}`;
}

function list<A>(anomalies: readonly A[], omitted: number, describe: (a: A) => string): string[] {
  const shown = anomalies.slice(0, SHOWN).map((a) => `  ${describe(a)}`);
  const more = anomalies.length - shown.length + omitted;
  return more > 0 ? [...shown, `  … and ${more} more (--json lists up to 1000)`] : shown;
}

function verdictText(valid: boolean, summary: string, lines: readonly string[]): string {
  return `${[`${valid ? "valid" : "INVALID"}: ${summary}`, ...lines].join("\n")}\n`;
}

/** A set verdict for a terminal. */
export function formatSetVerdict(v: SetVerdict): string {
  const c = v.counts;
  const summary = `adds ${outcomes(c.adds)}; ${plural(c.finalReads, "final read")} of ${plural(c.reads, "read")}; lost ${c.lost}, duplicated ${c.duplicated}, unexpected ${c.unexpected}, recovered ${c.recovered}`;
  const describe = (a: SetAnomaly): string => {
    switch (a.type) {
      case "lost":
        return `lost ${value(a.element)}: added by ${describeRef(a.add)}, missing from ${plural(a.missingFrom.length, "final read")} (first: ${describeRef(a.missingFrom[0] as OperationRef)})`;
      case "duplicated":
        return `duplicated ${value(a.element)}: ${a.count} times in ${describeRef(a.read)}`;
      case "unexpected":
        return `unexpected ${value(a.element)} (${a.reason === "failed" ? "its add failed" : "never added"}): in ${plural(a.reads, "read")}, first ${describeRef(a.read)}`;
    }
  };
  return verdictText(v.valid, summary, list(v.anomalies, v.omitted, describe));
}

/** A bank verdict for a terminal. */
export function formatBankVerdict(v: BankVerdict): string {
  const c = v.counts;
  const final = v.final.checked
    ? v.final.infoApplied === null
      ? "final read NOT reachable from the initial balances"
      : `final read reachable (${plural(v.final.infoApplied.length, "unknown-outcome transfer")} applied)`
    : `final read not checked: ${v.final.detail}`;
  const summary = `transfers ${outcomes(c.transfers)}; ${plural(c.badReads, "bad read")} of ${c.reads}; ${final}`;
  const describe = (a: BankAnomaly): string => {
    const at = describeRef(a.read);
    switch (a.type) {
      case "wrong-total":
        return `wrong total ${a.total} (expected ${a.expected}): ${at}: ${value(a.balances)}`;
      case "wrong-accounts":
        return `wrong accounts: ${at}: missing ${value(a.missing)}, extra ${value(a.extra)}`;
      case "below-lower-bound":
        return `below the lower bound: ${at}: ${a.account} = ${a.balance} < ${a.bound}`;
      case "wrong-final-balances":
        return `final balances unreachable: ${at}: off by ${value(a.difference)} after every ok transfer, for any subset of the unknown ones`;
    }
  };
  return verdictText(v.valid, summary, list(v.anomalies, v.omitted, describe));
}

/** A counter verdict for a terminal. */
export function formatCounterVerdict(v: CounterVerdict): string {
  const c = v.counts;
  const summary = `increments ${outcomes(c.increments)}; decrements ${outcomes(c.decrements)}; ${plural(c.finalReads, "final read")}; the value may be ${v.bounds.lower}..${v.bounds.upper}, replicas read ${value(v.values)}`;
  const describe = (a: CounterAnomaly): string => {
    switch (a.type) {
      case "diverged":
        return `diverged: ${value(a.values)}`;
      case "out-of-bounds":
        return `out of bounds: replica ${a.replica} read ${a.value}, outside ${a.lower}..${a.upper}: ${describeRef(a.read)}`;
      case "no-final-read":
        return `no final read of replica ${a.replica}`;
    }
  };
  return verdictText(v.valid, summary, list(v.anomalies, v.omitted, describe));
}

/** An add-wins set verdict for a terminal. */
export function formatCrdtSetVerdict(v: CrdtSetVerdict): string {
  const c = v.counts;
  const summary = `adds ${outcomes(c.adds)}; removes ${outcomes(c.removes)}; ${plural(c.finalReads, "final read")}; ${plural(c.required, "element")} required`;
  const describe = (a: CrdtSetAnomaly): string => {
    switch (a.type) {
      case "diverged":
        return `diverged: ${plural(a.differences.length, "element")} not on every replica, e.g. ${value(a.differences[0]?.element)} on ${value(a.differences[0]?.presentOn)}, not on ${value(a.differences[0]?.absentOn)}`;
      case "lost":
        return `lost ${value(a.element)} on ${value(a.missingOn)}: added by ${describeRef(a.add)}, after every remove of it`;
      case "unexpected":
        return `unexpected ${value(a.element)} (${a.reason === "failed" ? "its add failed" : "never added"}) on ${value(a.presentOn)}`;
      case "duplicated":
        return `duplicated ${value(a.element)}: ${a.count} times in replica ${a.replica}'s ${describeRef(a.read)}`;
      case "no-final-read":
        return `no final read of replica ${a.replica}`;
    }
  };
  return verdictText(v.valid, summary, list(v.anomalies, v.omitted, describe));
}

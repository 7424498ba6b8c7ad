import { cpus } from "node:os";
import {
  checkBank,
  checkCounter,
  checkLinearizable,
  checkSet,
  pairOperations,
  seededRegisterPlans,
  simulateBankHistory,
  simulateCounterHistory,
  simulateRegisterHistory,
  simulateSetHistory,
  type Operation,
} from "@strata/verify";

/** One linearizability measurement: a random register history of `operations` by `clients`. */
export interface LinearizableRow {
  readonly operations: number;
  readonly clients: number;
  readonly keys: number;
  /** Median check time over the runs, in milliseconds (pairing the events excluded). */
  readonly ms: number;
  readonly opsPerSec: number;
  readonly steps: number;
  readonly result: string;
}

/** One workload checker's time on a long history, pairing the events included. */
export interface WorkloadRow {
  readonly checker: string;
  readonly operations: number;
  readonly ms: number;
  readonly opsPerSec: number;
  readonly valid: boolean;
  readonly note: string;
}

/** What `npm run bench -- checker` measures. */
export interface CheckerResults {
  readonly when: string;
  readonly machine: { readonly cpus: number; readonly node: string };
  readonly runs: number;
  readonly register: { readonly keys: number; readonly values: number; readonly crash: number };
  readonly byLength: readonly LinearizableRow[];
  readonly byClients: readonly LinearizableRow[];
  readonly workloads: readonly WorkloadRow[];
}

const KEYS = 10;
const VALUES = 1_000;
const CRASH = 0.02;

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

function registerHistory(operations: number, clients: number, seed: number): Operation[] {
  const options = { clients, keys: KEYS, values: VALUES };
  const plans = seededRegisterPlans(seed, {
    ...options,
    opsPerClient: Math.ceil(operations / clients),
    crash: CRASH,
  });
  return pairOperations(simulateRegisterHistory(plans, options));
}

function measureLinearizable(
  operations: number,
  clients: number,
  runs: number,
  log: (line: string) => void,
): LinearizableRow {
  const times: number[] = [];
  let steps = 0;
  let result = "";
  let count = 0;
  for (let run = 0; run < runs; run++) {
    const ops = registerHistory(operations, clients, 1 + run);
    count = ops.length;
    const t0 = performance.now();
    const verdict = checkLinearizable(ops, { timeoutMs: 120_000 });
    times.push(performance.now() - t0);
    steps = verdict.steps;
    result = verdict.result;
  }
  const ms = round(median(times));
  const row = {
    operations: count,
    clients,
    keys: KEYS,
    ms,
    opsPerSec: Math.round(count / (ms / 1000)),
    steps,
    result,
  };
  log(
    `checker  linearizable ${count} ops, ${clients} clients: ${ms} ms (${row.opsPerSec} ops/s, ${result})`,
  );
  return row;
}

function measureWorkload(
  checker: string,
  operations: number,
  check: () => { valid: boolean; note: string },
  log: (line: string) => void,
): WorkloadRow {
  check(); // warm up
  const t0 = performance.now();
  const { valid, note } = check();
  const ms = round(performance.now() - t0);
  const opsPerSec = Math.round(operations / (ms / 1000));
  log(`checker  ${checker} ${operations} ops: ${ms} ms (${opsPerSec} ops/s, valid ${valid})`);
  return { checker, operations, ms, opsPerSec, valid, note };
}

/**
 * Checker speed: the linearizability checker against history length and client count on random
 * register histories of a correct store, and the set, bank and counter checkers on 100,000
 * operations.
 */
export async function runCheckerBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<CheckerResults> {
  const { quick, log } = options;
  const runs = quick ? 1 : 3;
  const lengths = quick ? [1_000, 5_000] : [1_000, 5_000, 10_000, 50_000];
  const clientCounts = quick ? [5, 10] : [5, 10, 20, 50];
  const fixedLength = quick ? 1_000 : 10_000;
  const byLength = lengths.map((n) => measureLinearizable(n, 10, runs, log));
  const byClients = clientCounts.map((c) => measureLinearizable(fixedLength, c, runs, log));
  await Promise.resolve();

  const size = quick ? 10_000 : 100_000;
  const base = { seed: 7, clients: 20, operations: size };
  const setHistory = simulateSetHistory({ ...base, reads: 3 });
  const bank = simulateBankHistory({ ...base, accounts: 10 });
  const replicas = ["n1", "n2", "n3", "n4", "n5"];
  const counterHistory = simulateCounterHistory({ ...base, replicas, decrements: true });
  const workloads = [
    measureWorkload(
      "set (3 final reads)",
      size,
      () => {
        const v = checkSet(setHistory);
        return { valid: v.valid, note: `${v.counts.recovered} recovered` };
      },
      log,
    ),
    measureWorkload(
      "bank (10 accounts)",
      size,
      () => {
        const v = checkBank(bank.history, bank);
        const final = v.final.checked ? "final read checked" : `final read: ${v.final.reason}`;
        return { valid: v.valid, note: `${v.counts.reads} reads; ${final}` };
      },
      log,
    ),
    measureWorkload(
      "counter (5 replicas)",
      size,
      () => {
        const v = checkCounter(counterHistory, { replicas });
        return { valid: v.valid, note: `bounds ${v.bounds.lower}..${v.bounds.upper}` };
      },
      log,
    ),
  ];
  return {
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.versions.node },
    runs,
    register: { keys: KEYS, values: VALUES, crash: CRASH },
    byLength,
    byClients,
    workloads,
  };
}

/** The checker section of BENCHMARKS.md. */
export function renderCheckerMarkdown(r: CheckerResults, command: string): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  const table = (rows: readonly LinearizableRow[]): string[] => [
    "| operations | clients | keys | check ms | ops/s | search steps | result |",
    "|---:|---:|---:|---:|---:|---:|---|",
    ...rows.map(
      (row) =>
        `| ${n(row.operations)} | ${row.clients} | ${row.keys} | ${n(row.ms)} | ${n(row.opsPerSec)} | ${n(row.steps)} | ${row.result} |`,
    ),
  ];
  return [
    `Measured ${r.when.slice(0, 10)} on ${r.machine.cpus} cores, Node ${r.machine.node}, with \`${command}\`: one thread, the median of ${r.runs} runs. Register histories come from \`simulateRegisterHistory\`: a correct store of ${r.register.keys} registers, values drawn from ${n(r.register.values)}, reads, writes and compare-and-sets from concurrent clients, ${r.register.crash * 100}% of operations with unknown outcome (\`info\`); linearizable by construction, so the checker must find an order for every key. The time is \`checkLinearizable\` on paired operations.`,
    "",
    `By history length (10 clients): what grows is each key's history (a tenth of the whole), and the search's steps with it, faster than linearly.`,
    "",
    ...table(r.byLength),
    "",
    `By client count (${n(r.byClients[0]?.operations ?? 0)} operations): more clients overlap more operations on each key, so the search takes more steps; the time stays within a small factor.`,
    "",
    ...table(r.byClients),
    "",
    "Set, bank and counter checkers on simulated correct workloads (20 clients, 5% unknown outcome, 2% refused), from events (pairing included). With thousands of unknown-outcome transfers the bank's final-read search is beyond its bound and reported unchecked; the per-read checks cover every read.",
    "",
    "| checker | operations | ms | ops/s | valid | note |",
    "|---|---:|---:|---:|---|---|",
    ...r.workloads.map(
      (w) =>
        `| ${w.checker} | ${n(w.operations)} | ${n(w.ms)} | ${n(w.opsPerSec)} | ${w.valid} | ${w.note} |`,
    ),
  ].join("\n");
}

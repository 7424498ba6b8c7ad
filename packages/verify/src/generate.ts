import type { HistoryEvent } from "./history.js";

/**
 * Simulated workloads against correct stores, for benchmarks and property tests: every history
 * these functions return is valid by construction (linearizable for registers; no lost, duplicated
 * or unexpected element for sets; conserved balances for the bank; converged replicas within
 * bounds for counters). Clients overlap freely; an operation takes effect at an instant inside its
 * interval, in the order of those instants; a crashed operation (`info`) took effect or not,
 * perhaps later, and its client carries on under a new process id, as a Jepsen client does.
 */

/** One operation a simulated client will issue, with the randomness that decides its fate. */
export interface PlannedRegisterOp {
  readonly f: "read" | "write" | "cas";
  readonly key: number;
  /** write: the value; cas: the new value. */
  readonly value: number;
  /** cas: the expected value (often one written before, so that some succeed). */
  readonly expected: number;
  /** How long the call takes, and the pause before the client's next call. */
  readonly duration: number;
  readonly gap: number;
  /** Where inside its interval the operation takes effect, as a fraction. */
  readonly at: number;
  /** The client never learns the outcome (`info`); `applies` says whether it took effect. */
  readonly crash: boolean;
  readonly applies: boolean;
  /**
   * A read or write that came back `fail` without taking effect (the store refused it). A `cas`
   * fails only when its compare does not match.
   */
  readonly refused: boolean;
}

export interface RegisterSimulationOptions {
  readonly clients: number;
  /** Registers; operations pick one. */
  readonly keys: number;
  /** Written values are drawn from 0..values-1: few values make the search work harder. */
  readonly values: number;
}

/**
 * Runs clients against one correct, sequential store of registers: every operation takes effect
 * at an instant inside its own interval, in the order of those instants, so the history is
 * linearizable by construction. Intervals of different clients overlap freely. A crashed
 * operation never returns (`info`), took effect or not, perhaps much later; the client carries
 * on under a new process id, as a Jepsen client does.
 */
export function simulateRegisterHistory(
  plans: readonly (readonly PlannedRegisterOp[])[],
  options: RegisterSimulationOptions,
): HistoryEvent[] {
  interface Timed {
    readonly process: number;
    readonly plan: PlannedRegisterOp;
    readonly call: number;
    readonly ret: number;
    readonly effect: number;
  }
  const timed: Timed[] = [];
  plans.forEach((ops, client) => {
    let t = 0;
    let process = client;
    for (const plan of ops) {
      const call = t + plan.gap;
      const ret = call + plan.duration;
      // A crashed operation may take effect long after the client gave up on it.
      const effect = call + plan.at * (plan.crash ? plan.duration * 4 : plan.duration);
      timed.push({ process, plan, call, ret, effect });
      t = ret;
      if (plan.crash) process += options.clients;
    }
  });
  const registers = new Map<number, number | null>();
  const results = new Map<Timed, { type: "ok" | "fail"; value: unknown }>();
  for (const op of [...timed].sort((a, b) => a.effect - b.effect)) {
    const { plan } = op;
    if (refused(plan) || (plan.crash && !plan.applies)) continue;
    const current = registers.get(plan.key) ?? null;
    switch (plan.f) {
      case "read":
        results.set(op, { type: "ok", value: current });
        break;
      case "write":
        registers.set(plan.key, plan.value);
        results.set(op, { type: "ok", value: plan.value });
        break;
      case "cas": {
        const matches = current === plan.expected;
        if (matches) registers.set(plan.key, plan.value);
        results.set(op, { type: matches ? "ok" : "fail", value: [plan.expected, plan.value] });
        break;
      }
    }
  }
  const events: Array<HistoryEvent & { readonly time: number }> = [];
  for (const op of timed) {
    const { plan, process } = op;
    const key = `k${plan.key}`;
    const input =
      plan.f === "read" ? null : plan.f === "write" ? plan.value : [plan.expected, plan.value];
    events.push({ process, type: "invoke", f: plan.f, value: input, key, time: op.call });
    if (plan.crash) continue;
    const result = refused(plan) ? { type: "fail" as const, value: input } : results.get(op);
    if (result === undefined)
      throw new Error("simulation: an operation that applies has no result");
    events.push({ process, type: result.type, f: plan.f, value: result.value, key, time: op.ret });
  }
  return events.sort((a, b) => a.time - b.time);
}

const refused = (plan: PlannedRegisterOp): boolean =>
  plan.refused && !plan.crash && plan.f !== "cas";

/**
 * Random plans for `simulateRegisterHistory` from a seed: fast enough for histories of 100,000
 * operations (the property tests draw theirs with fast-check instead).
 *
 * @example
 * const options = { clients: 10, keys: 10, values: 100 };
 * simulateRegisterHistory(seededRegisterPlans(1, { ...options, opsPerClient: 100, crash: 0.02 }), options);
 */
export function seededRegisterPlans(
  seed: number,
  options: RegisterSimulationOptions & { readonly opsPerClient: number; readonly crash: number },
): PlannedRegisterOp[][] {
  const random = seededRandom(seed);
  return Array.from({ length: options.clients }, () =>
    Array.from({ length: options.opsPerClient }, (): PlannedRegisterOp => {
      const r = random();
      return {
        f: r < 0.5 ? "read" : r < 0.8 ? "write" : "cas",
        key: Math.floor(random() * options.keys),
        value: Math.floor(random() * options.values),
        expected: Math.floor(random() * options.values),
        duration: 0.1 + random() * 20,
        gap: random() * 5,
        at: random(),
        crash: random() < options.crash,
        applies: random() < 0.5,
        refused: random() < 0.01,
      };
    }),
  );
}

/** xorshift32: a fast, reproducible stream of numbers in [0, 1). */
function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** What every workload simulation takes. */
export interface WorkloadSimulationOptions {
  /** Seeds the random choices: the same options give the same history. */
  readonly seed: number;
  /** Concurrent clients. */
  readonly clients: number;
  /** Operations in all, before the final reads. */
  readonly operations: number;
  /** Chance that an operation's client never learns its outcome (`info`; default 0.05). */
  readonly crash?: number;
  /** Chance that the store refuses an operation (`fail`, no effect; default 0.02). */
  readonly refuse?: number;
}

/** One client operation's place in time and fate, before the workload gives it a meaning. */
interface Slot {
  readonly index: number;
  readonly process: number;
  readonly call: number;
  readonly ret: number;
  /** When it takes effect, if it does. */
  readonly effect: number;
  readonly fate: "ok" | "refused" | "crashed";
  /** A crashed operation: whether it took effect all the same. */
  readonly applies: boolean;
}

function schedule(options: WorkloadSimulationOptions, random: () => number): Slot[] {
  const crash = options.crash ?? 0.05;
  const refuse = options.refuse ?? 0.02;
  const slots: Slot[] = [];
  const clocks = Array.from({ length: options.clients }, () => 0);
  const processes = Array.from({ length: options.clients }, (_, i) => i);
  for (let index = 0; index < options.operations; index++) {
    const client = index % options.clients;
    const call = (clocks[client] as number) + random() * 5;
    const duration = 0.1 + random() * 20;
    const ret = call + duration;
    const r = random();
    const fate = r < crash ? "crashed" : r < crash + refuse ? "refused" : "ok";
    const process = processes[client] as number;
    // A crashed operation may take effect long after its client gave up on it.
    const effect = call + random() * (fate === "crashed" ? duration * 4 : duration);
    slots.push({ index, process, call, ret, effect, fate, applies: random() < 0.5 });
    clocks[client] = ret;
    if (fate === "crashed") processes[client] = process + options.clients;
  }
  return slots;
}

/** Events of the scheduled operations, given each one's invocation value and completion. */
function eventsOf(
  slots: readonly Slot[],
  f: (slot: Slot) => string,
  input: (slot: Slot) => unknown,
  completion: (slot: Slot) => { readonly type: "ok" | "fail" | "info"; readonly value: unknown },
  key?: (slot: Slot) => string,
): Array<HistoryEvent & { readonly time: number }> {
  const events: Array<HistoryEvent & { readonly time: number }> = [];
  for (const slot of slots) {
    const k = key === undefined ? {} : { key: key(slot) };
    const name = f(slot);
    const { process } = slot;
    events.push({ process, type: "invoke", f: name, value: input(slot), time: slot.call, ...k });
    const done = completion(slot);
    events.push({ process, type: done.type, f: name, value: done.value, time: slot.ret, ...k });
  }
  // Stable: a process's completion stays before its next invocation at the same instant.
  return events.sort((a, b) => a.time - b.time);
}

/** Final reads by fresh processes, after every effect, one after another. */
function finalReads(
  slots: readonly Slot[],
  keys: readonly (string | undefined)[],
  value: (key: string | undefined) => unknown,
): Array<HistoryEvent & { readonly time: number }> {
  let t = slots.reduce((m, s) => Math.max(m, s.ret, s.effect), 0) + 1;
  let process = slots.reduce((m, s) => Math.max(m, s.process), 0) + 1;
  return keys.flatMap((key) => {
    const k = key === undefined ? {} : { key };
    const events = [
      { process, type: "invoke" as const, f: "read", value: null, time: t, ...k },
      { process, type: "ok" as const, f: "read", value: value(key), time: t + 1, ...k },
    ];
    t += 2;
    process++;
    return events;
  });
}

const applied = (slot: Slot): boolean =>
  slot.fate === "ok" || (slot.fate === "crashed" && slot.applies);

const byEffect = (slots: readonly Slot[]): Slot[] => [...slots].sort((a, b) => a.effect - b.effect);

/**
 * A set workload: each operation adds a distinct integer; then `reads` final reads (default 1,
 * keyed `n0`, `n1`, … as reads from different nodes) return every element that took effect, in
 * a shuffled order.
 *
 * @example
 * checkSet(simulateSetHistory({ seed: 1, clients: 5, operations: 1_000 })).valid; // true
 */
export function simulateSetHistory(
  options: WorkloadSimulationOptions & { readonly reads?: number },
): HistoryEvent[] {
  const random = seededRandom(options.seed);
  const slots = schedule(options, random);
  const elements = slots.filter(applied).map((s) => s.index);
  const events = eventsOf(
    slots,
    () => "add",
    (s) => s.index,
    (s) => ({
      type: s.fate === "ok" ? "ok" : s.fate === "refused" ? "fail" : "info",
      value: s.index,
    }),
  );
  const keys = Array.from({ length: options.reads ?? 1 }, (_, i) => `n${i}`);
  return [...events, ...finalReads(slots, keys, () => shuffle(elements, random))];
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A simulated bank workload, with what its checker needs to know. */
export interface SimulatedBank {
  readonly history: HistoryEvent[];
  readonly accounts: readonly string[];
  readonly initial: Readonly<Record<string, number>>;
  readonly total: number;
}

/**
 * A bank workload: accounts `a0`, `a1`, … start with `balance` each (default 100); a third of
 * the operations read every balance, the rest transfer 1..`maxAmount` (default 20) between two
 * accounts, which the store refuses (`fail`) when it would overdraw. A final read follows.
 *
 * @example
 * const bank = simulateBankHistory({ seed: 1, clients: 5, operations: 1_000, accounts: 5 });
 * checkBank(bank.history, bank).valid; // true
 */
export function simulateBankHistory(
  options: WorkloadSimulationOptions & {
    readonly accounts: number;
    readonly balance?: number;
    readonly maxAmount?: number;
  },
): SimulatedBank {
  const random = seededRandom(options.seed);
  const accounts = Array.from({ length: options.accounts }, (_, i) => `a${i}`);
  const balance = options.balance ?? 100;
  const initial = Object.fromEntries(accounts.map((a) => [a, balance]));
  const slots = schedule(options, random);
  const transfers = new Map<Slot, { from: string; to: string; amount: number }>();
  for (const slot of slots) {
    if (random() < 1 / 3 || accounts.length < 2) continue;
    const from = Math.floor(random() * accounts.length);
    const to = (from + 1 + Math.floor(random() * (accounts.length - 1))) % accounts.length;
    const amount = 1 + Math.floor(random() * (options.maxAmount ?? 20));
    transfers.set(slot, { from: accounts[from] as string, to: accounts[to] as string, amount });
  }
  const state: Record<string, number> = { ...initial };
  const results = new Map<Slot, { type: "ok" | "fail"; value: unknown }>();
  for (const slot of byEffect(slots)) {
    if (!applied(slot)) continue;
    const transfer = transfers.get(slot);
    if (transfer === undefined) {
      results.set(slot, { type: "ok", value: { ...state } });
      continue;
    }
    const { from, to, amount } = transfer;
    const funds = state[from] as number;
    if (funds < amount) {
      results.set(slot, { type: "fail", value: transfer });
      continue;
    }
    state[from] = funds - amount;
    state[to] = (state[to] as number) + amount;
    results.set(slot, { type: "ok", value: transfer });
  }
  const events = eventsOf(
    slots,
    (s) => (transfers.has(s) ? "transfer" : "read"),
    (s) => transfers.get(s) ?? null,
    (s) =>
      s.fate === "crashed"
        ? { type: "info", value: transfers.get(s) ?? null }
        : s.fate === "refused"
          ? { type: "fail", value: transfers.get(s) ?? null }
          : (results.get(s) as { type: "ok" | "fail"; value: unknown }),
  );
  return {
    history: [...events, ...finalReads(slots, [undefined], () => ({ ...state }))],
    accounts,
    initial,
    total: balance * accounts.length,
  };
}

/**
 * A replicated counter workload: clients send `increment` (1..5), and with `decrements` also
 * `decrement` (1..5), to random replicas (the operation's key); after healing, one final read
 * per replica returns the converged value, the sum of every change that took effect.
 *
 * @example
 * checkCounter(simulateCounterHistory({ seed: 1, clients: 5, operations: 1_000, replicas: ["n1", "n2"] }), { replicas: ["n1", "n2"] }).valid; // true
 */
export function simulateCounterHistory(
  options: WorkloadSimulationOptions & {
    readonly replicas: readonly string[];
    readonly decrements?: boolean;
  },
): HistoryEvent[] {
  const random = seededRandom(options.seed);
  const slots = schedule(options, random);
  const ops = new Map<Slot, { f: string; amount: number; replica: string }>();
  for (const slot of slots) {
    const f = options.decrements === true && random() < 0.4 ? "decrement" : "increment";
    const amount = 1 + Math.floor(random() * 5);
    const replica = options.replicas[Math.floor(random() * options.replicas.length)] as string;
    ops.set(slot, { f, amount, replica });
  }
  let value = 0;
  for (const slot of slots) {
    const op = ops.get(slot) as { f: string; amount: number };
    if (applied(slot)) value += op.f === "increment" ? op.amount : -op.amount;
  }
  const of = (s: Slot) => ops.get(s) as { f: string; amount: number; replica: string };
  const events = eventsOf(
    slots,
    (s) => of(s).f,
    (s) => of(s).amount,
    (s) => ({
      type: s.fate === "ok" ? "ok" : s.fate === "refused" ? "fail" : "info",
      value: of(s).amount,
    }),
    (s) => of(s).replica,
  );
  return [...events, ...finalReads(slots, options.replicas, () => value)];
}

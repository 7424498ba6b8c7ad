import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { simulateBankHistory, simulateCounterHistory, simulateSetHistory } from "../generate.js";
import type { HistoryEvent } from "../history.js";
import { checkBank } from "./bank.js";
import { checkCounter } from "./counter.js";
import { checkSet } from "./set.js";

const workload = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  clients: fc.integer({ min: 1, max: 8 }),
  operations: fc.integer({ min: 1, max: 200 }),
  crash: fc.integer({ min: 0, max: 30 }).map((x) => x / 100),
  refuse: fc.integer({ min: 0, max: 10 }).map((x) => x / 100),
});

/** Where the ok reads are among the events. */
const okReads = (events: readonly HistoryEvent[]): number[] =>
  events.flatMap((e, i) => (e.type === "ok" && e.f === "read" ? [i] : []));

const replace = (events: readonly HistoryEvent[], index: number, value: unknown): HistoryEvent[] =>
  events.map((e, i) => (i === index ? { ...e, value } : e));

describe("checkers on simulated correct stores", () => {
  it("a correct set's history is valid; dropping one acknowledged element is caught", () => {
    fc.assert(
      fc.property(workload, fc.integer({ min: 1, max: 3 }), fc.nat(), (options, reads, pick) => {
        const events = simulateSetHistory({ ...options, reads });
        const verdict = checkSet(events);
        expect(verdict.valid).toBe(true);
        expect(verdict.counts.finalReads).toBe(reads);
        const acknowledged = events.filter((e) => e.type === "ok" && e.f === "add");
        fc.pre(acknowledged.length > 0);
        const element = (acknowledged[pick % acknowledged.length] as HistoryEvent).value;
        const finals = okReads(events);
        const target = finals[pick % finals.length] as number;
        const read = (events[target] as HistoryEvent).value as unknown[];
        const broken = checkSet(
          replace(
            events,
            target,
            read.filter((x) => x !== element),
          ),
        );
        expect(broken.valid).toBe(false);
        expect(broken.counts.lost).toBe(1);
        expect(broken.anomalies[0]).toMatchObject({ type: "lost", element });
      }),
      { numRuns: 200 },
    );
  });

  it("a correct bank's history is valid, its final read too; altering one balance is caught", () => {
    fc.assert(
      fc.property(
        workload,
        fc.integer({ min: 2, max: 6 }),
        fc.nat(),
        fc.integer({ min: -50, max: 50 }).filter((d) => d !== 0),
        (options, accounts, pick, delta) => {
          const bank = simulateBankHistory({ ...options, accounts });
          const verdict = checkBank(bank.history, bank);
          expect(verdict.anomalies).toEqual([]);
          expect(verdict.valid).toBe(true);
          if (verdict.counts.transfers.info <= 12) expect(verdict.final.checked).toBe(true);
          const reads = okReads(bank.history);
          const target = reads[pick % reads.length] as number;
          const balances = (bank.history[target] as HistoryEvent).value as Record<string, number>;
          const account = bank.accounts[pick % accounts] as string;
          const altered = { ...balances, [account]: (balances[account] as number) + delta };
          const broken = checkBank(replace(bank.history, target, altered), bank);
          expect(broken.valid).toBe(false);
          expect(broken.anomalies.map((a) => a.type)).toContain("wrong-total");
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a correct counter's replicas converge within bounds; altering one replica's value is caught", () => {
    fc.assert(
      fc.property(
        workload,
        fc.integer({ min: 2, max: 5 }),
        fc.boolean(),
        fc.nat(),
        fc.integer({ min: -5, max: 5 }).filter((d) => d !== 0),
        (options, n, decrements, pick, delta) => {
          const replicas = Array.from({ length: n }, (_, i) => `n${i + 1}`);
          const events = simulateCounterHistory({ ...options, replicas, decrements });
          const verdict = checkCounter(events, { replicas });
          expect(verdict.anomalies).toEqual([]);
          const reads = okReads(events);
          const target = reads[pick % reads.length] as number;
          const value = (events[target] as HistoryEvent).value as number;
          const broken = checkCounter(replace(events, target, value + delta), { replicas });
          expect(broken.valid).toBe(false);
          expect(broken.anomalies.map((a) => a.type)).toContain("diverged");
        },
      ),
      { numRuns: 200 },
    );
  });
});

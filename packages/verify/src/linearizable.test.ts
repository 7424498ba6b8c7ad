import { describe, expect, it } from "vitest";
import { pairOperations, type HistoryEvent, type Operation } from "./history.js";
import { checkLinearizable, type Verdict } from "./linearizable.js";
import type { Model } from "./model.js";
import { registerModel } from "./register-model.js";
import { cas, history, op, r, w } from "./test-support/histories.js";

const verdictOf = (events: HistoryEvent[], initial: unknown = null): Verdict["result"] =>
  checkLinearizable(events, { initial, timeoutMs: 20_000 }).result;

const notLinearizable = (verdict: Verdict) => {
  if (verdict.result !== "not-linearizable")
    throw new Error(`expected a violation, got ${verdict.result}`);
  return verdict.counterexample;
};

describe("MIT 6.824 / 6.5840 register histories", () => {
  // Examples 1-6 of the course's lecture notes "Consistency, Linearizability" (MIT 6.5840,
  // formerly 6.824; examples 1 and 2 also in the 6.824 notes l-raft2.txt), drawn to scale: x
  // starts undefined (nil here), Wx1 is put(x, 1), Rx2 is get(x) -> 2.
  it("example 1: overlapping reads may see either write (order Wx1 Rx1 Wx2 Rx2)", () => {
    //  |--Wx1--| |--Wx2--|
    //     |----Rx2----|
    //       |--Rx1--|
    expect(verdictOf(history(w(1, 1, 0, 8), w(1, 2, 10, 18), r(2, 2, 3, 15), r(3, 1, 5, 12)))).toBe(
      "linearizable",
    );
  });

  it("example 2: a read concurrent with a write may return the old value", () => {
    //  |-Wx1-| |----Wx2----|
    //                  |-Rx1-|
    expect(verdictOf(history(w(1, 1, 0, 6), w(1, 2, 8, 20), r(2, 1, 16, 22)))).toBe("linearizable");
  });

  it("example 3: ...but not after another read has seen the new value", () => {
    //  |-Wx1-| |----Wx2----|
    //    |---Rx2---|
    //                |-Rx1-|
    const events = history(w(1, 1, 0, 6), w(1, 2, 8, 20), r(2, 2, 3, 13), r(3, 1, 16, 22));
    const c = notLinearizable(checkLinearizable(events));
    expect(c.stuck[0]).toMatchObject({ f: "read", output: 1, call: 16 });
  });

  it("example 4: all clients must see concurrent writes in the same order", () => {
    // |--Wx0--|  |--Wx1--|
    //             |--Wx2--|
    // C1:      |-Rx2-| |-Rx1-|
    // C2:      |-Rx1-| |-Rx2-|
    const events = history(
      w(0, 0, 0, 8),
      w(1, 1, 11, 19),
      w(2, 2, 12, 20),
      r(3, 2, 9, 15),
      r(3, 1, 17, 23),
      r(4, 1, 9, 15),
      r(4, 2, 17, 23),
    );
    expect(verdictOf(events)).toBe("not-linearizable");
  });

  it("example 5: no stale reads, even by a client that never saw the write", () => {
    // |-Wx1-|
    //         |-Wx2-|
    //                 |-Rx1-|
    expect(verdictOf(history(w(1, 1, 0, 6), w(2, 2, 8, 14), r(3, 1, 16, 22)))).toBe(
      "not-linearizable",
    );
  });

  it("example 6: a retransmitted write executed twice is not linearizable", () => {
    // C1: |--------Wx1---------|   (the request was re-sent, and executed twice)
    // C2:        |-Wx2-|
    // C3:   |-Rx1-| |-Rx2-|  |-Rx1-|
    const events = history(
      w(1, 1, 0, 30),
      w(2, 2, 7, 13),
      r(3, 1, 2, 8),
      r(3, 2, 10, 16),
      r(3, 1, 20, 26),
    );
    expect(verdictOf(events)).toBe("not-linearizable");
  });

  // MIT 6.5840 Spring 2025 Exam I, questions 3 and 4: x is 10; C1 runs `t = get(x); put(x, t+1)`,
  // C2 runs `t = get(x); put(x, t*2)`. Which final values can a linearizable store produce? We
  // try every read result and final value, keep the ones the checker calls linearizable, and
  // compare with the exam's answers: {11, 20} for the first timeline, {11, 20, 22} for the
  // second.
  const finalValues = (timeline: {
    c1Read: [number, number];
    c1Write: [number, number];
    c2Read: [number, number];
    c2Write: [number, number];
  }): number[] => {
    const values = [10, 11, 20, 21, 22];
    const possible = new Set<number>();
    for (const t1 of values)
      for (const t2 of values)
        for (const final of values) {
          const events = history(
            r(1, t1, ...timeline.c1Read),
            w(1, t1 + 1, ...timeline.c1Write),
            r(2, t2, ...timeline.c2Read),
            w(2, t2 * 2, ...timeline.c2Write),
            r(3, final, 100, 101),
          );
          if (verdictOf(events, 10) === "linearizable") possible.add(final);
        }
    return [...possible].sort((a, b) => a - b);
  };

  it("exam question 3: both reads before both writes leave 11 or 20", () => {
    // C1: |--Rx?--| |--Wx?--|
    // C2: |--Rx?--| |--Wx?--|
    expect(
      finalValues({ c1Read: [0, 8], c1Write: [10, 18], c2Read: [0, 8], c2Write: [10, 18] }),
    ).toEqual([11, 20]);
  });

  it("exam question 4: a read overlapping the other client's write adds 22", () => {
    // C1: |--Rx?--| |--Wx?--|
    // C2:     |---Rx?---| |--Wx?--|
    expect(
      finalValues({ c1Read: [0, 8], c1Write: [10, 18], c2Read: [4, 14], c2Write: [16, 24] }),
    ).toEqual([11, 20, 22]);
  });
});

describe("register semantics", () => {
  it("starts registers at nil, or at the initial value given", () => {
    expect(verdictOf(history(r(1, null, 0, 1)))).toBe("linearizable");
    expect(verdictOf(history(r(1, 0, 0, 1)))).toBe("not-linearizable");
    expect(verdictOf(history(r(1, 0, 0, 1)), 0)).toBe("linearizable");
    expect(verdictOf(history(r(1, { a: [1, 2] }, 0, 1)), { a: [1, 2] })).toBe("linearizable");
  });

  it("rejects a stale read after a completed write, and accepts the old value only before it", () => {
    expect(verdictOf(history(w(1, 1, 0, 1), r(2, null, 2, 3)))).toBe("not-linearizable");
    expect(verdictOf(history(w(1, 1, 2, 3), r(2, null, 0, 1)))).toBe("linearizable");
  });

  it("treats operations that touch at one instant as concurrent", () => {
    // The read is invoked at the write's return time: either order is allowed.
    expect(verdictOf(history(w(1, 1, 0, 5), r(2, null, 5, 6)))).toBe("linearizable");
    expect(verdictOf(history(w(1, 1, 0, 5), r(2, null, 5.001, 6)))).toBe("not-linearizable");
  });

  it("compares values deeply: objects with keys in any order are equal", () => {
    expect(verdictOf(history(w(1, { a: 1, b: [2] }, 0, 1), r(2, { b: [2], a: 1 }, 2, 3)))).toBe(
      "linearizable",
    );
    expect(verdictOf(history(w(1, { a: 1 }, 0, 1), r(2, { a: "1" }, 2, 3)))).toBe(
      "not-linearizable",
    );
  });

  it("treats a failed cas as an observation that the compare did not match", () => {
    // After write 1, a cas expecting 2 may fail; one expecting 1 may not.
    expect(verdictOf(history(w(1, 1, 0, 1), cas(2, [2, 3], 2, 3, "fail")))).toBe("linearizable");
    expect(verdictOf(history(w(1, 1, 0, 1), cas(2, [1, 3], 2, 3, "fail")))).toBe(
      "not-linearizable",
    );
    // Concurrent with the write, the failed cas can come before it.
    expect(verdictOf(history(w(1, 1, 0, 4), cas(2, [1, 3], 2, 3, "fail")))).toBe("linearizable");
    // A failed cas expecting nil on a fresh register contradicts the register starting at nil.
    expect(verdictOf(history(cas(1, [null, 1], 0, 1, "fail")))).toBe("not-linearizable");
    expect(verdictOf(history(cas(1, [null, 1], 0, 1, "fail")), 0)).toBe("linearizable");
    // A successful cas sets the value, and needs the expected one.
    expect(verdictOf(history(w(1, 1, 0, 1), cas(2, [1, 3], 2, 3), r(3, 3, 4, 5)))).toBe(
      "linearizable",
    );
    expect(verdictOf(history(w(1, 1, 0, 1), cas(2, [2, 3], 2, 3)))).toBe("not-linearizable");
  });

  it("reads a failed cas as 'did not take effect' only when asked to (Knossos's reading)", () => {
    const events = history(w(1, 1, 0, 1), cas(2, [1, 3], 2, 3, "fail"), r(3, 1, 4, 5));
    expect(checkLinearizable(events).result).toBe("not-linearizable");
    expect(checkLinearizable(events, { failedCas: "no-effect" }).result).toBe("linearizable");
  });

  it("ignores failed reads and writes: they did not happen", () => {
    // After Knossos's immediate-failure history: a read concurrent with a write that failed
    // cannot see the write's value.
    expect(verdictOf(history(w(1, 3, 1, 3, "fail"), r(2, 3, 0, 4)))).toBe("not-linearizable");
    expect(verdictOf(history(w(1, 3, 1, 3, "fail"), r(2, null, 0, 4)))).toBe("linearizable");
    expect(
      verdictOf(history(op(1, "read", null, 7, 0, 1, { outcome: "fail" }), r(2, null, 2, 3))),
    ).toBe("linearizable");
  });

  it("checks keys independently", () => {
    const events = history(
      op(1, "write", 1, 1, 0, 1, { key: "a" }),
      op(2, "read", null, null, 2, 3, { key: "b" }),
      op(3, "read", null, 1, 4, 5, { key: "a" }),
    );
    expect(checkLinearizable(events)).toMatchObject({ result: "linearizable", partitions: 2 });
    const stale = history(
      op(1, "write", 1, 1, 0, 1, { key: "a" }),
      op(2, "read", null, null, 2, 3, { key: "a" }),
      op(3, "read", null, null, 2, 3, { key: "b" }),
    );
    expect(notLinearizable(checkLinearizable(stale)).key).toBe("a");
  });

  it("refuses operations a register does not know, naming their line", () => {
    const events: HistoryEvent[] = [
      { process: 0, type: "invoke", f: "increment", value: 1, line: 7 },
      { process: 0, type: "ok", f: "increment", value: 1, line: 8 },
    ];
    expect(() => checkLinearizable(events)).toThrow(/line 7: unknown operation "increment"/);
    expect(() => checkLinearizable(history(op(0, "cas", 3, 3, 0, 1)))).toThrow(
      /cas takes \[expected, new\], got 3/,
    );
  });
});

describe("operations of unknown outcome (info)", () => {
  const info = (p: number, f: string, input: unknown, call: number) =>
    op(p, f, input, undefined, call, Infinity, { outcome: "info" });

  it("may take effect late: after reads that did not see it", () => {
    const events = history(info(1, "write", 7, 0), r(2, null, 1, 2), r(3, 7, 3, 4));
    expect(verdictOf(events)).toBe("linearizable");
  });

  it("may take effect much later than it was invoked, between completed operations", () => {
    // The unknown write of 2 must land between the read of 1 and the read of 2.
    const events = history(
      w(1, 1, 0, 1),
      info(2, "write", 2, 2),
      r(3, 1, 3, 4),
      w(4, 1, 5, 6),
      r(3, 1, 7, 8),
      r(3, 2, 9, 10),
      r(5, 2, 11, 12),
    );
    expect(verdictOf(events)).toBe("linearizable");
  });

  it("may never take effect", () => {
    expect(verdictOf(history(info(1, "write", 7, 0), r(2, null, 5, 6), r(2, null, 7, 8)))).toBe(
      "linearizable",
    );
    expect(verdictOf(history(info(1, "cas", [null, 7], 0), r(2, null, 5, 6)))).toBe("linearizable");
  });

  it("cannot be seen and then unseen, nor seen before it was invoked", () => {
    expect(verdictOf(history(info(1, "write", 7, 0), r(2, 7, 1, 2), r(3, null, 3, 4)))).toBe(
      "not-linearizable",
    );
    expect(verdictOf(history(r(2, 7, 0, 1), info(1, "write", 7, 2)))).toBe("not-linearizable");
  });

  it("an unknown cas takes effect only where its compare matches", () => {
    expect(verdictOf(history(w(1, 1, 0, 1), info(2, "cas", [1, 2], 2), r(3, 2, 5, 6)))).toBe(
      "linearizable",
    );
    expect(verdictOf(history(w(1, 1, 0, 1), info(2, "cas", [5, 2], 2), r(3, 2, 5, 6)))).toBe(
      "not-linearizable",
    );
  });

  it("pairs an invocation that never completes as info", () => {
    const [pending] = pairOperations([{ process: 0, type: "invoke", f: "write", value: 1 }]);
    expect(pending).toMatchObject({ outcome: "info", ret: Infinity, output: undefined });
  });
});

describe("counterexamples", () => {
  it("blames the operation that went wrong, not a later correct one", () => {
    // After Knossos's rethink-fail-minimal history: the value is 0; a write of 4 and a read run
    // concurrently and the read returns 3, which nobody wrote; a later read of 4 is fine.
    const events = history(w(0, 0, 0, 1), r(1, 3, 2, 4), w(2, 4, 3, 5), r(3, 4, 6, 7));
    const c = notLinearizable(checkLinearizable(events));
    expect(c.stuck[0]).toMatchObject({ process: 1, f: "read", output: 3 });
    expect(c.operations.map((o) => o.process)).not.toContain(3);
  });

  it("shrinks a long history to the few operations that show the violation", () => {
    // 200 clean write-read rounds, then a stale read, then 200 more rounds.
    const rounds = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => {
        const t = (from + i) * 10;
        return [
          ...w(1, from + i, t, t + 2),
          ...r(2, from + i, t + 3, t + 5),
          ...r(3, from + i, t + 4, t + 6),
        ];
      });
    const stale = r(4, 150, 2_007, 2_009); // the last write, of 199, returned at 1992
    const events = history(...rounds(0, 200), stale, ...rounds(201, 200));
    const c = notLinearizable(checkLinearizable(events));
    expect(c.partitionOperations).toBe(1_201);
    expect(c.cut).toBe(2_009); // the history as it stood when the stale read returned
    expect(c.stuck[0]).toMatchObject({ process: 4, output: 150 });
    // What remains: the write of 150, a later write that completed before the read began, and
    // the read. The write of 150 cannot go — the read would then look like a read of a value
    // nobody wrote, a different violation.
    expect(
      c.operations.map((o) => `${o.f} ${String(o.f === "read" ? o.output : o.input)}`),
    ).toEqual(["write 150", "write 199", "read 150"]);
    expect(c.linearized.map((o) => o.input)).toEqual([150, 199]);
    expect(c.state).toBe(199);
  });

  it("shrinks a read of a value nobody wrote to that read alone", () => {
    const rounds = Array.from({ length: 100 }, (_, i) => [
      ...w(1, i % 3, i * 10, i * 10 + 2),
      ...r(2, i % 3, i * 10 + 3, i * 10 + 5),
      ...cas(3, [i % 3, (i + 1) % 3], i * 10 + 6, i * 10 + 8),
    ]);
    const events = history(...rounds, r(4, 7, 503, 504));
    const c = notLinearizable(checkLinearizable(events));
    expect(c.operations).toEqual([expect.objectContaining({ f: "read", output: 7 })]);
    expect(c.linearized).toEqual([]);
  });

  it("can report the whole failing partition, unshrunk", () => {
    const events = history(w(1, 1, 0, 1), r(2, 1, 2, 3), r(3, null, 4, 5));
    const c = notLinearizable(checkLinearizable(events, { shrink: false }));
    expect(c.operations).toHaveLength(3);
    expect(c.cut).toBeUndefined();
  });
});

describe("budget", () => {
  // Twenty-four writes of unknown outcome, of 0 and of 1, then reads alternating 0, 1, 0, ...
  // one time more than the writes allow: not linearizable, but only after trying which writes
  // explain which reads — every subset of them.
  const hard = (): HistoryEvent[] => {
    const writes = Array.from({ length: 24 }, (_, i) =>
      op(i, "write", i % 2, undefined, 0, Infinity, { outcome: "info" }),
    );
    const reads = Array.from({ length: 25 }, (_, j) => r(100, j % 2, 10 + 2 * j, 11 + 2 * j));
    return history(...writes, ...reads);
  };

  it("answers unknown when the step budget runs out", () => {
    const verdict = checkLinearizable(hard(), { maxSteps: 10_000 });
    expect(verdict).toMatchObject({ result: "unknown", reason: "timeout", checked: 0 });
    expect(verdict.steps).toBeLessThanOrEqual(10_001);
  });

  it("answers unknown, not forever, when the time budget runs out", () => {
    const started = performance.now();
    const verdict = checkLinearizable(hard(), { timeoutMs: 200 });
    const ms = performance.now() - started;
    expect(verdict.result).toBe("unknown");
    expect(ms).toBeLessThan(5_000);
  });

  it("still reports a violation found in one key when another key runs out of budget", () => {
    const events = [
      ...hard().map((e) => ({ ...e, key: "hard" })),
      ...history(w(200, 1, 0, 1), r(201, null, 2, 3)).map((e) => ({ ...e, key: "easy" })),
    ];
    const verdict = checkLinearizable(events, { timeoutMs: 2_000 });
    expect(notLinearizable(verdict).key).toBe("easy");
  });
});

describe("the search is generic", () => {
  // A FIFO queue: enqueue x; dequeue returns the head (null when empty). The same search,
  // another model.
  type Queue = readonly unknown[];
  const queue: Model<Queue> = {
    init: () => [],
    step(state, o) {
      if (o.f === "enqueue") return { ok: true, state: [...state, o.input] };
      if (o.outcome === "info") return { ok: true, state: state.slice(1) };
      const head = state[0] ?? null;
      return head === (o.output ?? null) ? { ok: true, state: state.slice(1) } : { ok: false };
    },
    equal: (a, b) => a.length === b.length && a.every((x, i) => x === b[i]),
    hash: (s) => s.reduce<number>((h, x) => Math.imul(h ^ Number(x), 31), s.length),
  };
  const check = (events: HistoryEvent[]): Verdict["result"] =>
    checkLinearizable(pairOperations(events), queue).result;

  it("accepts FIFO order, and either order for concurrent enqueues", () => {
    const e = (p: number, x: number, call: number, ret: number) =>
      op(p, "enqueue", x, null, call, ret);
    const d = (p: number, x: number | null, call: number, ret: number) =>
      op(p, "dequeue", null, x, call, ret);
    expect(check(history(e(1, 1, 0, 1), e(1, 2, 2, 3), d(2, 1, 4, 5), d(2, 2, 6, 7)))).toBe(
      "linearizable",
    );
    expect(check(history(e(1, 1, 0, 1), e(1, 2, 2, 3), d(2, 2, 4, 5)))).toBe("not-linearizable");
    expect(check(history(e(1, 1, 0, 4), e(2, 2, 1, 3), d(3, 2, 5, 6), d(3, 1, 7, 8)))).toBe(
      "linearizable",
    );
    expect(check(history(d(1, null, 0, 1), e(2, 1, 2, 3), d(1, null, 4, 5)))).toBe(
      "not-linearizable",
    );
  });

  it("takes operations with a model (the form the conformance suite uses)", () => {
    const ops: Operation[] = pairOperations(history(w(1, 1, 0, 1), r(2, 1, 2, 3)));
    expect(checkLinearizable(ops, registerModel(null), { timeoutMs: 1_000 }).result).toBe(
      "linearizable",
    );
  });
});

import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pairOperations, type HistoryEvent, type Operation } from "./history.js";
import { checkLinearizable } from "./linearizable.js";
import { registerModel } from "./model.js";

/** An operation with explicit times: [call, return], or return undefined for info. */
function op(
  process: number,
  f: string,
  input: unknown,
  output: unknown,
  call: number,
  ret: number | undefined,
  key = "x",
): HistoryEvent[] {
  const invoke: HistoryEvent = { process, type: "invoke", f, value: input, key, time: call };
  if (ret === undefined) return [invoke];
  return [invoke, { process, type: "ok", f, value: output, key, time: ret }];
}

function check(events: HistoryEvent[], initial: unknown = null) {
  const sorted = [...events].sort((a, b) => (a.time ?? 0) - (b.time ?? 0));
  return checkLinearizable(pairOperations(sorted), registerModel(initial), { timeoutMs: 20_000 });
}

describe("linearizability of register histories", () => {
  // The two example histories of MIT 6.824's lecture notes on linearizability
  // (pdos.csail.mit.edu/6.824/notes/l-raft2.txt, "example history 1" and "2").
  it("accepts 6.824's example history 1 (order Wx1 Rx1 Wx2 Rx2)", () => {
    const history = [
      ...op(1, "write", 1, null, 0, 10),
      ...op(1, "write", 2, null, 20, 30),
      ...op(2, "read", null, 2, 5, 25),
      ...op(3, "read", null, 1, 8, 18),
    ];
    expect(check(history).result).toBe("linearizable");
  });

  it("rejects 6.824's example history 2 (a read of 1 after a read of 2 and after Wx2 completed)", () => {
    const history = [
      ...op(1, "write", 1, null, 0, 10),
      ...op(1, "write", 2, null, 20, 30),
      ...op(2, "read", null, 2, 5, 25),
      ...op(3, "read", null, 1, 40, 50),
    ];
    const verdict = check(history);
    expect(verdict.result).toBe("not-linearizable");
    if (verdict.result === "not-linearizable") {
      expect(verdict.counterexample.key).toBe("x");
      expect(verdict.counterexample.stuck.some((o) => o.f === "read" && o.output === 1)).toBe(true);
    }
  });

  it("rejects a stale read after a completed write, and accepts the initial value only before it", () => {
    expect(
      check([...op(1, "write", 1, null, 0, 1), ...op(2, "read", null, null, 2, 3)]).result,
    ).toBe("not-linearizable");
    expect(
      check([...op(1, "write", 1, null, 2, 3), ...op(2, "read", null, null, 0, 1)]).result,
    ).toBe("linearizable");
    expect(check([...op(2, "read", null, 5, 0, 1)], 5).result).toBe("linearizable");
  });

  it("lets an info write take effect late or never, but not before its invocation", () => {
    // The write's outcome is unknown: reads may see it or not.
    expect(
      check([
        ...op(1, "write", 7, null, 0, undefined),
        ...op(2, "read", null, null, 1, 2),
        ...op(3, "read", null, 7, 3, 4),
      ]).result,
    ).toBe("linearizable");
    expect(
      check([...op(1, "write", 7, null, 0, undefined), ...op(2, "read", null, null, 5, 6)]).result,
    ).toBe("linearizable");
    // ...but once seen, it cannot be unseen.
    expect(
      check([
        ...op(1, "write", 7, null, 0, undefined),
        ...op(2, "read", null, 7, 1, 2),
        ...op(3, "read", null, null, 3, 4),
      ]).result,
    ).toBe("not-linearizable");
    // ...and it cannot be seen before it was invoked.
    expect(
      check([...op(2, "read", null, 7, 0, 1), ...op(1, "write", 7, null, 2, undefined)]).result,
    ).toBe("not-linearizable");
  });

  it("treats a failed cas as an observation that the compare did not match", () => {
    const failedCas = (
      process: number,
      expected: unknown,
      next: unknown,
      call: number,
      ret: number,
    ): HistoryEvent[] => [
      { process, type: "invoke", f: "cas", value: [expected, next], key: "x", time: call },
      { process, type: "fail", f: "cas", value: [expected, next], key: "x", time: ret },
    ];
    expect(check([...op(1, "write", 1, null, 0, 1), ...failedCas(2, 2, 3, 2, 3)]).result).toBe(
      "linearizable",
    );
    expect(check([...op(1, "write", 1, null, 0, 1), ...failedCas(2, 1, 3, 2, 3)]).result).toBe(
      "not-linearizable",
    );
    expect(
      check([
        ...op(1, "write", 1, null, 0, 1),
        ...op(2, "cas", [1, 3], null, 2, 3),
        ...op(3, "read", null, 3, 4, 5),
      ]).result,
    ).toBe("linearizable");
    // A failed write or read did not happen and constrains nothing.
    expect(
      check([
        { process: 1, type: "invoke", f: "write", value: 9, key: "x", time: 0 },
        { process: 1, type: "fail", f: "write", value: 9, key: "x", time: 1 },
        ...op(2, "read", null, null, 2, 3),
      ]).result,
    ).toBe("linearizable");
  });

  it("checks keys independently", () => {
    const history = [
      ...op(1, "write", 1, null, 0, 1, "a"),
      ...op(2, "read", null, null, 2, 3, "b"),
      ...op(3, "read", null, 1, 4, 5, "a"),
    ];
    const verdict = check(history);
    expect(verdict).toMatchObject({ result: "linearizable", partitions: 2 });
  });
});

// ---- random histories from a concurrent simulation of a sequential register ----------------

interface Sim {
  events: HistoryEvent[];
  reads: number[];
}

/**
 * Simulates clients on registers: each operation takes effect at a random instant inside its
 * interval, in effect order, so the history is linearizable by construction. Some operations
 * crash (info): their effect may or may not happen.
 */
function simulate(
  seed: number,
  clients: number,
  opsPerClient: number,
  keys: number,
  crashRate = 0.03,
): Sim {
  let s = seed >>> 0 || 1;
  const rand = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  type Planned = {
    process: number;
    key: string;
    f: string;
    input: unknown;
    call: number;
    ret: number;
    effect: number;
    crash: boolean;
    applies: boolean;
  };
  const planned: Planned[] = [];
  let counter = 0;
  for (let c = 0; c < clients; c++) {
    let t = rand() * 10;
    for (let i = 0; i < opsPerClient; i++) {
      const call = t + rand() * 5;
      const ret = call + 1 + rand() * 20;
      const r = rand();
      const f = r < 0.5 ? "read" : r < 0.8 ? "write" : "cas";
      const key = `k${Math.floor(rand() * keys)}`;
      const crash = rand() < crashRate;
      planned.push({
        process: c,
        key,
        f,
        input:
          f === "write"
            ? ++counter
            : f === "cas"
              ? [Math.floor(rand() * counter), ++counter]
              : null,
        call,
        ret,
        effect: call + rand() * (ret - call),
        crash,
        applies: !crash || rand() < 0.5,
      });
      t = ret + rand() * 3;
      if (crash) break; // a crashed client stops
    }
  }
  const registers = new Map<string, unknown>();
  const outputs = new Map<Planned, { outcome: "ok" | "fail"; value: unknown }>();
  for (const p of [...planned].sort((a, b) => a.effect - b.effect)) {
    if (!p.applies) continue;
    const current = registers.get(p.key) ?? null;
    if (p.f === "read") outputs.set(p, { outcome: "ok", value: current });
    else if (p.f === "write") {
      registers.set(p.key, p.input);
      outputs.set(p, { outcome: "ok", value: null });
    } else {
      const [expected, next] = p.input as [unknown, unknown];
      const matches = current === expected;
      if (matches) registers.set(p.key, next);
      outputs.set(p, { outcome: matches ? "ok" : "fail", value: p.input });
    }
  }
  const events: Array<HistoryEvent & { time: number }> = [];
  for (const p of planned) {
    events.push({
      process: p.process,
      type: "invoke",
      f: p.f,
      value: p.input,
      key: p.key,
      time: p.call,
    });
    if (p.crash) continue; // never completes: info
    const out = outputs.get(p) as { outcome: "ok" | "fail"; value: unknown };
    events.push({
      process: p.process,
      type: out.outcome,
      f: p.f,
      value: out.value,
      key: p.key,
      time: p.ret,
    });
  }
  events.sort((a, b) => a.time - b.time);
  const reads = events.flatMap((e, i) => (e.type === "ok" && e.f === "read" ? [i] : []));
  return { events, reads };
}

describe("random histories", () => {
  it("accepts every history a sequential register produces under concurrency", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), (seed) => {
        const { events } = simulate(seed, 6, 25, 3);
        return check(events).result === "linearizable";
      }),
      { numRuns: 60 },
    );
  });

  it("rejects the same histories with one read result corrupted", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.nat(), (seed, pick) => {
        const { events, reads } = simulate(seed, 6, 25, 3);
        fc.pre(reads.length > 0);
        const i = reads[pick % reads.length] as number;
        const corrupted = events.map((e, j) => (j === i ? { ...e, value: -1 } : e)); // a value never written
        return check(corrupted).result === "not-linearizable";
      }),
      { numRuns: 60 },
    );
  });

  it("checks a 10,000-operation history of 10 clients within seconds, partitioned by key", () => {
    const { events } = simulate(12345, 10, 1_000, 20, 0.0002);
    const ops: Operation[] = pairOperations(events);
    expect(ops.length).toBeGreaterThan(9_000);
    const started = performance.now();
    const verdict = checkLinearizable(ops, registerModel(null), { timeoutMs: 60_000 });
    const ms = performance.now() - started;
    console.log(`checked ${ops.length} operations (10 clients, 20 keys) in ${Math.round(ms)} ms`);
    expect(verdict.result).toBe("linearizable");
    expect(ms).toBeLessThan(20_000);
  });

  it("answers unknown, not forever, when the budget runs out", () => {
    const { events } = simulate(7, 10, 1_000, 1, 0.0002);
    const verdict = checkLinearizable(pairOperations(events), registerModel(null), {
      timeoutMs: 1,
    });
    expect(["unknown", "linearizable"]).toContain(verdict.result);
  });
});

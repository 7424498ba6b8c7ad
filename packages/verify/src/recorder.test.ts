import { describe, expect, it } from "vitest";
import { parseJsonHistory } from "./formats/json.js";
import { pairOperations } from "./history.js";
import { RecorderError, createRecorder } from "./recorder.js";

const fakeClock = (): (() => number) => {
  let t = 0;
  return () => (t += 1);
};

describe("createRecorder", () => {
  it("records invocations and completions with times from the clock", () => {
    const recorder = createRecorder({ now: fakeClock() });
    const write = recorder.invoke(0, "write", 3, "x");
    const read = recorder.invoke(1, "read", null, "x");
    write.ok();
    read.ok(3);
    recorder.invoke(2, "cas", [3, 4], "x").fail();
    recorder.invoke(3, "write", 5, "x").info();
    expect(recorder.events()).toEqual([
      { process: 0, type: "invoke", f: "write", value: 3, key: "x", time: 1 },
      { process: 1, type: "invoke", f: "read", value: null, key: "x", time: 2 },
      { process: 0, type: "ok", f: "write", value: 3, key: "x", time: 3 },
      { process: 1, type: "ok", f: "read", value: 3, key: "x", time: 4 },
      { process: 2, type: "invoke", f: "cas", value: [3, 4], key: "x", time: 5 },
      { process: 2, type: "fail", f: "cas", value: [3, 4], key: "x", time: 6 },
      { process: 3, type: "invoke", f: "write", value: 5, key: "x", time: 7 },
      { process: 3, type: "info", f: "write", value: 5, key: "x", time: 8 },
    ]);
    expect(recorder.operations().map((op) => [op.process, op.outcome, op.call, op.ret])).toEqual([
      [0, "ok", 1, 3],
      [1, "ok", 2, 4],
      [2, "fail", 5, 6],
      [3, "info", 7, Infinity],
    ]);
  });

  it("refuses a second invocation from a process with an operation in flight", () => {
    const recorder = createRecorder();
    const op = recorder.invoke("c1", "add", 1);
    expect(() => recorder.invoke("c1", "add", 2)).toThrow(
      expect.objectContaining({
        code: "PROCESS_BUSY",
        message: expect.stringMatching(/process c1 invokes add while its add is in flight/),
      }),
    );
    op.ok();
    expect(() => op.fail()).toThrow(RecorderError);
    expect(() => recorder.invoke("c1", "add", 2)).not.toThrow();
  });

  it("takes a discarded operation out of the history, and frees its process", () => {
    const recorder = createRecorder({ now: fakeClock() });
    const kept = recorder.invoke(0, "write", 1, "x");
    const refused = recorder.invoke(1, "cas", [1, 2], "x");
    kept.ok();
    refused.discard();
    expect(() => refused.ok()).toThrow(RecorderError);
    expect(() => kept.discard()).toThrow(RecorderError);
    expect(recorder.events().map((e) => [e.process, e.type])).toEqual([
      [0, "invoke"],
      [0, "ok"],
    ]);
    expect(() => recorder.invoke(1, "read", null, "x")).not.toThrow();
  });

  it("never lets time run backwards, whatever the clock does", () => {
    const times = [5, 3, 8, Number.NaN, 7];
    const recorder = createRecorder({ now: () => times.shift() ?? 9 });
    recorder.invoke(0, "read", null).ok(1);
    recorder.invoke(0, "read", null).ok(1);
    recorder.invoke(0, "read", null).ok(1);
    expect(recorder.events().map((e) => e.time)).toEqual([5, 5, 8, 8, 8, 9]);
  });

  it("records async operations as ok, fail or info, and rethrows their errors", async () => {
    const recorder = createRecorder({ now: fakeClock() });
    const rejected = new Error("rejected");
    const classify = (error: unknown) => (error === rejected ? "fail" : "info");
    await expect(recorder.record(0, "add", 1, () => Promise.resolve(), classify)).resolves.toBe(
      undefined,
    );
    await expect(
      recorder.record({ process: 1, f: "read", value: null, key: "n1" }, () =>
        Promise.resolve([1]),
      ),
    ).resolves.toEqual([1]);
    await expect(
      recorder.record(0, "add", 2, () => Promise.reject(rejected), classify),
    ).rejects.toBe(rejected);
    await expect(
      recorder.record(0, "add", 3, () => Promise.reject(new Error("timeout")), classify),
    ).rejects.toThrow("timeout");
    await expect(
      recorder.record(
        0,
        "add",
        4,
        () => Promise.reject(new Error("?")),
        () => {
          throw new Error("classifier bug");
        },
      ),
    ).rejects.toThrow("?");
    expect(
      recorder.operations().map((op) => [op.f, op.key, op.outcome, op.input, op.output]),
    ).toEqual([
      ["add", "", "ok", 1, 1],
      ["read", "n1", "ok", null, [1]],
      ["add", "", "fail", 2, 2],
      ["add", "", "info", 3, undefined],
      ["add", "", "info", 4, undefined],
    ]);
    expect(
      recorder
        .events()
        .filter((e) => e.error !== undefined)
        .map((e) => e.error),
    ).toEqual(["Error: rejected", "Error: timeout", "Error: ?"]);
  });

  it("keeps many concurrent processes apart", async () => {
    const recorder = createRecorder();
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await Promise.all(
      Array.from({ length: 50 }, async (_, p) => {
        for (let i = 0; i < 5; i++)
          await recorder.record(p, "add", p * 100 + i, () => wait((p * 7 + i * 3) % 5));
      }),
    );
    const ops = pairOperations(recorder.events());
    expect(ops).toHaveLength(250);
    expect(ops.every((op) => op.outcome === "ok" && op.ret >= op.call)).toBe(true);
  });

  it("writes JSON that parseJsonHistory reads back to the same history", () => {
    const recorder = createRecorder({ now: fakeClock() });
    recorder.invoke(0, "transfer", { from: "a", to: "b", amount: 5 }).ok();
    const read = recorder.invoke("reader", "read", null, "n1");
    recorder.invoke(2, "add", 'x\n"quoted"').info();
    read.ok({ a: 5, b: 15 });
    recorder.invoke(3, "add", [1, { nested: true }]);
    const parsed = parseJsonHistory(recorder.toJson());
    expect(parsed.map(({ line: _line, ...event }) => event)).toEqual(
      recorder.events().map(({ error: _error, ...event }) => event),
    );
    expect(parsed.map((e) => e.line)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(pairOperations(parsed).map((op) => op.outcome)).toEqual(["ok", "info", "ok", "info"]);
  });

  it("refuses to write a value JSON cannot carry, naming the event", () => {
    const recorder = createRecorder();
    recorder.invoke(0, "add", 10n).ok();
    expect(() => recorder.toJson()).toThrow(
      expect.objectContaining({
        code: "NOT_JSON",
        message: expect.stringMatching(/event 0 .*bigint/),
      }),
    );
  });
});

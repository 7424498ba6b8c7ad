import { describe, expect, it } from "vitest";
import { HistoryError, pairOperations } from "../history.js";
import { checkLinearizable } from "../linearizable.js";
import { EdnReader, toPlain } from "./edn-reader.js";
import {
  detectFormat,
  parseEdnHistory,
  parseHistory,
  parseJepsenLog,
  parseJsonHistory,
} from "./index.js";

/** The HistoryError `fn` throws, for asserting on its message and place. */
function errorOf(fn: () => unknown): HistoryError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HistoryError) return error;
    throw error;
  }
  throw new Error("expected a HistoryError");
}

describe("the EDN reader", () => {
  const read = (text: string): unknown => toPlain(new EdnReader(text).read().value);

  it("reads the values Jepsen histories use", () => {
    expect(read("nil")).toBeNull();
    expect(read("[true false]")).toEqual([true, false]);
    expect(read("[-3 +4 0 12N 1.5 -2.5e3 7M]")).toEqual([-3, 4, 0, 12, 1.5, -2500, 7]);
    expect(read(":timed-out")).toBe("timed-out");
    expect(read(":jepsen.nemesis/start")).toBe("jepsen.nemesis/start");
    expect(read('"a \\"quoted\\" \\\\ \\n \\u00e9"')).toBe('a "quoted" \\ \n é');
    expect(read("(1 [2 (3)] nil)")).toEqual([1, [2, [3]], null]);
    expect(read('{:a 1, "b" 2, 3 [4]}')).toEqual({ a: 1, b: 2, "3": [4] });
    expect(read("[1 ; a comment\n ,, 2]")).toEqual([1, 2]);
  });

  it("refuses everything else with its line and column", () => {
    const cases: Array<[string, RegExp]> = [
      ["#{1 2}", /line 1, column 1: sets .* are not supported/],
      ['#inst "2024-01-01"', /line 1, column 1: tagged literals \(#inst\) are not supported/],
      ["[1\n  foo]", /line 2, column 3: unexpected symbol "foo"/],
      ["\\a", /characters .* are not supported/],
      ["1/2", /malformed number "1\/2"/],
      ["12345678901234567890", /too large to be represented exactly/],
      ['"abc', /line 1, column 1: unterminated string/],
      ['"a\\qb"', /line 1, column 3: unknown escape "\\q"/],
      ["{:a 1 :a 2}", /line 1, column 7: duplicate map key :a/],
      ["{[1] 2}", /map keys must be keywords, strings or numbers/],
      ["{:a}", /map key :a has no value/],
      ["[1 2", /line 1, column 1: missing "]"/],
      ["\n\n  {:a 1", /line 3, column 3: missing "}"/],
      ["]", /unexpected "]"/],
      [":", /malformed keyword ":"/],
    ];
    for (const [text, message] of cases) {
      const error = errorOf(() => new EdnReader(text).read());
      expect(error.message, text).toMatch(message);
      expect(error.line, text).toBeGreaterThanOrEqual(1);
    }
  });
});

describe("Jepsen EDN histories", () => {
  it("reads maps one after another, with cas vectors, nil and keywords", () => {
    const events = parseEdnHistory(`
      {:process 0, :type :invoke, :f :write, :value 3}
      {:process 1, :type :invoke, :f :read, :value nil}
      {:process 0, :type :ok, :f :write, :value 3}
      {:process 1, :type :ok, :f :read, :value 3, :time 1234, :index 3}
      ; a comment
      {:process 0, :type :invoke, :f :cas, :value [3 4]}
      {:process 0, :type :fail, :f :cas, :value [3 4], :error [:mismatch "was 3"]}`);
    expect(events).toHaveLength(6);
    expect(events[0]).toEqual({ process: 0, type: "invoke", f: "write", value: 3, line: 2 });
    expect(events[1]?.value).toBeNull();
    expect(events[3]).toMatchObject({ time: 1234, line: 5 });
    expect(events[4]).toMatchObject({ f: "cas", value: [3, 4], line: 7 });
  });

  it("reads a whole history in one vector or list, as Knossos stores them", () => {
    const vector = parseEdnHistory(
      "[{:process 0 :type :invoke :f :read :value nil}\n {:process 0 :type :ok :f :read :value 1}]",
    );
    expect(vector.map((e) => e.line)).toEqual([1, 2]);
    const list = parseEdnHistory("({:process 0 :type :invoke :f :read :value nil})");
    expect(list).toHaveLength(1);
  });

  it("leaves out the nemesis, whose events are not client operations", () => {
    const events = parseEdnHistory(
      `
      {:process :nemesis, :type :info, :f :start, :value nil}
      {:process 0, :type :invoke, :f :write, :value 1}
      {:process :nemesis, :type :info, :f :start, :value [:isolated {"n1" #{}}]}`.replace(
        "#{}",
        "[]",
      ),
    );
    expect(events.map((e) => e.process)).toEqual([0]);
  });

  it("names the line of a malformed event", () => {
    const text = [
      "{:process 0, :type :invoke, :f :write, :value 1}",
      "{:process 0, :type :bogus, :f :write, :value 1}",
    ].join("\n");
    const error = errorOf(() => parseEdnHistory(text));
    expect(error.message).toBe('line 2: type must be one of invoke, ok, fail, info, got "bogus"');
    expect(error.line).toBe(2);
    expect(errorOf(() => parseEdnHistory("{:type :ok, :f :read}")).message).toMatch(
      /line 1: process must be an integer or a name, got nothing/,
    );
    expect(errorOf(() => parseEdnHistory("{:process 0, :type :ok}")).message).toMatch(
      /f must name the operation/,
    );
    expect(
      errorOf(() => parseEdnHistory("{:process 0 :type :ok :f :read :time :now}")).message,
    ).toMatch(/time must be a finite number/);
    expect(errorOf(() => parseEdnHistory("[1 2]")).message).toMatch(
      /line 1, column 1: expected an event map/,
    );
    expect(errorOf(() => parseEdnHistory("   ")).message).toMatch(/empty/);
    expect(
      errorOf(() => parseEdnHistory("{:process 0,\n :type :invoke, :value #{1}}")).message,
    ).toMatch(/line 2, column 24: sets/);
  });
});

describe("Jepsen log lines", () => {
  it("reads tab-separated operations and skips other log lines", () => {
    const events = parseJepsenLog(
      [
        "2024-01-01 12:00:00,000{GMT}\tINFO  jepsen.core - Running test",
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]",
        "INFO  jepsen.util - Relative time begins now",
        "INFO  jepsen.util - 2\t:ok\t:cas\t[3 0]",
        "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
        "INFO  jepsen.util - 1\t:ok\t:read\t0",
        "INFO  jepsen.util - 3\t:invoke\t:write\t4",
        "INFO  jepsen.util - 3\t:info\t:write\t:timed-out\t[:connect-timeout]",
      ].join("\n"),
    );
    expect(
      events.map(
        (e) => `${String(e.process)} ${e.type} ${e.f} ${JSON.stringify(e.value)} @${e.line}`,
      ),
    ).toEqual([
      "2 invoke cas [3,0] @2",
      "2 ok cas [3,0] @4",
      "1 invoke read null @6",
      "1 ok read 0 @7",
      "3 invoke write 4 @8",
      '3 info write "timed-out" @9',
    ]);
    expect(checkLinearizable(pairOperations(events), { initial: 3 }).result).toBe("linearizable");
  });

  it("accepts fields separated by spaces, as some of Porcupine's test logs are", () => {
    const events = parseJepsenLog(
      "INFO  jepsen.util - 1   :invoke :cas    [1 2]\nINFO  jepsen.util - 1 :fail :cas [1 2]",
    );
    expect(events.map((e) => [e.type, e.value])).toEqual([
      ["invoke", [1, 2]],
      ["fail", [1, 2]],
    ]);
  });

  it("names the line (and column) of a malformed operation line", () => {
    const log = (line: string) => `INFO  jepsen.util - 0\t:invoke\t:read\tnil\n${line}`;
    expect(
      errorOf(() => parseJepsenLog(log("INFO  jepsen.util - 0\t:ok\t:read\t[1 2"))).message,
    ).toBe('EDN line 2, column 33: missing "]" for the one opened here');
    expect(errorOf(() => parseJepsenLog(log("INFO  jepsen.util - 0\t:ok\tread\t1"))).message).toBe(
      'line 2: f must be a keyword such as :read, got "read"',
    );
    expect(
      errorOf(() => parseJepsenLog(log("INFO  jepsen.util - 0\t:done\t:read\t1"))).message,
    ).toMatch(/line 2: type must be one of invoke, ok, fail, info/);
    expect(
      errorOf(() => parseJepsenLog(log("INFO  jepsen.util - 0\t:ok\t:read\t1 2"))).message,
    ).toBe('line 2: unexpected "2" after the value');
    expect(errorOf(() => parseJepsenLog(log("INFO  jepsen.util - 0\t:ok"))).message).toMatch(
      /line 2: expected <process> :<type> :<f> <value>/,
    );
    expect(errorOf(() => parseJepsenLog("nothing here\nat all")).message).toMatch(
      /no Jepsen operation lines/,
    );
  });
});

describe("Strata's JSON histories", () => {
  const events = [
    { process: "a", type: "invoke", f: "write", value: 1, key: "k1", time: 0 },
    { process: "a", type: "ok", f: "write", value: 1, key: "k1", time: 1.5 },
  ];

  it("reads an array, a { history } object, and JSON Lines", () => {
    const fromArray = parseJsonHistory(JSON.stringify(events, null, 2));
    expect(fromArray[0]).toEqual({ ...events[0], line: 2 });
    expect(fromArray[1]?.line).toBe(10);
    const fromObject = parseJsonHistory(JSON.stringify({ test: "demo", history: events }));
    expect(fromObject.map((e) => e.type)).toEqual(["invoke", "ok"]);
    const fromLines = parseJsonHistory(`${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
    expect(fromLines.map((e) => e.line)).toEqual([1, 2]);
    expect(parseJsonHistory(JSON.stringify(events[0]))).toHaveLength(1);
  });

  it("takes numeric keys as names and missing values as nil", () => {
    const [event] = parseJsonHistory('[{"process": 1, "type": "invoke", "f": "read", "key": 7}]');
    expect(event).toMatchObject({ key: "7", value: null });
  });

  it("names the line of a malformed event or of a syntax error", () => {
    const text =
      '[\n{"process": 0, "type": "invoke", "f": "read"},\n{"process": 0, "type": "done", "f": "read"}\n]';
    expect(errorOf(() => parseJsonHistory(text)).message).toMatch(/^line 3: type must be one of/);
    const lines =
      '{"process": 0, "type": "invoke", "f": "read"}\n{"process": 0, "type": "ok", "f": "read"\n';
    expect(errorOf(() => parseJsonHistory(lines)).message).toMatch(/not valid JSON.*line 2/);
    expect(errorOf(() => parseJsonHistory("{nope")).message).toMatch(/not valid JSON/);
    expect(errorOf(() => parseJsonHistory("[1]")).message).toBe("line 1: expected an event object");
    expect(errorOf(() => parseJsonHistory('{"history": 3}')).message).toMatch(
      /expected an array of events/,
    );
    expect(errorOf(() => parseJsonHistory("")).message).toMatch(/empty/);
    expect(
      errorOf(() => parseJsonHistory('[{"process": 1.5, "type": "ok", "f": "read"}]')).message,
    ).toMatch(/process must be an integer or a name, got 1.5/);
  });
});

describe("pairing events into operations", () => {
  it("pairs each invocation with its process's next completion", () => {
    const ops = pairOperations(
      parseJsonHistory(`[
      {"process": 0, "type": "invoke", "f": "write", "value": 1, "time": 1},
      {"process": 1, "type": "invoke", "f": "read", "time": 2},
      {"process": 0, "type": "ok", "f": "write", "value": 1, "time": 3},
      {"process": 1, "type": "ok", "f": "read", "value": 1, "time": 4},
      {"process": 2, "type": "invoke", "f": "cas", "value": [1, 2], "time": 5}
    ]`),
    );
    expect(ops).toEqual([
      {
        id: 0,
        process: 0,
        f: "write",
        key: "",
        input: 1,
        output: 1,
        outcome: "ok",
        call: 1,
        ret: 3,
        line: 2,
      },
      {
        id: 1,
        process: 1,
        f: "read",
        key: "",
        input: null,
        output: 1,
        outcome: "ok",
        call: 2,
        ret: 4,
        line: 3,
      },
      {
        id: 2,
        process: 2,
        f: "cas",
        key: "",
        input: [1, 2],
        output: undefined,
        outcome: "info",
        call: 5,
        ret: Infinity,
        line: 6,
      },
    ]);
  });

  it("refuses events that do not pair up, naming the line", () => {
    const pair = (text: string) => errorOf(() => pairOperations(parseJsonHistory(text))).message;
    expect(pair('{"process": 0, "type": "ok", "f": "read"}')).toBe(
      "line 1: process 0 completes read (ok) without invoking it",
    );
    expect(
      pair(
        '{"process": 0, "type": "invoke", "f": "read"}\n{"process": 0, "type": "invoke", "f": "write"}',
      ),
    ).toBe("line 2: process 0 invokes write before its read (line 1) completed");
    expect(
      pair(
        '{"process": 0, "type": "invoke", "f": "read"}\n{"process": 0, "type": "ok", "f": "write"}',
      ),
    ).toBe("line 2: process 0 completes write but invoked read");
    expect(
      pair(
        '{"process": 0, "type": "invoke", "f": "read", "time": 5}\n{"process": 0, "type": "ok", "f": "read", "time": 4}',
      ),
    ).toBe("line 2: completes at time 4, before its invocation at 5");
    expect(
      pair(
        '{"process": 0, "type": "invoke", "f": "read", "time": 5}\n{"process": 0, "type": "ok", "f": "read"}',
      ),
    ).toBe("line 2: has no time while other events have one (give every event a time, or none)");
    expect(
      pair(
        '{"process": 0, "type": "invoke", "f": "read", "key": "a"}\n{"process": 0, "type": "ok", "f": "read", "key": "b"}',
      ),
    ).toBe('line 2: completes key "b" but invoked key "a"');
  });
});

describe("format detection", () => {
  it("goes by the file name, then by the first characters", () => {
    expect(detectFormat("", "h.edn")).toBe("edn");
    expect(detectFormat("", "h.log")).toBe("jepsen-log");
    expect(detectFormat("", "h.jsonl")).toBe("json");
    expect(detectFormat("; comment\n{:process 0}")).toBe("edn");
    expect(detectFormat("[{:process 0}]")).toBe("edn");
    expect(detectFormat('[{"process": 0}]')).toBe("json");
    expect(detectFormat("INFO  jepsen.util - 0\t:invoke\t:read\tnil")).toBe("jepsen-log");
    expect(parseHistory("{:process 0, :type :invoke, :f :read}", "edn")).toHaveLength(1);
  });
});

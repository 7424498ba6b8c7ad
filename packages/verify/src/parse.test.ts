import { describe, expect, it } from "vitest";
import { HistoryError, pairOperations } from "./history.js";
import { checkLinearizable } from "./linearizable.js";
import { registerModel } from "./model.js";
import { parseEdnHistory, parseJepsenLog, parseJsonHistory } from "./parse.js";

describe("history formats", () => {
  it("reads Jepsen EDN maps, cas vectors and nil", () => {
    const events = parseEdnHistory(`
      {:process 0, :type :invoke, :f :write, :value 3}
      {:process 1, :type :invoke, :f :read, :value nil}
      {:process 0, :type :ok, :f :write, :value 3}
      {:process 1, :type :ok, :f :read, :value 3}
      ; a comment
      {:process 0, :type :invoke, :f :cas, :value [3 4]}
      {:process 0, :type :fail, :f :cas, :value [3 4]}`);
    expect(events).toHaveLength(6);
    expect(events[4]).toMatchObject({ process: 0, type: "invoke", f: "cas", value: [3, 4] });
    expect(events[1]?.value).toBeNull();
    // The failed cas expected 3 while the value was 3: not linearizable.
    expect(checkLinearizable(pairOperations(events), registerModel()).result).toBe(
      "not-linearizable",
    );
  });

  it("reads Jepsen log lines", () => {
    const events = parseJepsenLog(
      [
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]",
        "some other log line",
        "INFO  jepsen.util - 2\t:ok\t:cas\t[3 0]",
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
        "INFO  jepsen.util - 1\t:ok\t:read\t0",
      ].join("\n"),
    );
    expect(events.map((e) => `${String(e.process)} ${e.type} ${e.f}`)).toEqual([
      "2 invoke cas",
      "2 ok cas",
      "1 invoke read",
      "1 ok read",
    ]);
    expect(checkLinearizable(pairOperations(events), registerModel(3)).result).toBe("linearizable");
  });

  it("reads Strata's JSON format", () => {
    const events = parseJsonHistory(
      JSON.stringify({
        history: [
          { process: "a", type: "invoke", f: "write", value: 1, key: "k1", time: 0 },
          { process: "a", type: "ok", f: "write", value: 1, key: "k1", time: 1 },
        ],
      }),
    );
    expect(events[0]).toMatchObject({ process: "a", key: "k1", time: 0 });
  });

  it("refuses malformed input with the place of the mistake", () => {
    expect(() => parseEdnHistory("{:process 0, :type :invoke")).toThrow(
      /line 1, column \d+: missing "}"/,
    );
    expect(() => parseEdnHistory("{:process 0 :type :bogus :f :read}")).toThrow(
      /type must be one of/,
    );
    expect(() => parseEdnHistory("{:process #{1}}")).toThrow(/not supported/);
    expect(() => parseEdnHistory('{"process" 0}')).toThrow(/keys must be keywords/);
    expect(() => parseJsonHistory("{nope")).toThrow(/not valid JSON/);
    expect(() => parseJsonHistory("[1]")).toThrow(/event 0: expected an object/);
    expect(() => parseJsonHistory('{"history": 3}')).toThrow(/expected an array/);
    expect(() => parseJepsenLog("nothing here")).toThrow(/no Jepsen log lines/);
    expect(() => parseJepsenLog("INFO  jepsen.util - 1\t:ok\t:read\t[1 2")).toThrow(
      /line 1: bad value/,
    );
    expect(() => pairOperations([{ process: 0, type: "ok", f: "read", value: 1 }])).toThrow(
      HistoryError,
    );
    expect(() =>
      pairOperations([
        { process: 0, type: "invoke", f: "read", value: null },
        { process: 0, type: "invoke", f: "read", value: null },
      ]),
    ).toThrow(/invokes again/);
  });
});

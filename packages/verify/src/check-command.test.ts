import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCheckCommand } from "./check-command.js";

describe("strata check linearizable", () => {
  let dir = "";
  const file = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const run = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runCheckCommand(argv, {
      out: { write: (text: string) => (out += text) },
      err: { write: (text: string) => (err += text) },
    });
    return { code, out, err };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-verify-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const edn = [
    "{:process 0, :type :invoke, :f :write, :value 1}",
    "{:process 0, :type :ok, :f :write, :value 1}",
    "{:process 1, :type :invoke, :f :read, :value nil}",
    "{:process 1, :type :ok, :f :read, :value 1}",
  ].join("\n");

  it("exits 0 for a linearizable history", async () => {
    const result = await run("linearizable", await file("good.edn", edn));
    expect(result).toMatchObject({ code: 0, err: "" });
    expect(result.out).toMatch(/^linearizable: 2 operations in 1 key, checked in \d+ ms\n$/);
  });

  it("exits 1 for a violation and prints a small failing sub-history", async () => {
    const log = await file(
      "bad.log",
      [
        "INFO  jepsen.util - 0\t:invoke\t:write\t1",
        "INFO  jepsen.util - 0\t:ok\t:write\t1",
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
        "INFO  jepsen.util - 1\t:ok\t:read\tnil",
      ].join("\n"),
    );
    const result = await run("linearizable", log);
    expect(result.code).toBe(1);
    expect(result.out).toContain('NOT linearizable: key ""');
    expect(result.out).toContain(
      "longest linearizable order (1 operation), leaving the register at 1:",
    );
    expect(result.out).toMatch(
      /cannot be placed next:\n {2}process 1 read -> null ok \[3, 4\] \(line 3\)\n$/,
    );
    const json = await run("linearizable", log, "--json");
    expect(json.code).toBe(1);
    const verdict = JSON.parse(json.out) as {
      result: string;
      counterexample: { stuck: unknown[] };
    };
    expect(verdict.result).toBe("not-linearizable");
    expect(verdict.counterexample.stuck).toHaveLength(1);
    // The write returned before the read began: whatever the initial value, nil is stale.
    expect((await run("linearizable", log, "--initial", "1")).code).toBe(1);
  });

  it("takes the format from the file name, the contents, or --format", async () => {
    const noExtension = await file("history", edn);
    expect((await run("linearizable", noExtension)).code).toBe(0);
    const json = await file(
      "history.txt",
      '[{"process": 0, "type": "invoke", "f": "read"}, {"process": 0, "type": "ok", "f": "read", "value": 5}]',
    );
    expect((await run("linearizable", json)).code).toBe(1);
    expect((await run("linearizable", json, "--initial", "5")).code).toBe(0);
    expect((await run("linearizable", json, "--format", "json", "--initial", "5")).code).toBe(0);
    expect((await run("linearizable", json, "--format", "edn")).code).toBe(2);
  });

  it("reads --initial as JSON or EDN", async () => {
    const keyword = await file(
      "kw.edn",
      "{:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type :ok :f :read :value :empty}",
    );
    expect((await run("linearizable", keyword)).code).toBe(1);
    expect((await run("linearizable", keyword, "--initial", ":empty")).code).toBe(0);
    expect((await run("linearizable", keyword, "--initial", '"empty"')).code).toBe(0);
  });

  it("reads a failed cas as a mismatch, or only as no effect with --failed-cas no-effect", async () => {
    const history = await file(
      "cas.json",
      [
        '{"process": 0, "type": "invoke", "f": "cas", "value": [null, 1]}',
        '{"process": 0, "type": "fail", "f": "cas", "value": [null, 1]}',
      ].join("\n"),
    );
    expect((await run("linearizable", history)).code).toBe(1);
    expect((await run("linearizable", history, "--failed-cas", "no-effect")).code).toBe(0);
    expect((await run("linearizable", history, "--failed-cas", "maybe")).code).toBe(2);
  });

  it("exits 2 for unusable input, naming the file and line", async () => {
    const garbage = await run("linearizable", await file("garbage.json", "{not json"));
    expect(garbage.code).toBe(2);
    expect(garbage.err).toMatch(/garbage\.json \(json\): not valid JSON/);
    const broken = await run(
      "linearizable",
      await file("broken.edn", `${edn}\n{:process 2 :type :ok :f :read`),
    );
    expect(broken.code).toBe(2);
    expect(broken.err).toMatch(/broken\.edn \(edn\): EDN line 5, column 1: missing "}"/);
    const unpaired = await run(
      "linearizable",
      await file("unpaired.edn", "{:process 0 :type :ok :f :read :value 1}"),
    );
    expect(unpaired.err).toMatch(/line 1: process 0 completes read \(ok\) without invoking it/);
    const unknown = await run(
      "linearizable",
      await file("incr.edn", "{:process 0 :type :invoke :f :incr :value 1}"),
    );
    expect(unknown.err).toMatch(/line 1: unknown operation "incr"/);
    expect((await run("linearizable", join(dir, "missing.json"))).err).toMatch(
      /cannot read .*missing\.json/,
    );
  });

  it("exits 2 for a bad command line, with the usage", async () => {
    const good = await file("ok.edn", edn);
    for (const argv of [
      [],
      ["sequential", good],
      ["linearizable", good, "--total", "5"],
      ["linearizable"],
      ["linearizable", good, "extra"],
      ["linearizable", good, "--format", "yaml"],
      ["linearizable", good, "--initial", "{bad"],
      ["linearizable", good, "--timeout", "soon"],
      ["linearizable", good, "--bogus"],
    ]) {
      const result = await run(...argv);
      expect(result.code, argv.join(" ")).toBe(2);
      expect(result.err, argv.join(" ")).toMatch(/usage: strata check linearizable/);
    }
    expect(await run("--help")).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^usage:/) as unknown,
    });
  });

  it("exits 2 when the time budget runs out", async () => {
    // Unknown-outcome writes of 0 and 1, then reads alternating 0, 1, 0, ... once more than the
    // writes allow: far too many ways to rule out in 100 ms.
    const lines: string[] = [];
    for (let p = 0; p < 24; p++)
      lines.push(`{:process ${p} :type :invoke :f :write :value ${p % 2}}`);
    for (let j = 0; j < 25; j++)
      lines.push(
        `{:process 100 :type :invoke :f :read :value nil}`,
        `{:process 100 :type :ok :f :read :value ${j % 2}}`,
      );
    const result = await run(
      "linearizable",
      await file("hard.edn", lines.join("\n")),
      "--timeout",
      "100",
    );
    expect(result.code).toBe(2);
    expect(result.out).toMatch(/^unknown: the 100 ms budget ran out/);
  });
});

describe("strata check set, bank, counter, crdt-set", () => {
  let dir = "";
  const file = async (name: string, events: unknown): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, typeof events === "string" ? events : JSON.stringify(events));
    return path;
  };
  const run = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runCheckCommand(argv, {
      out: { write: (text: string) => (out += text) },
      err: { write: (text: string) => (err += text) },
    });
    return { code, out, err };
  };
  const op = (process: number, f: string, value: unknown, result: unknown, extra = {}) => [
    { process, type: "invoke", f, value, ...extra },
    { process, type: "ok", f, value: result, ...extra },
  ];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-verify-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("checks a set history: 0 valid, 1 with the lost element", async () => {
    const good = await file("set.json", [...op(0, "add", 1, 1), ...op(1, "read", null, [1])]);
    const ok = await run("set", good);
    expect(ok).toMatchObject({ code: 0, err: "" });
    expect(ok.out).toMatch(/^valid: adds 1 ok, 0 info, 0 fail; 1 final read of 1 read; lost 0/);
    const bad = await file("lost.json", [...op(0, "add", 1, 1), ...op(1, "read", null, [])]);
    const lost = await run("set", bad);
    expect(lost.code).toBe(1);
    expect(lost.out).toMatch(
      /^INVALID: .*\n {2}lost 1: added by process 0 add ok \[0, 1\] \(line 1\)/,
    );
    const json = await run("set", bad, "--json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({
      check: "set",
      valid: false,
      anomalies: [{ type: "lost", element: 1, add: { process: 0, call: 0, ret: 1 } }],
    });
  });

  it("checks a bank history with --total and --accounts, or with --initial", async () => {
    const history = [
      ...op(0, "transfer", { from: "a", to: "b", amount: 3 }, { from: "a", to: "b", amount: 3 }),
      ...op(1, "read", null, { a: 7, b: 13 }),
    ];
    const path = await file("bank.json", history);
    expect((await run("bank", path, "--total", "20", "--accounts", "a,b")).code).toBe(0);
    expect((await run("bank", path, "--initial", '{"a": 10, "b": 10}')).code).toBe(0);
    expect((await run("bank", path, "--initial", "{:a 10 :b 10}")).code).toBe(0);
    const wrongInitial = await run("bank", path, "--initial", '{"a": 12, "b": 8}');
    expect(wrongInitial.code).toBe(1);
    expect(wrongInitial.out).toMatch(/final balances unreachable: .*off by \{"a":-2,"b":2\}/);
    const wrongTotal = await run(
      "bank",
      path,
      "--total",
      "21",
      "--accounts",
      '["a","b"]',
      "--json",
    );
    expect(wrongTotal.code).toBe(1);
    expect(JSON.parse(wrongTotal.out)).toMatchObject({
      check: "bank",
      valid: false,
      counts: { badReads: 1 },
      anomalies: [{ type: "wrong-total", total: 20, expected: 21, read: { call: 2, ret: 3 } }],
    });
    const negative = await file("negative.json", op(1, "read", null, { a: -1, b: 21 }));
    expect((await run("bank", negative, "--total", "20", "--accounts", "a,b")).code).toBe(1);
    expect(
      (await run("bank", negative, "--total", "20", "--accounts", "a,b", "--lower-bound", "none"))
        .code,
    ).toBe(0);
  });

  it("checks counter and crdt-set convergence across replicas", async () => {
    const counter = (a: number, b: number) => [
      ...op(0, "increment", 2, 2, { key: "n1" }),
      ...op(1, "read", null, a, { key: "n1" }),
      ...op(2, "read", null, b, { key: "n2" }),
    ];
    expect((await run("counter", await file("c1.json", counter(2, 2)))).code).toBe(0);
    const diverged = await run("counter", await file("c2.json", counter(2, 3)));
    expect(diverged.code).toBe(1);
    expect(diverged.out).toMatch(/diverged: \{"n1":2,"n2":3\}/);
    const unread = await run(
      "counter",
      await file("c3.json", counter(2, 2)),
      "--replicas",
      "n1,n2,n3",
    );
    expect(unread.out).toMatch(/no final read of replica n3/);
    const sets = [
      ...op(0, "add", "x", "x"),
      ...op(1, "read", null, ["x"], { key: "n1" }),
      ...op(2, "read", null, [], { key: "n2" }),
    ];
    const crdt = await run("crdt-set", await file("s.json", sets));
    expect(crdt.code).toBe(1);
    expect(crdt.out).toMatch(/lost "x" on \["n2"\]/);
  });

  it("exits 2 with a clear message for hostile or malformed input, never a stack trace", async () => {
    const cases: Array<[string, unknown, string[], RegExp]> = [
      ["notjson.json", "{nope", ["set"], /not valid JSON/],
      ["shape.json", { events: [] }, ["set"], /expected an array of events/],
      ["nofield.json", [{ process: 0, type: "invoke" }], ["set"], /f must name the operation/],
      ["noread.json", op(0, "add", 1, 1), ["set"], /the set was never read/],
      ["readshape.json", op(0, "read", null, 5), ["set"], /a read returns an array/],
      [
        "bigamount.json",
        op(0, "transfer", { from: "a", to: "b", amount: "123456789012345678901234567890" }, null),
        ["bank", "--total", "20", "--accounts", "a,b"],
        /amount must be a whole number, got "1234.* \(a string; record amounts as JSON numbers\)/,
      ],
      [
        "huge.json",
        op(0, "read", null, { a: 1e308, b: 1 }),
        ["bank", "--total", "20", "--accounts", "a,b"],
        /not a whole number within ±2\^53/,
      ],
      ["counter.json", op(0, "read", null, 1), ["counter"], /names the replica/],
      ["deep.json", "[".repeat(100_000), ["set"], /not valid JSON/],
    ];
    for (const [name, content, args, message] of cases) {
      const [what, ...rest] = args as [string, ...string[]];
      const result = await run(what, await file(name, content), ...rest);
      expect(result.code, name).toBe(2);
      expect(result.err, name).toMatch(message);
      expect(result.err, name).not.toMatch(/\n\s+at /);
      expect(result.out, name).toBe("");
    }
  });

  it("exits 2 for options a check does not take or cannot use, with the usage", async () => {
    const path = await file("any.json", op(0, "read", null, { a: 1 }));
    for (const argv of [
      ["set", path, "--total", "5"],
      ["counter", path, "--timeout", "5"],
      ["bank", path],
      ["bank", path, "--total", "5"],
      ["bank", path, "--total", "99999999999999999999", "--accounts", "a"],
      ["bank", path, "--total", "1.5", "--accounts", "a"],
      ["bank", path, "--total", "5", "--accounts", "a,a"],
      ["bank", path, "--initial", '{"a": "5"}'],
      ["bank", path, "--initial", "[1]"],
      ["bank", path, "--total", "5", "--accounts", "a", "--lower-bound", "low"],
      ["counter", path, "--replicas", ""],
      ["queue", path],
    ]) {
      const result = await run(...argv);
      expect(result.code, argv.join(" ")).toBe(2);
      expect(result.err, argv.join(" ")).toMatch(/usage: strata check/);
    }
  });
});

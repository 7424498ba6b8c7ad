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

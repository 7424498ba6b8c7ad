import { isStrataError } from "@strata/core";
import { runPolicyTests } from "@strata/security";
import { parse } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const POLICY_HELP = `usage: strata policy test <dir> [--json]

Runs the test cases of a Cedar policy folder: every *.test.json file in <dir> holds an array of
cases { "name", "principal", "action": "service.action", "input", "expect": "allow" | "deny" },
evaluated against the folder's *.cedar policies and resources.json, as a node would.
"principal" is null (unauthenticated), {"kind":"user","subject":"..","claims":{..}}, or
{"kind":"workload"|"node","id":".."}.

  --json       print the report as JSON
  -h, --help   this text

Exit code: 0 when every case passes, 1 when one fails, 2 when the folder cannot be used.`;

export async function policyCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${POLICY_HELP}\n`);
    return EXIT.ok;
  }
  const [sub, dir, ...extra] = positionals;
  if (sub !== "test") {
    throw new UsageError(
      sub === undefined ? "missing policy command (test)" : `unknown policy command "${sub}"`,
    );
  }
  if (dir === undefined) throw new UsageError("missing <dir>");
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  let report;
  try {
    report = await runPolicyTests(dir);
  } catch (error) {
    if (isStrataError(error, "INVALID_ARGUMENT")) throw new UsageError(error.message);
    if (error instanceof Error && "code" in error && error.code === "ENOENT") {
      throw new UsageError(`no such folder: ${dir}`);
    }
    throw error;
  }
  if (values.json === true) {
    io.out.write(`${JSON.stringify(report)}\n`);
  } else {
    for (const f of report.failed) {
      io.out.write(
        `FAIL ${f.file}: ${f.name}: expected ${f.expected}, got ${f.got}${f.reason === undefined ? "" : ` (${f.reason})`}\n`,
      );
    }
    io.out.write(`${report.passed} passed, ${report.failed.length} failed\n`);
  }
  return report.failed.length === 0 ? EXIT.ok : EXIT.failed;
}

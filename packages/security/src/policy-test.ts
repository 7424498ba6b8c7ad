import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { StrataError, type Principal } from "@strata/core";
import { createCedarAuthorizer } from "./cedar.js";

/** One case of a policy test file (`*.test.json`: an array of these). */
export interface PolicyTestCase {
  readonly name: string;
  /** Who calls; null for an unauthenticated caller. */
  readonly principal: Principal | null;
  /** `"service.action"`. */
  readonly action: string;
  readonly input?: unknown;
  /** The calling workload (SPIFFE ID) a signed envelope would prove; absent for none. */
  readonly workload?: string;
  readonly expect: "allow" | "deny";
}

/** What {@link runPolicyTests} found. */
export interface PolicyTestReport {
  readonly passed: number;
  readonly failed: ReadonlyArray<{
    readonly file: string;
    readonly name: string;
    readonly expected: "allow" | "deny";
    readonly got: "allow" | "deny";
    readonly reason: string | undefined;
  }>;
}

/**
 * Runs the test cases of a policy folder (`*.test.json`) against its policies (`*.cedar`,
 * `resources.json`), as `strata policy test <dir>` does.
 */
export async function runPolicyTests(dir: string): Promise<PolicyTestReport> {
  const authorizer = await createCedarAuthorizer({ dir, watch: false });
  try {
    const files = (await readdir(dir)).filter((f) => f.endsWith(".test.json")).sort();
    if (files.length === 0) {
      throw new StrataError("INVALID_ARGUMENT", `no *.test.json files in ${dir}`);
    }
    let passed = 0;
    const failed: Array<PolicyTestReport["failed"][number]> = [];
    for (const file of files) {
      for (const c of await readCases(join(dir, file), file)) {
        const [service, ...rest] = c.action.split(".");
        const decision = await authorizer.authorize({
          principal: c.principal ?? undefined,
          service: service as string,
          action: rest.join("."),
          input: c.input ?? {},
          callerNode: "policy-test",
          workload: c.workload,
        });
        const got = decision.allowed ? "allow" : "deny";
        if (got === c.expect) passed++;
        else {
          failed.push({
            file,
            name: c.name,
            expected: c.expect,
            got,
            reason: decision.allowed ? undefined : decision.reason,
          });
        }
      }
    }
    return { passed, failed };
  } finally {
    await authorizer.close();
  }
}

async function readCases(path: string, file: string): Promise<PolicyTestCase[]> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch {
    throw new StrataError("INVALID_ARGUMENT", `${file} is not JSON`);
  }
  if (!Array.isArray(value)) {
    throw new StrataError("INVALID_ARGUMENT", `${file} must be an array of test cases`);
  }
  return value.map((raw, i) => {
    const c = raw as Partial<PolicyTestCase> | null;
    const where = `${file} case ${i + 1}`;
    if (typeof c !== "object" || c === null) throw bad(where, "is not an object");
    if (typeof c.name !== "string") throw bad(where, "needs a name");
    if (typeof c.action !== "string" || !/^[^.]+\.[^.]+$/.test(c.action)) {
      throw bad(where, 'needs an action "service.action"');
    }
    if (c.workload !== undefined && typeof c.workload !== "string")
      throw bad(where, "workload must be a SPIFFE ID string");
    if (c.expect !== "allow" && c.expect !== "deny")
      throw bad(where, 'expect must be "allow" or "deny"');
    const p = c.principal as unknown;
    if (p !== null && !isPrincipal(p)) {
      throw bad(
        where,
        'principal must be null, {"kind":"user","subject":..,"claims":{..}}, or {"kind":"workload"|"node","id":..}',
      );
    }
    return { ...c, principal: p } as PolicyTestCase;
  });
}

function isPrincipal(p: unknown): p is Principal {
  if (typeof p !== "object" || p === null) return false;
  const o = p as Record<string, unknown>;
  if (o.kind === "user") {
    return (
      typeof o.subject === "string" &&
      typeof o.claims === "object" &&
      o.claims !== null &&
      !Array.isArray(o.claims)
    );
  }
  return (o.kind === "workload" || o.kind === "node") && typeof o.id === "string";
}

function bad(where: string, what: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `${where} ${what}`);
}

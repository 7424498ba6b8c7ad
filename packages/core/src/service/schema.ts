import type { StandardSchemaV1 } from "@standard-schema/spec";
import { StrataError } from "../errors/index.js";

/** One schema violation, with the path to the offending field (`items[2].qty`). */
export interface FieldIssue {
  readonly path: string;
  readonly message: string;
}

/** Formats a Standard Schema path as `a.b[0]["odd key"]`; the root is `$`. */
export function formatPath(
  path: ReadonlyArray<PropertyKey | StandardSchemaV1.PathSegment> | undefined,
): string {
  if (path === undefined || path.length === 0) return "$";
  let out = "";
  for (const segment of path) {
    const key = typeof segment === "object" ? segment.key : segment;
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "symbol") out += `[${key.toString()}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(key)) out += out.length === 0 ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

const MAX_ISSUES = 20;

function failure(issues: ReadonlyArray<StandardSchemaV1.Issue>, what: string): StrataError {
  const fields: FieldIssue[] = issues
    .slice(0, MAX_ISSUES)
    .map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
  const summary = fields.map((f) => `${f.path}: ${f.message}`).join("; ");
  return new StrataError("INVALID_ARGUMENT", `${what} is invalid: ${summary}`, {
    details: { issues: fields, truncated: issues.length > MAX_ISSUES },
  });
}

/**
 * Validates `value` against a Standard Schema (zod, valibot, arktype, …). Returns the parsed value
 * synchronously when the schema is synchronous, else a promise; throws `INVALID_ARGUMENT` with
 * field paths on failure.
 */
export function validate<S extends StandardSchemaV1>(
  schema: S,
  value: unknown,
  what: string,
): StandardSchemaV1.InferOutput<S> | Promise<StandardSchemaV1.InferOutput<S>> {
  let result: StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>>;
  try {
    result = schema["~standard"].validate(value);
  } catch (error) {
    throw new StrataError("INVALID_ARGUMENT", `${what} could not be validated`, { cause: error });
  }
  if (result instanceof Promise) {
    return result.then((r) => {
      if (r.issues !== undefined) throw failure(r.issues, what);
      return r.value;
    });
  }
  if (result.issues !== undefined) throw failure(result.issues, what);
  return result.value;
}

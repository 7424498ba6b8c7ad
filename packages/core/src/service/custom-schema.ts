import type { StandardSchemaV1 } from "@standard-schema/spec";

/**
 * A Standard Schema from a plain check function, for contracts that should not depend on a
 * validation library (the built-in admin service, tests, benchmarks).
 *
 * @example
 * const Id = customSchema<{ id: string }>((v) =>
 *   typeof v === "object" && v !== null && typeof (v as { id?: unknown }).id === "string"
 *     ? { value: v as { id: string } }
 *     : { issues: [{ message: "expected { id: string }" }] });
 */
export function customSchema<T>(
  check: (value: unknown) => StandardSchemaV1.Result<T>,
  vendor = "strata",
): StandardSchemaV1<T, T> {
  return { "~standard": { version: 1, vendor, validate: check } };
}

/** A schema that accepts anything as it is. */
export function anySchema<T = unknown>(): StandardSchemaV1<T, T> {
  return customSchema<T>((value) => ({ value: value as T }));
}

/** A schema that accepts any plain object (not null, not an array). */
export function objectSchema<T extends object = Record<string, unknown>>(): StandardSchemaV1<T, T> {
  return customSchema<T>((value) =>
    typeof value === "object" && value !== null && !Array.isArray(value)
      ? { value: value as T }
      : { issues: [{ message: "expected an object" }] },
  );
}

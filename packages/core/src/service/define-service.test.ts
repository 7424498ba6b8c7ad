import type { StandardSchemaV1 } from "@standard-schema/spec";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { StrataError } from "../errors/index.js";
import { defineService, type ServiceContractSpec } from "./define-service.js";
import { formatPath, validate } from "./schema.js";

const Id = z.object({ id: z.string() });

function refusal(fn: () => unknown): StrataError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StrataError);
    expect((error as StrataError).code).toBe("INVALID_ARGUMENT");
    return error as StrataError;
  }
  throw new Error("expected INVALID_ARGUMENT, nothing was thrown");
}

/** Defines a contract from a spec the type checker would refuse, to test the runtime checks. */
function defineUnchecked(spec: unknown) {
  return defineService(spec as ServiceContractSpec);
}

describe("defineService", () => {
  it("returns a contract that carries its spec", () => {
    const spec = {
      name: "catalog",
      version: "1.2.3",
      description: "products",
      actions: { get: { input: Id, output: Id, idempotent: true } },
      events: { changed: Id },
    } as const;
    const catalog = defineService(spec);
    expect(catalog.name).toBe("catalog");
    expect(catalog.version).toBe("1.2.3");
    expect(catalog.actions).toBe(spec.actions);
    expect(catalog.events).toBe(spec.events);
    expect(catalog.description).toBe("products");
    expect(defineService({ name: "x", version: "1.0.0", actions: spec.actions }).events).toEqual(
      {},
    );
  });

  it("accepts valibot schemas as well as zod ones", () => {
    const service = defineService({
      name: "pricing",
      version: "0.1.0-beta.1",
      actions: { quote: { input: v.object({ sku: v.string() }), output: v.number() } },
    });
    expect(service.implement({ quote: () => 1 }).contract).toBe(service);
  });

  it("rejects bad service names", () => {
    for (const name of ["", "Catalog", "1catalog", "cat_alog", "cat.alog", "a".repeat(64), " x"]) {
      const error = refusal(() =>
        defineService({ name, version: "1.0.0", actions: { get: { input: Id, output: Id } } }),
      );
      expect(error.message).toContain(`service name "${name}"`);
    }
  });

  it("rejects versions that are not semantic versions", () => {
    for (const version of ["1", "1.0", "v1.0.0x", "latest", "^1.0.0", ""]) {
      const error = refusal(() =>
        defineService({ name: "catalog", version, actions: { get: { input: Id, output: Id } } }),
      );
      expect(error.message).toMatch(/not a semantic version/);
    }
  });

  it("rejects services without actions and badly named actions", () => {
    expect(
      refusal(() => defineService({ name: "empty", version: "1.0.0", actions: {} })).message,
    ).toMatch(/declares no actions/);
    for (const action of ["get-one", "1st", "a b", "_x"]) {
      const error = refusal(() =>
        defineService({
          name: "catalog",
          version: "1.0.0",
          actions: { [action]: { input: Id, output: Id } },
        }),
      );
      expect(error.message).toContain(`action name "${action}"`);
    }
  });

  it("rejects actions whose schemas are missing or not Standard Schemas", () => {
    const bad: unknown[] = [
      { output: Id },
      { input: Id },
      { input: { parse: () => 1 }, output: Id },
      { input: Id, output: { "~standard": { validate: "nope" } } },
      undefined,
    ];
    for (const action of bad) {
      const error = refusal(() =>
        defineUnchecked({ name: "catalog", version: "1.0.0", actions: { get: action } }),
      );
      expect(error.message).toMatch(/action get needs Standard Schema input and output/);
    }
    const error = refusal(() =>
      defineUnchecked({
        name: "catalog",
        version: "1.0.0",
        actions: { get: { input: Id, output: Id } },
        events: { changed: "schema?" },
      }),
    );
    expect(error.message).toMatch(/event changed needs a Standard Schema/);
  });

  it("rejects implementations with missing or extra handlers", () => {
    const catalog = defineService({
      name: "catalog",
      version: "1.0.0",
      actions: {
        get: { input: Id, output: Id },
        list: { input: z.object({}), output: z.array(Id) },
      },
    });
    type AnyHandlers = Parameters<typeof catalog.implement>[0];
    const missing = refusal(() =>
      catalog.implement({ get: (i: unknown) => i } as unknown as AnyHandlers),
    );
    expect(missing.message).toMatch(/no handler for action list/);
    const notAFunction = refusal(() =>
      catalog.implement({ get: (i: unknown) => i, list: [] } as unknown as AnyHandlers),
    );
    expect(notAFunction.message).toMatch(/no handler for action list/);
    const extra = refusal(() =>
      catalog.implement({
        get: (i: unknown) => i,
        list: () => [],
        delete: () => undefined,
      } as unknown as AnyHandlers),
    );
    expect(extra.message).toMatch(/handler delete is not an action/);
    const hooks = { started: () => undefined };
    const impl = catalog.implement({ get: (i) => i, list: () => [] }, hooks);
    expect(impl.hooks).toBe(hooks);
    expect(impl.contract).toBe(catalog);
  });
});

describe("validate", () => {
  const Order = z.object({
    customer: z.object({ email: z.email() }),
    items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })),
  });

  it("returns the parsed value", () => {
    const value = { customer: { email: "a@b.co" }, items: [{ sku: "s", qty: 1 }] };
    expect(validate(Order, value, "order")).toEqual(value);
  });

  it("reports every issue with its field path", () => {
    const failure = refusal(() =>
      validate(
        Order,
        {
          customer: { email: "nope" },
          items: [
            { sku: "s", qty: 1 },
            { sku: 5, qty: 0 },
          ],
        },
        "orders.place input",
      ),
    );
    expect(failure.code).toBe("INVALID_ARGUMENT");
    expect(failure.message).toMatch(/^orders\.place input is invalid: /);
    const issues = failure.details["issues"] as Array<{ path: string; message: string }>;
    expect(issues.map((i) => i.path).sort()).toEqual([
      "customer.email",
      "items[1].qty",
      "items[1].sku",
    ]);
    expect(failure.details["truncated"]).toBe(false);
  });

  it("keeps at most 20 issues and says it truncated", () => {
    const error = refusal(() =>
      validate(
        z.array(z.string()),
        Array.from({ length: 50 }, (_, i) => i),
        "list",
      ),
    );
    expect((error.details["issues"] as unknown[]).length).toBe(20);
    expect(error.details["truncated"]).toBe(true);
  });

  it("handles async schemas and valibot paths", async () => {
    const schema = v.pipeAsync(
      v.object({ tags: v.array(v.string()) }),
      v.checkAsync(async () => Promise.resolve(true)),
    );
    const ok = validate(schema, { tags: ["a"] }, "tags");
    expect(ok).toBeInstanceOf(Promise);
    await expect(ok).resolves.toEqual({ tags: ["a"] });
    const bad = validate(schema, { tags: ["a", 1] }, "tags");
    await expect(bad).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { issues: [{ path: "tags[1]" }] },
    });
  });

  it("turns a schema that throws into INVALID_ARGUMENT", () => {
    const throwing: StandardSchemaV1 = {
      "~standard": {
        version: 1,
        vendor: "test",
        validate: () => {
          throw new Error("schema bug");
        },
      },
    };
    expect(refusal(() => validate(throwing, 1, "thing")).message).toBe(
      "thing could not be validated",
    );
  });
});

describe("formatPath", () => {
  it("formats paths as a reader would write them", () => {
    expect(formatPath(undefined)).toBe("$");
    expect(formatPath([])).toBe("$");
    expect(formatPath(["items", 2, "qty"])).toBe("items[2].qty");
    expect(formatPath([{ key: "a" }, { key: 0 }])).toBe("a[0]");
    expect(formatPath(["odd key", "x"])).toBe('["odd key"].x');
    expect(formatPath([Symbol("s")])).toBe("[Symbol(s)]");
  });
});

/**
 * Type tests for the public API: what callers and handlers see is inferred from the contract's
 * schemas (zod or valibot) with no generics written by hand. `npx tsc -p tsconfig.json` at the
 * repository root checks them; the `@ts-expect-error` lines prove wrong inputs are rejected.
 */
import * as v from "valibot";
import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import { createEmbeddedNetwork } from "../adapters/embedded/index.js";
import type { CallContext, CallOptions } from "../runtime/context.js";
import { createNode } from "../runtime/node.js";
import type { Client } from "./client.js";
import {
  defineService,
  type ServiceContract,
  type ActionInput,
  type ActionOutput,
  type HandlerInput,
  type HandlerOutput,
} from "./define-service.js";

/** The spec a contract was defined from. */
type SpecOf<C> = C extends ServiceContract<infer S> ? S : never;

/** Holds code that must type-check (or must not) without ever running it. */
function typeOnly(_code: () => unknown): void {}

const zodShop = defineService({
  name: "shop",
  version: "1.0.0",
  actions: {
    place: {
      input: z.object({
        sku: z.string(),
        qty: z.number().int().default(1),
        at: z.string().transform((s) => new Date(s)),
      }),
      output: z.object({ orderId: z.string(), total: z.bigint() }),
      // The declared input type is not inferred here (the parameter is `unknown` unless annotated).
      shardKey: (input: { sku: string }) => input.sku,
    },
    ping: { input: z.object({}), output: z.literal("pong"), idempotent: true },
  },
});

const valibotCatalog = defineService({
  name: "catalog",
  version: "2.1.0",
  actions: {
    get: {
      input: v.object({ id: v.string(), tags: v.optional(v.array(v.string()), []) }),
      output: v.nullable(v.object({ id: v.string(), price: v.number() })),
      idempotent: true,
    },
    count: {
      input: v.pipe(
        v.string(),
        v.transform((s) => s.length),
      ),
      output: v.number(),
    },
  },
});

const node = createNode({ transport: createEmbeddedNetwork().transport(), id: "types" });

describe("client types", () => {
  it("infers inputs and outputs from zod schemas", () => {
    const shop = node.client(zodShop);
    expectTypeOf(shop).toEqualTypeOf<Client<SpecOf<typeof zodShop>>>();
    expectTypeOf<keyof typeof shop>().toEqualTypeOf<"place" | "ping">();
    // Callers pass the schema's input (defaults optional, transforms before they run)…
    expectTypeOf(shop.place).parameter(0).toEqualTypeOf<{
      sku: string;
      qty?: number | undefined;
      at: string;
    }>();
    expectTypeOf(shop.place).parameter(1).toEqualTypeOf<CallOptions | undefined>();
    // …and get the output schema's output.
    expectTypeOf(shop.place).returns.resolves.toEqualTypeOf<{ orderId: string; total: bigint }>();
    expectTypeOf(shop.ping).returns.resolves.toEqualTypeOf<"pong">();

    typeOnly(() => shop.place({ sku: "s-1", at: "2025-01-01" }));
    typeOnly(() => shop.place({ sku: "s-1", qty: 2, at: "2025-01-01" }, { timeoutMs: 100 }));
    // @ts-expect-error: sku must be a string
    typeOnly(() => shop.place({ sku: 1, at: "2025-01-01" }));
    // @ts-expect-error: at is required
    typeOnly(() => shop.place({ sku: "s-1" }));
    // @ts-expect-error: the caller passes the transform's input (a string), not a Date
    typeOnly(() => shop.place({ sku: "s-1", at: new Date() }));
    // @ts-expect-error: no such action
    typeOnly(() => shop.cancel({})); // eslint-disable-line @typescript-eslint/no-unsafe-call
    // @ts-expect-error: not a call option
    typeOnly(() => shop.ping({}, { retries: 3 }));
  });

  it("infers inputs and outputs from valibot schemas", () => {
    const catalog = node.client(valibotCatalog);
    expectTypeOf(catalog.get).parameter(0).toEqualTypeOf<{
      id: string;
      tags?: string[] | undefined;
    }>();
    expectTypeOf(catalog.get).returns.resolves.toEqualTypeOf<{
      id: string;
      price: number;
    } | null>();
    expectTypeOf(catalog.count).parameter(0).toEqualTypeOf<string>();
    expectTypeOf(catalog.count).returns.resolves.toEqualTypeOf<number>();

    // @ts-expect-error: id must be a string
    typeOnly(() => catalog.get({ id: 42 }));
    // @ts-expect-error: tags must be strings
    typeOnly(() => catalog.get({ id: "p-1", tags: [1] }));
    // @ts-expect-error: count takes a string
    typeOnly(() => catalog.count(3));
  });

  it("gives handlers the parsed input and expects the output schema's input", () => {
    type Place = (typeof zodShop.actions)["place"];
    expectTypeOf<ActionInput<Place>>().toEqualTypeOf<{
      sku: string;
      qty?: number | undefined;
      at: string;
    }>();
    expectTypeOf<HandlerInput<Place>>().toEqualTypeOf<{ sku: string; qty: number; at: Date }>();
    expectTypeOf<HandlerOutput<Place>>().toEqualTypeOf<{ orderId: string; total: bigint }>();
    expectTypeOf<ActionOutput<(typeof valibotCatalog.actions)["count"]>>().toEqualTypeOf<number>();

    const impl = zodShop.implement({
      place: (input, context) => {
        expectTypeOf(input).toEqualTypeOf<{ sku: string; qty: number; at: Date }>();
        expectTypeOf(context).toEqualTypeOf<CallContext>();
        // A handler's own calls are typed the same way.
        const catalog = context.client(valibotCatalog);
        expectTypeOf(catalog.get).returns.resolves.toEqualTypeOf<{
          id: string;
          price: number;
        } | null>();
        return { orderId: `o-${input.qty}`, total: 10n };
      },
      ping: async () => Promise.resolve("pong" as const),
    });
    expect(impl.contract).toBe(zodShop);

    valibotCatalog.implement({
      get: ({ id, tags }) => {
        expectTypeOf(tags).toEqualTypeOf<string[]>();
        return tags.length > 0 ? { id, price: 1 } : null;
      },
      count: (length) => {
        expectTypeOf(length).toEqualTypeOf<number>();
        return length;
      },
    });

    typeOnly(() =>
      zodShop.implement({
        // @ts-expect-error: the output needs a bigint total
        place: () => ({ orderId: "o-1", total: 10 }),
        ping: () => "pong" as const,
      }),
    );
    typeOnly(() =>
      // @ts-expect-error: the ping handler is missing
      zodShop.implement({ place: () => ({ orderId: "o-1", total: 1n }) }),
    );
    typeOnly(() =>
      zodShop.implement({
        place: () => ({ orderId: "o-1", total: 1n }),
        ping: () => "pong" as const,
        // @ts-expect-error: not an action of the contract
        refund: () => undefined,
      }),
    );
    typeOnly(() =>
      valibotCatalog.implement({
        // @ts-expect-error: the handler receives the transformed number, not a string
        count: (text: string) => text.length,
        get: () => null,
      }),
    );
  });

  it("keeps the contract's name and actions as literal types", () => {
    expectTypeOf(zodShop.name).toEqualTypeOf<"shop">();
    expectTypeOf(valibotCatalog.name).toEqualTypeOf<"catalog">();
    expectTypeOf<keyof typeof valibotCatalog.actions>().toEqualTypeOf<"get" | "count">();
  });
});

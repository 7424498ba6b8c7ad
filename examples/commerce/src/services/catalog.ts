import { StrataError, defineService } from "@strata/core";
import { z } from "zod";
import type { Product } from "../data/seed.js";

export const ProductSchema = z.object({
  id: z.string(),
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  priceMinor: z.number().int().nonnegative(),
  currency: z.literal("EUR"),
});

/** The catalog: read-mostly product data, replicated on every catalog node. */
export const catalog = defineService({
  name: "catalog",
  version: "1.0.0",
  description: "Products and prices",
  actions: {
    getProduct: {
      input: z.object({ id: z.string().min(1).max(64) }),
      output: ProductSchema,
      idempotent: true,
    },
    listProducts: {
      input: z.object({
        category: z.string().max(64).optional(),
        after: z.string().max(64).optional(),
        limit: z.number().int().min(1).max(100).default(20),
      }),
      output: z.object({ products: z.array(ProductSchema), next: z.string().optional() }),
      idempotent: true,
    },
    searchProducts: {
      input: z.object({
        query: z.string().min(1).max(100),
        limit: z.number().int().min(1).max(50).default(10),
      }),
      output: z.object({ products: z.array(ProductSchema) }),
      idempotent: true,
    },
  },
});

/** A catalog implementation over an in-memory product list. */
export function catalogService(products: readonly Product[]) {
  const byId = new Map(products.map((p) => [p.id, p]));
  const sorted = [...products].sort((a, b) => (a.id < b.id ? -1 : 1));
  return catalog.implement({
    getProduct: ({ id }) => {
      const product = byId.get(id);
      if (product === undefined)
        throw new StrataError("NOT_FOUND", `no product ${id}`, { details: { id } });
      return product;
    },
    listProducts: ({ category, after, limit }) => {
      const matching = sorted.filter(
        (p) =>
          (category === undefined || p.category === category) &&
          (after === undefined || p.id > after),
      );
      const page = matching.slice(0, limit);
      const last = page[page.length - 1];
      return matching.length > limit && last !== undefined
        ? { products: page, next: last.id }
        : { products: page };
    },
    searchProducts: ({ query, limit }) => {
      const q = query.toLowerCase();
      return { products: sorted.filter((p) => p.name.toLowerCase().includes(q)).slice(0, limit) };
    },
  });
}

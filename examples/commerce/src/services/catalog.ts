import {
  StrataError,
  createStateStore,
  defineService,
  isStrataError,
  type StrongKV,
} from "@strata/core";
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

/** Where the catalog reads products: one by id, and all of them for listings and search. */
export interface ProductSource {
  get(id: string, signal?: AbortSignal): Promise<Product | undefined> | Product | undefined;
  /** Every product, in id order (listings and search scan it). */
  all(): readonly Product[];
}

/** Products held in memory (tests, a single node). */
export function memoryProducts(products: readonly Product[]): ProductSource {
  const byId = new Map(products.map((p) => [p.id, p]));
  const sorted = [...products].sort((a, b) => (a.id < b.id ? -1 : 1));
  return { get: (id) => byId.get(id), all: () => sorted };
}

/** Loads the products into strong state (once: existing records are kept). */
export async function seedProducts(kv: StrongKV, products: readonly Product[]): Promise<void> {
  const store = createStateStore(kv, "product");
  await Promise.all(
    products.map((p) =>
      store.create<Product>(p.id, p).catch((error: unknown) => {
        if (!isStrataError(error, "ALREADY_EXISTS")) throw error;
      }),
    ),
  );
}

/**
 * Products in strong state (a sharded store in the demo): reads by id go to the store, so a
 * changed price is seen at once; listings and search scan an index of every product that is
 * loaded from the store when the source opens and reloaded every `refreshMs` (default 5 000),
 * so they may lag a change by that much. `close()` stops the reloads.
 */
export async function storeProducts(
  kv: StrongKV,
  options: { readonly refreshMs?: number } = {},
): Promise<ProductSource & { close(): void }> {
  const store = createStateStore(kv, "product");
  const load = async (): Promise<Product[]> => {
    const all: Product[] = [];
    for await (const entry of store.list<Product>()) all.push(entry.value);
    return all.sort((a, b) => (a.id < b.id ? -1 : 1));
  };
  let index = await load();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const refresh = (): void => {
    timer = setTimeout(() => {
      void load()
        .then((next) => (index = next))
        .catch(() => undefined) // the next reload tries again; the old index serves meanwhile
        .finally(() => {
          if (!closed) refresh();
        });
    }, options.refreshMs ?? 5_000);
    timer.unref();
  };
  refresh();
  return {
    get: async (id, signal) =>
      (await store.get<Product>(id, signal === undefined ? {} : { signal }))?.value,
    all: () => index,
    close: () => {
      closed = true;
      clearTimeout(timer);
    },
  };
}

/** A catalog implementation over a product source (in memory, or strong state). */
export function catalogService(source: ProductSource | readonly Product[]) {
  const products = "all" in source ? source : memoryProducts(source);
  return catalog.implement({
    getProduct: async ({ id }, ctx) => {
      const product = await products.get(id, ctx.signal);
      if (product === undefined)
        throw new StrataError("NOT_FOUND", `no product ${id}`, { details: { id } });
      return product;
    },
    listProducts: ({ category, after, limit }) => {
      const matching = products
        .all()
        .filter(
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
      return {
        products: products
          .all()
          .filter((p) => p.name.toLowerCase().includes(q))
          .slice(0, limit),
      };
    },
  });
}

import {
  defineService,
  mvRegister,
  orMap,
  type Causal,
  type CrdtSpace,
  type DotMap,
  type MVRegister,
} from "@strata/core";
import { z } from "zod";

const CartId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "cart ids are 1-64 of A-Z a-z 0-9 _ -");
const Sku = z.string().regex(/^sku-[0-9]{5}$/, "a SKU looks like sku-00042");
const Cart = z.object({
  cartId: z.string(),
  items: z.array(z.object({ sku: z.string(), qty: z.number().int() })),
});

/**
 * Shopping carts: OR-Maps of SKU to quantity, replicated between regions as CRDTs. Every region
 * takes cart writes, even cut off from the others; replicas converge when they can talk again.
 * Concurrent quantities for one SKU are all kept and the cart shows the largest.
 */
export const cart = defineService({
  name: "cart",
  version: "1.0.0",
  description: "Carts replicated between regions (CRDTs)",
  actions: {
    setItem: {
      input: z.object({ cartId: CartId, sku: Sku, qty: z.number().int().min(0).max(99) }),
      output: Cart,
      // Setting a quantity twice has the effect of setting it once.
      idempotent: true,
    },
    getCart: { input: z.object({ cartId: CartId }), output: Cart, idempotent: true },
    /**
     * This replica's carts in cart id order, a page at a time (`next` is the `after` of the next
     * page). Items are in SKU order, so two replicas holding the same carts give equal pages.
     */
    listCarts: {
      input: z.object({
        after: CartId.optional(),
        limit: z.number().int().min(1).max(1_000).default(100),
      }),
      output: z.object({ carts: z.array(Cart), next: z.string().optional() }),
      idempotent: true,
    },
  },
});

const noQty = (): MVRegister<number> => ({
  store: { t: "fun", entries: {} },
  ctx: { vv: {}, cloud: [] },
});

/** The items of a cart state: each SKU's quantity (the largest of concurrent ones). */
export function cartItems(state: Causal<DotMap> | undefined): Array<{ sku: string; qty: number }> {
  if (state === undefined) return [];
  return orMap.keys(state).map((sku) => {
    const values = mvRegister.values<number>(orMap.get(state, sku, noQty().store));
    return { sku, qty: Math.max(...values) };
  });
}

/** A cart implementation over this node's replica of the `carts` space. */
export function cartService(space: CrdtSpace) {
  return cart.implement({
    setItem: async ({ cartId, sku, qty }) => {
      const next = await space.update(cartId, (state, replica) =>
        qty === 0
          ? orMap.remove(state, sku)
          : orMap.update(state, replica, sku, (q, r) =>
              mvRegister.write(q as MVRegister<number>, r, qty),
            ),
      );
      return { cartId, items: cartItems(next) };
    },
    getCart: ({ cartId }) => ({ cartId, items: cartItems(space.get(cartId)) }),
    listCarts: ({ after, limit }) => {
      // keys() is sorted, and cartItems lists SKUs in order (orMap.keys sorts).
      const ids = space.keys().filter((id) => after === undefined || id > after);
      const page = ids.slice(0, limit);
      const carts = page.map((cartId) => ({ cartId, items: cartItems(space.get(cartId)) }));
      const last = page.at(-1);
      return ids.length > limit && last !== undefined ? { carts, next: last } : { carts };
    },
  });
}

import {
  StrataError,
  createStateStore,
  defineService,
  isStrataError,
  type StrongKV,
} from "@strata/core";
import { z } from "zod";

const Sku = z.string().regex(/^sku-[0-9]{5}$/, "a SKU looks like sku-00042");
const OrderId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "order ids are 1-64 of A-Z a-z 0-9 _ -");

export const StockSchema = z.object({
  sku: z.string(),
  available: z.number().int(),
  reserved: z.number().int(),
});

/**
 * Inventory: stock per SKU in strongly consistent state, so concurrent orders can never oversell.
 * A reservation is keyed by order id, which makes `reserve` and `release` safe to retry.
 */
export const inventory = defineService({
  name: "inventory",
  version: "1.0.0",
  description: "Stock levels and reservations",
  actions: {
    getStock: { input: z.object({ sku: Sku }), output: StockSchema, idempotent: true },
    reserve: {
      input: z.object({ sku: Sku, qty: z.number().int().min(1).max(100), orderId: OrderId }),
      output: z.object({
        orderId: z.string(),
        sku: z.string(),
        qty: z.number().int(),
        remaining: z.number().int(),
      }),
      // Idempotent by design: a second reserve for the same order returns the first one's result.
      idempotent: true,
    },
    release: {
      input: z.object({ orderId: OrderId }),
      output: z.object({ released: z.boolean() }),
      idempotent: true,
    },
  },
});

interface Stock {
  readonly available: number;
  readonly reserved: number;
}

interface Reservation {
  readonly sku: string;
  readonly qty: number;
}

/** Loads the initial stock into `kv` (once: existing keys are kept). */
export async function seedInventory(
  kv: StrongKV,
  stock: ReadonlyMap<string, number>,
): Promise<void> {
  const store = createStateStore(kv, "stock");
  await Promise.all(
    [...stock].map(([sku, available]) =>
      store.create<Stock>(sku, { available, reserved: 0 }).catch((error: unknown) => {
        if (!isStrataError(error, "ALREADY_EXISTS")) throw error;
      }),
    ),
  );
}

/** An inventory implementation over any StrongKV adapter (embedded, NATS KV, PostgreSQL). */
export function inventoryService(kv: StrongKV) {
  const stock = createStateStore(kv, "stock");
  const reservations = createStateStore(kv, "reservation");
  return inventory.implement({
    getStock: async ({ sku }) => {
      const current = await stock.get<Stock>(sku);
      if (current === undefined)
        throw new StrataError("NOT_FOUND", `no stock record for ${sku}`, { details: { sku } });
      return { sku, ...current.value };
    },
    reserve: async ({ sku, qty, orderId }, ctx) => {
      const existing = await reservations.get<Reservation>(orderId);
      if (existing !== undefined) {
        if (existing.value.sku !== sku || existing.value.qty !== qty) {
          throw new StrataError(
            "ALREADY_EXISTS",
            `order ${orderId} already reserved ${existing.value.qty} of ${existing.value.sku}`,
          );
        }
        const now = await stock.get<Stock>(sku);
        return { orderId, sku, qty, remaining: now?.value.available ?? 0 };
      }
      // Claim the order id first, so a retried or duplicated reserve cannot take stock twice.
      try {
        await reservations.create<Reservation>(orderId, { sku, qty });
      } catch (error) {
        if (isStrataError(error, "ALREADY_EXISTS")) {
          return {
            orderId,
            sku,
            qty,
            remaining: (await stock.get<Stock>(sku))?.value.available ?? 0,
          };
        }
        throw error;
      }
      try {
        const updated = await stock.update<Stock>(
          sku,
          (current) => {
            if (current === undefined)
              throw new StrataError("NOT_FOUND", `no stock record for ${sku}`);
            if (current.available < qty) {
              throw new StrataError(
                "FAILED_PRECONDITION",
                `only ${current.available} of ${sku} left`,
                {
                  details: { sku, available: current.available, requested: qty },
                },
              );
            }
            return { available: current.available - qty, reserved: current.reserved + qty };
          },
          { signal: ctx.signal },
        );
        return { orderId, sku, qty, remaining: updated.value?.available ?? 0 };
      } catch (error) {
        await reservations.delete(orderId).catch(() => undefined);
        throw error;
      }
    },
    release: async ({ orderId }) => {
      const existing = await reservations.get<Reservation>(orderId);
      if (existing === undefined) return { released: false };
      // Claim the release by deleting the reservation at the revision read: of two concurrent
      // releases only one returns the stock. A crash after this line leaks stock (never oversells).
      try {
        await reservations.delete(orderId, { expectedRevision: existing.revision });
      } catch (error) {
        if (isStrataError(error, "FAILED_PRECONDITION")) return { released: false };
        throw error;
      }
      await stock.update<Stock>(existing.value.sku, (current) =>
        current === undefined
          ? undefined
          : {
              available: current.available + existing.value.qty,
              reserved: current.reserved - existing.value.qty,
            },
      );
      return { released: true };
    },
  });
}

import { trace } from "@opentelemetry/api";
import {
  StrataError,
  defineService,
  isStrataError,
  type Events,
  type StrongKV,
} from "@strata/core";
import { z } from "zod";

const OrderId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "order ids are 1-64 of A-Z a-z 0-9 _ -");
const Sku = z.string().regex(/^sku-[0-9]{5}$/, "a SKU looks like sku-00042");

export const OrderSchema = z.object({
  orderId: z.string(),
  sku: z.string(),
  qty: z.number().int(),
  amountMinor: z.number().int(),
  status: z.enum(["confirmed", "cancelled"]),
  reason: z.string().optional(),
});
export type Order = z.infer<typeof OrderSchema>;

/**
 * Orders: checkout reserves stock, charges the card and confirms; when a step fails, the steps
 * already done are undone. The order record and its event (`confirmed` or `cancelled`) commit
 * together through the transactional outbox, so no consumer ever misses an order that exists,
 * nor sees one that does not.
 */
export const orders = defineService({
  name: "orders",
  version: "1.0.0",
  description: "Checkout and order records",
  actions: {
    place: {
      input: z.object({
        orderId: OrderId,
        sku: Sku,
        qty: z.number().int().min(1).max(100),
        priceMinor: z.number().int().min(1),
      }),
      output: OrderSchema,
      // Placing an order id twice returns the first outcome.
      idempotent: true,
    },
    get: { input: z.object({ orderId: OrderId }), output: OrderSchema, idempotent: true },
  },
  events: {
    confirmed: z.object({
      orderId: z.string(),
      sku: z.string(),
      qty: z.number().int(),
      amountMinor: z.number().int(),
    }),
    cancelled: z.object({
      orderId: z.string(),
      sku: z.string(),
      qty: z.number().int(),
      reason: z.string(),
    }),
  },
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const orderKey = (orderId: string): string => `order/${orderId}`;

/** Reads an order record (JSON, written with its event through the outbox). */
export async function readOrder(kv: StrongKV, orderId: string): Promise<Order | undefined> {
  const entry = await kv.get(orderKey(orderId));
  return entry === undefined ? undefined : (JSON.parse(dec.decode(entry.value)) as Order);
}

/**
 * Records an order's outcome and publishes its event in one transaction. The order key must be
 * absent: of two attempts to record one order (a retried or resumed checkout), one commits and
 * the other reads what it committed.
 */
export async function recordOrder(events: Events, order: Order): Promise<Order> {
  const event =
    order.status === "confirmed"
      ? {
          contract: orders,
          event: "confirmed",
          data: {
            orderId: order.orderId,
            sku: order.sku,
            qty: order.qty,
            amountMinor: order.amountMinor,
          },
        }
      : {
          contract: orders,
          event: "cancelled",
          data: {
            orderId: order.orderId,
            sku: order.sku,
            qty: order.qty,
            reason: order.reason ?? "",
          },
        };
  try {
    await events.transaction({
      checks: [{ key: orderKey(order.orderId), revision: 0 }],
      writes: [
        { type: "put", key: orderKey(order.orderId), value: enc.encode(JSON.stringify(order)) },
      ],
      events: [{ ...event, key: order.orderId, id: `${order.orderId}:${order.status}` }],
    });
    return order;
  } catch (error) {
    if (!isStrataError(error, "FAILED_PRECONDITION")) throw error;
    const existing = await readOrder(events.kv, order.orderId);
    if (existing === undefined) throw error;
    return existing;
  }
}

/** How a checkout runs: the orders service hands each placed order to it. */
export type Checkout = (
  input: { orderId: string; sku: string; qty: number; priceMinor: number },
  signal: AbortSignal,
) => Promise<Order>;

/** The orders service: `place` runs the checkout, `get` reads the record. */
export function ordersService(events: Events, checkout: Checkout) {
  return orders.implement({
    place: async (input, ctx) => {
      // The order id on the call's span: the demo finds the slowest order's trace by it.
      trace.getActiveSpan()?.setAttribute("commerce.order.id", input.orderId);
      const existing = await readOrder(events.kv, input.orderId);
      if (existing !== undefined) return existing;
      return checkout(input, ctx.signal);
    },
    get: async ({ orderId }) => {
      const order = await readOrder(events.kv, orderId);
      if (order === undefined) {
        throw new StrataError("NOT_FOUND", `no order ${orderId}`, { details: { orderId } });
      }
      return order;
    },
  });
}

import {
  StrataError,
  startProjection,
  type EventContext,
  type Events,
  type Projection,
  type Subscription,
} from "@strata/core";
import { orders } from "./orders.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** SKUs whose orders the audit consumer cannot handle: their events end as dead letters. */
export const isAuditPoison = (sku: string): boolean => sku.endsWith("7");

/**
 * The consumers of order events on one node: notifications (one per order, exactly once, as a
 * state change committed with the event's marker), an audit consumer that fails on some SKUs
 * (their events go to the dead-letter stream after three attempts), and the `sales` projection
 * (units sold per SKU). Every node runs them; the nodes share the partitions.
 */
export async function startOrderConsumers(
  events: Events,
): Promise<{ subscriptions: Subscription[]; sales: Projection }> {
  // One notification per order, counted: a count above 1 would be a duplicated effect.
  const send = async (orderId: string, ctx: EventContext): Promise<void> => {
    const key = `notification/${orderId}`;
    const current = await events.kv.get(key);
    const count = current === undefined ? 0 : Number(dec.decode(current.value));
    await ctx.transaction({
      checks: [{ key, revision: current?.revision ?? 0 }],
      writes: [{ type: "put", key, value: enc.encode(String(count + 1)) }],
    });
  };
  const notify = await events.subscribe(orders, {
    group: "notifications",
    on: {
      confirmed: (event, ctx) => send(event.data.orderId, ctx),
      cancelled: (event, ctx) => send(event.data.orderId, ctx),
    },
  });
  const audit = await events.subscribe(orders, {
    group: "audit",
    maxAttempts: 3,
    backoff: { initialMs: 5, maxMs: 20 },
    on: {
      confirmed: (event) => {
        if (isAuditPoison(event.data.sku)) {
          throw new StrataError("INTERNAL", `audit cannot classify ${event.data.sku}`);
        }
      },
    },
  });
  const sales = await startProjection(events, {
    name: "sales",
    contract: orders,
    on: {
      confirmed: async (event, model) => {
        const units = (await model.get<number>(event.data.sku)) ?? 0;
        model.put(event.data.sku, units + event.data.qty);
      },
    },
  });
  return { subscriptions: [notify, audit], sales };
}

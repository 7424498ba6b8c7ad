import { isStrataError, type Events, type StrataNode } from "@strata/core";
import { inventory } from "./inventory.js";
import { recordOrder, type Checkout, type Order } from "./orders.js";
import { payments } from "./payments.js";

/**
 * The checkout flow: reserve stock, charge the card, record the order as confirmed; when the
 * charge is declined, release the stock and record the order as cancelled. Every step is keyed
 * by the order id, so running the flow again for the same order is safe.
 */
export function plainCheckout(node: StrataNode, events: Events): Checkout {
  const stock = node.client(inventory);
  const pay = node.client(payments);
  return async (input, signal) => {
    const { orderId, sku, qty, priceMinor } = input;
    const amountMinor = priceMinor * qty;
    try {
      await stock.reserve({ orderId, sku, qty }, { signal });
    } catch (error) {
      if (!isStrataError(error, "FAILED_PRECONDITION")) throw error;
      return recordOrder(events, {
        orderId,
        sku,
        qty,
        amountMinor,
        status: "cancelled",
        reason: "out of stock",
      });
    }
    try {
      await pay.charge({ orderId, amountMinor }, { signal });
    } catch (error) {
      if (!isStrataError(error, "FAILED_PRECONDITION")) throw error;
      await stock.release({ orderId }, { signal });
      return recordOrder(events, {
        orderId,
        sku,
        qty,
        amountMinor,
        status: "cancelled",
        reason: "card declined",
      });
    }
    const order: Order = { orderId, sku, qty, amountMinor, status: "confirmed" };
    return recordOrder(events, order);
  };
}

import {
  StrataError,
  defineSaga,
  type Events,
  type SagaRunner,
  type StrataNode,
} from "@strata/core";
import { z } from "zod";
import { inventory } from "./inventory.js";
import { recordOrder, type Checkout, type Order } from "./orders.js";
import { payments } from "./payments.js";

const CheckoutInput = z.object({
  orderId: z.string(),
  sku: z.string(),
  qty: z.number().int(),
  priceMinor: z.number().int(),
});

/**
 * Checkout as a saga: reserve stock (undone by releasing it), charge the card (undone by a
 * refund), record the order as confirmed with its event. Out of stock and a declined card end
 * the saga, which undoes what was done; the orders service then records the order as
 * cancelled. Every step is keyed by the order id, so a runner that takes over a saga whose node
 * died can run a cut-off step again safely.
 */
export function checkoutSaga(node: StrataNode, events: Events) {
  const stock = node.client(inventory);
  const pay = node.client(payments);
  return defineSaga({
    name: "checkout",
    input: CheckoutInput,
    timeoutMs: 20_000,
    async run(ctx, input) {
      const { orderId, sku, qty, priceMinor } = input;
      const amountMinor = priceMinor * qty;
      await ctx.step("reserve", {
        run: (step) =>
          stock.reserve(
            { orderId, sku, qty },
            { signal: step.signal, idempotencyKey: step.idempotencyKey },
          ),
        compensate: (_, step) =>
          stock.release({ orderId }, { signal: step.signal }).then(() => undefined),
        timeoutMs: 5_000,
      });
      await ctx.step("charge", {
        run: (step) =>
          pay.charge(
            { orderId, amountMinor },
            { signal: step.signal, idempotencyKey: step.idempotencyKey },
          ),
        compensate: (_, step) =>
          pay.refund({ orderId }, { signal: step.signal }).then(() => undefined),
        timeoutMs: 5_000,
      });
      return ctx.step("confirm", {
        run: () => recordOrder(events, { orderId, sku, qty, amountMinor, status: "confirmed" }),
      });
    },
  });
}

/** The orders service's checkout: start (or join) the order's saga and wait for its outcome. */
export function sagaCheckout(
  sagas: SagaRunner,
  saga: ReturnType<typeof checkoutSaga>,
  events: Events,
): Checkout {
  return async (input) => {
    const outcome = await (await sagas.start(saga, input, { id: input.orderId })).result();
    if (outcome.status === "completed") return outcome.output;
    if (outcome.status === "failed") {
      throw new StrataError(
        "INTERNAL",
        `checkout of ${input.orderId} needs an operator: ${outcome.error.message}`,
      );
    }
    const order: Order = {
      orderId: input.orderId,
      sku: input.sku,
      qty: input.qty,
      amountMinor: input.priceMinor * input.qty,
      status: "cancelled",
      reason:
        outcome.error.code === "FAILED_PRECONDITION"
          ? outcome.error.message
          : `checkout failed: ${outcome.error.code}`,
    };
    return recordOrder(events, order);
  };
}

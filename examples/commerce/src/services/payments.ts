import {
  StrataError,
  createStateStore,
  defineService,
  hash32,
  isStrataError,
  type StrongKV,
} from "@strata/core";
import { z } from "zod";

const OrderId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "order ids are 1-64 of A-Z a-z 0-9 _ -");

/**
 * Payments: a stand-in for a card processor. A charge and a refund are keyed by order id, so
 * both are safe to retry. Cards are declined for a fixed share of orders (decided by the order
 * id, so a retried charge gets the same answer), which is what drives checkouts to compensate.
 */
export const payments = defineService({
  name: "payments",
  version: "1.0.0",
  description: "Charges and refunds keyed by order id",
  actions: {
    charge: {
      input: z.object({ orderId: OrderId, amountMinor: z.number().int().min(1) }),
      output: z.object({ chargeId: z.string(), amountMinor: z.number().int() }),
      idempotent: true,
    },
    refund: {
      input: z.object({ orderId: OrderId }),
      output: z.object({ refunded: z.boolean() }),
      idempotent: true,
    },
  },
});

interface Charge {
  readonly amountMinor: number;
  readonly refunded: boolean;
}

/** Payments over any StrongKV; `declinePercent` of orders have their card declined. */
export function paymentsService(kv: StrongKV, options: { declinePercent?: number } = {}) {
  const charges = createStateStore(kv, "charge");
  const declinePercent = options.declinePercent ?? 5;
  return payments.implement({
    charge: async ({ orderId, amountMinor }) => {
      if (hash32(`card:${orderId}`) % 100 < declinePercent) {
        throw new StrataError("FAILED_PRECONDITION", `card declined for order ${orderId}`, {
          details: { orderId, reason: "declined" },
        });
      }
      try {
        await charges.create<Charge>(orderId, { amountMinor, refunded: false });
      } catch (error) {
        if (!isStrataError(error, "ALREADY_EXISTS")) throw error;
      }
      const charge = await charges.get<Charge>(orderId);
      return { chargeId: `ch-${orderId}`, amountMinor: charge?.value.amountMinor ?? amountMinor };
    },
    refund: async ({ orderId }) => {
      const result = await charges.update<Charge>(orderId, (current) =>
        current === undefined || current.refunded ? current : { ...current, refunded: true },
      );
      return { refunded: result.value?.refunded === true };
    },
  });
}

import {
  StrataError,
  createStateStore,
  defineService,
  hash32,
  isStrataError,
  type StrongKV,
} from "@strata/core";
import type { Ledger } from "@strata/ledger";
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

/** The ledger accounts payments move money between. */
export const PAYMENT_ACCOUNTS = {
  /** Where customers' money comes from (unbounded: money entering the ledger). */
  mint: "mint",
  merchant: "merchant",
  fees: "fees",
} as const;

/** Customers of the demo shop: an order's customer is decided by its id. */
export const CUSTOMERS = 50;

export function customerOf(orderId: string): string {
  return `customer-${String(hash32(`customer:${orderId}`) % CUSTOMERS).padStart(2, "0")}`;
}

/** The processor's fee: 2.9% of the amount, rounded down. */
export function feeOf(amountMinor: number): number {
  return Math.floor((amountMinor * 29) / 1_000);
}

/** Opens the ledger accounts payments use and funds every customer with `fundMinor`. */
export async function openPaymentAccounts(ledger: Ledger, fundMinor: bigint): Promise<void> {
  await ledger.openAccount({ id: PAYMENT_ACCOUNTS.mint, currency: "EUR", lowerBound: null });
  await ledger.openAccount({ id: PAYMENT_ACCOUNTS.merchant, currency: "EUR" });
  await ledger.openAccount({ id: PAYMENT_ACCOUNTS.fees, currency: "EUR" });
  for (let i = 0; i < CUSTOMERS; i++) {
    const id = `customer-${String(i).padStart(2, "0")}`;
    await ledger.openAccount({ id, currency: "EUR" });
    await ledger.transfer({
      key: `fund:${id}`,
      debit: PAYMENT_ACCOUNTS.mint,
      credit: id,
      amount: fundMinor,
      currency: "EUR",
    });
  }
}

/** The transfers of a charge (`sign` 1) or of its refund (`sign` -1): to the merchant and the fee. */
function postings(orderId: string, amountMinor: number, refund: boolean) {
  const customer = customerOf(orderId);
  const fee = feeOf(amountMinor);
  const legs = [
    { key: `charge:${orderId}`, to: PAYMENT_ACCOUNTS.merchant, amount: amountMinor - fee },
    { key: `fee:${orderId}`, to: PAYMENT_ACCOUNTS.fees, amount: fee },
  ].filter((leg) => leg.amount > 0);
  return legs.map((leg) => ({
    key: refund ? `refund-${leg.key}` : leg.key,
    debit: refund ? leg.to : customer,
    credit: refund ? customer : leg.to,
    amount: BigInt(leg.amount),
    currency: "EUR",
    metadata: { orderId },
  }));
}

/**
 * Payments over any StrongKV; `declinePercent` of orders have their card declined. With a ledger,
 * a charge also posts the customer's payment to the merchant and the processor's fee, all or
 * nothing and exactly once (keyed by order id), and is declined when the customer's balance
 * would go below zero; a refund posts the reverse.
 */
export function paymentsService(
  kv: StrongKV,
  options: { declinePercent?: number; ledger?: Ledger } = {},
) {
  const charges = createStateStore(kv, "charge");
  const declinePercent = options.declinePercent ?? 5;
  const ledger = options.ledger;
  return payments.implement({
    charge: async ({ orderId, amountMinor }) => {
      if (hash32(`card:${orderId}`) % 100 < declinePercent) {
        throw new StrataError("FAILED_PRECONDITION", `card declined for order ${orderId}`, {
          details: { orderId, reason: "declined" },
        });
      }
      if (ledger !== undefined) {
        try {
          await ledger.post(postings(orderId, amountMinor, false));
        } catch (error) {
          if (isStrataError(error, "FAILED_PRECONDITION")) {
            throw new StrataError(
              "FAILED_PRECONDITION",
              `insufficient funds for order ${orderId}`,
              { details: { orderId, reason: "insufficient-funds" } },
            );
          }
          throw error;
        }
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
      if (ledger !== undefined) {
        // Refund in the ledger only what it charged: after catching up, the charge is there or
        // it never happened (a declined card, insufficient funds).
        const charge = await charges.get<Charge>(orderId);
        await ledger.sync();
        if (charge !== undefined && ledger.lookup(`charge:${orderId}`) !== undefined) {
          await ledger.post(postings(orderId, charge.value.amountMinor, true));
        }
      }
      const result = await charges.update<Charge>(orderId, (current) =>
        current === undefined || current.refunded ? current : { ...current, refunded: true },
      );
      return { refunded: result.value?.refunded === true };
    },
  });
}

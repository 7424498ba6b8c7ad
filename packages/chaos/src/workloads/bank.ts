import { isStrataError } from "@strata/core";
import { checkBank } from "@strata/verify";
import { bankService } from "../services.js";
import {
  CALL,
  clientLoops,
  createTracker,
  definitelyNot,
  untilOk,
  type Workload,
  type WorkloadContext,
  type WorkloadVerdict,
} from "./workload.js";

/** Options of {@link bankWorkload}. */
export interface BankWorkloadOptions {
  /** Accounts; default 5. */
  readonly accounts?: number;
  /** Each account's opening balance; default 100. */
  readonly initial?: number;
}

const withoutMint = (balances: Record<string, number>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const [id, b] of Object.entries(balances)) if (id !== "mint") out[id] = b;
  return out;
};

/**
 * A bank on the ledger: clients transfer random amounts between accounts and read every balance.
 * A transfer refused for insufficient funds is `fail`; any other error is `info` (it may have
 * been applied). Checked: every read sums to the total and no balance is below zero, and the
 * final balances are the opening ones plus every acknowledged transfer plus some of the unknown.
 */
export function bankWorkload(options: BankWorkloadOptions = {}): Workload {
  const tracker = createTracker("bank");
  const accounts = Array.from({ length: options.accounts ?? 5 }, (_, i) => `a${i}`);
  const initial = options.initial ?? 100;
  const setup = async (ctx: WorkloadContext): Promise<void> => {
    const client = ctx.cluster.client.client(bankService, { timeoutMs: 10_000 });
    await untilOk(60_000, () => client.setup({ accounts, initial }));
  };
  const read = (ctx: WorkloadContext, process: number | string) =>
    tracker.op(
      ctx.metrics,
      process,
      "read",
      null,
      () => ctx.cluster.client.client(bankService, CALL).read({}),
      { output: (r) => withoutMint(r.balances), classify: () => "fail" },
    );
  const run = async (ctx: WorkloadContext): Promise<void> => {
    const client = ctx.cluster.client.client(bankService, CALL);
    await clientLoops(ctx, async (c, i, process) => {
      if (ctx.random() < 0.3) return (await read(ctx, process)).outcome;
      const from = accounts[Math.floor(ctx.random() * accounts.length)] as string;
      let to = accounts[Math.floor(ctx.random() * accounts.length)] as string;
      if (to === from) to = accounts[(accounts.indexOf(from) + 1) % accounts.length] as string;
      const amount = 1 + Math.floor(ctx.random() * 30);
      const key = `t-${c}-${i}`;
      const { outcome } = await tracker.op(
        ctx.metrics,
        process,
        "transfer",
        { from, to, amount },
        () => client.transfer({ key, from, to, amount }),
        {
          output: () => ({ from, to, amount }),
          classify: (e) =>
            isStrataError(e, "FAILED_PRECONDITION")
              ? "refused"
              : definitelyNot(e)
                ? "fail"
                : "info",
        },
      );
      return outcome;
    });
  };
  return {
    name: "bank",
    setup,
    run,
    async finish(ctx) {
      await untilOk(30_000, async () => {
        const { outcome } = await read(ctx, "final");
        if (outcome !== "ok") throw new Error("the final read failed");
      });
    },
    check(): WorkloadVerdict {
      const total = initial * accounts.length;
      const verdict = checkBank(tracker.recorder.events(), {
        total,
        accounts,
        lowerBound: 0,
        initial: Object.fromEntries(accounts.map((a) => [a, initial])),
      });
      return {
        workload: "bank",
        valid: verdict.valid,
        summary: verdict.valid
          ? `every read sums to ${total} with no balance below 0; final balances account for every acknowledged transfer`
          : `${verdict.anomalies.length} anomalies: ${[...new Set(verdict.anomalies.map((a) => a.type))].join(", ")}`,
        operations: { ...tracker.counts },
        errors: { ...tracker.errors },
        errorExamples: { ...tracker.errorExamples },
        details: verdict,
      };
    },
    history: () => tracker.recorder.events(),
    historyJson: () => tracker.recorder.toJson(),
  };
}

// Runs the test's checkout saga over an embedded store and stops inside its "charge" step (it
// prints "in charge" and waits), so a test can kill -9 this process mid-step and check that
// another runner resumes the saga and applies every step's effect exactly once.
// Usage: node saga-runner.mjs <kv dir> <saga id> <fail: yes|no>
import { createSagaRunner, customSchema, defineSaga, openEmbeddedKv } from "@strata/core";

const [dir, id, fail] = process.argv.slice(2);
const kv = await openEmbeddedKv({ dir });
const enc = new TextEncoder();
const dec = new TextDecoder();
const effect = async (key) => {
  const current = await kv.get(key);
  const count = current === undefined ? 0 : Number(dec.decode(current.value));
  await kv.compareAndSet(key, enc.encode(String(count + 1)), current?.revision ?? 0);
};
const checkout = defineSaga({
  name: "checkout",
  input: customSchema((value) => ({ value })),
  async run(ctx, input) {
    await ctx.step("reserve", {
      run: (step) => effect(`effects/${step.idempotencyKey}`),
      compensate: (_, step) => effect(`undo/${step.idempotencyKey}`),
    });
    await ctx.step("charge", {
      run: async () => {
        process.stdout.write("in charge\n");
        await new Promise(() => undefined); // killed here
      },
    });
    return { fail: input.fail };
  },
});
const sagas = createSagaRunner({ kv, owner: "child", leaseMs: 500, scanIntervalMs: 50 });
sagas.register(checkout);
await sagas.start(checkout, { fail: fail === "yes" }, { id });

import * as fc from "fast-check";
import type { PlannedRegisterOp, RegisterSimulationOptions } from "../generate.js";

export {
  seededRegisterPlans as seededPlans,
  simulateRegisterHistory as simulate,
} from "../generate.js";
export type {
  PlannedRegisterOp as PlannedOp,
  RegisterSimulationOptions as SimulationOptions,
} from "../generate.js";

/** fast-check plans for `simulate`: per client, a list of operations. */
export function plansArbitrary(
  options: RegisterSimulationOptions & {
    readonly opsPerClient: { readonly min: number; readonly max: number };
    readonly crash: number;
  },
): fc.Arbitrary<PlannedRegisterOp[][]> {
  // Integers scaled down, not fc.double, whose values crowd at the ends of the range.
  const fraction = fc.integer({ min: 0, max: 1_000 }).map((x) => x / 1_000);
  const op: fc.Arbitrary<PlannedRegisterOp> = fc.record({
    f: fc.constantFrom<PlannedRegisterOp["f"]>("read", "read", "write", "cas"),
    key: fc.nat({ max: options.keys - 1 }),
    value: fc.nat({ max: options.values - 1 }),
    expected: fc.nat({ max: options.values - 1 }),
    duration: fc.integer({ min: 1, max: 200 }).map((x) => x / 10),
    gap: fc.integer({ min: 0, max: 50 }).map((x) => x / 10),
    at: fraction,
    crash: fraction.map((x) => x < options.crash),
    applies: fc.boolean(),
    refused: fraction.map((x) => x < 0.02),
  });
  return fc.array(
    fc.array(op, { minLength: options.opsPerClient.min, maxLength: options.opsPerClient.max }),
    {
      minLength: options.clients,
      maxLength: options.clients,
    },
  );
}

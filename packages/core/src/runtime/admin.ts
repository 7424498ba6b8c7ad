import { StrataError } from "../errors/index.js";
import type { FaultInjector, FaultRule } from "../resilience/faults.js";
import { parseFaultSpec } from "../resilience/faults.js";
import { anySchema, objectSchema } from "../service/custom-schema.js";
import { defineService, type AnyServiceImplementation } from "../service/define-service.js";
import type { TelemetrySnapshot } from "../observability/snapshot.js";
import type { HealthReport } from "./health.js";

/** Name of the built-in service every node serves for tools (`strata fault`, `strata nodes`). */
export const ADMIN_SERVICE = "strata-admin";

/**
 * The built-in admin contract: health, counters and run-time fault injection of one node. Call it
 * with `{ node: id }` to reach a chosen node.
 */
export const adminContract = defineService({
  name: ADMIN_SERVICE,
  version: "1.0.0",
  description: "Health, counters and fault injection of one node",
  actions: {
    health: { input: objectSchema(), output: anySchema<HealthReport>(), idempotent: true },
    stats: { input: objectSchema(), output: anySchema<object>(), idempotent: true },
    telemetry: {
      input: objectSchema(),
      output: anySchema<TelemetrySnapshot>(),
      idempotent: true,
    },
    faultInject: { input: objectSchema(), output: anySchema<FaultRule>() },
    faultList: { input: objectSchema(), output: anySchema<FaultRule[]>(), idempotent: true },
    faultClear: {
      input: objectSchema<{ id?: string }>(),
      output: anySchema<{ removed: number }>(),
      idempotent: true,
    },
  },
});

/** What the admin service reads from its node. */
export interface AdminHost {
  health(): HealthReport;
  stats(): object;
  telemetrySnapshot(): TelemetrySnapshot;
  readonly faults: FaultInjector;
}

/** The admin service's implementation for one node. */
export function adminService(host: AdminHost): AnyServiceImplementation {
  return adminContract.implement({
    health: () => host.health(),
    stats: () => host.stats(),
    telemetry: () => host.telemetrySnapshot(),
    faultInject: (input) => host.faults.inject(parseFaultSpec(input)),
    faultList: () => host.faults.list(),
    faultClear: ({ id }) => {
      if (id !== undefined && typeof id !== "string") {
        throw new StrataError("INVALID_ARGUMENT", "faultClear: id must be a string");
      }
      return { removed: host.faults.clear(id) };
    },
  });
}

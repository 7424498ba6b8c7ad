import type { SloSpec } from "@strata/core";

/** The commerce objectives, declared on every service node. */
export const COMMERCE_SLOS: readonly SloSpec[] = [
  {
    name: "checkout-availability",
    service: "orders",
    action: "place",
    kind: "availability",
    objective: 0.995,
  },
  {
    name: "checkout-latency",
    service: "orders",
    action: "place",
    kind: "latency",
    objective: 0.99,
    thresholdMs: 1_000,
  },
  { name: "inventory-availability", service: "inventory", kind: "availability", objective: 0.999 },
  {
    name: "catalog-latency",
    service: "catalog",
    kind: "latency",
    objective: 0.99,
    thresholdMs: 50,
  },
];

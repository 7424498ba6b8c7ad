import {
  StrataError,
  adminContract,
  type Events,
  type ServiceContract,
  type StrataNode,
} from "@strata/core";
import type { ServiceSignals } from "./types.js";

/** What {@link collectSignals} reads besides the nodes' own telemetry. */
export interface SignalSources {
  /** Consumer groups whose backlog counts for the service. */
  readonly consumers?: ReadonlyArray<{
    readonly events: Events;
    readonly contract: ServiceContract;
    readonly group: string;
  }>;
  /**
   * In-flight calls one replica is meant to carry, for utilisation on nodes without a
   * concurrency limit (default 32).
   */
  readonly capacityInFlight?: number;
  /** Per-node answer time (ms); default 1 000. A node that does not answer counts as unknown. */
  readonly timeoutMs?: number;
}

/**
 * Reads a service's load from the runtime itself: every ready node serving it is asked for its
 * telemetry (the built-in admin service), and the answers are aggregated — calls per second
 * summed, utilisation (in flight against the concurrency limit) and CPU averaged, event-loop
 * delay and p99 taken at their worst, the fastest SLO burn among the service's objectives, and
 * the consumer groups' backlog summed.
 *
 * @example
 * const signals = await collectSignals(node, "inventory");
 */
export async function collectSignals(
  node: StrataNode,
  service: string,
  sources: SignalSources = {},
): Promise<ServiceSignals> {
  const capacity = sources.capacityInFlight ?? 32;
  if (!(Number.isFinite(capacity) && capacity > 0)) {
    throw new StrataError("INVALID_ARGUMENT", "capacityInFlight must be a positive number");
  }
  const replicas = node
    .nodes()
    .filter((n) => n.status === "ready" && n.services.some((s) => s.name === service));
  const admin = node.client(adminContract, { preferLocal: false, regionAffinity: false });
  const answers = await Promise.allSettled(
    replicas.map((r) =>
      r.id === node.id
        ? Promise.resolve(node.telemetrySnapshot())
        : admin.telemetry({}, { node: r.id, timeoutMs: sources.timeoutMs ?? 1_000 }),
    ),
  );
  // A node answering over the network counts the telemetry call itself as in flight.
  const snapshots = answers.flatMap((a, i) =>
    a.status === "fulfilled"
      ? [
          replicas[i]?.id === node.id
            ? a.value
            : { ...a.value, inFlight: Math.max(0, a.value.inFlight - 1) },
        ]
      : [],
  );
  if (replicas.length > 0 && snapshots.length === 0) {
    // No replica answered (overloaded, or cut off): no data is not the same as no load.
    throw new StrataError(
      "UNAVAILABLE",
      `no replica of ${service} answered for its telemetry (${replicas.length} known)`,
    );
  }
  let requestsPerSecond = 0;
  let p99Ms = 0;
  let sloBurn = 0;
  let utilisation = 0;
  let cpu = 0;
  let eventLoopDelayMs = 0;
  for (const snapshot of snapshots) {
    let calls = 0;
    let shed = 0;
    let rps = 0;
    let busyTime = 0;
    for (const a of snapshot.actions) {
      if (a.service !== service) continue;
      rps += a.requestsPerSecond;
      p99Ms = Math.max(p99Ms, a.p99Ms);
      calls += a.count;
      shed += a.errors.RESOURCE_EXHAUSTED ?? 0;
      // Little's law: calls in flight on average = arrival rate × time in the system.
      busyTime += (a.requestsPerSecond * a.p50Ms) / 1_000;
    }
    requestsPerSecond += rps;
    for (const slo of snapshot.slos) {
      if (slo.service !== service) continue;
      for (const rate of Object.values(slo.burnRates)) sloBurn = Math.max(sloBurn, rate);
    }
    const limit = snapshot.concurrencyLimit ?? capacity;
    // A node at its limit sheds what it cannot take, so in-flight over the limit stops at 1
    // however large the load. The calls it shed tell the rest: offered load = what it carried /
    // the share it did not shed.
    // In flight now is one sample; the window's rate × latency is the average: the larger wins.
    const busy = Math.min(1, Math.max(snapshot.inFlight, busyTime) / Math.max(1, limit));
    const carried = calls === 0 ? 1 : Math.max(0.05, 1 - shed / calls);
    utilisation += busy / carried;
    cpu += snapshot.cpu ?? 0;
    eventLoopDelayMs = Math.max(eventLoopDelayMs, snapshot.eventLoopDelayP99Ms);
  }
  let backlog = 0;
  for (const c of sources.consumers ?? []) {
    backlog += await c.events.lag(c.contract, c.group).catch(() => 0);
  }
  const n = Math.max(1, snapshots.length);
  return {
    service,
    at: node.clock.now(),
    replicas: replicas.length,
    requestsPerSecond,
    utilisation: utilisation / n,
    cpu: cpu / n,
    eventLoopDelayMs,
    backlog,
    lagMs: 0,
    sloBurn,
    p99Ms,
  };
}

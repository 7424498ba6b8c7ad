import {
  collectSignals,
  compare,
  createAutoscaler,
  createLocalActuator,
  createPolicy,
  type Actuator,
  type Autoscaler,
  loadTrace,
  type LocalActuator,
  type PolicyConfigInput,
  type RecordedDecision,
  type Replica,
} from "@strata/autoscale";
import {
  anySchema,
  createNode,
  createStateStore,
  defineService,
  runOpenLoad,
  type Transport,
  type StrataNode,
  type StrongKV,
} from "@strata/core";
import { waitFor } from "@strata/test-harness/engines";

/**
 * Product pages ask whether a SKU is in stock. Each replica reads the stock and waits on a
 * warehouse system (about 20 ms), with at most 2 checks at a time: an I/O-bound service whose
 * capacity grows with its replicas (about 100 checks a second each), so that adding replicas
 * inside one process really adds capacity, as adding pods would.
 */
export const availabilityService = defineService({
  name: "availability",
  version: "1.0.0",
  actions: {
    check: {
      input: anySchema<{ sku: string }>(),
      output: anySchema<{ sku: string; inStock: boolean }>(),
      idempotent: true,
    },
  },
});

const WAREHOUSE_MS = 20;
const SLOTS_PER_REPLICA = 2;
/** What a check may take for the page to feel instant. */
export const AVAILABILITY_P99_SLO_MS = 100;

/** What the demo report says about autoscaling. */
export interface AutoscaleSummary {
  readonly policy: string;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** The traffic profile: base rate, spike rate and when the spike ran (s). */
  readonly traffic: {
    readonly baseRps: number;
    readonly spikeRps: number;
    readonly spikeFromSecond: number;
    readonly spikeToSecond: number;
  };
  /** Per second: replicas serving, checks started, p99 (ms) and failures of the checks that ended. */
  readonly timeline: ReadonlyArray<{
    readonly second: number;
    readonly replicas: number;
    readonly rps: number;
    readonly p99Ms: number;
    readonly failed: number;
  }>;
  readonly decisions: ReadonlyArray<{
    readonly atSecond: number;
    readonly from: number;
    readonly to: number;
    readonly reason: string;
  }>;
  readonly peakReplicas: number;
  /** Start-up time of a replica (from the actuator's request until it serves), ms. */
  readonly startupMs: number;
  /**
   * Seconds from the start of the spike until p99 was back under the SLO (and nothing failed)
   * for the rest of the run; null if it never came back.
   */
  readonly recoveredAfterSeconds: number | null;
  readonly checks: { readonly ok: number; readonly failed: number };
  /**
   * What forecasting gains on a Black-Friday day, simulated on the shipped trace (a live run of
   * seconds cannot show seasonality): SLO-violation minutes and replica-minutes of the reactive
   * (target-tracking) and the predictive policy.
   */
  readonly predictiveGain: {
    readonly trace: string;
    readonly reactive: { readonly violationMinutes: number; readonly replicaMinutes: number };
    readonly predictive: { readonly violationMinutes: number; readonly replicaMinutes: number };
  } | null;
}

/** The availability replicas, scaled by the autoscaler through a supervisor. */
export interface AutoscaleLeg {
  /** Runs the traffic profile; resolves with the summary once the run is over. */
  run(durationMs: number, signal?: AbortSignal): Promise<AutoscaleSummary>;
  /** Replicas serving now. */
  replicas(): number;
  stop(): Promise<void>;
}

/**
 * Starts the availability service (two replicas), a supervisor that starts more in this process
 * (each boots in about a second, as a process would), and an autoscaler with `policy` that reads
 * the service's utilisation from the runtime every second.
 */
export async function startAutoscaleLeg(options: {
  /** A new transport on the demo's network for each replica. */
  readonly transport: () => Transport;
  readonly kv: StrongKV;
  readonly caller: StrataNode;
  readonly skus: readonly string[];
  readonly policy?: PolicyConfigInput;
  readonly bootMs?: number;
}): Promise<AutoscaleLeg> {
  const bootMs = options.bootMs ?? 1_000;
  const stock = createStateStore(options.kv, "stock");
  const bounds = {
    minReplicas: 2,
    maxReplicas: 6,
    scaleOutCooldownMs: 500,
    scaleInCooldownMs: 3_000,
  };
  const policyConfig: PolicyConfigInput = options.policy ?? {
    type: "target-tracking",
    bounds,
    targetUtilisation: 0.6,
    scaleDownStabilisationMs: 4_000,
    scaleUpStabilisationMs: 0,
  };
  let startupMs = 0;
  const replicaNodes = new Set<StrataNode>();
  const launch = async (_service: string, index: number): Promise<Replica> => {
    const asked = performance.now();
    // Booting: loading code and warming caches, before the node announces itself.
    await new Promise((r) => setTimeout(r, bootMs));
    const node = createNode({
      id: `avail-${index}`,
      region: "eu",
      transport: options.transport(),
      heartbeatIntervalMs: 500,
      resilience: { serving: { concurrency: { type: "fixed", limit: SLOTS_PER_REPLICA } } },
      // A demo minute is a few seconds: the call window the autoscaler reads is short too.
      telemetry: { windowMs: 3_000 },
    });
    node.serve(
      availabilityService.implement({
        check: async ({ sku }, ctx) => {
          const item = await stock.get<{ available: number }>(sku);
          await new Promise<void>((resolve) => {
            const timer = node.clock.setTimer(resolve, WAREHOUSE_MS);
            ctx.signal.addEventListener("abort", () => (timer.clear(), resolve()), { once: true });
          });
          return { sku, inStock: (item?.value.available ?? 0) > 0 };
        },
      }),
    );
    await node.start();
    replicaNodes.add(node);
    startupMs = Math.max(startupMs, performance.now() - asked);
    let ended: (v: { code: number | null; signal: string | null }) => void = () => undefined;
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => (ended = r));
    return {
      id: node.id,
      exited,
      async stop() {
        replicaNodes.delete(node);
        await node.stop({ drainTimeoutMs: 1_000 });
        ended({ code: 0, signal: null });
      },
    };
  };
  const local: LocalActuator = createLocalActuator({ launchers: { availability: launch } });
  await local.scale("availability", bounds.minReplicas);
  const actuator: Actuator = local;
  const decisions: RecordedDecision[] = [];
  const policy = createPolicy(policyConfig, { clock: options.caller.clock });
  const autoscaler: Autoscaler = createAutoscaler({
    services: [
      {
        service: "availability",
        policy,
        signals: () =>
          collectSignals(options.caller, "availability", { capacityInFlight: SLOTS_PER_REPLICA }),
      },
    ],
    actuator,
    everyMs: 1_000,
    clock: options.caller.clock,
    onDecision: (d) => {
      if (d.outcome === "applied") decisions.push(d);
    },
  });
  const serving = (): number =>
    options.caller
      .nodes()
      .filter(
        (n) => n.status === "ready" && n.services.some((s) => s.name === availabilityService.name),
      ).length;

  return {
    replicas: serving,
    async run(durationMs, signal) {
      await waitFor(() => serving() >= bounds.minReplicas, {
        timeoutMs: 10_000,
        message: "the availability service did not start",
      });
      const baseRps = 30;
      const spikeRps = 150;
      const spikeFrom = durationMs * 0.3;
      const spikeTo = durationMs * 0.7;
      const client = options.caller.client(availabilityService, { timeoutMs: 2_000 });
      const started = performance.now();
      const startedWall = options.caller.clock.now();
      const secondOf = (): number => Math.floor((performance.now() - started) / 1_000);
      const perSecond = new Map<number, { rps: number; latencies: number[]; failed: number }>();
      const bucket = (s: number) => {
        let b = perSecond.get(s);
        if (b === undefined) {
          b = { rps: 0, latencies: [], failed: 0 };
          perSecond.set(s, b);
        }
        return b;
      };
      const replicasAt = new Map<number, number>();
      const sampler = setInterval(() => replicasAt.set(secondOf(), serving()), 250);
      autoscaler.start();
      let ok = 0;
      let failed = 0;
      try {
        await runOpenLoad({
          rate: (ms) => (ms >= spikeFrom && ms < spikeTo ? spikeRps : baseRps),
          durationMs,
          ...(signal === undefined ? {} : { signal }),
          call: async (i) => {
            const at = performance.now();
            bucket(secondOf()).rps++;
            try {
              await client.check({ sku: options.skus[i % options.skus.length] as string });
              ok++;
              bucket(Math.floor((performance.now() - started) / 1_000)).latencies.push(
                performance.now() - at,
              );
            } catch (error) {
              failed++;
              bucket(Math.floor((performance.now() - started) / 1_000)).failed++;
              throw error;
            }
          },
        });
      } finally {
        clearInterval(sampler);
        await autoscaler.stop();
      }
      const seconds = Math.ceil(durationMs / 1_000);
      const timeline = Array.from({ length: seconds }, (_, second) => {
        const b = perSecond.get(second) ?? { rps: 0, latencies: [], failed: 0 };
        const sorted = [...b.latencies].sort((x, y) => x - y);
        const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
        return {
          second,
          replicas: replicasAt.get(second) ?? 0,
          rps: b.rps,
          p99Ms: Math.round(p99 * 10) / 10,
          failed: b.failed,
        };
      });
      const spikeSecond = Math.floor(spikeFrom / 1_000);
      // Recovered: from some second on, to the end of the run, every second met the SLO.
      let recoveredAfterSeconds: number | null = null;
      for (let s = spikeSecond; s < timeline.length; s++) {
        const rest = timeline.filter((p) => p.second >= s);
        if (rest.every((p) => p.p99Ms <= AVAILABILITY_P99_SLO_MS && p.failed === 0)) {
          recoveredAfterSeconds = s - spikeSecond;
          break;
        }
      }
      let predictiveGain: AutoscaleSummary["predictiveGain"] = null;
      try {
        const [reactive, predictive] = compare({
          trace: await loadTrace("black-friday"),
          policies: [{ type: "target-tracking" }, { type: "predictive" }],
        });
        if (reactive !== undefined && predictive !== undefined) {
          const pick = (r: typeof reactive) => ({
            violationMinutes: r.violationMinutes,
            replicaMinutes: Math.round(r.replicaMinutes),
          });
          predictiveGain = {
            trace: "black-friday",
            reactive: pick(reactive),
            predictive: pick(predictive),
          };
        }
      } catch {
        predictiveGain = null;
      }
      return {
        policy: policy.name,
        minReplicas: bounds.minReplicas,
        maxReplicas: bounds.maxReplicas,
        traffic: {
          baseRps,
          spikeRps,
          spikeFromSecond: Math.round(spikeFrom / 100) / 10,
          spikeToSecond: Math.round(spikeTo / 100) / 10,
        },
        timeline,
        decisions: decisions.map((d) => ({
          atSecond: Math.max(0, Math.round((d.at - startedWall) / 100) / 10),
          from: d.current,
          to: d.desired,
          reason: d.reason,
        })),
        peakReplicas: Math.max(0, ...timeline.map((p) => p.replicas)),
        startupMs: Math.round(startupMs),
        recoveredAfterSeconds,
        checks: { ok, failed },
        predictiveGain,
      };
    },
    async stop() {
      await autoscaler.stop();
      await local.stop();
    },
  };
}

import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import type { BatchObservableCallback, Meter, ObservableGauge } from "@opentelemetry/api";
import type { BreakerState } from "../resilience/circuit-breaker.js";
import type { SloStatus } from "./slo.js";

/** What the gauges of one node read, when a metric reader collects. */
export interface GaugeHost {
  readonly id: string;
  readonly region: string;
  inFlight(): number;
  breakers(): ReadonlyArray<{ scope: "node" | "action"; target: string; state: BreakerState }>;
  sloStatus(): readonly SloStatus[];
}

let loopDelay: IntervalHistogram | undefined;
let loopUsers = 0;

/**
 * Event-loop delay of this process (one sampler shared by every node in it), started on first use.
 * Values in milliseconds.
 */
export function eventLoopDelay(): { p50: number; p99: number; max: number } {
  const h = loopDelay;
  if (h === undefined || h.count === 0) return { p50: 0, p99: 0, max: 0 };
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
}

let cpuMark: { readonly at: number; readonly usage: NodeJS.CpuUsage } | undefined;
let cpuShare = 0;

/**
 * CPU this process used since the previous reading (at least 250 ms ago), as a share of one
 * core (0..n on n cores); the first reading is 0. Shared by every node in the process.
 */
export function processCpu(): number {
  const at = performance.now();
  if (cpuMark === undefined) {
    cpuMark = { at, usage: process.cpuUsage() };
    return 0;
  }
  const elapsedMs = at - cpuMark.at;
  if (elapsedMs < 250) return cpuShare;
  const used = process.cpuUsage(cpuMark.usage);
  cpuShare = (used.user + used.system) / 1_000 / elapsedMs;
  cpuMark = { at, usage: process.cpuUsage() };
  return cpuShare;
}

/** Starts the shared event-loop sampler; the result stops this user's share of it. */
export function useEventLoopDelay(): () => void {
  if (loopUsers++ === 0) {
    loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--loopUsers === 0) {
      loopDelay?.disable();
      loopDelay = undefined;
    }
  };
}

const BREAKER_VALUE = { closed: 0, "half-open": 1, open: 2 } as const;

/**
 * Registers the node's observable gauges: identity, calls in flight, breaker states, SLO status,
 * event-loop delay and heap. Returns a function that unregisters them.
 */
export function registerNodeGauges(meter: Meter, host: GaugeHost): () => void {
  const gauge = (name: string, description: string, unit?: string): ObservableGauge =>
    meter.createObservableGauge(name, unit === undefined ? { description } : { description, unit });
  const info = gauge("strata.node.info", "Always 1; the node's id and region as labels");
  const inFlight = gauge("strata.rpc.server.in_flight", "Calls this node is serving right now");
  const breaker = gauge(
    "strata.breaker.state",
    "Circuit breaker state of each target this node calls: 0 closed, 1 half-open, 2 open",
  );
  const attainment = gauge("strata.slo.attainment", "Good calls / all calls over the SLO period");
  const budget = gauge(
    "strata.slo.error_budget_remaining",
    "Fraction of the SLO's error budget left (negative when overspent)",
  );
  const burn = gauge("strata.slo.burn_rate", "Error-budget burn rate over each alert window");
  const firing = gauge("strata.slo.alert_firing", "1 while a burn-rate alert fires");
  const p50 = gauge("nodejs.eventloop.delay.p50_seconds", "Event-loop delay, median", "s");
  const p99 = gauge("nodejs.eventloop.delay.p99_seconds", "Event-loop delay, 99th percentile", "s");
  const max = gauge("nodejs.eventloop.delay.max_seconds", "Event-loop delay, maximum", "s");
  const heapUsed = gauge("nodejs.heap_size.used_bytes", "V8 heap used", "By");
  const heapTotal = gauge("nodejs.heap_size.total_bytes", "V8 heap size", "By");
  const release = useEventLoopDelay();
  const callback: BatchObservableCallback = (result) => {
    try {
      result.observe(info, 1, { "strata.node.id": host.id, "strata.node.region": host.region });
      result.observe(inFlight, host.inFlight());
      for (const b of host.breakers()) {
        result.observe(breaker, BREAKER_VALUE[b.state.type], {
          scope: b.scope,
          target: b.target,
        });
      }
      for (const slo of host.sloStatus()) {
        result.observe(attainment, slo.attainment, { slo: slo.name });
        result.observe(budget, slo.errorBudgetRemaining, { slo: slo.name });
        for (const [window, rate] of Object.entries(slo.burnRates)) {
          result.observe(burn, rate, { slo: slo.name, window });
        }
        for (const alert of slo.alerts) {
          result.observe(firing, alert.firing ? 1 : 0, {
            slo: slo.name,
            severity: alert.severity,
          });
        }
      }
      const loop = eventLoopDelay();
      result.observe(p50, loop.p50 / 1000);
      result.observe(p99, loop.p99 / 1000);
      result.observe(max, loop.max / 1000);
      const memory = process.memoryUsage();
      result.observe(heapUsed, memory.heapUsed);
      result.observe(heapTotal, memory.heapTotal);
    } catch {
      // A collection never throws into the exporter.
    }
  };
  const observables = [
    info,
    inFlight,
    breaker,
    attainment,
    budget,
    burn,
    firing,
    p50,
    p99,
    max,
    heapUsed,
    heapTotal,
  ];
  meter.addBatchObservableCallback(callback, observables);
  return () => {
    meter.removeBatchObservableCallback(callback, observables);
    release();
  };
}

import type { ScalingDecision, ScalingPolicy, ServiceSignals } from "../types.js";
import {
  Pacing,
  Stabiliser,
  ceilTolerant,
  clampReplicas,
  f2,
  finish,
  readMetric,
  wakeReason,
  type PolicyOptions,
} from "./common.js";
import type { PredictiveConfig } from "./config.js";
import { HoltWinters } from "./holt-winters.js";
import { hpaRecommendation, stabilised } from "./target-tracking.js";

/** Weight of a new sample in the capacity and start-up estimates. */
const ESTIMATE_WEIGHT = 0.2;

/**
 * Predictive scaling: a Holt-Winters (additive) model of requests per second, fitted online in
 * buckets of `bucketMs`, forecasts the load between now + start-up time and one bucket later,
 * and the policy asks for the replicas that load needs at the target utilisation, so that new
 * replicas are serving when the rise arrives. It never asks for fewer than the HPA formula does
 * on the current signals (a reactive floor for what no season foretold), and shares the HPA's
 * tolerance, stabilisation windows, bounds and cooldowns.
 *
 * `startupMs` is the service's measured start-up time. Capacity per replica is
 * `capacityPerReplica`, or estimated from the signals while the count has been steady for
 * longer than a start-up (so that every replica counted is serving). Until one season has been observed it is target tracking alone.
 *
 * @example
 * const policy = createPolicy({ type: "predictive", seasonLengthMs: 86_400_000, startupMs: 120_000 }, { clock });
 */
export function createPredictivePolicy(
  config: PredictiveConfig,
  options: PolicyOptions,
): ScalingPolicy {
  const pacing = new Pacing(config.bounds);
  const stabiliser = new Stabiliser({
    downWindowMs: config.scaleDownStabilisationMs,
    upWindowMs: config.scaleUpStabilisationMs,
  });
  const seasonLength = config.seasonLengthMs / config.bucketMs;
  const model = new HoltWinters({
    seasonLength,
    alpha: config.alpha,
    beta: config.beta,
    gamma: config.gamma,
  });
  let bucket: { index: number; sum: number; count: number } | undefined;
  let lastMean = 0;
  let capacity = config.capacityPerReplica;
  const startupMs = config.startupMs;
  /** When the count last changed: until replicas asked for serve, capacity is not measurable. */
  let lastChange = Number.NEGATIVE_INFINITY;
  const name = "predictive";

  /** Adds one observation of requests per second, closing buckets (and filling gaps). */
  function observe(rps: number, now: number): void {
    const index = Math.floor(now / config.bucketMs);
    if (bucket !== undefined && index > bucket.index) {
      lastMean = bucket.sum / bucket.count;
      model.observe(lastMean);
      const gap = index - bucket.index - 1;
      // A gap of more than a season says nothing a restart would not: the model keeps its
      // shape and the missing buckets are filled with the last mean seen.
      for (let i = 0; i < Math.min(gap, seasonLength); i++)
        model.observe(model.forecast(1) ?? lastMean);
      bucket = undefined;
    }
    if (bucket === undefined || index < bucket.index) bucket = { index, sum: 0, count: 0 };
    bucket.sum += rps;
    bucket.count++;
  }

  function learnCapacity(signals: ServiceSignals, now: number): void {
    if (config.capacityPerReplica !== undefined) return;
    const value = readMetric(signals, config.metric);
    // Near 0 the ratio is noise; at 1 the replicas are saturated and the ratio only a bound.
    if (signals.replicas <= 0 || value < 0.05 || value > 0.95) return;
    if (now - lastChange <= startupMs + config.bucketMs) return;
    const sample = signals.requestsPerSecond / (signals.replicas * value);
    if (!Number.isFinite(sample) || sample <= 0) return;
    capacity = capacity === undefined ? sample : capacity + ESTIMATE_WEIGHT * (sample - capacity);
  }

  /** Recent observations (ms, rps) for the local trend. */
  const recent: Array<{ at: number; rps: number }> = [];

  function remember(rps: number, now: number): void {
    recent.push({ at: now, rps });
    while (recent.length > 0 && (recent[0]?.at ?? now) < now - config.trendWindowMs) recent.shift();
  }

  /**
   * The load expected over [now + start-up, now + start-up + one evaluation]: the larger of the
   * seasonal forecast (shifted by how far the load now is from what it forecast for now) and the
   * local trend (least squares over the trend window, rises only) carried over the same horizon.
   */
  function forecastLoad(now: number): { load: number; source: string } | undefined {
    const latest = recent.at(-1);
    if (latest === undefined) return undefined;
    const gap = recent.length >= 2 ? latest.at - (recent.at(-2)?.at ?? latest.at) : 0;
    const horizon = startupMs + gap;
    let best: { load: number; source: string } | undefined;
    if (config.trendWindowMs > 0 && recent.length >= 3) {
      let mt = 0;
      let mr = 0;
      for (const p of recent) {
        mt += p.at;
        mr += p.rps;
      }
      mt /= recent.length;
      mr /= recent.length;
      let num = 0;
      let den = 0;
      for (const p of recent) {
        num += (p.at - mt) * (p.rps - mr);
        den += (p.at - mt) ** 2;
      }
      const slope = den > 0 ? num / den : 0;
      if (slope > 0) {
        const fittedNow = mr + slope * (now - mt);
        best = { load: fittedNow + slope * horizon, source: "trend" };
      }
    }
    if (bucket !== undefined && model.ready) {
      const expectedNow = model.forecast(1);
      const first = Math.floor((now + startupMs) / config.bucketMs) - bucket.index + 1;
      const last = Math.floor((now + horizon) / config.bucketMs) - bucket.index + 1;
      let peak: number | undefined;
      for (let steps = Math.max(1, first); steps <= Math.max(1, last); steps++) {
        const value = model.forecast(steps);
        if (value !== undefined) peak = peak === undefined ? value : Math.max(peak, value);
      }
      if (peak !== undefined && expectedNow !== undefined) {
        const seasonal = peak + (latest.rps - expectedNow);
        if (best === undefined || seasonal > best.load) best = { load: seasonal, source: "season" };
      }
    }
    return best;
  }

  return {
    name,
    decide(signals: ServiceSignals): ScalingDecision {
      const now = options.clock.now();
      const common = { signals, policy: name, bounds: config.bounds, pacing, now };
      if (Number.isFinite(signals.requestsPerSecond) && signals.requestsPerSecond >= 0) {
        // Saturated replicas serve less than arrives: the served rate is only a lower bound on
        // demand, so the model is not taught a lower season than it already knows.
        const saturated = readMetric(signals, config.metric) >= 0.99 || signals.backlog > 0;
        const expected = saturated ? (model.forecast(1) ?? 0) : 0;
        observe(Math.max(signals.requestsPerSecond, expected), now);
        remember(signals.requestsPerSecond, now);
      }
      learnCapacity(signals, now);
      const wake = wakeReason(signals);
      let decision: ScalingDecision;
      if (wake !== undefined) {
        decision = finish({ ...common, wanted: 1, why: wake });
      } else {
        const reactive = hpaRecommendation(signals, config);
        let wanted = reactive.replicas;
        let why = reactive.why;
        const forecast = forecastLoad(now);
        if (forecast !== undefined && capacity !== undefined) {
          const peak = forecast.load;
          const perReplica = capacity * config.targetUtilisation;
          const ratio = signals.replicas > 0 ? peak / (signals.replicas * perReplica) : Infinity;
          const predicted =
            Math.abs(ratio - 1) <= config.tolerance
              ? signals.replicas
              : ceilTolerant(peak / perReplica);
          const horizon = Math.round(startupMs / 1000);
          if (predicted > wanted) {
            why = `${forecast.source} forecast ${peak.toFixed(0)} rps in ${horizon} s needs ${predicted} replicas of ${capacity.toFixed(0)} rps at ${f2(config.targetUtilisation)} (reactive: ${reactive.why})`;
            wanted = predicted;
          } else {
            why = `${why}; ${forecast.source} forecast ${peak.toFixed(0)} rps in ${horizon} s needs ${predicted}`;
          }
        }
        const recommendation = clampReplicas(wanted, config.bounds);
        const stable = stabiliser.stabilise(recommendation, signals.replicas, now);
        decision = finish({
          ...common,
          wanted: stable,
          why: `${why}${stabilised(stable, recommendation, config)}`,
        });
      }
      if (decision.desired !== decision.current) lastChange = now;
      return decision;
    },
  };
}

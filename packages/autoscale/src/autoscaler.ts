import { StrataError, systemClock, type Clock, type Logger, type Timer } from "@strata/core";
import type { Actuator, ScalingDecision, ScalingPolicy, ServiceSignals } from "./types.js";

/** One service under the autoscaler. */
export interface ScaledService {
  readonly service: string;
  readonly policy: ScalingPolicy;
  /** Fresh signals for the service (usually {@link collectSignals}). */
  readonly signals: () => Promise<ServiceSignals>;
}

/** Options of {@link createAutoscaler}. */
export interface AutoscalerOptions {
  readonly services: readonly ScaledService[];
  readonly actuator: Actuator;
  /** Evaluation period (ms); default 15 000. */
  readonly everyMs?: number;
  /** Decide and log, but never call the actuator. */
  readonly dryRun?: boolean;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Called with every decision, applied or not. */
  readonly onDecision?: (decision: RecordedDecision) => void;
}

/** A decision and what became of it. */
export interface RecordedDecision extends ScalingDecision {
  /** `applied`: the actuator took it; `held`: nothing to change; `dry-run`; `failed`. */
  readonly outcome: "applied" | "held" | "dry-run" | "failed";
  readonly error?: string;
}

/** The running autoscaler. */
export interface Autoscaler extends AsyncDisposable {
  start(): void;
  /** Evaluates every service once now (also what each period does). */
  evaluate(): Promise<RecordedDecision[]>;
  /** Every decision so far, oldest first (the last 10 000). */
  decisions(): readonly RecordedDecision[];
  stop(): Promise<void>;
}

const KEEP = 10_000;

/**
 * The autoscaler loop: every period, for each service, take fresh signals, let the policy decide
 * (the current count is the actuator's, so replicas still starting are not asked for twice), and
 * hand a change to the actuator — or, in dry-run mode, only log it. A service whose signals or
 * actuator fail is skipped for that period and the failure recorded; the others go on.
 *
 * @example
 * const scaler = createAutoscaler({ services: [{ service: "inventory", policy, signals }], actuator });
 * scaler.start();
 */
export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const everyMs = options.everyMs ?? 15_000;
  if (!(Number.isFinite(everyMs) && everyMs >= 100)) {
    throw new StrataError("INVALID_ARGUMENT", "autoscaler everyMs must be at least 100");
  }
  if (options.services.length === 0) {
    throw new StrataError("INVALID_ARGUMENT", "the autoscaler needs at least one service");
  }
  const names = options.services.map((s) => s.service);
  if (new Set(names).size !== names.length) {
    throw new StrataError("INVALID_ARGUMENT", "a service is listed twice in the autoscaler");
  }
  const clock = options.clock ?? systemClock();
  const history: RecordedDecision[] = [];
  let timer: Timer | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  const record = (decision: RecordedDecision): RecordedDecision => {
    history.push(decision);
    if (history.length > KEEP) history.splice(0, history.length - KEEP);
    const line = `autoscale ${decision.service}: ${decision.current} -> ${decision.desired} (${decision.outcome}) by ${decision.policy}: ${decision.reason}`;
    const fields = {
      service: decision.service,
      current: decision.current,
      desired: decision.desired,
    };
    if (decision.outcome === "failed")
      options.logger?.warn({ ...fields, error: decision.error }, line);
    else if (decision.outcome !== "held") options.logger?.info(fields, line);
    options.onDecision?.(decision);
    return decision;
  };

  const evaluateOne = async (s: ScaledService): Promise<RecordedDecision> => {
    let decision: ScalingDecision;
    try {
      const observed = await s.signals();
      const requested = await options.actuator.replicas(s.service);
      // Replicas asked for but still starting carry no load yet: as the HPA does for pods that
      // are not ready, they count as idle, so the policy does not ask for them again.
      const idle =
        requested > observed.replicas && requested > 0 ? observed.replicas / requested : 1;
      decision = s.policy.decide({
        ...observed,
        replicas: requested,
        utilisation: observed.utilisation * idle,
        cpu: observed.cpu * idle,
      });
    } catch (error) {
      return record({
        service: s.service,
        at: clock.now(),
        current: -1,
        desired: -1,
        reason: "could not read the signals or the actuator",
        policy: s.policy.name,
        outcome: "failed",
        error: error instanceof Error ? error.message : String(error),
      });
    }
    if (decision.desired === decision.current) return record({ ...decision, outcome: "held" });
    if (options.dryRun === true) return record({ ...decision, outcome: "dry-run" });
    try {
      await options.actuator.scale(s.service, decision.desired);
      return record({ ...decision, outcome: "applied" });
    } catch (error) {
      return record({
        ...decision,
        outcome: "failed",
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const evaluate = (): Promise<RecordedDecision[]> => {
    const next = running.then(() => Promise.all(options.services.map(evaluateOne)));
    running = next.catch(() => undefined);
    return next;
  };

  const schedule = (): void => {
    timer = clock.setTimer(() => {
      if (stopped) return;
      void evaluate().finally(() => {
        if (!stopped) schedule();
      });
    }, everyMs);
  };

  const stop = async (): Promise<void> => {
    stopped = true;
    timer?.clear();
    await running;
  };

  return {
    start() {
      if (timer !== undefined || stopped) return;
      schedule();
    },
    evaluate,
    decisions: () => history,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

import type { Clock } from "../ports/index.js";

/** Options for {@link OutlierDetector}. */
export interface OutlierOptions {
  /** Eject a node whose recent error rate exceeds this (0..1); default 0.5. */
  readonly errorRate?: number;
  /** Eject a node whose recent mean latency exceeds this many times the others' median; default 5. */
  readonly latencyFactor?: number;
  /** Calls seen from a node in the current interval before it can be judged; default 20. */
  readonly minimumCalls?: number;
  /** How often nodes are judged (ms); default 1 000. */
  readonly intervalMs?: number;
  /** First ejection lasts this long; each repeat adds as much again (ms); default 5 000. */
  readonly baseEjectionMs?: number;
  /** Never eject more than this fraction of the nodes of one service at once; default 0.5. */
  readonly maxEjectedFraction?: number;
}

interface Stats {
  calls: number;
  errors: number;
  timed: number;
  latencySum: number;
  ejectedUntil: number;
  ejections: number;
}

/** Why a node was ejected or readmitted. */
export type OutlierEvent =
  | {
      readonly type: "ejected";
      readonly node: string;
      readonly reason: "errors" | "latency";
      readonly untilMs: number;
    }
  | { readonly type: "readmitted"; readonly node: string };

/**
 * Outlier ejection in the style of Envoy's: per node, count calls, errors and latency over an
 * interval; nodes with a high error rate, or much slower than their peers, are ejected for a
 * while (longer each time) and come back on their own. At most `maxEjectedFraction` of the known
 * nodes are out at once, so ejection can never empty a pool.
 */
export class OutlierDetector {
  private readonly clock: Clock;
  private readonly errorRate: number;
  private readonly latencyFactor: number;
  private readonly minimumCalls: number;
  private readonly intervalMs: number;
  private readonly baseEjectionMs: number;
  private readonly maxEjectedFraction: number;
  private readonly onEvent: (event: OutlierEvent) => void;
  private readonly stats = new Map<string, Stats>();
  private nextJudgement = 0;

  constructor(
    clock: Clock,
    options: OutlierOptions,
    onEvent: (event: OutlierEvent) => void = () => {},
  ) {
    this.clock = clock;
    this.errorRate = options.errorRate ?? 0.5;
    this.latencyFactor = options.latencyFactor ?? 5;
    this.minimumCalls = options.minimumCalls ?? 20;
    this.intervalMs = options.intervalMs ?? 1_000;
    this.baseEjectionMs = options.baseEjectionMs ?? 5_000;
    this.maxEjectedFraction = options.maxEjectedFraction ?? 0.5;
    this.onEvent = onEvent;
  }

  /**
   * Records the outcome of one call to `node`. Latency (and the clock's monotonic `now`) may be
   * given for a sample of calls only: error rates count every call, latency means the sampled
   * ones, and judgement happens on sampled calls.
   */
  record(node: string, latencyMs: number | undefined, failed: boolean, now?: number): void {
    let s = this.stats.get(node);
    if (s === undefined) {
      s = { calls: 0, errors: 0, timed: 0, latencySum: 0, ejectedUntil: 0, ejections: 0 };
      this.stats.set(node, s);
    }
    s.calls++;
    if (latencyMs !== undefined) {
      s.timed++;
      s.latencySum += latencyMs;
    }
    if (failed) s.errors++;
    if (now !== undefined && now >= this.nextJudgement) this.judge(now);
  }

  /** True while `node` is ejected. */
  isEjected(node: string): boolean {
    const s = this.stats.get(node);
    if (s === undefined || s.ejectedUntil === 0) return false;
    if (this.clock.monotonic() < s.ejectedUntil) return true;
    s.ejectedUntil = 0;
    this.onEvent({ type: "readmitted", node });
    return false;
  }

  /** Forgets a node that left the cluster. */
  forget(node: string): void {
    this.stats.delete(node);
  }

  private judge(now: number): void {
    this.nextJudgement = now + this.intervalMs;
    const judged: Array<[string, Stats]> = [];
    const means: number[] = [];
    for (const entry of this.stats) {
      const s = entry[1];
      if (s.calls >= this.minimumCalls) {
        judged.push(entry);
        if (s.timed > 0) means.push(s.latencySum / s.timed);
      }
    }
    means.sort((a, b) => a - b);
    const median = means.length === 0 ? 0 : (means[Math.floor(means.length / 2)] as number);
    let ejected = 0;
    for (const s of this.stats.values()) if (s.ejectedUntil > now) ejected++;
    const budget = Math.floor(this.stats.size * this.maxEjectedFraction);
    for (const [node, s] of judged) {
      if (s.ejectedUntil > now || ejected >= budget) continue;
      const mean = s.timed === 0 ? 0 : s.latencySum / s.timed;
      const reason =
        s.errors / s.calls > this.errorRate
          ? "errors"
          : means.length >= 3 && median > 0 && mean > median * this.latencyFactor
            ? "latency"
            : undefined;
      if (reason !== undefined) {
        s.ejections++;
        s.ejectedUntil = now + this.baseEjectionMs * s.ejections;
        ejected++;
        this.onEvent({ type: "ejected", node, reason, untilMs: s.ejectedUntil - now });
      } else if (s.ejections > 0 && s.errors === 0) {
        s.ejections--; // healthy intervals earn forgiveness
      }
    }
    for (const s of this.stats.values()) {
      s.calls = 0;
      s.errors = 0;
      s.latencySum = 0;
      s.timed = 0;
    }
  }
}

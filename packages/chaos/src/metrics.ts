/** How one client operation ended, as the workloads record it. */
export type OpOutcome = "ok" | "fail" | "info";

/** One bucket of the timeline. */
export interface TimelinePoint {
  /** Start of the bucket, ms since the experiment began. */
  readonly t: number;
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
  /** Latency of the operations that completed in the bucket (ms); 0 when none did. */
  readonly p50: number;
  readonly p99: number;
}

/** Throughput, errors and latency over a window. */
export interface WindowStats {
  readonly ops: number;
  /** Completed operations per second. */
  readonly throughput: number;
  /** Share of operations that failed or whose outcome is unknown, 0..1. */
  readonly errorRate: number;
  readonly p50: number;
  readonly p99: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

interface Sample {
  readonly end: number;
  readonly ms: number;
  readonly outcome: OpOutcome;
}

/**
 * Collects every operation's completion time, latency and outcome, and turns them into a
 * timeline and window statistics (for steady-state hypotheses and abort conditions).
 */
export class Metrics {
  private readonly samples: Sample[] = [];
  private readonly origin: number;
  private readonly now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
    this.origin = now();
  }

  /** Milliseconds since the metrics began. */
  elapsed(): number {
    return this.now() - this.origin;
  }

  record(startedAt: number, outcome: OpOutcome): void {
    const end = this.now();
    this.samples.push({ end: end - this.origin, ms: end - startedAt, outcome });
  }

  /** Statistics of the operations that completed in the last `ms`. */
  window(ms: number): WindowStats {
    const to = this.elapsed();
    return this.between(Math.max(0, to - ms), to);
  }

  between(from: number, to: number): WindowStats {
    const inWindow = this.samples.filter((s) => s.end >= from && s.end <= to);
    const errors = inWindow.filter((s) => s.outcome !== "ok").length;
    const latencies = inWindow.map((s) => s.ms).sort((a, b) => a - b);
    const seconds = Math.max(0.001, (to - from) / 1_000);
    return {
      ops: inWindow.length,
      throughput: inWindow.length / seconds,
      errorRate: inWindow.length === 0 ? 0 : errors / inWindow.length,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
    };
  }

  timeline(bucketMs = 500): TimelinePoint[] {
    const end = this.elapsed();
    const points: TimelinePoint[] = [];
    const buckets = new Map<number, Sample[]>();
    for (const s of this.samples) {
      const b = Math.floor(s.end / bucketMs);
      const list = buckets.get(b);
      if (list === undefined) buckets.set(b, [s]);
      else list.push(s);
    }
    for (let b = 0; b * bucketMs <= end; b++) {
      const list = buckets.get(b) ?? [];
      const latencies = list.map((s) => s.ms).sort((x, y) => x - y);
      points.push({
        t: b * bucketMs,
        ok: list.filter((s) => s.outcome === "ok").length,
        fail: list.filter((s) => s.outcome === "fail").length,
        info: list.filter((s) => s.outcome === "info").length,
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
      });
    }
    return points;
  }
}

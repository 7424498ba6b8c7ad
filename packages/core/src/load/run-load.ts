import { createHistogram } from "node:perf_hooks";
import { isStrataError } from "../errors/index.js";
import { systemClock, type Clock } from "../ports/index.js";

/** Options for {@link runLoad}. */
export interface LoadOptions {
  /** Calls kept in flight at once. */
  readonly concurrency: number;
  /** Makes one call; `index` counts from 0 over the whole run, warm-up included. */
  readonly call: (index: number) => Promise<unknown>;
  /** Measured calls to make (after warm-up). One of `calls` or `durationMs` is required. */
  readonly calls?: number;
  /** Measure for this long instead (ms). */
  readonly durationMs?: number;
  /** Unmeasured calls made first, to warm up JIT and connections. */
  readonly warmupCalls?: number;
  readonly signal?: AbortSignal;
  /** Called every `progressIntervalMs` with the numbers so far. */
  readonly onProgress?: (progress: LoadProgress) => void;
  readonly progressIntervalMs?: number;
  readonly clock?: Clock;
}

/** Numbers so far, for a live progress line. */
export interface LoadProgress {
  readonly elapsedMs: number;
  readonly calls: number;
  readonly errors: number;
  /** Calls per second over the last interval. */
  readonly rate: number;
}

/** Latency summary in milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** What a load run measured. */
export interface LoadReport {
  readonly calls: number;
  readonly ok: number;
  /** Failed calls by error code (`UNKNOWN` for anything that was not a Strata error). */
  readonly errors: Readonly<Record<string, number>>;
  readonly durationMs: number;
  /** Completed calls per second. */
  readonly throughput: number;
  readonly latency: LatencySummary;
}

/**
 * Drives `call` at a fixed concurrency and measures throughput and latency (a log-linear HDR
 * histogram in microseconds). Used by the demo, `strata bench` and bench/.
 *
 * @example
 * const report = await runLoad({ concurrency: 16, calls: 10_000, call: () => client.echo(msg) });
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const { concurrency } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  if (options.calls === undefined && options.durationMs === undefined) {
    throw new RangeError("runLoad needs calls or durationMs");
  }
  const clock = options.clock ?? systemClock();
  const warmup = options.warmupCalls ?? 0;
  let index = 0;
  if (warmup > 0) {
    const warm = async (): Promise<void> => {
      while (index < warmup && options.signal?.aborted !== true) {
        index++;
        await options.call(index - 1).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, warmup) }, warm));
  }

  const histogram = createHistogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let done = 0;
  let failed = 0;
  const started = clock.monotonic();
  const endAt = options.durationMs === undefined ? Infinity : started + options.durationMs;
  const limit = options.calls ?? Infinity;
  let issued = 0;

  let lastCalls = 0;
  let lastAt = started;
  const interval = options.progressIntervalMs ?? 250;
  let progressTimer: { clear(): void } | undefined;
  const tick = (): void => {
    const now = clock.monotonic();
    const rate = ((done - lastCalls) * 1000) / Math.max(1, now - lastAt);
    lastCalls = done;
    lastAt = now;
    options.onProgress?.({ elapsedMs: now - started, calls: done, errors: failed, rate });
    progressTimer = clock.setTimer(tick, interval);
  };
  if (options.onProgress !== undefined) progressTimer = clock.setTimer(tick, interval);

  const worker = async (): Promise<void> => {
    let sinceYield = 0;
    while (issued < limit && options.signal?.aborted !== true) {
      // Calls that complete in microtasks alone would never let timers and I/O run; give the
      // event loop a turn now and then, as real clients on a network do.
      if (++sinceYield === 256) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const t0 = clock.monotonic();
      if (t0 >= endAt) return;
      issued++;
      const i = index++;
      try {
        await options.call(i);
        ok++;
      } catch (error) {
        failed++;
        const code = isStrataError(error) ? error.code : "UNKNOWN";
        errors[code] = (errors[code] ?? 0) + 1;
      }
      done++;
      histogram.record(Math.max(1, Math.round((clock.monotonic() - t0) * 1000)));
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    progressTimer?.clear();
  }
  const durationMs = clock.monotonic() - started;
  const us = (value: number): number => Math.round(value) / 1000;
  return {
    calls: done,
    ok,
    errors,
    durationMs,
    throughput: durationMs > 0 ? (done * 1000) / durationMs : 0,
    latency: {
      p50: done === 0 ? 0 : us(histogram.percentile(50)),
      p90: done === 0 ? 0 : us(histogram.percentile(90)),
      p99: done === 0 ? 0 : us(histogram.percentile(99)),
      max: done === 0 ? 0 : us(histogram.max),
      mean: done === 0 ? 0 : us(histogram.mean),
    },
  };
}

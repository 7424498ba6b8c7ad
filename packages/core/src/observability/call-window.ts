import { ERROR_CODES, StrataError, type ErrorCode } from "../errors/index.js";
import type { Clock } from "../ports/index.js";

/** What one (service, action) series did over the window. */
export interface ActionSnapshot {
  readonly service: string;
  readonly action: string;
  /** Calls finished in the window. */
  readonly count: number;
  readonly requestsPerSecond: number;
  /** Calls that ended in an error, by code (only codes seen). */
  readonly errors: Readonly<Partial<Record<ErrorCode, number>>>;
  readonly errorsPerSecond: number;
  /** Median latency, within about 5%; 0 when `count` is 0. */
  readonly p50Ms: number;
  /** 99th-percentile latency, within about 5%; never above `maxMs`. */
  readonly p99Ms: number;
  /** Exact largest latency seen in the window. */
  readonly maxMs: number;
}

/** Options for {@link CallWindow}. */
export interface CallWindowOptions {
  /** Length of the window (ms), rounded to a whole number of slots; default 10 000. */
  readonly windowMs?: number;
  /** Granularity of expiry (ms): the window moves on one slot at a time; default 1 000. */
  readonly slotMs?: number;
  /** Named series kept at most; later ones are folded into `_other`/`_other`; default 500. */
  readonly maxSeries?: number;
}

/** Service and action name that series beyond `maxSeries` are recorded under. */
export const OVERFLOW_SERIES = "_other";

// Log-spaced latency buckets as in DDSketch: bucket i holds (MIN·γ^(i-1), MIN·γ^i] and reports
// 2·MIN·γ^i/(γ+1), which is within ALPHA of every value in the bucket.
const MIN_MS = 0.01;
const MAX_MS = 600_000;
const ALPHA = 0.05;
const GAMMA = (1 + ALPHA) / (1 - ALPHA);
const LN_GAMMA = Math.log(GAMMA);
const BUCKETS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LN_GAMMA) + 1;
const CODES = ERROR_CODES.length;
const CODE_INDEX: ReadonlyMap<string, number> = new Map(ERROR_CODES.map((code, i) => [code, i]));
const UNKNOWN_INDEX = ERROR_CODES.indexOf("UNKNOWN");
// Bounds on memory: a series costs about slots × 0.8 kB.
const MAX_SLOTS = 60;
const MAX_SERIES = 10_000;

function bucketOf(ms: number): number {
  if (ms <= MIN_MS) return 0;
  const i = Math.ceil(Math.log(ms / MIN_MS) / LN_GAMMA);
  return i < BUCKETS ? i : BUCKETS - 1;
}

function bucketValue(i: number): number {
  return (2 * MIN_MS * GAMMA ** i) / (GAMMA + 1);
}

/** Per-series ring of slots; every array is allocated once, when the series first appears. */
interface Series {
  readonly service: string;
  readonly action: string;
  /** Slot number (monotonic ms / slotMs) each ring position holds; NaN when never used. */
  readonly epochs: Float64Array;
  readonly counts: Uint32Array;
  readonly max: Float64Array;
  /** `[position * CODES + code index]`. */
  readonly errors: Uint32Array;
  /** `[position * BUCKETS + bucket]`. */
  readonly buckets: Uint32Array;
  /** Latest slot written, to find series that fell out of the window. */
  lastSlot: number;
}

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `CallWindow: ${message}`);
}

function positive(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    const shown = typeof value === "number" ? String(value) : typeof value;
    throw invalid(`${name} must be a positive finite number, got ${shown}`);
  }
  return value;
}

/**
 * An in-process rolling window of served calls per (service, action): counts, rates, errors by
 * code and latency quantiles, for `strata top` and the admin service.
 *
 * Time comes only from `clock.monotonic()`. The window is a ring of `windowMs / slotMs` slots:
 * the current, partly filled slot and the ones before it, so a snapshot covers between
 * `windowMs - slotMs` and `windowMs` of history and never a call older than `windowMs`. Rates
 * divide by the time actually covered, so a new window does not under-report.
 *
 * @example
 * const window = new CallWindow(clock);
 * window.record("orders", "place", "OK", 12.5);
 * window.snapshot(); // [{ service: "orders", action: "place", count: 1, p50Ms: 12.6, ... }]
 */
export class CallWindow {
  private readonly clock: Clock;
  private readonly slotMs: number;
  private readonly slots: number;
  private readonly maxSeries: number;
  private readonly createdAt: number;
  private readonly byService = new Map<string, Map<string, Series>>();
  private overflow: Series | undefined;
  private named = 0;
  private lastPruneSlot = NaN;
  /** Reused by {@link snapshot} to merge the histograms of one series. */
  private readonly merged = new Uint32Array(BUCKETS);

  constructor(clock: Clock, options: CallWindowOptions = {}) {
    const windowMs = positive("windowMs", options.windowMs, 10_000);
    this.slotMs = positive("slotMs", options.slotMs, 1_000);
    if (this.slotMs > windowMs) {
      throw invalid(`slotMs (${this.slotMs}) must not exceed windowMs (${windowMs})`);
    }
    // A window that is not a whole number of slots is rounded to the nearest one.
    this.slots = Math.round(windowMs / this.slotMs);
    if (this.slots > MAX_SLOTS) {
      throw invalid(`windowMs / slotMs must be at most ${MAX_SLOTS}, got ${this.slots}`);
    }
    const maxSeries = positive("maxSeries", options.maxSeries, 500);
    if (!Number.isInteger(maxSeries) || maxSeries > MAX_SERIES) {
      throw invalid(`maxSeries must be an integer from 1 to ${MAX_SERIES}, got ${maxSeries}`);
    }
    this.maxSeries = maxSeries;
    this.clock = clock;
    this.createdAt = clock.monotonic();
  }

  /** Window length actually used (ms): `windowMs` rounded to a whole number of slots. */
  get windowMs(): number {
    return this.slots * this.slotMs;
  }

  /**
   * Records one finished call. `code` is "OK" or the error's code. Allocates nothing once the
   * series exists. Latencies are clamped to [0.01 ms, 10 min] for quantiles; a negative or NaN
   * duration counts as 0, an infinite one as `Number.MAX_VALUE`.
   */
  record(service: string, action: string, code: "OK" | ErrorCode, durationMs: number): void {
    const ms = durationMs >= 0 ? Math.min(durationMs, Number.MAX_VALUE) : 0;
    const slot = Math.floor(this.clock.monotonic() / this.slotMs);
    const series = this.seriesFor(service, action, slot);
    const slots = this.slots;
    const pos = ((slot % slots) + slots) % slots;
    if (series.epochs[pos] !== slot) {
      series.epochs[pos] = slot;
      series.counts[pos] = 0;
      series.max[pos] = 0;
      series.errors.fill(0, pos * CODES, (pos + 1) * CODES);
      series.buckets.fill(0, pos * BUCKETS, (pos + 1) * BUCKETS);
    }
    series.lastSlot = slot;
    series.counts[pos] = (series.counts[pos] ?? 0) + 1;
    if (ms > (series.max[pos] ?? 0)) series.max[pos] = ms;
    const b = pos * BUCKETS + bucketOf(ms);
    series.buckets[b] = (series.buckets[b] ?? 0) + 1;
    if (code !== "OK") {
      const e = pos * CODES + (CODE_INDEX.get(code) ?? UNKNOWN_INDEX);
      series.errors[e] = (series.errors[e] ?? 0) + 1;
    }
  }

  /** Series with calls in the window, sorted by service then action. */
  snapshot(): ActionSnapshot[] {
    const now = this.clock.monotonic();
    const slot = Math.floor(now / this.slotMs);
    this.prune(slot);
    const oldest = slot - this.slots + 1;
    const coveredMs = Math.max(this.slotMs, now - Math.max(this.createdAt, oldest * this.slotMs));
    const seconds = coveredMs / 1000;
    const out: ActionSnapshot[] = [];
    for (const actions of this.byService.values()) {
      for (const series of actions.values()) {
        const summary = this.summarize(series, oldest, slot, seconds);
        if (summary !== undefined) out.push(summary);
      }
    }
    if (this.overflow !== undefined) {
      const summary = this.summarize(this.overflow, oldest, slot, seconds);
      if (summary !== undefined) out.push(summary);
    }
    return out.sort((a, b) =>
      a.service !== b.service ? compare(a.service, b.service) : compare(a.action, b.action),
    );
  }

  private seriesFor(service: string, action: string, slot: number): Series {
    if (service === OVERFLOW_SERIES && action === OVERFLOW_SERIES) return this.overflowSeries();
    const found = this.byService.get(service)?.get(action);
    if (found !== undefined) return found;
    if (this.named >= this.maxSeries) {
      // Series that went quiet free their place; look at most once a slot, so that a flood of
      // new names past the cap costs a map lookup per call, not a scan.
      if (slot === this.lastPruneSlot) return this.overflowSeries();
      this.prune(slot);
      if (this.named >= this.maxSeries) return this.overflowSeries();
    }
    let actions = this.byService.get(service);
    if (actions === undefined) {
      actions = new Map();
      this.byService.set(service, actions);
    }
    const series = this.newSeries(service, action);
    actions.set(action, series);
    this.named++;
    return series;
  }

  private overflowSeries(): Series {
    this.overflow ??= this.newSeries(OVERFLOW_SERIES, OVERFLOW_SERIES);
    return this.overflow;
  }

  private newSeries(service: string, action: string): Series {
    return {
      service,
      action,
      epochs: new Float64Array(this.slots).fill(NaN),
      counts: new Uint32Array(this.slots),
      max: new Float64Array(this.slots),
      errors: new Uint32Array(this.slots * CODES),
      buckets: new Uint32Array(this.slots * BUCKETS),
      lastSlot: -Infinity,
    };
  }

  /** Drops series with no call in the window. */
  private prune(slot: number): void {
    this.lastPruneSlot = slot;
    const oldest = slot - this.slots + 1;
    for (const [service, actions] of this.byService) {
      for (const [action, series] of actions) {
        if (series.lastSlot < oldest) {
          actions.delete(action);
          this.named--;
        }
      }
      if (actions.size === 0) this.byService.delete(service);
    }
    if (this.overflow !== undefined && this.overflow.lastSlot < oldest) this.overflow = undefined;
  }

  private summarize(
    series: Series,
    oldest: number,
    slot: number,
    seconds: number,
  ): ActionSnapshot | undefined {
    const merged = this.merged.fill(0);
    const errorCounts = new Float64Array(CODES);
    let count = 0;
    let max = 0;
    for (let pos = 0; pos < this.slots; pos++) {
      const epoch = series.epochs[pos] ?? NaN;
      if (!(epoch >= oldest && epoch <= slot)) continue;
      count += series.counts[pos] ?? 0;
      max = Math.max(max, series.max[pos] ?? 0);
      for (let c = 0; c < CODES; c++) {
        errorCounts[c] = (errorCounts[c] ?? 0) + (series.errors[pos * CODES + c] ?? 0);
      }
      for (let b = 0; b < BUCKETS; b++) {
        merged[b] = (merged[b] ?? 0) + (series.buckets[pos * BUCKETS + b] ?? 0);
      }
    }
    if (count === 0) return undefined;
    const errors: Partial<Record<ErrorCode, number>> = {};
    let errorTotal = 0;
    ERROR_CODES.forEach((code, c) => {
      const n = errorCounts[c] ?? 0;
      if (n > 0) errors[code] = n;
      errorTotal += n;
    });
    return {
      service: series.service,
      action: series.action,
      count,
      requestsPerSecond: count / seconds,
      errors,
      errorsPerSecond: errorTotal / seconds,
      p50Ms: Math.min(max, quantile(merged, count, 0.5)),
      p99Ms: Math.min(max, quantile(merged, count, 0.99)),
      maxMs: max,
    };
  }
}

/** Nearest-rank quantile over a merged histogram of `count` values. */
function quantile(histogram: Uint32Array, count: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    seen += histogram[b] ?? 0;
    if (seen >= rank) return bucketValue(b);
  }
  return bucketValue(BUCKETS - 1);
}

/** Code-unit order, the same everywhere (unlike `localeCompare`). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

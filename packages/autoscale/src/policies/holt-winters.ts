/** Settings of a {@link HoltWinters} model. */
export interface HoltWintersOptions {
  /** Observations per season (e.g. 1440 one-minute buckets for a daily pattern); at least 2. */
  readonly seasonLength: number;
  /** Smoothing of the level, in (0, 1]. */
  readonly alpha: number;
  /** Smoothing of the trend, in [0, 1]. */
  readonly beta: number;
  /** Smoothing of the seasonal component, in [0, 1]. */
  readonly gamma: number;
}

/**
 * Additive Holt-Winters (triple exponential smoothing), fitted online one observation at a
 * time: a level, a trend and one seasonal offset per position in the season. The first season
 * of observations initialises it (level = their mean, trend 0, offsets = deviations from the
 * mean); it forecasts from then on.
 *
 * @example
 * const model = new HoltWinters({ seasonLength: 24, alpha: 0.3, beta: 0.01, gamma: 0.3 });
 * for (const x of hourlyLoad) model.observe(x);
 * model.forecast(1); // the next hour
 */
export class HoltWinters {
  readonly #options: HoltWintersOptions;
  readonly #season: number[];
  #level = 0;
  #trend = 0;
  /** Observations seen so far; the next one has this index. */
  #count = 0;

  constructor(options: HoltWintersOptions) {
    if (!Number.isInteger(options.seasonLength) || options.seasonLength < 2) {
      throw new RangeError(`seasonLength must be an integer >= 2, got ${options.seasonLength}`);
    }
    this.#options = options;
    this.#season = [];
  }

  /** True once a whole season has been observed and forecasts are available. */
  get ready(): boolean {
    return this.#count >= this.#options.seasonLength;
  }

  /** Observations seen so far. */
  get observed(): number {
    return this.#count;
  }

  /** Adds the next observation (non-finite values are ignored). */
  observe(x: number): void {
    if (!Number.isFinite(x)) return;
    const { seasonLength: m, alpha, beta, gamma } = this.#options;
    if (this.#count < m) {
      this.#season.push(x);
      this.#count++;
      if (this.#count === m) {
        const mean = this.#season.reduce((a, b) => a + b, 0) / m;
        this.#level = mean;
        this.#trend = 0;
        for (let i = 0; i < m; i++) this.#season[i] = (this.#season[i] ?? mean) - mean;
      }
      return;
    }
    const position = this.#count % m;
    const seasonal = this.#season[position] ?? 0;
    const previous = this.#level;
    this.#level = alpha * (x - seasonal) + (1 - alpha) * (previous + this.#trend);
    this.#trend = beta * (this.#level - previous) + (1 - beta) * this.#trend;
    this.#season[position] = gamma * (x - this.#level) + (1 - gamma) * seasonal;
    this.#count++;
  }

  /** The forecast `steps` observations ahead (1 = the next); undefined before the first season. */
  forecast(steps: number): number | undefined {
    if (!this.ready || steps < 1) return undefined;
    const m = this.#options.seasonLength;
    const position = (this.#count + steps - 1) % m;
    return this.#level + steps * this.#trend + (this.#season[position] ?? 0);
  }
}

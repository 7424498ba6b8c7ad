/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and
 * Jitter"): a uniformly random delay in [0, min(max, base * 2^attempt)].
 *
 * @example
 * fullJitterBackoff(2, { baseMs: 10, maxMs: 1_000 }, clock.random); // somewhere in [0, 40]
 */
export function fullJitterBackoff(
  attempt: number,
  options: { readonly baseMs: number; readonly maxMs: number },
  random: () => number,
): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

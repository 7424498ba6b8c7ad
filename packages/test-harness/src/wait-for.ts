/**
 * Polls `condition` until it holds, or throws after `timeoutMs`. Tests wait on conditions with a
 * deadline instead of sleeping.
 *
 * @example
 * await waitFor(() => node.nodes().length === 3, { message: "cluster did not form" });
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: {
    readonly timeoutMs?: number;
    readonly intervalMs?: number;
    readonly message?: string;
    /** Stops waiting, rejecting with the signal's reason. */
    readonly signal?: AbortSignal;
  } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      if (await condition()) return;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() >= deadline) {
      throw new Error(`${options.message ?? "condition not met"} (after ${timeoutMs} ms)`, {
        cause: lastError,
      });
    }
    await delay(intervalMs, options.signal);
  }
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

import type { StrataNode } from "./node.js";

/**
 * Stops `node` gracefully on SIGTERM or SIGINT (drain, then leave). A second signal while it
 * drains calls `onForce` (default: exit with code 130). Dispose the result to remove the handlers.
 *
 * @example
 * using _signals = handleSignals(node, { onStopped: () => process.exit(0) });
 */
export function handleSignals(
  node: StrataNode,
  options: {
    readonly signals?: readonly NodeJS.Signals[];
    readonly onStopped?: (error: unknown) => void;
    readonly onForce?: () => void;
  } = {},
): Disposable {
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  let stopping = false;
  const handler = (): void => {
    if (stopping) {
      (options.onForce ?? (() => process.exit(130)))();
      return;
    }
    stopping = true;
    node.stop().then(
      () => options.onStopped?.(undefined),
      (error: unknown) => options.onStopped?.(error),
    );
  };
  for (const signal of signals) process.on(signal, handler);
  return {
    [Symbol.dispose]: () => {
      for (const signal of signals) process.off(signal, handler);
    },
  };
}

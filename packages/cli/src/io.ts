/** Where a command writes; tests pass their own. */
export interface Io {
  readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly err: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborts long-running commands (dev, demo) — SIGINT/SIGTERM in the real CLI. */
  readonly signal?: AbortSignal;
}

/** The process's own streams and environment. */
export function processIo(signal?: AbortSignal): Io {
  return {
    out: process.stdout,
    err: process.stderr,
    env: process.env,
    ...(signal === undefined ? {} : { signal }),
  };
}

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line was unusable. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

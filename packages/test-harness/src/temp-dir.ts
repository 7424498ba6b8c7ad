import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A temporary folder removed on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/**
 * Creates a temporary folder under the OS temp dir.
 *
 * @example
 * await using dir = await tempDir("strata-log-");
 */
export async function tempDir(prefix = "strata-"): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }),
  };
}

import { StrataError } from "@strata/core";

/** The oldest nats-server Strata accepts. */
export const MIN_NATS_VERSION = "2.10.0";

function parse(version: string): [number, number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version.trim());
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/**
 * Refuses servers older than 2.10 with an error that says why: 2.9.x lets two concurrent
 * compare-and-set updates with the same revision both succeed on replicated streams
 * (nats-server#4320, fixed in 2.9.21), can serve stale KV reads from followers after a restart
 * (fixed in 2.9.17), and cannot fsync before acknowledging (`sync_interval` arrived in 2.10).
 */
export function checkServerVersion(version: string | undefined): void {
  const parsed = version === undefined ? undefined : parse(version);
  if (parsed === undefined) {
    throw new StrataError(
      "FAILED_PRECONDITION",
      `NATS server reported no usable version (${String(version)}); Strata needs nats-server >= ${MIN_NATS_VERSION}`,
    );
  }
  const [major, minor] = parsed;
  if (major < 2 || (major === 2 && minor < 10)) {
    throw new StrataError(
      "FAILED_PRECONDITION",
      `nats-server ${version} is too old: Strata needs >= ${MIN_NATS_VERSION}. ` +
        "Older servers let two concurrent compare-and-set updates with the same revision both succeed " +
        "on replicated streams (nats-server#4320), can serve stale KV reads from followers after a " +
        "restart, and cannot fsync before acknowledging (sync_interval). Run `npm run setup:engines` " +
        "for a 2.10 server.",
      { retryable: false, details: { serverVersion: version, minimum: MIN_NATS_VERSION } },
    );
  }
}

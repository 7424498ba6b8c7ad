import { StrataError } from "../errors/index.js";
import type { Clock } from "./clock.js";

/**
 * A hybrid logical clock timestamp (Kulkarni et al., 2014): wall-clock milliseconds, a logical
 * counter for events within one millisecond (or while the wall clock lags), and the node that
 * made it, which breaks ties. Ordered by (wall, logical, node).
 */
export interface Hlc {
  readonly wall: number;
  readonly logical: number;
  readonly node: string;
}

/** Orders two timestamps: negative, zero or positive. */
export function compareHlc(a: Hlc, b: Hlc): number {
  return (
    a.wall - b.wall || a.logical - b.logical || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)
  );
}

/** A string that sorts like the timestamp: fixed-width wall and logical parts, then the node. */
export function encodeHlc(t: Hlc): string {
  return `${t.wall.toString(36).padStart(9, "0")}.${t.logical.toString(36).padStart(4, "0")}.${t.node}`;
}

/** Parses {@link encodeHlc}'s form; INVALID_ARGUMENT for anything else. */
export function decodeHlc(text: string): Hlc {
  const match = /^([0-9a-z]{9})\.([0-9a-z]{4,})\.(.+)$/.exec(text);
  if (match === null)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `not a hybrid logical timestamp: ${JSON.stringify(text)}`,
    );
  return {
    wall: parseInt(match[1] as string, 36),
    logical: parseInt(match[2] as string, 36),
    node: match[3] as string,
  };
}

/** A node's hybrid logical clock. */
export interface HybridClock {
  /** A timestamp for a local event or a message about to be sent. */
  now(): Hlc;
  /** Folds in a timestamp received from another node; returns the timestamp of the receipt. */
  receive(remote: Hlc): Hlc;
}

/**
 * Creates a hybrid logical clock on the Clock port. Timestamps never go backwards, even when the
 * wall clock does; a remote timestamp more than `maxDriftMs` ahead of the local wall clock is
 * refused (FAILED_PRECONDITION) instead of dragging this clock into the future.
 *
 * @example
 * const hlc = createHlc(clock, node.id); const t = hlc.now();
 */
export function createHlc(
  clock: Clock,
  node: string,
  options: { readonly maxDriftMs?: number } = {},
): HybridClock {
  const maxDrift = options.maxDriftMs ?? 60_000;
  let wall = 0;
  let logical = 0;
  return {
    now() {
      const physical = Math.floor(clock.now());
      if (physical > wall) {
        wall = physical;
        logical = 0;
      } else {
        logical++;
      }
      return { wall, logical, node };
    },
    receive(remote) {
      const physical = Math.floor(clock.now());
      if (remote.wall - physical > maxDrift) {
        throw new StrataError(
          "FAILED_PRECONDITION",
          `timestamp from ${remote.node} is ${remote.wall - physical} ms ahead of this node's clock (limit ${maxDrift} ms)`,
          { details: { remote: encodeHlc(remote), driftMs: remote.wall - physical } },
        );
      }
      const next = Math.max(wall, remote.wall, physical);
      if (next === wall && next === remote.wall) logical = Math.max(logical, remote.logical) + 1;
      else if (next === wall) logical++;
      else if (next === remote.wall) logical = remote.logical + 1;
      else logical = 0;
      wall = next;
      return { wall, logical, node };
    },
  };
}

import { StrataError } from "../errors/index.js";
import type { Clock } from "./clock.js";

/**
 * A hybrid logical clock timestamp (Kulkarni, Demirbas et al., "Logical Physical Clocks", 2014):
 * wall-clock milliseconds, a logical counter for events within one millisecond (or while the wall
 * clock lags behind a timestamp already seen), and the node that made it, which breaks ties.
 * Totally ordered by (wall, logical, node); see {@link compareHlc}.
 */
export interface Hlc {
  readonly wall: number;
  readonly logical: number;
  readonly node: string;
}

/** Largest wall time the encodings hold: 2^48 - 1 ms, in the year 10889. */
const MAX_WALL = 2 ** 48 - 1;
/** Largest logical counter (32 bits); past it the clock moves its wall time on by 1 ms. */
const MAX_LOGICAL = 2 ** 32 - 1;

/**
 * Orders two timestamps: negative, zero or positive. Ties on time are broken by node id
 * (compared as JavaScript strings), so two distinct nodes never produce equal timestamps.
 */
export function compareHlc(a: Hlc, b: Hlc): number {
  return (
    a.wall - b.wall || a.logical - b.logical || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)
  );
}

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", message);
}

function checkHlc(t: Hlc, what = "timestamp"): void {
  if (
    typeof t !== "object" ||
    t === null ||
    !Number.isSafeInteger(t.wall) ||
    t.wall < 0 ||
    t.wall > MAX_WALL ||
    !Number.isSafeInteger(t.logical) ||
    t.logical < 0 ||
    t.logical > MAX_LOGICAL ||
    typeof t.node !== "string" ||
    t.node.length === 0
  ) {
    throw invalid(`not a valid hybrid logical ${what}`);
  }
}

/**
 * A string that sorts like the timestamp: 12 hex digits of wall time, 8 of the logical counter,
 * then the node id — `018bcfe56800.00000003.eu-1`.
 *
 * @example
 * [t2, t1].map(encodeHlc).sort() // same order as [t2, t1].sort(compareHlc)
 */
export function encodeHlc(t: Hlc): string {
  checkHlc(t);
  return `${t.wall.toString(16).padStart(12, "0")}.${t.logical.toString(16).padStart(8, "0")}.${t.node}`;
}

/** Parses {@link encodeHlc}'s form; INVALID_ARGUMENT for anything else. */
export function decodeHlc(text: string): Hlc {
  const match =
    typeof text === "string" ? /^([0-9a-f]{12})\.([0-9a-f]{8})\.(.+)$/s.exec(text) : null;
  if (match === null)
    throw invalid(`not a hybrid logical timestamp: ${JSON.stringify(String(text).slice(0, 80))}`);
  return {
    wall: parseInt(match[1] as string, 16),
    logical: parseInt(match[2] as string, 16),
    node: match[3] as string,
  };
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Bytes that sort (bytewise, as a key-value store or an index compares them) like the
 * timestamp: 6 bytes of wall time and 4 of the logical counter, big-endian, then the node id in
 * UTF-8. Byte order agrees with {@link compareHlc} for every node id, except that ids holding
 * characters beyond U+FFFF may order differently against ids holding U+E000–U+FFFF.
 */
export function hlcToBytes(t: Hlc): Uint8Array {
  checkHlc(t);
  const node = utf8.encode(t.node);
  const out = new Uint8Array(10 + node.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, Math.floor(t.wall / 2 ** 32));
  view.setUint32(2, t.wall % 2 ** 32);
  view.setUint32(6, t.logical);
  out.set(node, 10);
  return out;
}

/** Parses {@link hlcToBytes}'s form; INVALID_ARGUMENT for anything else. */
export function hlcFromBytes(bytes: Uint8Array): Hlc {
  if (!(bytes instanceof Uint8Array) || bytes.length < 11)
    throw invalid("not a hybrid logical timestamp: too short");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let node: string;
  try {
    node = fromUtf8.decode(bytes.subarray(10));
  } catch (cause) {
    throw new StrataError("INVALID_ARGUMENT", "not a hybrid logical timestamp: bad node id", {
      cause,
    });
  }
  return {
    wall: view.getUint16(0) * 2 ** 32 + view.getUint32(2),
    logical: view.getUint32(6),
    node,
  };
}

/** A node's hybrid logical clock. */
export interface HybridClock {
  /** The node whose timestamps this clock makes. */
  readonly node: string;
  /** A timestamp for a local event or a message about to be sent; later than any before it. */
  now(): Hlc;
  /**
   * Folds in a timestamp received from another node; returns the timestamp of the receipt,
   * later than both `remote` and anything this clock made before. FAILED_PRECONDITION when
   * `remote` is more than `maxDriftMs` ahead of this node's wall clock.
   */
  receive(remote: Hlc): Hlc;
}

/** Options for {@link createHlc}. */
export interface HlcOptions {
  /**
   * How far ahead of the local wall clock a remote timestamp may be (ms); default 60,000. A
   * node with a broken clock could otherwise drag every clock it talks to into the future.
   */
  readonly maxDriftMs?: number;
}

/**
 * Creates a hybrid logical clock on the Clock port. Timestamps never go backwards, even when the
 * wall clock does; a remote timestamp more than `maxDriftMs` ahead of the local wall clock is
 * refused (FAILED_PRECONDITION) instead of pulling this clock into the future.
 *
 * @example
 * const hlc = createHlc(clock, node.id);
 * const sent = hlc.now();            // stamp an outgoing message
 * const seen = peer.receive(sent);   // on the receiving node: seen > sent
 */
export function createHlc(clock: Clock, node: string, options: HlcOptions = {}): HybridClock {
  if (typeof node !== "string" || node.length === 0)
    throw invalid("a hybrid logical clock needs a non-empty node id");
  const maxDrift = options.maxDriftMs ?? 60_000;
  if (!(maxDrift >= 0)) throw invalid("maxDriftMs must be a non-negative number");
  let wall = 0;
  let logical = 0;
  /** Moves to (nextWall, nextLogical), carrying a logical overflow into the wall time. */
  const advance = (nextWall: number, nextLogical: number): Hlc => {
    if (nextLogical > MAX_LOGICAL) {
      nextWall += 1;
      nextLogical = 0;
    }
    wall = nextWall;
    logical = nextLogical;
    return { wall, logical, node };
  };
  const physical = (): number => Math.min(MAX_WALL, Math.max(0, Math.floor(clock.now())));
  return {
    node,
    now() {
      const pt = physical();
      return pt > wall ? advance(pt, 0) : advance(wall, logical + 1);
    },
    receive(remote) {
      checkHlc(remote, "timestamp received");
      const pt = physical();
      if (remote.wall - pt > maxDrift) {
        throw new StrataError(
          "FAILED_PRECONDITION",
          `timestamp from ${remote.node} is ${remote.wall - pt} ms ahead of this node's clock (limit ${maxDrift} ms)`,
          {
            details: { remote: encodeHlc(remote), driftMs: remote.wall - pt, maxDriftMs: maxDrift },
          },
        );
      }
      const next = Math.max(wall, remote.wall, pt);
      if (next === wall && next === remote.wall)
        return advance(next, Math.max(logical, remote.logical) + 1);
      if (next === wall) return advance(next, logical + 1);
      if (next === remote.wall) return advance(next, remote.logical + 1);
      return advance(next, 0);
    },
  };
}

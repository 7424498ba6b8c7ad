import { StrataError } from "../errors/index.js";
import type { Clock } from "../ports/clock.js";
import type { StrongKV } from "../ports/strong-kv.js";
import { checkPrefix } from "./keys.js";

/**
 * The shard map as it is kept in a coordination store, shared by every router (process) of one
 * sharded store. `owners[slot]` indexes `groups`. `moving` names the slots frozen for a move to
 * group `to`: no router serves them until the map changes again. `pending` lists the slots a
 * rebalance still has to move after these, so another router can finish a rebalance whose
 * coordinator stopped. `generations[slot]` counts the slot's moves (revisions carry it).
 */
export interface StoredShardMap {
  readonly v: 1;
  readonly epoch: number;
  readonly groups: ReadonlyArray<{ readonly id: string; readonly region: string }>;
  readonly owners: readonly number[];
  readonly generations?: readonly number[];
  readonly moving?: { readonly to: string; readonly slots: readonly number[] };
  readonly pending?: { readonly to: string; readonly slots: readonly number[] };
}

/** What a router writes under its own key: the newest map epoch it applies, as a heartbeat. */
interface RouterRecord {
  readonly epoch: number;
}

/** How routers of one sharded store find the map and each other. */
export interface ShardCoordinationOptions {
  /**
   * A linearizable store every router shares (one NATS KV bucket, one PostgreSQL namespace, or
   * one of the shard groups). It holds the map and one small record per router.
   */
  readonly kv: StrongKV;
  /** Key prefix of the map and the router records in `kv`; default `shard-map`. */
  readonly prefix?: string;
  /** This router's name, unique among live routers; default random. */
  readonly routerId?: string;
  /**
   * How long a router may serve after its last heartbeat was written (ms); default 10 000. A
   * router that cannot write its heartbeat stops serving when this runs out, and a rebalance
   * waits this long (plus a margin) for a router that has gone silent.
   */
  readonly leaseMs?: number;
  /** How often each router reads the map and writes its heartbeat (ms); default 200. */
  readonly pollMs?: number;
  /** Slots frozen and moved at once by a rebalance; default 64. */
  readonly batchSlots?: number;
  /** How long a rebalance waits for every router to apply a freeze before undoing it; default 4 × leaseMs. */
  readonly ackTimeoutMs?: number;
  /** Opens a group another router added to the map (this router was not given it). */
  readonly resolveGroup?: (group: {
    readonly id: string;
    readonly region: string;
  }) => Promise<{ readonly id: string; readonly region: string; readonly kv: StrongKV }>;
  readonly clock?: Clock;
  /** Dispose of `kv` when the sharded store is disposed of (it was opened for this store alone). */
  readonly disposeWithStore?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeShardMap(map: StoredShardMap): Uint8Array {
  return encoder.encode(JSON.stringify(map));
}

/** Decodes a stored map, refusing anything that is not one (a clear error, never a guess). */
export function decodeShardMap(bytes: Uint8Array, slots: number): StoredShardMap {
  let map: unknown;
  try {
    map = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new StrataError("DATA_LOSS", "the stored shard map is not JSON");
  }
  const m = map as Partial<StoredShardMap>;
  const groups: unknown = m.groups;
  const isGroup = (g: unknown): g is { id: string; region: string } =>
    typeof g === "object" &&
    g !== null &&
    typeof (g as { id?: unknown }).id === "string" &&
    typeof (g as { region?: unknown }).region === "string";
  const valid =
    typeof map === "object" &&
    map !== null &&
    m.v === 1 &&
    Number.isSafeInteger(m.epoch) &&
    Array.isArray(groups) &&
    groups.length > 0 &&
    groups.every(isGroup) &&
    Array.isArray(m.owners) &&
    m.owners.length === slots &&
    m.owners.every((o) => Number.isInteger(o) && o >= 0 && o < groups.length) &&
    (m.generations === undefined ||
      (Array.isArray(m.generations) &&
        m.generations.length === slots &&
        m.generations.every((g) => Number.isInteger(g) && g >= 0 && g < 8_192))) &&
    [m.moving, m.pending].every(
      (part) =>
        part === undefined ||
        (typeof part.to === "string" &&
          (groups as Array<{ id: string }>).some((g) => g.id === part.to) &&
          Array.isArray(part.slots) &&
          part.slots.every((s) => Number.isInteger(s) && s >= 0 && s < slots)),
    );
  if (!valid) throw new StrataError("DATA_LOSS", "the stored shard map is malformed");
  return map as StoredShardMap;
}

/** Keys of the map and the router records under a coordination prefix. */
export function coordinationKeys(prefix = "shard-map"): {
  readonly map: string;
  readonly routers: string;
} {
  checkPrefix(prefix);
  if (prefix === "" || prefix.endsWith("/") || prefix.endsWith("."))
    throw new StrataError("INVALID_ARGUMENT", `invalid coordination prefix ${prefix}`);
  return { map: `${prefix}/map`, routers: `${prefix}/routers/` };
}

export function encodeRouterRecord(epoch: number): Uint8Array {
  return encoder.encode(JSON.stringify({ epoch } satisfies RouterRecord));
}

/** The epoch a router record acknowledges; a malformed record acknowledges nothing. */
export function routerEpoch(bytes: Uint8Array): number {
  try {
    const record = JSON.parse(decoder.decode(bytes)) as Partial<RouterRecord>;
    return Number.isSafeInteger(record.epoch) ? (record.epoch as number) : 0;
  } catch {
    return 0;
  }
}

/**
 * Waits until every router recorded under `routers` applies `epoch` or has gone silent for
 * longer than its lease (its record unchanged for `leaseMs` plus a margin, as timed here: a
 * router stops serving `leaseMs` after it *sent* its last heartbeat, which is before this side
 * saw it). Records of silent routers are removed. Throws DEADLINE_EXCEEDED after `timeoutMs`.
 */
export async function awaitRouters(options: {
  readonly kv: StrongKV;
  readonly routers: string;
  readonly epoch: number;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
}): Promise<void> {
  const { kv, clock } = options;
  // Rates of clocks differ a little; the margin covers 10% of drift and one poll.
  const silentAfter = options.leaseMs * 1.1 + options.pollMs;
  const seen = new Map<string, { revision: number; since: number }>();
  const started = clock.monotonic();
  for (;;) {
    const waiting: string[] = [];
    let after: string | undefined;
    do {
      const page = await kv.list(options.routers, after === undefined ? {} : { after });
      for (const entry of page.entries) {
        if (routerEpoch(entry.value) >= options.epoch) continue;
        const now = clock.monotonic();
        const last = seen.get(entry.key);
        if (last === undefined || last.revision !== entry.revision) {
          seen.set(entry.key, { revision: entry.revision, since: now });
          waiting.push(entry.key);
        } else if (now - last.since > silentAfter) {
          // Silent past its lease: it serves no more. Remove it unless it wrote meanwhile.
          await kv.delete(entry.key, { expectedRevision: entry.revision }).catch(() => undefined);
        } else waiting.push(entry.key);
      }
      after = page.next;
    } while (after !== undefined);
    if (waiting.length === 0) return;
    if (clock.monotonic() - started > options.timeoutMs) {
      throw new StrataError(
        "DEADLINE_EXCEEDED",
        `${waiting.length} shard router(s) did not apply map epoch ${options.epoch}`,
        { details: { routers: waiting.slice(0, 10) } },
      );
    }
    await new Promise<void>((resolve) => clock.setTimer(resolve, options.pollMs));
  }
}

import semver from "semver";
import { StrataError } from "../errors/index.js";
import { HashRing } from "./hash-ring.js";
import type { RoutingStrategy } from "./context.js";
import type { Instance, Member, Membership } from "./membership.js";

/**
 * What the router needs to pick a node. Clients keep one per action and reuse it for every call,
 * so the router can cache the candidate list on it (`cache`) until membership changes.
 */
export interface RouteSpec {
  readonly service: string;
  readonly range: string;
  readonly strategy: RoutingStrategy;
  readonly preferLocal: boolean;
  readonly regionAffinity: boolean;
  cache?: Candidates | undefined;
}

/** The instances that can serve a route, for one membership epoch. */
export interface Candidates {
  epoch: number;
  all: Instance[];
  /** The instances to balance over: same-region ones when region affinity applies and any exist. */
  nearby: Instance[];
  local: Instance | undefined;
  ring: HashRing | undefined;
  ringIndex: Map<string, Instance> | undefined;
  cursor: number;
}

/**
 * Picks the node for a call: version filter, then shard owner (consistent hashing), then a local
 * instance, then region affinity, then round-robin or power-of-two-choices on outstanding calls.
 */
export class Router {
  private readonly cache = new Map<string, Candidates>();
  private readonly rangeCache = new Map<string, boolean>();

  private readonly membership: Membership;
  private readonly region: string;
  private readonly random: () => number;

  constructor(membership: Membership, region: string, random: () => number) {
    this.membership = membership;
    this.region = region;
    this.random = random;
  }

  /**
   * Picks an instance. `avoid` is a preference: nodes it flags are skipped unless every candidate
   * is flagged (the caller's breakers then decide whether to send at all). Sharded calls always go
   * to the key's owner, so that ownership stays stable.
   */
  pick(
    request: RouteSpec,
    shardKey: string | undefined,
    avoid?: (member: Member) => boolean,
  ): Instance {
    let c = request.cache;
    if (c === undefined || c.epoch !== this.membership.epoch) {
      c = this.candidates(request);
      request.cache = c;
    }
    if (c.all.length === 0) {
      throw new StrataError(
        "UNAVAILABLE",
        `no ready node serves ${request.service}@${request.range}`,
        { details: { reason: "no-instance", service: request.service, version: request.range } },
      );
    }
    if (shardKey !== undefined) {
      if (c.ring === undefined) {
        const index = new Map<string, Instance>();
        for (const instance of c.all) index.set(instance.member.id, instance);
        c.ringIndex = index;
        c.ring = new HashRing([...index.keys()]);
      }
      const owner = c.ring.owner(shardKey);
      const instance = owner === undefined ? undefined : c.ringIndex?.get(owner);
      if (instance !== undefined) return instance;
    }
    if (request.preferLocal && c.local !== undefined && avoid?.(c.local.member) !== true) {
      return c.local;
    }
    let pool = request.regionAffinity ? c.nearby : c.all;
    if (avoid !== undefined) {
      const healthy = pool.filter((i) => !avoid(i.member));
      if (healthy.length > 0) pool = healthy;
      else if (pool !== c.all) {
        const anywhere = c.all.filter((i) => !avoid(i.member));
        if (anywhere.length > 0) pool = anywhere;
      }
    }
    const n = pool.length;
    if (n === 1) return pool[0] as Instance;
    if (request.strategy === "round-robin") {
      c.cursor = (c.cursor + 1) % n;
      return pool[c.cursor] as Instance;
    }
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = pool[i] as Instance;
    const b = pool[j] as Instance;
    return load(a.member) <= load(b.member) ? a : b;
  }

  /** How many ready nodes serve `service` at a version in `range`. */
  available(service: string, range: string): number {
    return this.candidates({
      service,
      range,
      strategy: "round-robin",
      preferLocal: false,
      regionAffinity: false,
    }).all.length;
  }

  private candidates(request: RouteSpec): Candidates {
    const key = `${request.service}\u0000${request.range}`;
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.epoch === this.membership.epoch) return cached;
    const all = this.membership
      .instances(request.service)
      .filter((instance) => this.satisfies(instance.version, request.range));
    const sameRegion = all.filter((i) => i.member.announcement.region === this.region);
    const fresh: Candidates = {
      epoch: this.membership.epoch,
      all,
      nearby: sameRegion.length > 0 ? sameRegion : all,
      local: all.find((i) => i.member.local),
      ring: undefined,
      ringIndex: undefined,
      cursor: cached?.cursor ?? -1,
    };
    this.cache.set(key, fresh);
    return fresh;
  }

  private satisfies(version: string, range: string): boolean {
    const key = `${version}\u0000${range}`;
    let result = this.rangeCache.get(key);
    if (result === undefined) {
      result = semver.satisfies(version, range, { includePrerelease: true });
      if (this.rangeCache.size > 10_000) this.rangeCache.clear();
      this.rangeCache.set(key, result);
    }
    return result;
  }
}

function load(member: Member): number {
  return member.outstanding;
}

/** Validates a semver range up front, so a typo fails at client creation, not on every call. */
export function checkRange(range: string, service: string): string {
  if (semver.validRange(range) === null) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `client for ${service}: "${range}" is not a valid semver range`,
    );
  }
  return range;
}

import type { CallTarget, NodeAnnouncement, NodeStatus } from "../ports/index.js";

/** One node as this node's routing table sees it. */
export interface Member {
  readonly id: string;
  readonly local: boolean;
  readonly target: CallTarget;
  announcement: NodeAnnouncement;
  status: NodeStatus;
  incarnation: number;
  /** Monotonic time of the last message from this node. */
  lastSeen: number;
  /** In-flight count the node last reported. */
  reportedInFlight: number;
  /** Calls this node has outstanding to the member (power-of-two-choices reads it). */
  outstanding: number;
}

/** Why a node left the routing table. */
export type LeaveReason = "bye" | "timeout" | "restarted" | "unreachable";

/** Membership changes, for observers. */
export type MembershipEvent =
  | { readonly type: "joined"; readonly member: NodeAnnouncement }
  | { readonly type: "left"; readonly id: string; readonly reason: LeaveReason }
  | { readonly type: "status"; readonly id: string; readonly status: NodeStatus };

/** One service instance on one member. */
export interface Instance {
  readonly member: Member;
  readonly version: string;
}

/**
 * The routing table: which live node serves which service at which version. Every change bumps
 * `epoch`, which the router uses to invalidate its caches.
 */
export class Membership {
  private readonly members = new Map<string, Member>();
  private byService = new Map<string, Instance[]>();
  epoch = 0;

  private readonly onEvent: (event: MembershipEvent) => void;

  constructor(onEvent: (event: MembershipEvent) => void) {
    this.onEvent = onEvent;
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  all(): IterableIterator<Member> {
    return this.members.values();
  }

  instances(service: string): readonly Instance[] {
    return this.byService.get(service) ?? [];
  }

  /** Adds or refreshes a member from its announcement; returns the replaced incarnation, if any. */
  upsert(announcement: NodeAnnouncement, now: number, local: boolean): Member {
    const existing = this.members.get(announcement.id);
    if (existing !== undefined && existing.incarnation === announcement.incarnation) {
      existing.announcement = announcement;
      existing.lastSeen = now;
      existing.reportedInFlight = announcement.inFlight;
      if (existing.status !== announcement.status) {
        existing.status = announcement.status;
        this.onEvent({ type: "status", id: existing.id, status: existing.status });
      }
      this.rebuild();
      return existing;
    }
    if (existing !== undefined) this.remove(existing.id, "restarted");
    const member: Member = {
      id: announcement.id,
      local,
      target: { kind: "node", node: announcement.id },
      announcement,
      status: announcement.status,
      incarnation: announcement.incarnation,
      lastSeen: now,
      reportedInFlight: announcement.inFlight,
      outstanding: 0,
    };
    this.members.set(member.id, member);
    this.rebuild();
    this.onEvent({ type: "joined", member: announcement });
    return member;
  }

  /** Records a heartbeat; false when the member or incarnation is unknown (ask it to announce). */
  heartbeat(
    id: string,
    incarnation: number,
    status: NodeStatus,
    inFlight: number,
    now: number,
  ): boolean {
    const member = this.members.get(id);
    if (member === undefined || member.incarnation !== incarnation) return false;
    member.lastSeen = now;
    member.reportedInFlight = inFlight;
    if (member.status !== status) {
      member.status = status;
      this.rebuild();
      this.onEvent({ type: "status", id, status });
    }
    return true;
  }

  remove(id: string, reason: LeaveReason): Member | undefined {
    const member = this.members.get(id);
    if (member === undefined) return undefined;
    this.members.delete(id);
    this.rebuild();
    this.onEvent({ type: "left", id, reason });
    return member;
  }

  /** Removes remote members silent for longer than `deadAfterMs`; returns them. */
  sweep(now: number, deadAfterMs: number): Member[] {
    const dead: Member[] = [];
    for (const member of this.members.values()) {
      if (!member.local && now - member.lastSeen > deadAfterMs) dead.push(member);
    }
    for (const member of dead) this.remove(member.id, "timeout");
    return dead;
  }

  private rebuild(): void {
    const next = new Map<string, Instance[]>();
    for (const member of this.members.values()) {
      if (member.status !== "ready") continue;
      for (const service of member.announcement.services) {
        let list = next.get(service.name);
        if (list === undefined) next.set(service.name, (list = []));
        list.push({ member, version: service.version });
      }
    }
    for (const list of next.values()) list.sort((a, b) => (a.member.id < b.member.id ? -1 : 1));
    this.byService = next;
    this.epoch++;
  }
}

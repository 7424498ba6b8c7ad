import { StrataError, isErrorCode, type ErrorCode } from "../errors/index.js";

/** What an injected fault does to a matching call on the serving node. */
export type FaultEffect =
  /** Delays the handler by `ms` (plus up to `jitterMs`). */
  | { readonly type: "latency"; readonly ms: number; readonly jitterMs?: number }
  /** Fails the call at once with `code`. */
  | { readonly type: "fail"; readonly code: ErrorCode; readonly message?: string }
  /** Runs the handler but never sends the reply (the caller's deadline fires). */
  | { readonly type: "drop-reply" }
  /** Neither runs nor answers: the node looks alive to membership but swallows calls. */
  | { readonly type: "black-hole" };

/** Which calls a fault applies to; an absent field matches everything. */
export interface FaultScope {
  readonly service?: string;
  readonly action?: string;
  /** The serving node's id. */
  readonly node?: string;
}

/** A fault as injected. */
export interface FaultSpec {
  readonly effect: FaultEffect;
  /** Chance (0..1] that a matching call is affected; default 1. */
  readonly probability?: number;
  readonly scope?: FaultScope;
}

/** A fault in force, with its id. */
export interface FaultRule extends FaultSpec {
  readonly id: string;
  readonly probability: number;
  readonly scope: FaultScope;
  /** Calls it has affected so far. */
  hits: number;
}

const EFFECTS = ["latency", "fail", "drop-reply", "black-hole"];

/** Validates a fault spec from an untrusted source (API, CLI, admin call); throws INVALID_ARGUMENT. */
export function parseFaultSpec(value: unknown): FaultSpec {
  const bad = (why: string): StrataError =>
    new StrataError("INVALID_ARGUMENT", `invalid fault: ${why}`);
  if (typeof value !== "object" || value === null) throw bad("expected an object");
  const raw = value as Record<string, unknown>;
  const effect = raw["effect"] as Record<string, unknown> | undefined;
  if (typeof effect !== "object" || effect === null) throw bad("effect is required");
  const type = effect["type"];
  if (typeof type !== "string" || !EFFECTS.includes(type)) {
    throw bad(`effect.type must be one of ${EFFECTS.join(", ")}`);
  }
  let parsed: FaultEffect;
  switch (type) {
    case "latency": {
      const ms = effect["ms"];
      const jitter = effect["jitterMs"];
      if (typeof ms !== "number" || !(ms >= 0) || ms > 600_000)
        throw bad("latency ms must be 0..600000");
      if (jitter !== undefined && (typeof jitter !== "number" || !(jitter >= 0)))
        throw bad("jitterMs must be >= 0");
      parsed = jitter === undefined ? { type, ms } : { type, ms, jitterMs: jitter };
      break;
    }
    case "fail": {
      const code = effect["code"];
      if (!isErrorCode(code)) throw bad(`fail needs a known error code, got ${String(code)}`);
      const message = effect["message"];
      if (message !== undefined && typeof message !== "string")
        throw bad("message must be a string");
      parsed = message === undefined ? { type, code } : { type, code, message };
      break;
    }
    default:
      parsed = { type: type as "drop-reply" | "black-hole" };
  }
  const probability = raw["probability"] ?? 1;
  if (typeof probability !== "number" || !(probability > 0 && probability <= 1)) {
    throw bad("probability must be in (0, 1]");
  }
  const scope = (raw["scope"] ?? {}) as Record<string, unknown>;
  if (typeof scope !== "object" || scope === null) throw bad("scope must be an object");
  const out: { service?: string; action?: string; node?: string } = {};
  for (const key of Object.keys(scope)) {
    const v = scope[key];
    if (key !== "service" && key !== "action" && key !== "node")
      throw bad(`unknown scope field ${key}`);
    if (typeof v !== "string" || v.length === 0 || v.length > 128)
      throw bad(`scope.${key} must be a non-empty string`);
    out[key] = v;
  }
  return { effect: parsed, probability, scope: out };
}

/**
 * The faults a node applies to calls it serves. Off by default; with no rules the serving path
 * pays one property read.
 */
export class FaultInjector {
  private rules: FaultRule[] = [];
  private sequence = 0;
  private readonly random: () => number;
  /** True when any rule is in force (the hot path checks only this). */
  active = false;

  constructor(random: () => number) {
    this.random = random;
  }

  inject(spec: FaultSpec): FaultRule {
    const checked = parseFaultSpec(spec);
    const rule: FaultRule = {
      id: `fault-${++this.sequence}`,
      effect: checked.effect,
      probability: checked.probability ?? 1,
      scope: checked.scope ?? {},
      hits: 0,
    };
    this.rules = [...this.rules, rule];
    this.active = true;
    return rule;
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Removes one rule, or every rule; returns how many were removed. */
  clear(id?: string): number {
    const before = this.rules.length;
    this.rules = id === undefined ? [] : this.rules.filter((r) => r.id !== id);
    this.active = this.rules.length > 0;
    return before - this.rules.length;
  }

  /** The effect to apply to this call, if any rule matches and its dice roll says so. */
  match(node: string, service: string, action: string): FaultEffect | undefined {
    for (const rule of this.rules) {
      const s = rule.scope;
      if (s.node !== undefined && s.node !== node) continue;
      if (s.service !== undefined && s.service !== service) continue;
      if (s.action !== undefined && s.action !== action) continue;
      if (rule.probability < 1 && this.random() >= rule.probability) continue;
      rule.hits++;
      return rule.effect;
    }
    return undefined;
  }
}

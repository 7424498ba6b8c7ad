import { StrataError, type ErrorCode } from "../errors/index.js";
import type { Clock } from "../ports/index.js";

/** What an SLO measures: calls that did not fail, or calls that did not fail and were fast. */
export type SloKind = "availability" | "latency";

/** A service level objective over the calls of one service, or one of its actions. */
export interface SloSpec {
  /** `[a-z0-9_.-]{1,64}`, unique within a monitor. */
  readonly name: string;
  readonly service: string;
  /** Absent: every action of the service. */
  readonly action?: string;
  readonly kind: SloKind;
  /** Target fraction of good calls, strictly between 0 and 1, e.g. 0.999. */
  readonly objective: number;
  /** Latency SLOs only (required there): a call slower than this is bad. */
  readonly thresholdMs?: number;
  /** Error-budget period (ms), kept in whole hours; default 30 days. */
  readonly periodMs?: number;
}

/** Fires when the burn rate over both `longMs` and `shortMs` exceeds `burnRate`. */
export interface BurnRateRule {
  readonly severity: "page" | "ticket";
  readonly longMs: number;
  readonly shortMs: number;
  readonly burnRate: number;
}

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/**
 * The Google SRE workbook's multi-window, multi-burn-rate alerts ("Alerting on SLOs", alert 6):
 * page at 2% of a 30-day budget spent in an hour, ticket at 5% spent in six hours.
 */
export const DEFAULT_BURN_RATE_RULES: readonly BurnRateRule[] = Object.freeze([
  Object.freeze({ severity: "page", longMs: HOUR_MS, shortMs: 5 * MINUTE_MS, burnRate: 14.4 }),
  Object.freeze({ severity: "ticket", longMs: 6 * HOUR_MS, shortMs: 30 * MINUTE_MS, burnRate: 6 }),
] as const);

/** An alert starting or stopping. */
export interface SloAlertEvent {
  readonly type: "slo";
  readonly slo: string;
  readonly severity: "page" | "ticket";
  readonly state: "firing" | "resolved";
  readonly burnRates: { readonly long: number; readonly short: number };
}

/** Where an SLO stands now. */
export interface SloStatus {
  readonly name: string;
  readonly service: string;
  readonly action: string | undefined;
  readonly kind: SloKind;
  readonly objective: number;
  /** Calls over the budget period, as far as kept (whole hours, the current one partly). */
  readonly total: number;
  readonly good: number;
  /** good / total; 1 when total is 0. */
  readonly attainment: number;
  /** 1 - (bad / total) / (1 - objective); negative once overspent; 1 when total is 0. */
  readonly errorBudgetRemaining: number;
  /** Burn rate now, by window label such as "5m", "30m", "1h", "6h". */
  readonly burnRates: Readonly<Record<string, number>>;
  /** Alert state as of the last {@link SloMonitor.evaluate}, one per rule. */
  readonly alerts: ReadonlyArray<{
    readonly severity: "page" | "ticket";
    readonly firing: boolean;
  }>;
}

/** Options for {@link SloMonitor}. */
export interface SloMonitorOptions {
  /** Default {@link DEFAULT_BURN_RATE_RULES}. */
  readonly rules?: readonly BurnRateRule[];
  /** Called on every alert change; what it throws is swallowed. */
  readonly onAlert?: (event: SloAlertEvent) => void;
  /** Granularity of the burn-rate windows (ms); default 10 000. */
  readonly slotMs?: number;
}

const NAME_PATTERN = /^[a-z0-9_.-]{1,64}$/;
const MAX_NAME = 256;
const MAX_PERIOD_MS = 400 * DAY_MS;
const MAX_FINE_SLOTS = 100_000;

function invalid(message: string, field?: string): StrataError {
  return new StrataError(
    "INVALID_ARGUMENT",
    message,
    field === undefined ? {} : { details: { field } },
  );
}

/** A short, safe rendering of a hostile value for an error message. */
function show(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return value === null ? "null" : typeof value;
}

function isPositive(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

/**
 * Validates an SLO spec from an untrusted source (config file, admin call) and returns a frozen
 * copy holding only the known fields. Name uniqueness is checked by {@link SloMonitor.add}.
 *
 * @example
 * checkSloSpec({ name: "orders-avail", service: "orders", kind: "availability", objective: 0.999 });
 */
export function checkSloSpec(spec: unknown): SloSpec {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw invalid(`SLO spec must be an object, got ${show(spec)}`);
  }
  const raw = spec as Record<string, unknown>;
  const { name, service, action, kind, objective, thresholdMs, periodMs } = raw;
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    throw invalid(`SLO name must match ${String(NAME_PATTERN)}, got ${show(name)}`, "name");
  }
  const where = `SLO ${name}`;
  if (typeof service !== "string" || service.length === 0 || service.length > MAX_NAME) {
    throw invalid(`${where}: service must be a non-empty string, got ${show(service)}`, "service");
  }
  if (
    action !== undefined &&
    (typeof action !== "string" || action.length === 0 || action.length > MAX_NAME)
  ) {
    throw invalid(`${where}: action must be a non-empty string, got ${show(action)}`, "action");
  }
  if (kind !== "availability" && kind !== "latency") {
    throw invalid(`${where}: kind must be "availability" or "latency", got ${show(kind)}`, "kind");
  }
  if (typeof objective !== "number" || !(objective > 0 && objective < 1)) {
    throw invalid(
      `${where}: objective must be a number strictly between 0 and 1, got ${show(objective)}`,
      "objective",
    );
  }
  if (kind === "latency" && !isPositive(thresholdMs)) {
    throw invalid(
      `${where}: a latency SLO needs thresholdMs, a positive finite number, got ${show(thresholdMs)}`,
      "thresholdMs",
    );
  }
  if (kind === "availability" && thresholdMs !== undefined) {
    throw invalid(`${where}: thresholdMs applies to latency SLOs only`, "thresholdMs");
  }
  if (
    periodMs !== undefined &&
    (!isPositive(periodMs) || periodMs < HOUR_MS || periodMs > MAX_PERIOD_MS)
  ) {
    throw invalid(
      `${where}: periodMs must be between 1 hour and 400 days, got ${show(periodMs)}`,
      "periodMs",
    );
  }
  return Object.freeze({
    name,
    service,
    ...(typeof action === "string" ? { action } : {}),
    kind,
    objective,
    ...(typeof thresholdMs === "number" ? { thresholdMs } : {}),
    ...(typeof periodMs === "number" ? { periodMs } : {}),
  });
}

/**
 * Server-side failures spend the error budget; the caller's own mistakes (bad input, missing
 * entity, cancellation, refused permission) do not.
 */
export function isServerFault(code: "OK" | ErrorCode): boolean {
  switch (code) {
    case "UNKNOWN":
    case "DEADLINE_EXCEEDED":
    case "RESOURCE_EXHAUSTED":
    case "UNIMPLEMENTED":
    case "INTERNAL":
    case "UNAVAILABLE":
    case "DATA_LOSS":
      return true;
    case "OK":
    case "CANCELLED":
    case "INVALID_ARGUMENT":
    case "NOT_FOUND":
    case "ALREADY_EXISTS":
    case "PERMISSION_DENIED":
    case "FAILED_PRECONDITION":
    case "ABORTED":
    case "OUT_OF_RANGE":
    case "UNAUTHENTICATED":
      return false;
  }
}

/** Total and bad calls per time slot, in a ring allocated once. */
class CountRing {
  private readonly size: number;
  private readonly slotMs: number;
  private readonly epochs: Float64Array;
  private readonly totals: Float64Array;
  private readonly bads: Float64Array;

  constructor(size: number, slotMs: number) {
    this.size = size;
    this.slotMs = slotMs;
    this.epochs = new Float64Array(size).fill(NaN);
    this.totals = new Float64Array(size);
    this.bads = new Float64Array(size);
  }

  add(now: number, bad: boolean): void {
    const slot = Math.floor(now / this.slotMs);
    const pos = ((slot % this.size) + this.size) % this.size;
    if (this.epochs[pos] !== slot) {
      this.epochs[pos] = slot;
      this.totals[pos] = 0;
      this.bads[pos] = 0;
    }
    this.totals[pos] = (this.totals[pos] ?? 0) + 1;
    if (bad) this.bads[pos] = (this.bads[pos] ?? 0) + 1;
  }

  /**
   * Sums the `spans[i]` most recent slots (the current one included) into `totals[i]`/`bads[i]`,
   * in one pass; `spans` is ascending and at most the ring's size.
   */
  sum(now: number, spans: readonly number[], totals: Float64Array, bads: Float64Array): void {
    const current = Math.floor(now / this.slotMs);
    let total = 0;
    let bad = 0;
    let next = 0;
    const last = spans[spans.length - 1] ?? 0;
    for (let back = 0; back < last; back++) {
      const slot = current - back;
      const pos = ((slot % this.size) + this.size) % this.size;
      if (this.epochs[pos] === slot) {
        total += this.totals[pos] ?? 0;
        bad += this.bads[pos] ?? 0;
      }
      while (next < spans.length && spans[next] === back + 1) {
        totals[next] = total;
        bads[next] = bad;
        next++;
      }
    }
  }
}

interface Tracked {
  readonly spec: SloSpec;
  readonly threshold: number;
  readonly fine: CountRing;
  readonly coarse: CountRing;
  readonly coarseSpan: readonly number[];
  readonly firing: boolean[];
}

interface ServiceIndex {
  /** SLOs over every action of the service. */
  readonly all: Tracked[];
  readonly byAction: Map<string, Tracked[]>;
}

/** Labels a window length: "5m", "1h", "90s", "1500ms". */
function label(ms: number): string {
  if (ms % DAY_MS === 0) return `${ms / DAY_MS}d`;
  if (ms % HOUR_MS === 0) return `${ms / HOUR_MS}h`;
  if (ms % MINUTE_MS === 0) return `${ms / MINUTE_MS}m`;
  if (ms % SECOND_MS === 0) return `${ms / SECOND_MS}s`;
  return `${ms}ms`;
}

function burn(total: number, bad: number, objective: number): number {
  return total === 0 ? 0 : bad / total / (1 - objective);
}

/**
 * Tracks SLOs and raises multi-window, multi-burn-rate alerts. The burn rate over a window is
 * (bad / total) / (1 - objective), 0 for a window without calls. A window of W covers the current
 * slot and the ones before it, W / slotMs in all (so between W - slotMs and W of history).
 *
 * Memory is fixed per SLO: a ring of `slotMs` slots as long as the longest rule window, and a
 * ring of one-hour slots as long as the budget period. {@link record} allocates nothing.
 *
 * @example
 * const spec = { name: "orders", service: "orders", kind: "availability", objective: 0.999 };
 * const slos = new SloMonitor(clock, [spec], { onAlert: (event) => pager.send(event) });
 * slos.record("orders", "place", "OK", 12);
 * clock.setTimer(function tick() { slos.evaluate(); clock.setTimer(tick, 10_000); }, 10_000);
 */
export class SloMonitor {
  private readonly clock: Clock;
  private readonly slotMs: number;
  private readonly rules: readonly BurnRateRule[];
  /** Distinct window lengths in slots, ascending, and their labels. */
  private readonly spans: readonly number[];
  private readonly labels: readonly string[];
  /** Per rule: index into `spans` of its long and short windows. */
  private readonly ruleSpans: ReadonlyArray<{ readonly long: number; readonly short: number }>;
  private readonly onAlert: (event: SloAlertEvent) => void;
  private readonly tracked: Tracked[] = [];
  private readonly index = new Map<string, ServiceIndex>();
  private readonly sumTotals: Float64Array;
  private readonly sumBads: Float64Array;

  constructor(clock: Clock, specs: readonly SloSpec[], options: SloMonitorOptions = {}) {
    this.clock = clock;
    const slotMs = options.slotMs ?? 10_000;
    if (!isPositive(slotMs)) {
      throw invalid(
        `SloMonitor: slotMs must be a positive finite number, got ${show(slotMs)}`,
        "slotMs",
      );
    }
    this.slotMs = slotMs;
    const rules = options.rules ?? DEFAULT_BURN_RATE_RULES;
    if (!Array.isArray(rules)) throw invalid("SloMonitor: rules must be an array", "rules");
    const windows = new Set<number>();
    const checked = rules.map((rule: unknown, i): BurnRateRule => {
      const r = (typeof rule === "object" && rule !== null ? rule : {}) as Record<string, unknown>;
      const { severity, longMs, shortMs, burnRate } = r;
      const where = `SloMonitor: rules[${i}]`;
      if (severity !== "page" && severity !== "ticket") {
        throw invalid(
          `${where}.severity must be "page" or "ticket", got ${show(severity)}`,
          "rules",
        );
      }
      if (
        !isPositive(longMs) ||
        !isPositive(shortMs) ||
        !isPositive(burnRate) ||
        shortMs > longMs
      ) {
        throw invalid(`${where} needs positive finite longMs >= shortMs and burnRate`, "rules");
      }
      return { severity, longMs, shortMs, burnRate };
    });
    const slots = (ms: number): number => Math.max(1, Math.round(ms / slotMs));
    for (const rule of checked) windows.add(slots(rule.longMs)).add(slots(rule.shortMs));
    this.spans = [...windows].sort((a, b) => a - b);
    if ((this.spans[this.spans.length - 1] ?? 0) > MAX_FINE_SLOTS) {
      throw invalid(
        `SloMonitor: longest window / slotMs must be at most ${MAX_FINE_SLOTS}`,
        "slotMs",
      );
    }
    this.labels = this.spans.map((span) => label(span * slotMs));
    this.ruleSpans = checked.map((rule) => ({
      long: this.spans.indexOf(slots(rule.longMs)),
      short: this.spans.indexOf(slots(rule.shortMs)),
    }));
    this.rules = checked;
    this.onAlert = options.onAlert ?? (() => {});
    this.sumTotals = new Float64Array(this.spans.length);
    this.sumBads = new Float64Array(this.spans.length);
    for (const spec of specs) this.add(spec);
  }

  /** Starts tracking another SLO; throws INVALID_ARGUMENT for a bad spec or a taken name. */
  add(spec: SloSpec): void {
    const checked = checkSloSpec(spec);
    if (this.tracked.some((t) => t.spec.name === checked.name)) {
      throw invalid(`SLO ${checked.name}: name already in use`, "name");
    }
    const coarseSlots = Math.ceil((checked.periodMs ?? 30 * DAY_MS) / HOUR_MS);
    const tracked: Tracked = {
      spec: checked,
      threshold: checked.thresholdMs ?? Infinity,
      fine: new CountRing(Math.max(1, this.spans[this.spans.length - 1] ?? 1), this.slotMs),
      coarse: new CountRing(coarseSlots, HOUR_MS),
      coarseSpan: [coarseSlots],
      firing: this.rules.map(() => false),
    };
    this.tracked.push(tracked);
    let entry = this.index.get(checked.service);
    if (entry === undefined) {
      entry = { all: [], byAction: new Map() };
      this.index.set(checked.service, entry);
    }
    if (checked.action === undefined) {
      entry.all.push(tracked);
    } else {
      const list = entry.byAction.get(checked.action);
      if (list === undefined) entry.byAction.set(checked.action, [tracked]);
      else list.push(tracked);
    }
  }

  /** Counts one served call against the SLOs that cover it. Cheap; allocates nothing. */
  record(service: string, action: string, code: "OK" | ErrorCode, durationMs: number): void {
    const entry = this.index.get(service);
    if (entry === undefined) return;
    const specific = entry.byAction.get(action);
    if (entry.all.length === 0 && specific === undefined) return;
    const now = this.clock.monotonic();
    const failure = isServerFault(code);
    for (let i = 0; i < entry.all.length; i++) {
      const t = entry.all[i];
      if (t !== undefined) count(t, now, failure, durationMs);
    }
    if (specific === undefined) return;
    for (let i = 0; i < specific.length; i++) {
      const t = specific[i];
      if (t !== undefined) count(t, now, failure, durationMs);
    }
  }

  /** Recomputes burn rates and fires or resolves alerts, calling `onAlert` for each change. */
  evaluate(): void {
    const now = this.clock.monotonic();
    // Events go out after every SLO is judged: a hook that calls status() would otherwise
    // overwrite the sums still being read.
    const changes: SloAlertEvent[] = [];
    for (const t of this.tracked) {
      this.burnRates(t, now);
      this.rules.forEach((rule, r) => {
        const spans = this.ruleSpans[r];
        if (spans === undefined) return;
        const long = this.rate(t, spans.long);
        const short = this.rate(t, spans.short);
        const firing = long > rule.burnRate && short > rule.burnRate;
        if (firing === t.firing[r]) return;
        t.firing[r] = firing;
        const state = firing ? "firing" : "resolved";
        changes.push({
          type: "slo",
          slo: t.spec.name,
          severity: rule.severity,
          state,
          burnRates: { long, short },
        });
      });
    }
    for (const event of changes) {
      try {
        this.onAlert(event);
      } catch {
        // A failing alert hook must not stop the others, nor reach the timer that called us.
      }
    }
  }

  /** Every SLO's budget, burn rates (computed now) and alert states, in the order added. */
  status(): SloStatus[] {
    const now = this.clock.monotonic();
    const period = new Float64Array(1);
    const periodBad = new Float64Array(1);
    return this.tracked.map((t) => {
      this.burnRates(t, now);
      const burnRates: Record<string, number> = {};
      this.labels.forEach((l, i) => (burnRates[l] = this.rate(t, i)));
      t.coarse.sum(now, t.coarseSpan, period, periodBad);
      const total = period[0] ?? 0;
      const bad = periodBad[0] ?? 0;
      const { objective } = t.spec;
      return {
        name: t.spec.name,
        service: t.spec.service,
        action: t.spec.action,
        kind: t.spec.kind,
        objective,
        total,
        good: total - bad,
        attainment: total === 0 ? 1 : (total - bad) / total,
        errorBudgetRemaining: 1 - burn(total, bad, objective),
        burnRates,
        alerts: this.rules.map((rule, r) => ({
          severity: rule.severity,
          firing: t.firing[r] ?? false,
        })),
      };
    });
  }

  private burnRates(t: Tracked, now: number): void {
    t.fine.sum(now, this.spans, this.sumTotals, this.sumBads);
  }

  private rate(t: Tracked, span: number): number {
    return burn(this.sumTotals[span] ?? 0, this.sumBads[span] ?? 0, t.spec.objective);
  }
}

function count(t: Tracked, now: number, failure: boolean, durationMs: number): void {
  // `!(d <= threshold)` also counts a NaN duration as slow: a broken measurement is not a pass.
  const bad = failure || (t.spec.kind === "latency" && !(durationMs <= t.threshold));
  t.fine.add(now, bad);
  t.coarse.add(now, bad);
}

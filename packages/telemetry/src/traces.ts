import { SpanStatusCode } from "@opentelemetry/api";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";

/** A finished span, in plain data. */
export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly kind: "internal" | "server" | "client" | "producer" | "consumer";
  /** Wall-clock milliseconds since the epoch (fractional). */
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>;
  readonly error: boolean;
}

const KINDS = ["internal", "server", "client", "producer", "consumer"] as const;

/** Converts an SDK span to a {@link SpanRecord}. */
export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const context = span.spanContext();
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    name: span.name,
    kind: KINDS[span.kind] ?? "internal",
    startMs: span.startTime[0] * 1000 + span.startTime[1] / 1e6,
    endMs: span.endTime[0] * 1000 + span.endTime[1] / 1e6,
    attributes: { ...span.attributes },
    links: span.links.map((link) => ({
      traceId: link.context.traceId,
      spanId: link.context.spanId,
    })),
    error: span.status.code === SpanStatusCode.ERROR,
  };
}

/** Options of {@link TraceCollector}. */
export interface TraceCollectorOptions {
  /** Traces kept (oldest dropped first, except the slowest per root name); default 2 000. */
  readonly maxTraces?: number;
  /** Spans kept per trace; default 2 000. */
  readonly maxSpansPerTrace?: number;
}

/**
 * A span processor that keeps recent traces in memory, grouped by trace, and always keeps the
 * slowest trace of each root-span name (for example the slowest `orders/place`), so a run's
 * report can show where that one spent its time.
 */
export class TraceCollector implements SpanProcessor {
  private readonly traces = new Map<string, SpanRecord[]>();
  private readonly slowest = new Map<string, { traceId: string; durationMs: number }>();
  private readonly pinned = new Set<string>();
  private readonly maxTraces: number;
  private readonly maxSpans: number;

  constructor(options: TraceCollectorOptions = {}) {
    this.maxTraces = options.maxTraces ?? 2_000;
    this.maxSpans = options.maxSpansPerTrace ?? 2_000;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    const record = toSpanRecord(span);
    let spans = this.traces.get(record.traceId);
    if (spans === undefined) {
      spans = [];
      this.traces.set(record.traceId, spans);
      this.evict();
    }
    if (spans.length < this.maxSpans) spans.push(record);
    if (record.parentSpanId === undefined) {
      const durationMs = record.endMs - record.startMs;
      const best = this.slowest.get(record.name);
      if (best === undefined || durationMs > best.durationMs) {
        if (best !== undefined) this.pinned.delete(best.traceId);
        this.slowest.set(record.name, { traceId: record.traceId, durationMs });
        this.pinned.add(record.traceId);
      }
    }
  }

  private evict(): void {
    if (this.traces.size <= this.maxTraces) return;
    for (const traceId of this.traces.keys()) {
      if (this.pinned.has(traceId)) continue;
      this.traces.delete(traceId);
      if (this.traces.size <= this.maxTraces) return;
    }
  }

  /** The spans kept of one trace, by start time. */
  trace(traceId: string): SpanRecord[] {
    return [...(this.traces.get(traceId) ?? [])].sort((a, b) => a.startMs - b.startMs);
  }

  /** Every span kept, of every trace. */
  spans(): SpanRecord[] {
    return [...this.traces.values()].flat();
  }

  /** The slowest root span of this name seen so far (its trace is kept). */
  slowestRoot(name: string): { traceId: string; durationMs: number } | undefined {
    return this.slowest.get(name);
  }

  clear(): void {
    this.traces.clear();
    this.slowest.clear();
    this.pinned.clear();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** One span's share of a trace's critical path. */
export interface CriticalStep {
  readonly name: string;
  readonly kind: SpanRecord["kind"];
  /** The node the span ran on (`strata.node.id`), when it says. */
  readonly node: string | undefined;
  /** Time this span itself (not a child) was on the critical path. */
  readonly selfMs: number;
  readonly startMs: number;
  readonly durationMs: number;
  readonly error: boolean;
}

/**
 * The critical path of a trace: walking back from the root's end, the child that finished last
 * is what the parent waited for; its own critical path follows, then the parent's time before it.
 * Returns the spans on the path in start order, each with the time it alone accounts for.
 */
export function criticalPath(spans: readonly SpanRecord[], rootSpanId?: string): CriticalStep[] {
  if (spans.length === 0) return [];
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string, SpanRecord[]>();
  let root: SpanRecord | undefined = rootSpanId === undefined ? undefined : byId.get(rootSpanId);
  for (const span of spans) {
    const parent = span.parentSpanId;
    if (parent !== undefined && byId.has(parent)) {
      const list = children.get(parent);
      if (list === undefined) children.set(parent, [span]);
      else list.push(span);
    } else if (rootSpanId === undefined && (root === undefined || span.startMs < root.startMs)) {
      root = span;
    }
  }
  if (root === undefined) return [];
  const self = new Map<string, number>();
  const add = (span: SpanRecord, ms: number): void => {
    if (ms > 0) self.set(span.spanId, (self.get(span.spanId) ?? 0) + ms);
    else if (!self.has(span.spanId)) self.set(span.spanId, 0);
  };
  const walk = (span: SpanRecord, until: number, depth: number): void => {
    let cursor = Math.min(span.endMs, until);
    const kids = [...(children.get(span.spanId) ?? [])].sort((a, b) => b.endMs - a.endMs);
    for (const child of kids) {
      if (cursor <= span.startMs) break;
      // A child that started after this point (work handed off, such as an event's consumers)
      // is not what the parent waited for. One that ran past it (a server still working when
      // its caller gave up) counts up to the point the parent stopped waiting.
      if (child.startMs >= cursor || depth > 64) continue;
      const childEnd = Math.min(child.endMs, cursor);
      add(span, cursor - childEnd);
      walk(child, childEnd, depth + 1);
      cursor = Math.max(span.startMs, child.startMs);
    }
    add(span, cursor - span.startMs);
  };
  walk(root, root.endMs, 0);
  return [...self.entries()]
    .map(([spanId, selfMs]) => {
      const span = byId.get(spanId) as SpanRecord;
      const node = span.attributes["strata.node.id"];
      return {
        name: span.name,
        kind: span.kind,
        node: typeof node === "string" ? node : undefined,
        selfMs,
        startMs: span.startMs,
        durationMs: span.endMs - span.startMs,
        error: span.error,
      };
    })
    .sort((a, b) => a.startMs - b.startMs);
}

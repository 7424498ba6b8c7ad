import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context as otelContext,
  trace,
  type Attributes,
  type Context,
  type Counter,
  type Link,
  type ObservableGauge,
  type ObservableResult,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import type { TraceContext } from "../ports/transport.js";
import { meterOf, safely, startSpan, tracerOf, type TelemetryOptions } from "./telemetry.js";
import { contextFromTrace, parseTraceparent, traceFromContext } from "./trace-context.js";

/** Spans and metrics of the events block (messaging.* semantic conventions). */
export class EventsTelemetry {
  readonly tracer: Tracer;
  private readonly published: Counter;
  private readonly consumed: Counter;
  private readonly redeliveries: Counter;
  private readonly deadLettered: Counter;
  readonly lag: ObservableGauge;
  private readonly system: string;

  constructor(options: TelemetryOptions | undefined, system: string) {
    this.tracer = tracerOf(options);
    const meter = meterOf(options);
    this.system = system;
    this.published = meter.createCounter("strata.events.published", {
      description: "Events appended to a stream (directly or by the outbox relay)",
    });
    this.consumed = meter.createCounter("strata.events.consumed", {
      description: "Handler runs by outcome (ok, error, dead-lettered)",
    });
    this.redeliveries = meter.createCounter("strata.events.redeliveries", {
      description: "Deliveries after the first of the same event",
    });
    this.deadLettered = meter.createCounter("strata.events.dead_lettered", {
      description: "Events moved to the dead-letter stream",
    });
    this.lag = meter.createObservableGauge("strata.events.consumer.lag", {
      description: "Records of the stream the group has not processed yet",
    });
  }

  /**
   * Starts a producer span for an event and returns it with the trace context the event carries:
   * the given one's child, else the active span's child.
   */
  startProducer(
    operation: "publish" | "create",
    stream: string,
    type: string,
    given: TraceContext | undefined,
    links?: Link[],
  ): { span: Span; carried: TraceContext | undefined } {
    const parent =
      given === undefined ? otelContext.active() : contextFromTrace(given, otelContext.active());
    let span: Span;
    try {
      span = startSpan(
        this.tracer,
        `${operation} ${stream}`,
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            "messaging.system": this.system,
            "messaging.operation.type": operation === "publish" ? "send" : "create",
            "messaging.operation.name": operation,
            "messaging.destination.name": stream,
            "cloudevents.event_type": type,
          },
          ...(links === undefined ? {} : { links }),
        },
        parent,
      );
    } catch {
      return { span: trace.wrapSpanContext(INVALID_SPAN_CONTEXT), carried: given };
    }
    return { span, carried: traceFromContext(trace.setSpan(parent, span)) ?? given };
  }

  /** Ends a producer span; counts the event as published when `published`. */
  endProducer(span: Span, stream: string, error: unknown, published: boolean): void {
    safely(() => {
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      if (published && error === undefined) {
        this.published.add(1, { "messaging.destination.name": stream });
      }
    });
  }

  /** A relay's publish of an outbox event: its own trace, linked to where the event was created. */
  relayLinks(traceparent: string | undefined, tracestate: string | undefined): Link[] | undefined {
    if (traceparent === undefined) return undefined;
    const spanContext = parseTraceparent(traceparent, tracestate);
    return spanContext === undefined
      ? undefined
      : [{ context: spanContext, attributes: { "messaging.operation.type": "create" } }];
  }

  /**
   * Starts the span of one handler run. It is a child of the producer's span (so that an order's
   * trace runs on through its consumers) and also links to it, as the messaging conventions ask.
   */
  startConsumer(
    delivery: {
      readonly stream: string;
      readonly partition: number;
      readonly seq: number;
      readonly attempt: number;
      readonly group: string;
    },
    event: { readonly id: string; readonly type: string } & Partial<TraceContext>,
  ): { span: Span; context: Context } {
    const carried =
      event.traceparent === undefined
        ? undefined
        : {
            traceparent: event.traceparent,
            ...(event.tracestate === undefined ? {} : { tracestate: event.tracestate }),
          };
    const parent = contextFromTrace(carried, ROOT_CONTEXT);
    const producer = trace.getSpanContext(parent);
    const attributes: Attributes = {
      "messaging.system": this.system,
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.destination.name": delivery.stream,
      "messaging.destination.partition.id": String(delivery.partition),
      "messaging.consumer.group.name": delivery.group,
      "messaging.message.id": event.id,
      "cloudevents.event_type": event.type,
      "strata.event.seq": delivery.seq,
      "strata.attempt": delivery.attempt,
    };
    let span: Span;
    try {
      span = startSpan(
        this.tracer,
        `process ${delivery.stream}`,
        {
          kind: SpanKind.CONSUMER,
          attributes,
          ...(producer === undefined ? {} : { links: [{ context: producer }] }),
        },
        parent,
      );
    } catch {
      span = trace.wrapSpanContext(producer ?? INVALID_SPAN_CONTEXT);
    }
    safely(() => {
      if (delivery.attempt > 1) {
        this.redeliveries.add(1, {
          "messaging.consumer.group.name": delivery.group,
          "messaging.destination.name": delivery.stream,
        });
      }
    });
    return { span, context: trace.setSpan(parent, span) };
  }

  endConsumer(span: Span, group: string, stream: string, error: unknown): void {
    safely(() => {
      if (error !== undefined) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        if (error instanceof Error) span.recordException(error);
      }
      span.end();
      this.consumed.add(1, {
        "messaging.consumer.group.name": group,
        "messaging.destination.name": stream,
        outcome: error === undefined ? "ok" : "error",
      });
    });
  }

  /**
   * Reports a group's lag on the lag gauge. Reading it can be costly, so a collection reports the
   * last value read and starts a fresh read at most every `everyMs`. Returns the unregister call.
   */
  watchLag(
    group: string,
    stream: string,
    read: () => Promise<number>,
    now: () => number,
    everyMs = 10_000,
  ): () => void {
    const attributes = {
      "messaging.consumer.group.name": group,
      "messaging.destination.name": stream,
    };
    let value: number | undefined;
    let readAt = -Infinity;
    let reading = false;
    const callback = (result: ObservableResult): void => {
      if (value !== undefined) result.observe(value, attributes);
      if (reading || now() - readAt < everyMs) return;
      reading = true;
      read().then(
        (lag) => {
          value = lag;
          reading = false;
          readAt = now();
        },
        () => {
          reading = false;
          readAt = now();
        },
      );
    };
    this.lag.addCallback(callback);
    return () => this.lag.removeCallback(callback);
  }

  deadLetter(group: string, stream: string): void {
    safely(() => {
      const attributes = {
        "messaging.consumer.group.name": group,
        "messaging.destination.name": stream,
      };
      this.deadLettered.add(1, attributes);
      this.consumed.add(1, { ...attributes, outcome: "dead-lettered" });
    });
  }
}

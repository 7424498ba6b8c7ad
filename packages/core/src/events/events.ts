import type { StandardSchemaV1 } from "@standard-schema/spec";
import { StrataError, isStrataError } from "../errors/index.js";
import { systemClock, type Clock } from "../ports/clock.js";
import type { EventLog, LogRecord, StreamInfo } from "../ports/log.js";
import { silentLogger, type Logger } from "../ports/logger.js";
import type { TraceContext } from "../ports/transport.js";
import type { KvTxnCheck, KvTxnWrite, StrongKV } from "../ports/strong-kv.js";
import { hash32 } from "../runtime/hash-ring.js";
import { context as otelContext } from "@opentelemetry/api";
import { EventsTelemetry } from "../observability/events-telemetry.js";
import { safely, type TelemetryOptions } from "../observability/telemetry.js";
import { acquireLock } from "../state/lock.js";
import type { ServiceContract } from "../service/define-service.js";
import { validate } from "../service/schema.js";
import {
  Consumer,
  consumerKeys,
  pause,
  runtimeUnavailable,
  type Backoff,
  type DeliveryInfo,
  type StartFrom,
} from "./consumer.js";
import { decodeEvent, encodeEvent, type CloudEvent } from "./envelope.js";

/** The event names a contract declares. */
export type EventName<C extends ServiceContract> = keyof C["events"] & string;
/** What a publisher passes for an event. */
export type EventInput<
  C extends ServiceContract,
  E extends EventName<C>,
> = C["events"][E] extends StandardSchemaV1 ? StandardSchemaV1.InferInput<C["events"][E]> : never;
/** What a handler receives for an event (after its schema parsed it). */
export type EventOutput<
  C extends ServiceContract,
  E extends EventName<C>,
> = C["events"][E] extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<C["events"][E]> : never;

/** An event as a handler sees it. */
export interface ReceivedEvent<T> extends CloudEvent<T> {
  readonly stream: string;
  readonly partition: number;
  readonly seq: number;
}

/** What a handler may do besides reading its event. */
export interface EventContext extends DeliveryInfo {
  /** The event's id: pass it as the idempotency key of calls the handler makes. */
  readonly idempotencyKey: string;
  /**
   * Commits `writes` to the subscription's store together with this event's de-duplication
   * marker, in one transaction: the effect happens exactly once however often the event is
   * delivered. A redelivered event whose marker exists is acknowledged without running again.
   * Needs a store with transactions (embedded, PostgreSQL).
   */
  transaction(txn: {
    readonly checks?: readonly KvTxnCheck[];
    readonly writes: readonly KvTxnWrite[];
  }): Promise<number>;
}

/** A handler of one event type. */
export type EventHandler<T> = (event: ReceivedEvent<T>, ctx: EventContext) => Promise<void> | void;

/** Handlers by event name: only the events named are consumed. */
export type EventHandlers<C extends ServiceContract> = {
  readonly [E in EventName<C>]?: EventHandler<EventOutput<C, E>>;
};

/** How a subscription consumes. */
export interface SubscribeOptions<C extends ServiceContract> {
  /**
   * Competing consumers: members of a group share the partitions (each event is handled by one
   * member; one member at a time consumes a partition, so order per key holds). 1-48 of
   * a-z 0-9 - _.
   */
  readonly group?: string;
  /** Every subscriber gets every event (positions kept in memory); exclusive with `group`. */
  readonly broadcast?: boolean;
  readonly on: EventHandlers<C>;
  /** Where a group with no stored position starts; default "earliest" (broadcast: "latest"). */
  readonly from?: StartFrom;
  /** Events being handled or waiting at once, across partitions (backpressure); default 64. */
  readonly maxInFlight?: number;
  /** Deliveries before an event goes to the dead-letter stream; default 5. */
  readonly maxAttempts?: number;
  readonly backoff?: Backoff;
  /** A handler running longer fails with DEADLINE_EXCEEDED (and is retried); default 30 000. */
  readonly handlerTimeoutMs?: number;
  /**
   * Skip events whose id this group already handled (a marker per event, kept for
   * `idempotencyWindowMs`). Markers are written after the handler succeeds; for effects that
   * must happen exactly once even across a crash between the two, use `ctx.transaction`.
   */
  readonly idempotent?: boolean;
}

/** A running subscription. */
export interface Subscription extends AsyncDisposable {
  readonly group: string;
  /** Partitions this member consumes now. */
  owned(): number[];
  /** Stops consuming: handlers are aborted, finished work is committed, partitions released. */
  close(): Promise<void>;
}

/** An acknowledged publish. */
export interface Published {
  readonly id: string;
  readonly stream: string;
  readonly partition: number;
  readonly seq: number;
  /** The id had been published already: the log kept the first copy. */
  readonly duplicate: boolean;
}

/** Options of a publish. */
export interface PublishOptions {
  /** The partition key: events with the same key are delivered in the order published. */
  readonly key: string;
  /** Unique id; default a random one. Re-publishing an id is answered as a duplicate. */
  readonly id?: string;
  readonly trace?: TraceContext;
  readonly signal?: AbortSignal;
}

/** An event waiting in the dead-letter stream, with why it is there. */
export interface DeadLetter {
  readonly seq: number;
  readonly reason: string;
  readonly attempts: number;
  readonly group: string;
  /** Where it came from. */
  readonly origin: { readonly stream: string; readonly seq: number; readonly id: string };
  readonly key: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
}

/** An event to publish with a state change (see {@link Events.transaction}). */
export interface OutboxEvent {
  readonly contract: ServiceContract;
  readonly event: string;
  readonly data: unknown;
  readonly key: string;
  readonly id?: string;
  readonly trace?: TraceContext;
}

/** How the events block is set up. */
export interface EventsOptions {
  readonly log: EventLog;
  /**
   * Where consumer groups keep positions, partition ownership and de-duplication markers, and
   * where the outbox lives. Usually the node's StrongKV.
   */
  readonly kv: StrongKV;
  /** The CloudEvents `source` of events published here, e.g. `strata://node-1`. */
  readonly source: string;
  /** Partitions of the streams created here; default 8. */
  readonly partitions?: number;
  /** Streams hold money or orders: created `critical` (fsync before acknowledging). */
  readonly critical?: boolean;
  /** Stream replicas (NATS); default the adapter's. */
  readonly replicas?: number;
  /** Ownership lease of a group member (ms); default 10 000. */
  readonly leaseMs?: number;
  /** How often groups rebalance (ms); default 1 000. */
  readonly rebalanceMs?: number;
  /** How often positions are committed (ms); default 100. */
  readonly commitMs?: number;
  /** How long de-duplication markers are kept (ms); default 24 h. */
  readonly idempotencyWindowMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Where spans and metrics go; default the global OpenTelemetry providers. */
  readonly telemetry?: TelemetryOptions;
}

/** The events building block. */
export interface Events extends AsyncDisposable {
  /** Creates the streams (events and dead letters) of a contract's events; idempotent. */
  declare(contract: ServiceContract): Promise<void>;
  /** Validates and publishes one event; resolves once the log acknowledged it. */
  publish<C extends ServiceContract, E extends EventName<C>>(
    contract: C,
    event: E,
    data: EventInput<C, E>,
    options: PublishOptions,
  ): Promise<Published>;
  /** Consumes a contract's events. */
  subscribe<C extends ServiceContract>(
    contract: C,
    options: SubscribeOptions<C>,
  ): Promise<Subscription>;
  /**
   * Commits a state change and the events it causes together (transactional outbox): the
   * writes and an outbox record per event go in one transaction; the relay then publishes the
   * events (with their ids, so a re-publish after a crash is a duplicate) and removes them.
   */
  transaction(txn: {
    readonly checks?: readonly KvTxnCheck[];
    readonly writes: readonly KvTxnWrite[];
    readonly events: readonly OutboxEvent[];
  }): Promise<{ revision: number; ids: string[] }>;
  /**
   * Runs the outbox relay on this node until disposed (one relay at a time across nodes holds
   * its lock; others wait to take over).
   */
  startRelay(): Promise<void>;
  /** Publishes every event waiting in the outbox now; resolves with how many it published. */
  flushOutbox(): Promise<number>;
  /** Events a contract's consumers gave up on. */
  deadLetters(
    contract: ServiceContract,
    options?: { readonly fromSeq?: number; readonly limit?: number },
  ): Promise<DeadLetter[]>;
  /**
   * How far a group is behind the head of a contract's stream: records stored after the
   * group's committed position, summed over partitions (0 when caught up).
   */
  lag(contract: ServiceContract, group: string): Promise<number>;
  /** Moves a (stopped) group's positions to `from`, for replay. */
  resetGroup(contract: ServiceContract, group: string, from: StartFrom): Promise<void>;
  /** The stream a contract's events go to. */
  streamOf(contract: ServiceContract): string;
  readonly log: EventLog;
  readonly kv: StrongKV;
  readonly clock: Clock;
  close(): Promise<void>;
}

const GROUP = /^[a-z0-9][a-z0-9_-]{0,47}$/;
const enc = new TextEncoder();
const dec = new TextDecoder();
const OUTBOX = "events/outbox/";
const seenKey = (group: string, id: string): string =>
  `events/seen/${group}/${Buffer.from(id).toString("base64url")}`;

/** The partition of a key in a stream of `partitions`. */
export function partitionOf(key: string, partitions: number): number {
  return hash32(key) % partitions;
}

function randomId(clock: Clock): string {
  let id = "";
  for (let i = 0; i < 4; i++) {
    id += Math.floor(clock.random() * 0x1_0000_0000)
      .toString(16)
      .padStart(8, "0");
  }
  return id;
}

/**
 * Creates the events block: typed events on a durable log, consumer groups with per-key order,
 * dead letters, exactly-once effects and a transactional outbox.
 *
 * @example
 * const events = createEvents({ log, kv, source: `strata://${node.id}` });
 * await events.declare(orders);
 * await events.publish(orders, "placed", { orderId, items }, { key: orderId });
 * await events.subscribe(orders, { group: "inventory", on: { placed: async (e) => reserve(e.data) } });
 */
export function createEvents(options: EventsOptions): Events {
  const { log, kv } = options;
  const clock = options.clock ?? systemClock();
  const logger = options.logger ?? silentLogger;
  const partitions = options.partitions ?? 8;
  const windowMs = options.idempotencyWindowMs ?? 24 * 60 * 60 * 1_000;
  const declared = new Map<string, Promise<StreamInfo>>();
  const subscriptions = new Set<Subscription>();
  const controller = new AbortController();
  let relay: Promise<void> | undefined;
  const telemetry = new EventsTelemetry(options.telemetry, log.name);

  const streamOf = (contract: ServiceContract): string => {
    const name = `ev-${contract.name}`;
    if (name.length > 60) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `service name ${contract.name} is too long for an event stream (at most 57 characters)`,
      );
    }
    return name;
  };
  const deadLetterStreamOf = (contract: ServiceContract): string => `${streamOf(contract)}-dlq`;

  const declare = (contract: ServiceContract): Promise<StreamInfo> => {
    const stream = streamOf(contract);
    let pending = declared.get(stream);
    if (pending === undefined) {
      const spec = {
        partitions,
        critical: options.critical ?? false,
        ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
      };
      pending = log
        .ensureStream({ name: deadLetterStreamOf(contract), ...spec })
        .then(() => log.ensureStream({ name: stream, ...spec }));
      declared.set(stream, pending);
      pending.catch(() => declared.delete(stream));
    }
    return pending;
  };

  const buildEvent = async (
    contract: ServiceContract,
    event: string,
    data: unknown,
    publish: { key: string; id?: string | undefined; trace?: TraceContext | undefined },
  ): Promise<{
    info: StreamInfo;
    id: string;
    headers: Record<string, string>;
    payload: Uint8Array;
  }> => {
    const schema = (contract.events as Record<string, StandardSchemaV1 | undefined>)[event];
    if (schema === undefined) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `service ${contract.name} declares no event ${JSON.stringify(event)}`,
      );
    }
    if (typeof publish.key !== "string" || publish.key.length === 0) {
      throw new StrataError("INVALID_ARGUMENT", "an event needs a non-empty partition key");
    }
    const parsed = await validate(schema, data, `event ${contract.name}.${event}`);
    const info = await declare(contract);
    const id = publish.id ?? randomId(clock);
    const cloudEvent: CloudEvent = {
      specversion: "1.0",
      id,
      source: options.source,
      type: `${contract.name}.${event}`,
      subject: publish.key,
      time: new Date(clock.now()).toISOString(),
      datacontenttype: "application/json",
      data: parsed,
      ...(publish.trace === undefined ? {} : publish.trace),
    };
    return { info, id, ...encodeEvent(cloudEvent) };
  };

  const publish = async (
    contract: ServiceContract,
    event: string,
    data: unknown,
    publishOptions: PublishOptions,
  ): Promise<Published> => {
    const stream = `ev-${contract.name}`;
    const { span, carried } = telemetry.startProducer(
      "publish",
      stream,
      `${contract.name}.${event}`,
      publishOptions.trace,
    );
    let failure: unknown;
    try {
      const built = await buildEvent(contract, event, data, {
        key: publishOptions.key,
        id: publishOptions.id,
        trace: carried,
      });
      const partition = partitionOf(publishOptions.key, built.info.partitions);
      safely(() => {
        span.setAttribute("messaging.message.id", built.id);
        span.setAttribute("messaging.destination.partition.id", String(partition));
      });
      const result = await log.append(
        built.info.name,
        {
          partition,
          id: built.id,
          key: publishOptions.key,
          headers: built.headers,
          payload: built.payload,
        },
        publishOptions.signal === undefined ? {} : { signal: publishOptions.signal },
      );
      return { id: built.id, stream: built.info.name, partition, ...result };
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      telemetry.endProducer(span, stream, failure, true);
    }
  };

  const resolveLatest = async (from: StartFrom, stream: string): Promise<StartFrom> =>
    from === "latest" ? { seq: (await log.streamInfo(stream)).lastSeq + 1 } : from;

  const requireTransactions = (what: string): void => {
    if (!kv.capabilities.transactions) {
      throw new StrataError(
        "UNIMPLEMENTED",
        `${what} needs a store with transactions (embedded or PostgreSQL); ${kv.name} has none`,
      );
    }
  };

  const subscribe = async <C extends ServiceContract>(
    contract: C,
    sub: SubscribeOptions<C>,
  ): Promise<Subscription> => {
    if (sub.broadcast === true && sub.group !== undefined) {
      throw new StrataError("INVALID_ARGUMENT", "a subscription is either a group or broadcast");
    }
    if (sub.broadcast !== true && (typeof sub.group !== "string" || !GROUP.test(sub.group))) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `group must match ${GROUP.source} (or pass broadcast: true)`,
      );
    }
    const events = contract.events as Record<string, StandardSchemaV1 | undefined>;
    const handlers = new Map<
      string,
      { schema: StandardSchemaV1; handler: EventHandler<unknown> }
    >();
    for (const [name, handler] of Object.entries(sub.on) as [string, unknown][]) {
      const schema = events[name];
      if (schema === undefined || typeof handler !== "function") {
        throw new StrataError(
          "INVALID_ARGUMENT",
          `service ${contract.name} declares no event ${JSON.stringify(name)}`,
        );
      }
      handlers.set(`${contract.name}.${name}`, {
        schema,
        handler: handler as EventHandler<unknown>,
      });
    }
    if (handlers.size === 0) throw new StrataError("INVALID_ARGUMENT", "no handlers given");
    const positive = (value: number | undefined, fallback: number, what: string): number => {
      const v = value ?? fallback;
      if (!Number.isSafeInteger(v) || v < 1) {
        throw new StrataError("INVALID_ARGUMENT", `${what} must be a positive integer`);
      }
      return v;
    };
    const maxInFlight = positive(sub.maxInFlight, 64, "maxInFlight");
    const maxAttempts = positive(sub.maxAttempts, 5, "maxAttempts");
    const handlerTimeoutMs = positive(sub.handlerTimeoutMs, 30_000, "handlerTimeoutMs");
    const broadcast = sub.broadcast === true;
    const group = broadcast ? `broadcast-${randomId(clock).slice(0, 12)}` : (sub.group as string);
    const info = await declare(contract);
    const idempotent = sub.idempotent === true && !broadcast;

    const consumer = new Consumer({
      log,
      kv: broadcast ? undefined : kv,
      stream: info.name,
      deadLetterStream: deadLetterStreamOf(contract),
      group,
      types: new Set(handlers.keys()),
      // "latest" means the head when subscribe is called, not when a partition's worker starts.
      from: await resolveLatest(sub.from ?? (broadcast ? "latest" : "earliest"), info.name),
      maxInFlight,
      maxAttempts,
      backoff: {
        initialMs: sub.backoff?.initialMs ?? 100,
        maxMs: sub.backoff?.maxMs ?? 10_000,
      },
      handlerTimeoutMs,
      leaseMs: options.leaseMs ?? 10_000,
      rebalanceMs: options.rebalanceMs ?? 1_000,
      commitMs: options.commitMs ?? 100,
      clock,
      logger: logger.child({ group, stream: info.name }),
      memberId: randomId(clock).slice(0, 16),
      onDeadLetter: () => telemetry.deadLetter(group, info.name),
      handle: async (event, delivery) => {
        const { span, context } = telemetry.startConsumer(delivery, event);
        let failure: unknown;
        try {
          await otelContext.with(context, () => handleEvent(event, delivery));
        } catch (error) {
          failure = error;
          throw error;
        } finally {
          telemetry.endConsumer(span, group, info.name, failure);
        }
      },
    });
    async function handleEvent(event: CloudEvent, delivery: DeliveryInfo): Promise<void> {
      const entry = handlers.get(event.type) as {
        schema: StandardSchemaV1;
        handler: EventHandler<unknown>;
      };
      const marker = seenKey(group, event.id);
      if (idempotent) {
        const seen = await kv.get(marker).catch((error: unknown) => {
          throw runtimeUnavailable(error, `event ${event.id}: reading its idempotency marker`);
        });
        if (seen !== undefined) return;
      }
      // An event whose data no longer matches the schema cannot succeed by retrying.
      const data = await validate(entry.schema, event.data, `event ${event.type}`);
      let duplicate = false;
      const ctx: EventContext = {
        ...delivery,
        idempotencyKey: event.id,
        transaction: async (txn) => {
          requireTransactions("ctx.transaction");
          try {
            return await kv.transaction({
              checks: [...(txn.checks ?? []), { key: marker, revision: 0 }],
              writes: [
                ...txn.writes,
                {
                  type: "put",
                  key: marker,
                  value: enc.encode(JSON.stringify({ at: clock.now() })),
                },
              ],
            });
          } catch (error) {
            if (
              isStrataError(error, "FAILED_PRECONDITION") &&
              (error.details as { key?: unknown }).key === marker
            ) {
              duplicate = true;
              throw new StrataError("ALREADY_EXISTS", `event ${event.id} was already applied`);
            }
            throw error;
          }
        },
      };
      try {
        await entry.handler(
          {
            ...event,
            data,
            stream: delivery.stream,
            partition: delivery.partition,
            seq: delivery.seq,
          },
          ctx,
        );
      } catch (error) {
        if (duplicate) return;
        throw error;
      }
      if (idempotent) {
        await kv
          .create(marker, enc.encode(JSON.stringify({ at: clock.now() })))
          .catch((error: unknown) => {
            if (!isStrataError(error, "ALREADY_EXISTS")) {
              throw runtimeUnavailable(error, `event ${event.id}: writing its idempotency marker`);
            }
          });
      }
    }
    await consumer.start();
    let closed: Promise<void> | undefined;
    const unwatchLag = broadcast
      ? undefined
      : telemetry.watchLag(
          group,
          info.name,
          () => lag(contract, group),
          () => clock.monotonic(),
        );
    const subscription: Subscription = {
      group,
      owned: () => consumer.owned(),
      close: () => {
        unwatchLag?.();
        closed ??= consumer.stop().finally(() => subscriptions.delete(subscription));
        return closed;
      },
      [Symbol.asyncDispose]: () => subscription.close(),
    };
    subscriptions.add(subscription);
    if (idempotent) void pruneMarkers(group);
    return subscription;
  };

  /** Removes de-duplication markers older than the window, now and then. */
  const pruneMarkers = async (group: string): Promise<void> => {
    const prefix = `events/seen/${group}/`;
    const signal = controller.signal;
    while (!signal.aborted) {
      try {
        const cutoff = clock.now() - windowMs;
        let after: string | undefined;
        do {
          const page = await kv.list(prefix, after === undefined ? {} : { after });
          for (const entry of page.entries) {
            const { at } = JSON.parse(dec.decode(entry.value)) as { at: number };
            if (at < cutoff) await kv.delete(entry.key, { expectedRevision: entry.revision });
          }
          after = page.next;
        } while (after !== undefined && !signal.aborted);
      } catch (error) {
        if (!signal.aborted) logger.warn({ err: error, group }, "could not prune markers");
      }
      await pause(clock, Math.max(1_000, windowMs / 4), signal);
    }
  };

  const transaction: Events["transaction"] = async (txn) => {
    requireTransactions("the outbox");
    const writes: KvTxnWrite[] = [...txn.writes];
    const ids: string[] = [];
    for (const [i, e] of txn.events.entries()) {
      // The event's creation is a span of the transaction's trace; the relay's publish links to it.
      const { span, carried } = telemetry.startProducer(
        "create",
        `ev-${e.contract.name}`,
        `${e.contract.name}.${e.event}`,
        e.trace,
      );
      telemetry.endProducer(span, `ev-${e.contract.name}`, undefined, false);
      const built = await buildEvent(e.contract, e.event, e.data, { ...e, trace: carried });
      ids.push(built.id);
      const record = {
        stream: built.info.name,
        partition: partitionOf(e.key, built.info.partitions),
        id: built.id,
        key: e.key,
        headers: built.headers,
        payload: Buffer.from(built.payload).toString("base64"),
      };
      // Keys sort in commit order: the relay publishes in the order the changes were made.
      const order = `${clock.now().toString(16).padStart(12, "0")}-${randomId(clock).slice(0, 8)}-${String(i).padStart(4, "0")}`;
      writes.push({
        type: "put",
        key: `${OUTBOX}${order}`,
        value: enc.encode(JSON.stringify(record)),
      });
    }
    const revision = await kv.transaction({ checks: txn.checks ?? [], writes });
    return { revision, ids };
  };

  /** Publishes what the outbox holds, oldest first; an entry is removed only once acknowledged. */
  const flushOutbox = async (): Promise<number> => {
    let published = 0;
    for (;;) {
      const page = await kv.list(OUTBOX, { limit: 256 });
      if (page.entries.length === 0) return published;
      for (const entry of page.entries) {
        let record: {
          stream: string;
          partition: number;
          id: string;
          key: string;
          headers: Record<string, string>;
          payload: string;
        };
        try {
          record = JSON.parse(dec.decode(entry.value)) as typeof record;
        } catch {
          logger.error({ key: entry.key }, "unreadable outbox entry removed");
          await kv.delete(entry.key, { expectedRevision: entry.revision });
          continue;
        }
        const { span } = telemetry.startProducer(
          "publish",
          record.stream,
          record.headers["ce-type"] ?? "",
          undefined,
          telemetry.relayLinks(record.headers.traceparent, record.headers.tracestate),
        );
        let failure: unknown;
        try {
          await log.append(record.stream, {
            partition: record.partition,
            id: record.id,
            key: record.key,
            headers: record.headers,
            payload: Buffer.from(record.payload, "base64"),
          });
        } catch (error) {
          failure = error;
          throw error;
        } finally {
          telemetry.endProducer(span, record.stream, failure, true);
        }
        // Another relay (the one holding the lock, while this is a manual flush) may have
        // published and removed it first: the append above was then a duplicate.
        await kv.delete(entry.key, { expectedRevision: entry.revision }).catch((error: unknown) => {
          if (!isStrataError(error, "FAILED_PRECONDITION")) throw error;
        });
        published++;
      }
    }
  };

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a refusal rejects
  const startRelay = async (): Promise<void> => {
    requireTransactions("the outbox");
    if (relay !== undefined) return;
    const signal = controller.signal;
    relay = (async () => {
      while (!signal.aborted) {
        let lock;
        try {
          lock = await acquireLock(kv, "events/outbox-relay", {
            ttlMs: options.leaseMs ?? 10_000,
            waitMs: 2 ** 31 - 1,
            signal,
            clock,
          });
        } catch (error) {
          if (signal.aborted) return;
          logger.warn({ err: error }, "outbox relay could not take its lock");
          continue;
        }
        try {
          const watch = new AbortController();
          const stop = (): void => watch.abort();
          signal.addEventListener("abort", stop, { once: true });
          lock.signal.addEventListener("abort", stop, { once: true });
          // A listener added to a signal that has already aborted never runs: the relay may win
          // the lock just as the events close (the holder released it on its way out).
          if (signal.aborted || lock.signal.aborted) stop();
          let wake: (() => void) | undefined;
          const watching = (async () => {
            try {
              for await (const change of kv.watch(OUTBOX, { signal: watch.signal })) {
                if (change.type === "put") wake?.();
              }
            } catch (error) {
              if (!watch.signal.aborted) logger.warn({ err: error }, "outbox watch ended");
            }
          })();
          while (!watch.signal.aborted) {
            try {
              await flushOutbox();
            } catch (error) {
              logger.warn({ err: error }, "outbox relay failed to publish; retrying");
            }
            // Wait for a new outbox entry, a second, or the stop; the abort listener is removed
            // after every wait (added each time, they piled up for as long as the relay ran).
            await new Promise<void>((resolve) => {
              const done = (): void => {
                timer.clear();
                watch.signal.removeEventListener("abort", done);
                resolve();
              };
              const timer = clock.setTimer(done, 1_000);
              wake = done;
              watch.signal.addEventListener("abort", done, { once: true });
            });
            wake = undefined;
          }
          await watching;
        } finally {
          await lock.release().catch(() => undefined);
        }
      }
    })();
  };

  const deadLetters: Events["deadLetters"] = async (contract, query = {}) => {
    const stream = deadLetterStreamOf(contract);
    await declare(contract);
    const records = await log.read(stream, {
      ...(query.fromSeq === undefined ? {} : { fromSeq: query.fromSeq }),
      limit: query.limit ?? 256,
    });
    return records.map((r: LogRecord) => ({
      seq: r.seq,
      reason: r.headers["strata-dlq-reason"] ?? "",
      attempts: Number(r.headers["strata-dlq-attempts"] ?? 0),
      group: r.headers["strata-dlq-group"] ?? "",
      origin: {
        stream: r.headers["strata-dlq-stream"] ?? "",
        seq: Number(r.headers["strata-dlq-seq"] ?? 0),
        id: r.headers["strata-dlq-id"] ?? "",
      },
      key: r.key,
      headers: r.headers,
      payload: r.payload,
    }));
  };

  const positionOf = async (
    group: string,
    stream: string,
    partition: number,
  ): Promise<number | undefined> => {
    const entry = await kv.get(consumerKeys.cursor(group, stream, partition));
    if (entry === undefined) return undefined;
    return (JSON.parse(dec.decode(entry.value)) as { next: number }).next;
  };

  const lag: Events["lag"] = async (contract, group) => {
    const info = await declare(contract).then(() => log.streamInfo(streamOf(contract)));
    let behind = 0;
    for (let p = 0; p < info.partitions; p++) {
      let from = Math.max((await positionOf(group, info.name, p)) ?? 1, info.firstSeq);
      while (from <= info.lastSeq) {
        const page = await log.read(info.name, { partition: p, fromSeq: from, limit: 10_000 });
        behind += page.length;
        const last = page.at(-1);
        if (last === undefined || page.length < 10_000) break;
        from = last.seq + 1;
      }
    }
    return behind;
  };

  const resetGroup: Events["resetGroup"] = async (contract, group, from) => {
    const info = await declare(contract).then(() => log.streamInfo(streamOf(contract)));
    const next =
      from === "earliest"
        ? info.firstSeq
        : from === "latest"
          ? info.lastSeq + 1
          : "seq" in from
            ? from.seq
            : await log.seqAtTime(info.name, from.time);
    for (let p = 0; p < info.partitions; p++) {
      await kv.put(consumerKeys.cursor(group, info.name, p), enc.encode(JSON.stringify({ next })));
    }
  };

  const close = async (): Promise<void> => {
    controller.abort();
    await Promise.all([...subscriptions].map((s) => s.close()));
    await relay;
  };

  return {
    declare: async (contract) => {
      await declare(contract);
    },
    publish,
    subscribe,
    transaction,
    startRelay,
    flushOutbox,
    deadLetters,
    lag,
    resetGroup,
    streamOf,
    log,
    kv,
    clock,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Decodes a dead letter's original event (it may be the malformed record that put it there). */
export function decodeDeadLetter(letter: DeadLetter): CloudEvent {
  return decodeEvent({
    stream: letter.origin.stream,
    partition: 0,
    seq: letter.origin.seq,
    id: letter.origin.id,
    key: letter.key,
    time: 0,
    headers: letter.headers,
    payload: letter.payload,
  });
}

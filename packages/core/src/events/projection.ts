import { StrataError, isStrataError } from "../errors/index.js";
import type { KvTxnCheck, KvTxnWrite, StrongKV } from "../ports/strong-kv.js";
import type { ServiceContract } from "../service/define-service.js";
import { checkKey } from "../state/keys.js";
import { consumerKeys, type StartFrom } from "./consumer.js";
import type {
  EventHandler,
  EventName,
  EventOutput,
  Events,
  ReceivedEvent,
  Subscription,
} from "./events.js";

/** The read model as a projection handler sees it: reads, and writes committed with the event. */
export interface ModelWriter {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): void;
  delete(key: string): void;
}

/** A projection's handlers by event name. */
export type ProjectionHandlers<C extends ServiceContract> = {
  readonly [E in EventName<C>]?: (
    event: ReceivedEvent<EventOutput<C, E>>,
    model: ModelWriter,
  ) => Promise<void> | void;
};

/** A declared read model fed by a contract's events. */
export interface ProjectionSpec<C extends ServiceContract> {
  /** 1-40 of a-z 0-9 - _. */
  readonly name: string;
  readonly contract: C;
  readonly on: ProjectionHandlers<C>;
  /** Where a new projection starts; default "earliest" (the whole history). */
  readonly from?: StartFrom;
  readonly maxInFlight?: number;
}

/** A running projection. */
export interface Projection extends AsyncDisposable {
  readonly name: string;
  get<T>(key: string): Promise<T | undefined>;
  /** Every row, in key order. */
  list<T>(): Promise<{ key: string; value: T }[]>;
  /** Events stored after the projection's committed position (0: caught up). */
  lag(): Promise<number>;
  /** Resolves once the lag is 0; DEADLINE_EXCEEDED after `timeoutMs` (default 30 000). */
  caughtUp(options?: { readonly timeoutMs?: number }): Promise<void>;
  /** Throws the read model away and builds it again from the start of the stream. */
  rebuild(): Promise<void>;
  close(): Promise<void>;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const enc = new TextEncoder();
const dec = new TextDecoder();
const MAX_CONFLICTS = 50;

class ModelTransaction implements ModelWriter {
  readonly checks = new Map<string, number>();
  readonly writes = new Map<string, KvTxnWrite>();
  private readonly kv: StrongKV;
  private readonly prefix: string;
  constructor(kv: StrongKV, prefix: string) {
    this.kv = kv;
    this.prefix = prefix;
  }
  private keyOf(key: string): string {
    return checkKey(`${this.prefix}${key}`);
  }
  async get<T>(key: string): Promise<T | undefined> {
    const full = this.keyOf(key);
    const written = this.writes.get(full);
    if (written !== undefined) {
      return written.type === "put" ? (JSON.parse(dec.decode(written.value)) as T) : undefined;
    }
    const entry = await this.kv.get(full);
    if (!this.checks.has(full)) this.checks.set(full, entry?.revision ?? 0);
    return entry === undefined ? undefined : (JSON.parse(dec.decode(entry.value)) as T);
  }
  put(key: string, value: unknown): void {
    const full = this.keyOf(key);
    this.writes.set(full, { type: "put", key: full, value: enc.encode(JSON.stringify(value)) });
  }
  delete(key: string): void {
    const full = this.keyOf(key);
    this.writes.set(full, { type: "delete", key: full });
  }
}

async function deletePrefix(kv: StrongKV, prefix: string): Promise<void> {
  for (;;) {
    const page = await kv.list(prefix, { limit: 1_000 });
    if (page.entries.length === 0) return;
    for (const entry of page.entries) await kv.delete(entry.key);
  }
}

/**
 * Runs a CQRS projection: a read model in the events block's store, fed by a contract's
 * events. Each event's changes to the model commit in one transaction with the event's
 * de-duplication marker, so redelivery never applies an event twice; reads of the model made
 * by a handler are checked at commit, and a handler that raced another is run again.
 *
 * @example
 * const sales = await startProjection(events, {
 *   name: "sales-by-product", contract: orders,
 *   on: { placed: async (e, model) => { for (const i of e.data.items) model.put(i.sku, ((await model.get<number>(i.sku)) ?? 0) + i.qty); } },
 * });
 */
export async function startProjection<C extends ServiceContract>(
  events: Events,
  spec: ProjectionSpec<C>,
): Promise<Projection> {
  if (typeof spec.name !== "string" || !NAME.test(spec.name)) {
    throw new StrataError("INVALID_ARGUMENT", `projection name must match ${NAME.source}`);
  }
  const { kv } = events;
  if (!kv.capabilities.transactions) {
    throw new StrataError(
      "UNIMPLEMENTED",
      `projections need a store with transactions (embedded or PostgreSQL); ${kv.name} has none`,
    );
  }
  const group = `proj-${spec.name}`;
  const prefix = `proj/${spec.name}/`;
  const handlers: Record<string, EventHandler<unknown>> = {};
  for (const [name, apply] of Object.entries(spec.on) as [
    string,
    (event: ReceivedEvent<unknown>, model: ModelWriter) => Promise<void> | void,
  ][]) {
    handlers[name] = async (event, ctx) => {
      for (let conflict = 0; ; conflict++) {
        const model = new ModelTransaction(kv, prefix);
        await apply(event, model);
        const checks: KvTxnCheck[] = [...model.checks].map(([key, revision]) => ({
          key,
          revision,
        }));
        try {
          await ctx.transaction({ checks, writes: [...model.writes.values()] });
          return;
        } catch (error) {
          // A row read by this handler changed under it: run it again on the new value.
          if (!isStrataError(error, "FAILED_PRECONDITION") || conflict >= MAX_CONFLICTS) {
            throw error;
          }
        }
      }
    };
  }
  const subscribe = (): Promise<Subscription> =>
    events.subscribe(spec.contract, {
      group,
      on: handlers as never,
      from: spec.from ?? "earliest",
      ...(spec.maxInFlight === undefined ? {} : { maxInFlight: spec.maxInFlight }),
    });
  let subscription = await subscribe();

  const lag = (): Promise<number> => events.lag(spec.contract, group);
  const projection: Projection = {
    name: spec.name,
    async get<T>(key: string) {
      const entry = await kv.get(checkKey(`${prefix}${key}`));
      return entry === undefined ? undefined : (JSON.parse(dec.decode(entry.value)) as T);
    },
    async list<T>() {
      const rows: { key: string; value: T }[] = [];
      let after: string | undefined;
      do {
        const page = await kv.list(prefix, after === undefined ? {} : { after });
        for (const entry of page.entries) {
          rows.push({
            key: entry.key.slice(prefix.length),
            value: JSON.parse(dec.decode(entry.value)) as T,
          });
        }
        after = page.next;
      } while (after !== undefined);
      return rows;
    },
    lag,
    async caughtUp(options = {}) {
      const timeoutMs = options.timeoutMs ?? 30_000;
      const started = performance.now();
      for (;;) {
        if ((await lag()) === 0) return;
        if (performance.now() - started > timeoutMs) {
          throw new StrataError(
            "DEADLINE_EXCEEDED",
            `projection ${spec.name} did not catch up in ${timeoutMs} ms`,
          );
        }
        await new Promise<void>((resolve) => events.clock.setTimer(resolve, 20));
      }
    },
    async rebuild() {
      await subscription.close();
      await deletePrefix(kv, prefix);
      await deletePrefix(kv, consumerKeys.cursorPrefix(group));
      await deletePrefix(kv, `events/seen/${group}/`);
      subscription = await subscribe();
    },
    close: () => subscription.close(),
    [Symbol.asyncDispose]: () => subscription.close(),
  };
  return projection;
}

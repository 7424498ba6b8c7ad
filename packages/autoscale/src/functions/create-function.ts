import {
  StrataError,
  checkBlobPrefix,
  silentLogger,
  systemClock,
  type BlobChange,
  type BlobStore,
  type Clock,
  type EventHandlers,
  type EventName,
  type EventOutput,
  type Events,
  type Logger,
  type ReceivedEvent,
  type ServiceContract,
  type StartFrom,
  type StrongKV,
  type Subscription,
} from "@strata/core";
import { BlobTrigger, blobTriggerKeys, type BlobDeadLetter } from "./blob-trigger.js";
import {
  InstancePool,
  type FunctionContext,
  type FunctionStats,
  type RetryBackoff,
} from "./pool.js";

/** What every function takes, whatever triggers it. */
export interface FunctionOptions<I, In> {
  /** 1-48 of a-z 0-9 - _, starting with a letter or digit; names its stored state and its logs. */
  readonly name: string;
  /** Runs one input on a warm instance. A throw is a failure: retried, then dead-lettered. */
  readonly handler: (input: In, ctx: FunctionContext<I>) => Promise<void> | void;
  /**
   * Makes an instance: the expensive part of a cold start (loading templates, opening
   * connections, warming caches). Failures are retried with `initBackoff` and counted.
   */
  readonly init?: () => Promise<I> | I;
  /** Releases an instance when it is retired (idle, or at stop). */
  readonly dispose?: (instance: I) => Promise<void> | void;
  /** Instances kept warm however idle; default 0 (scale to zero). */
  readonly minInstances?: number;
  /** Most instances at once; default 10. */
  readonly maxInstances?: number;
  /** Inputs one instance runs at once; default 1. */
  readonly perInstanceConcurrency?: number;
  /**
   * Inputs (waiting or running) per instance above which another instance starts; default
   * `perInstanceConcurrency` (start one more as soon as every slot is taken and work waits).
   */
  readonly targetBacklogPerInstance?: number;
  /** An instance idle this long (ms) is retired, down to the floor; default 60 000. */
  readonly idleMs?: number;
  /**
   * Instances wanted warm at `now` (ms since the epoch, the clock's wall time) ahead of load:
   * the pool keeps at least this many (capped at `maxInstances`) and does not retire them when
   * idle. Called every `evaluateEveryMs`; a throw or a bad number counts as 0. A forecast drives
   * it, e.g. the autoscale predictive policy's decision for the coming minutes.
   */
  readonly prewarm?: (now: number) => number;
  /** How often the pool re-reads `prewarm` and retires idle instances (ms); default 1 000. */
  readonly evaluateEveryMs?: number;
  /** Retry schedule of a failing `init`; default 100 ms doubling to 10 s. */
  readonly initBackoff?: RetryBackoff;
  /** How long `stop()` waits for started work to finish (ms); default 30 000. */
  readonly drainTimeoutMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A function triggered by one event type of a contract, consumed by a consumer group. */
export interface EventFunctionOptions<
  C extends ServiceContract,
  E extends EventName<C>,
  I,
> extends FunctionOptions<I, ReceivedEvent<EventOutput<C, E>>> {
  readonly events: Events;
  readonly contract: C;
  /** The event name, as the contract declares it. */
  readonly type: E;
  /** The consumer group (members share partitions); default the function's name. */
  readonly group?: string;
  /** Where a group with no stored position starts; default "earliest". */
  readonly from?: StartFrom;
  /** Deliveries before an event is dead-lettered; default 5 (the events block's default). */
  readonly maxAttempts?: number;
  readonly backoff?: RetryBackoff;
  /**
   * Time for one delivery, including waiting for a cold start (ms); default 30 000. A delivery
   * past it is aborted and retried.
   */
  readonly handlerTimeoutMs?: number;
  /** Skip events this group already handled (see `SubscribeOptions.idempotent`). */
  readonly idempotent?: boolean;
  /**
   * Events delivered to the pool at once; default max(64, 2 × maxInstances ×
   * perInstanceConcurrency), so the backlog the pool scales on is visible to it.
   */
  readonly maxInFlight?: number;
}

/** A function triggered by changes to objects under a prefix of a blob store. */
export interface BlobFunctionOptions<I> extends FunctionOptions<I, BlobChange> {
  readonly blob: BlobStore;
  /** Keys starting with this (may be ""); checked like any blob prefix. */
  readonly prefix: string;
  /** Keeps the position (and dead letters, and a lock so one runner follows at a time). */
  readonly kv: StrongKV;
  /** Which changes run the function; default ["put"]. */
  readonly changes?: readonly BlobChange["type"][];
  /** Where a function with no stored position starts; default "earliest" (every change kept). */
  readonly from?: "earliest" | "latest";
  /** Runs before a change is dead-lettered; default 5. */
  readonly maxAttempts?: number;
  readonly backoff?: RetryBackoff;
  /** Changes handed to the pool at once; default max(64, 2 × maxInstances × perInstanceConcurrency). */
  readonly maxInFlight?: number;
  /** Lease of the runner's lock (ms); default 10 000. */
  readonly lockTtlMs?: number;
}

/** A running function. */
export interface StrataFunction extends AsyncDisposable {
  readonly name: string;
  /** Instances, cold starts, backlog and outcomes so far. */
  stats(): FunctionStats;
  /**
   * Blob functions: the changes given up on, oldest first. Event functions: use
   * `events.deadLetters(contract)`, where they go like any consumer group's.
   */
  deadLetters(): Promise<BlobDeadLetter[]>;
  /**
   * Stops: work already started or waiting finishes (up to `drainTimeoutMs`), inputs arriving
   * meanwhile are left for redelivery, the trigger stops, and instances are disposed.
   */
  stop(): Promise<void>;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;
const dec = new TextDecoder();

function invalid(name: string, message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `function ${name}: ${message}`);
}

function integer(
  name: string,
  what: string,
  value: number | undefined,
  fallback: number,
  min: number,
): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw invalid(name, `${what} must be an integer >= ${min} (got ${String(value)})`);
  }
  return v;
}

function backoffOf(
  name: string,
  what: string,
  backoff: RetryBackoff | undefined,
): Required<RetryBackoff> {
  const initialMs = integer(name, `${what}.initialMs`, backoff?.initialMs, 100, 1);
  const maxMs = integer(name, `${what}.maxMs`, backoff?.maxMs, 10_000, 1);
  if (maxMs < initialMs) throw invalid(name, `${what}.maxMs must be >= ${what}.initialMs`);
  return { initialMs, maxMs };
}

type AnyOptions = FunctionOptions<unknown, unknown> &
  Partial<EventFunctionOptions<ServiceContract, string, unknown>> &
  Partial<BlobFunctionOptions<unknown>>;

/**
 * Creates a function: a handler run by a pool of instances that grows with the backlog, shrinks
 * to zero when idle, can be pre-warmed ahead of predicted load, and measures its cold starts.
 * Triggered by an event type of a contract (a consumer group, with its retries and dead letters)
 * or by changes to objects under a blob-store prefix (a durable, resumable watch).
 *
 * "Zero" means no instances: the trigger itself (a consumer, a watch) keeps listening, cheaply,
 * and the first input after a quiet period pays the cold start (`init`).
 *
 * @example
 * const render = await createFunction({
 *   name: "render-invoices",
 *   blob, prefix: "orders/", kv,
 *   init: async () => ({ template: await loadTemplates() }),
 *   handler: async (change, { instance }) => renderInvoice(instance.template, change.key),
 *   maxInstances: 8, idleMs: 30_000,
 *   prewarm: (now) => forecastInstances(now + 60_000),
 * });
 * render.stats(); // { instances, coldStarts: { p50Ms, p99Ms }, warmHitRatio, backlog, ... }
 */
export async function createFunction<
  C extends ServiceContract,
  E extends EventName<C>,
  I = undefined,
>(options: EventFunctionOptions<C, E, I>): Promise<StrataFunction>;
export async function createFunction<I = undefined>(
  options: BlobFunctionOptions<I>,
): Promise<StrataFunction>;
export async function createFunction(input: object): Promise<StrataFunction> {
  if (typeof input !== "object" || input === null) {
    throw new StrataError("INVALID_ARGUMENT", "createFunction needs an options object");
  }
  const options = input as AnyOptions;
  const name = options.name;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `function name must be 1-48 of a-z 0-9 - _ starting with a letter or digit (got ${JSON.stringify(name)})`,
    );
  }
  const isEvent = options.events !== undefined;
  const isBlob = options.blob !== undefined;
  if (isEvent === isBlob) {
    throw invalid(
      name,
      isEvent
        ? "give one trigger: { events, contract, type } or { blob, prefix, kv }, not both"
        : "needs a trigger: { events, contract, type } or { blob, prefix, kv }",
    );
  }
  if (typeof options.handler !== "function") throw invalid(name, "handler must be a function");
  if (options.init !== undefined && typeof options.init !== "function") {
    throw invalid(name, "init must be a function");
  }
  if (options.dispose !== undefined && typeof options.dispose !== "function") {
    throw invalid(name, "dispose must be a function");
  }
  if (options.prewarm !== undefined && typeof options.prewarm !== "function") {
    throw invalid(name, "prewarm must be a function (now) => instances wanted");
  }
  const minInstances = integer(name, "minInstances", options.minInstances, 0, 0);
  const maxInstances = integer(name, "maxInstances", options.maxInstances, 10, 1);
  if (minInstances > maxInstances) {
    throw invalid(name, `minInstances (${minInstances}) exceeds maxInstances (${maxInstances})`);
  }
  const perInstanceConcurrency = integer(
    name,
    "perInstanceConcurrency",
    options.perInstanceConcurrency,
    1,
    1,
  );
  const targetBacklogPerInstance = integer(
    name,
    "targetBacklogPerInstance",
    options.targetBacklogPerInstance,
    perInstanceConcurrency,
    1,
  );
  const idleMs = integer(name, "idleMs", options.idleMs, 60_000, 0);
  const evaluateEveryMs = integer(name, "evaluateEveryMs", options.evaluateEveryMs, 1_000, 1);
  const drainTimeoutMs = integer(name, "drainTimeoutMs", options.drainTimeoutMs, 30_000, 0);
  const maxInFlight = integer(
    name,
    "maxInFlight",
    options.maxInFlight,
    Math.max(64, 2 * maxInstances * perInstanceConcurrency),
    1,
  );
  const maxAttempts = integer(name, "maxAttempts", options.maxAttempts, 5, 1);
  const backoff = backoffOf(name, "backoff", options.backoff);
  const initBackoff = backoffOf(name, "initBackoff", options.initBackoff);
  const clock = options.clock ?? systemClock();
  const logger = (options.logger ?? silentLogger).child({ function: name });
  const init = options.init ?? (() => undefined);

  const pool = new InstancePool<unknown, unknown>({
    name,
    clock,
    logger,
    init,
    dispose: options.dispose,
    handler: options.handler,
    minInstances,
    maxInstances,
    perInstanceConcurrency,
    targetBacklogPerInstance,
    idleMs,
    evaluateEveryMs,
    prewarm: options.prewarm,
    initBackoff,
  });

  let stopTrigger: () => Promise<void>;
  let deadLetters: () => Promise<BlobDeadLetter[]>;
  if (isEvent) {
    const { events, contract, type } = options;
    if (contract === undefined || typeof contract !== "object" || contract === null) {
      throw invalid(name, "an event trigger needs the contract that declares the event");
    }
    if (typeof type !== "string" || !Object.hasOwn(contract.events, type)) {
      throw invalid(
        name,
        `service ${contract.name} declares no event ${JSON.stringify(type)} (declared: ${Object.keys(contract.events).join(", ") || "none"})`,
      );
    }
    const handlerTimeoutMs = integer(name, "handlerTimeoutMs", options.handlerTimeoutMs, 30_000, 1);
    const on = {
      [type]: (
        event: ReceivedEvent<unknown>,
        ctx: { signal: AbortSignal; attempt: number; idempotencyKey: string },
      ) =>
        pool.submit(event, {
          signal: ctx.signal,
          attempt: ctx.attempt,
          idempotencyKey: ctx.idempotencyKey,
        }),
    } as EventHandlers<ServiceContract>;
    pool.start();
    let subscription: Subscription;
    try {
      subscription = await (events as Events).subscribe(contract, {
        group: options.group ?? name,
        on,
        maxInFlight,
        maxAttempts,
        backoff,
        handlerTimeoutMs,
        ...(options.from === undefined ? {} : { from: options.from }),
        ...(options.idempotent === undefined ? {} : { idempotent: options.idempotent }),
      });
    } catch (error) {
      await pool.close();
      throw error;
    }
    stopTrigger = () => subscription.close();
    deadLetters = () =>
      Promise.reject(
        new StrataError(
          "FAILED_PRECONDITION",
          `function ${name} is event-triggered: read events.deadLetters(contract) instead`,
        ),
      );
  } else {
    const { blob, kv } = options;
    if (kv === undefined || typeof kv !== "object" || kv === null) {
      throw invalid(name, "a blob trigger needs a kv (a StrongKV) to keep its position in");
    }
    let prefix: string;
    try {
      prefix = checkBlobPrefix(options.prefix);
    } catch (error) {
      throw invalid(name, (error as Error).message);
    }
    const changes = new Set<BlobChange["type"]>(options.changes ?? ["put"]);
    if (changes.size === 0 || [...changes].some((c) => c !== "put" && c !== "delete")) {
      throw invalid(name, 'changes must list "put" and/or "delete"');
    }
    if (options.from !== undefined && options.from !== "earliest" && options.from !== "latest") {
      throw invalid(name, 'from must be "earliest" or "latest"');
    }
    const trigger = new BlobTrigger({
      name,
      blob: blob as BlobStore,
      prefix,
      kv,
      changes,
      from: options.from ?? "earliest",
      maxAttempts,
      backoff,
      maxInFlight,
      lockTtlMs: integer(name, "lockTtlMs", options.lockTtlMs, 10_000, 50),
      clock,
      logger,
      submit: (change, delivery) => pool.submit(change, delivery),
      onDeadLetter: () => pool.deadLettered(),
      onFatal: (error) => pool.fail(error),
    });
    pool.start();
    trigger.start();
    stopTrigger = () => trigger.stop();
    deadLetters = async () => {
      const letters: BlobDeadLetter[] = [];
      let after: string | undefined;
      do {
        const page = await kv.list(
          blobTriggerKeys.deadLetters(name),
          after === undefined ? {} : { after },
        );
        for (const entry of page.entries) {
          letters.push(JSON.parse(dec.decode(entry.value)) as BlobDeadLetter);
        }
        after = page.next;
      } while (after !== undefined);
      return letters;
    };
  }

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await pool.drain(drainTimeoutMs);
      await stopTrigger();
      await pool.close();
    })();
    return stopped;
  };
  return {
    name,
    stats: () => pool.stats(),
    deadLetters: () => deadLetters(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

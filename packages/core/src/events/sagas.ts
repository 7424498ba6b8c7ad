import type { StandardSchemaV1 } from "@standard-schema/spec";
import { setMaxListeners } from "node:events";
import { StrataError, isStrataError, toStrataError } from "../errors/index.js";
import { systemClock, type Clock } from "../ports/clock.js";
import { silentLogger, type Logger } from "../ports/logger.js";
import type { StrongKV } from "../ports/strong-kv.js";
import { validate } from "../service/schema.js";
import { acquireLock, type Lock } from "../state/lock.js";
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  context as otelContext,
  trace,
  type Context,
  type Span,
} from "@opentelemetry/api";
import { safely, startSpan, tracerOf, type TelemetryOptions } from "../observability/telemetry.js";
import { contextFromTrace, traceFromContext } from "../observability/trace-context.js";

/** What a step's code is told. */
export interface StepContext {
  readonly sagaId: string;
  /** `<saga>/<id>/<step>`: the same on every attempt and after a takeover. Pass it on. */
  readonly idempotencyKey: string;
  /** 1, 2, … within this owner's run of the step. */
  readonly attempt: number;
  /** Aborts on the step's timeout, or when this runner loses the saga or is disposed. */
  readonly signal: AbortSignal;
}

/** One step: what it does and how it is undone. */
export interface StepOptions<T> {
  readonly run: (step: StepContext) => Promise<T>;
  /**
   * Undoes the step. Runs for a step that finished and for one that may have taken effect (it
   * started and its outcome is unknown), so it must tolerate having nothing to undo.
   */
  readonly compensate?: (result: T | undefined, step: StepContext) => Promise<void>;
  /** Per attempt (ms); default 30 000. */
  readonly timeoutMs?: number;
  /** Attempts after a retryable failure; default 3 (4 attempts in all). */
  readonly retries?: number;
}

/** What a saga's code sees. */
export interface SagaContext {
  readonly id: string;
  /**
   * Runs a step once: on replay after a takeover a finished step returns its recorded result
   * (results must be JSON values) without running again.
   */
  step<T>(name: string, options: StepOptions<T>): Promise<T>;
}

/** A saga as declared. */
export interface SagaDefinition<I extends StandardSchemaV1 = StandardSchemaV1, O = unknown> {
  /** 1-48 of a-z 0-9 -. */
  readonly name: string;
  readonly input: I;
  /** The whole saga (ms); past it, steps stop and what was done is compensated. Default 60 000. */
  readonly timeoutMs?: number;
  run(ctx: SagaContext, input: StandardSchemaV1.InferOutput<I>): Promise<O>;
}

/** How a saga ended. */
export type SagaOutcome<O> =
  | { readonly status: "completed"; readonly output: O }
  /** A step failed (or the saga timed out) and every step that ran was undone. */
  | { readonly status: "compensated"; readonly error: SagaError }
  /** A compensation failed after its retries: an operator must look. Never silent. */
  | { readonly status: "failed"; readonly error: SagaError };

export interface SagaError {
  readonly code: string;
  readonly message: string;
}

type StepStatus = "started" | "done" | "failed" | "compensated";

/** The persisted journal of one instance (JSON in the store). */
export interface SagaJournal {
  readonly v: 1;
  status: "running" | "compensating" | "completed" | "compensated" | "failed";
  readonly input: unknown;
  readonly startedAt: number;
  /** Wall-clock time (ms) past which the saga compensates. */
  readonly deadline: number;
  steps: Array<{ name: string; status: StepStatus; result?: unknown; error?: SagaError }>;
  output?: unknown;
  error?: SagaError;
  /** Who ran it last. */
  owner: string;
  /** W3C traceparent of where the saga was started: a runner that resumes it joins that trace. */
  readonly traceparent?: string;
}

/** A started saga instance. */
export interface SagaHandle<O> {
  readonly id: string;
  /** Resolves when the saga ends, whichever runner finishes it. */
  result(): Promise<SagaOutcome<O>>;
}

/** How a runner is set up. */
export interface SagaRunnerOptions {
  readonly kv: StrongKV;
  /** This runner's name in journals and locks; default a random id. */
  readonly owner?: string;
  /** A runner that stops heartbeating loses its sagas after this (ms); default 5 000. */
  readonly leaseMs?: number;
  /** How often abandoned sagas are looked for (ms); default 1 000. */
  readonly scanIntervalMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Where saga and step spans go; default the global OpenTelemetry tracer provider. */
  readonly telemetry?: TelemetryOptions;
  /**
   * How long (ms) a failing compensation is retried, with backoff capped at 2 s, before the saga
   * is marked failed for an operator; default 300 000. A compensation must undo what was done,
   * so it outlasts the outages a step's own retries give up on.
   */
  readonly compensationRetryMs?: number;
}

/** Runs sagas and resumes the ones whose runner died. */
export interface SagaRunner extends AsyncDisposable {
  /** Declares a saga this runner can run; it also resumes abandoned instances of it. */
  register(definition: SagaDefinition<StandardSchemaV1, unknown>): void;
  /** Starts an instance; the same id twice is the same instance (the input of the first wins). */
  start<I extends StandardSchemaV1, O>(
    definition: SagaDefinition<I, O>,
    input: StandardSchemaV1.InferInput<I>,
    options?: { readonly id?: string },
  ): Promise<SagaHandle<O>>;
  /** The persisted journal, for tools. */
  get(definition: SagaDefinition, id: string): Promise<SagaJournal | undefined>;
  close(): Promise<void>;
}

const NAME = /^[a-z][a-z0-9-]{0,47}$/;
const ID = /^[A-Za-z0-9_=-]{1,128}$/;
const enc = new TextEncoder();
const dec = new TextDecoder();
const TERMINAL = new Set(["completed", "compensated", "failed"]);

/** Declares a saga. */
export function defineSaga<I extends StandardSchemaV1, O>(
  definition: SagaDefinition<I, O>,
): SagaDefinition<I, O> {
  if (!NAME.test(definition.name)) {
    throw new StrataError("INVALID_ARGUMENT", `saga name must match ${NAME.source}`);
  }
  return definition;
}

/** The runner lost its claim on an instance: stop, whoever holds it now carries on. */
class Fenced extends Error {}

/** A step or the saga failed for good: compensate. */
class SagaFailed extends Error {
  readonly error: SagaError;
  constructor(error: SagaError) {
    super(error.message);
    this.error = error;
  }
}

const keyOf = (name: string, id: string): string => `sagas/${name}/${id}`;
const errorOf = (error: unknown): SagaError => {
  const e = toStrataError(error, "saga step");
  const message = error instanceof Error && error.message !== "" ? error.message : e.message;
  return { code: e.code, message };
};

/**
 * Creates a saga runner on a StrongKV. Every journal write is a compare-and-set on the revision
 * this runner last wrote, and an instance is driven only while its lock is held: a runner
 * paused past its lease can neither overwrite its successor's journal nor keep running steps.
 *
 * @example
 * const sagas = createSagaRunner({ kv, owner: node.id });
 * sagas.register(checkout);
 * const outcome = await (await sagas.start(checkout, { orderId: "o-1" }, { id: "o-1" })).result();
 */
export function createSagaRunner(options: SagaRunnerOptions): SagaRunner {
  const { kv } = options;
  const clock = options.clock ?? systemClock();
  const compensationRetryMs = options.compensationRetryMs ?? 300_000;
  if (!(Number.isFinite(compensationRetryMs) && compensationRetryMs >= 0))
    throw new StrataError("INVALID_ARGUMENT", "compensationRetryMs must be a number >= 0");
  const logger = options.logger ?? silentLogger;
  const owner =
    options.owner ?? `runner-${Math.floor(clock.random() * 0x1_0000_0000).toString(16)}`;
  const leaseMs = options.leaseMs ?? 5_000;
  const scanIntervalMs = options.scanIntervalMs ?? 1_000;
  const tracer = tracerOf(options.telemetry);
  const definitions = new Map<string, SagaDefinition>();
  const driving = new Map<string, Promise<SagaOutcome<unknown> | undefined>>();
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  let scanning: Promise<void> | undefined;
  // Sagas in progress keep the process alive, as a server's socket would.
  let keepAlive: ReturnType<typeof setInterval> | undefined;

  const wait = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = clock.setTimer(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        timer.clear();
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });

  /** Drives one instance while holding its lock; undefined when another runner has it. */
  const drive = async (
    definition: SagaDefinition,
    id: string,
  ): Promise<SagaOutcome<unknown> | undefined> => {
    const key = keyOf(definition.name, id);
    let lock: Lock;
    try {
      lock = await acquireLock(kv, `saga/${definition.name}/${id}`, {
        ttlMs: leaseMs,
        owner,
        clock,
      });
    } catch (error) {
      if (isStrataError(error, "ABORTED")) return undefined; // its runner is alive
      throw error;
    }
    const lost = AbortSignal.any([lock.signal, controller.signal]);
    setMaxListeners(0, lost);
    let sagaSpan: Span | undefined;
    let sagaContext: Context = ROOT_CONTEXT;
    try {
      const entry = await kv.get(key);
      if (entry === undefined) throw new StrataError("NOT_FOUND", `no saga ${key}`);
      let revision = entry.revision;
      const journal = JSON.parse(dec.decode(entry.value)) as SagaJournal;
      const persist = async (): Promise<void> => {
        if (lost.aborted) throw new Fenced("lost the saga's lock");
        journal.owner = owner;
        try {
          revision = await kv.compareAndSet(key, enc.encode(JSON.stringify(journal)), revision);
        } catch (error) {
          if (isStrataError(error, "FAILED_PRECONDITION")) throw new Fenced("journal moved");
          throw error;
        }
      };
      if (TERMINAL.has(journal.status)) return outcomeOf(journal);
      // The saga is a span of the trace it was started in, whichever runner drives it.
      safely(() => {
        const parent =
          journal.traceparent === undefined
            ? otelContext.active()
            : contextFromTrace({ traceparent: journal.traceparent }, ROOT_CONTEXT);
        sagaSpan = startSpan(
          tracer,
          `saga ${definition.name}`,
          {
            attributes: {
              "strata.saga.name": definition.name,
              "strata.saga.id": id,
              "strata.saga.owner": owner,
              "strata.saga.resumed": journal.steps.length > 0 || journal.owner !== owner,
            },
          },
          parent,
        );
        sagaContext = trace.setSpan(parent, sagaSpan);
      });

      /** Runs `fn` with retries and a per-attempt timeout, inside the saga's deadline. */
      const attempt = async <T>(
        name: string,
        fn: (step: StepContext) => Promise<T>,
        retries: number,
        timeoutMs: number,
        respectDeadline: boolean,
        giveUpAt = Number.POSITIVE_INFINITY,
      ): Promise<T> => {
        for (let n = 1; ; n++) {
          const left = journal.deadline - clock.now();
          if (respectDeadline && left <= 0) {
            throw new SagaFailed({ code: "DEADLINE_EXCEEDED", message: "the saga timed out" });
          }
          const timeout = new AbortController();
          const timer = clock.setTimer(
            () =>
              timeout.abort(
                new StrataError("DEADLINE_EXCEEDED", `step ${name} took over ${timeoutMs} ms`),
              ),
            respectDeadline ? Math.min(timeoutMs, left) : timeoutMs,
          );
          const signal = AbortSignal.any([timeout.signal, lost]);
          let stepSpan: Span | undefined;
          let stepContext = sagaContext;
          safely(() => {
            stepSpan = startSpan(
              tracer,
              `step ${name}`,
              { attributes: { "strata.saga.step": name, "strata.attempt": n } },
              sagaContext,
            );
            stepContext = trace.setSpan(sagaContext, stepSpan);
          });
          let failed = false;
          try {
            return await Promise.race([
              otelContext.with(stepContext, () =>
                fn({
                  sagaId: id,
                  idempotencyKey: `${definition.name}/${id}/${name}`,
                  attempt: n,
                  signal,
                }),
              ),
              new Promise<never>((_, reject) =>
                signal.addEventListener("abort", () => reject(signal.reason as Error), {
                  once: true,
                }),
              ),
            ]);
          } catch (error) {
            failed = true;
            if (lost.aborted) throw new Fenced("lost the saga's lock");
            const e = toStrataError(error, "saga step");
            if (!e.retryable && e.code !== "DEADLINE_EXCEEDED" && e.code !== "INTERNAL") {
              throw new SagaFailed(errorOf(error));
            }
            if (n > retries || clock.now() >= giveUpAt) throw new SagaFailed(errorOf(error));
            await wait(Math.min(2_000, 50 * 2 ** (n - 1)), lost);
          } finally {
            timer.clear();
            endSpan(stepSpan, failed);
          }
        }
      };

      const compensations = new Map<string, StepOptions<unknown>>();
      if (journal.status === "running") {
        let cursor = 0;
        const ctx: SagaContext = {
          id,
          step: async <T>(name: string, step: StepOptions<T>): Promise<T> => {
            compensations.set(name, step as StepOptions<unknown>);
            const recorded = journal.steps[cursor];
            if (recorded !== undefined && recorded.name !== name) {
              throw new StrataError(
                "FAILED_PRECONDITION",
                `non-deterministic saga ${definition.name}: step ${cursor} is ${name} now, ${recorded.name} in the journal`,
              );
            }
            cursor++;
            if (recorded?.status === "done") return recorded.result as T;
            const record = recorded ?? { name, status: "started" as StepStatus };
            if (recorded === undefined) {
              journal.steps.push(record);
              await persist();
            }
            try {
              const result = await attempt(
                name,
                step.run,
                step.retries ?? 3,
                step.timeoutMs ?? 30_000,
                true,
              );
              record.status = "done";
              record.result = result === undefined ? null : result;
              await persist();
              return result;
            } catch (error) {
              if (error instanceof SagaFailed) {
                record.status = "failed";
                record.error = error.error;
                await persist();
              }
              throw error;
            }
          },
        };
        try {
          const input = await validate(definition.input, journal.input, `saga ${definition.name}`);
          const output = await definition.run(ctx, input);
          journal.status = "completed";
          journal.output = output === undefined ? null : output;
          await persist();
          return outcomeOf(journal);
        } catch (error) {
          if (error instanceof Fenced || lost.aborted) return undefined;
          journal.status = "compensating";
          journal.error = error instanceof SagaFailed ? error.error : errorOf(error);
          await persist();
        }
      }
      // Compensating: the steps' undo code comes from replaying the saga's code without running
      // anything, so a runner that took over mid-compensation knows it too.
      if (compensations.size < journal.steps.length) {
        const collect: SagaContext = {
          id,
          step: <T>(name: string, step: StepOptions<T>): Promise<T> => {
            compensations.set(name, step as StepOptions<unknown>);
            const recorded = journal.steps.find((s) => s.name === name);
            if (recorded?.status === "done") return Promise.resolve(recorded.result as T);
            return Promise.reject(new SagaFailed({ code: "ABORTED", message: "replay ends here" }));
          },
        };
        const input = await validate(definition.input, journal.input, `saga ${definition.name}`);
        await definition.run(collect, input).catch(() => undefined);
      }
      const compensateUntil = clock.now() + compensationRetryMs;
      for (const record of [...journal.steps].reverse()) {
        if (record.status === "compensated") continue;
        const undo = compensations.get(record.name)?.compensate;
        if (undo !== undefined) {
          try {
            await attempt(
              `${record.name}/compensate`,
              (step) => undo(record.result, step),
              Number.POSITIVE_INFINITY,
              30_000,
              false,
              compensateUntil,
            );
          } catch (error) {
            if (error instanceof Fenced || lost.aborted) return undefined;
            journal.status = "failed";
            journal.error = {
              code: "INTERNAL",
              message: `compensation of ${record.name} failed: ${error instanceof SagaFailed ? error.error.message : String(error)}`,
            };
            await persist();
            logger.error({ saga: definition.name, id, step: record.name }, journal.error.message);
            return outcomeOf(journal);
          }
        }
        record.status = "compensated";
        await persist();
      }
      journal.status = "compensated";
      await persist();
      return outcomeOf(journal);
    } catch (error) {
      if (error instanceof Fenced || lost.aborted) return undefined;
      throw error;
    } finally {
      endSpan(sagaSpan, false);
      await lock.release().catch(() => undefined);
    }
  };

  const driveOnce = (definition: SagaDefinition, id: string): Promise<unknown> => {
    const key = keyOf(definition.name, id);
    let running = driving.get(key);
    if (running === undefined) {
      running = drive(definition, id).finally(() => driving.delete(key));
      running.catch((error: unknown) =>
        logger.error({ err: error, saga: definition.name, id }, "saga runner failed"),
      );
      driving.set(key, running);
    }
    return running;
  };

  const scan = async (): Promise<void> => {
    const signal = controller.signal;
    while (!signal.aborted) {
      for (const definition of definitions.values()) {
        try {
          let after: string | undefined;
          do {
            const page = await kv.list(
              `sagas/${definition.name}/`,
              after === undefined ? {} : { after },
            );
            for (const entry of page.entries) {
              const journal = JSON.parse(dec.decode(entry.value)) as SagaJournal;
              if (TERMINAL.has(journal.status)) continue;
              void driveOnce(definition, entry.key.slice(`sagas/${definition.name}/`.length));
            }
            after = page.next;
          } while (after !== undefined && !signal.aborted);
        } catch (error) {
          if (!signal.aborted) logger.warn({ err: error }, "saga scan failed");
        }
      }
      await wait(scanIntervalMs, signal);
    }
  };

  const get = async (definition: SagaDefinition, id: string): Promise<SagaJournal | undefined> => {
    const entry = await kv.get(keyOf(definition.name, id));
    return entry === undefined ? undefined : (JSON.parse(dec.decode(entry.value)) as SagaJournal);
  };

  return {
    register(definition) {
      if (definitions.get(definition.name) === definition) return;
      if (definitions.has(definition.name)) {
        throw new StrataError("ALREADY_EXISTS", `saga ${definition.name} is registered already`);
      }
      definitions.set(definition.name, definition);
      keepAlive ??= setInterval(() => undefined, 2 ** 31 - 1);
      scanning ??= scan();
    },
    async start(definition, input, startOptions = {}) {
      if (definitions.get(definition.name) !== definition) {
        throw new StrataError("FAILED_PRECONDITION", `saga ${definition.name} is not registered`);
      }
      const id =
        startOptions.id ??
        `${clock.now().toString(36)}-${Math.floor(clock.random() * 0x1_0000_0000).toString(36)}`;
      if (!ID.test(id))
        throw new StrataError("INVALID_ARGUMENT", `saga id must match ${ID.source}`);
      const parsed = await validate(definition.input, input, `saga ${definition.name}`);
      const now = clock.now();
      const journal: SagaJournal = {
        v: 1,
        status: "running",
        input: parsed,
        startedAt: now,
        deadline: now + (definition.timeoutMs ?? 60_000),
        steps: [],
        owner,
        ...traceparentOf(otelContext.active()),
      };
      try {
        await kv.create(keyOf(definition.name, id), enc.encode(JSON.stringify(journal)));
      } catch (error) {
        if (!isStrataError(error, "ALREADY_EXISTS")) throw error;
      }
      void driveOnce(definition, id);
      const handle: SagaHandle<never> = {
        id,
        result: async () => {
          for (;;) {
            const local = driving.get(keyOf(definition.name, id));
            const outcome = local === undefined ? undefined : await local;
            if (outcome !== undefined) return outcome as SagaOutcome<never>;
            const journal = await get(definition, id);
            if (journal !== undefined && TERMINAL.has(journal.status)) {
              return outcomeOf(journal) as SagaOutcome<never>;
            }
            if (controller.signal.aborted) {
              throw new StrataError("CANCELLED", "the saga runner was closed");
            }
            await wait(Math.max(20, scanIntervalMs / 4), controller.signal);
          }
        },
      };
      return handle;
    },
    get,
    async close() {
      controller.abort();
      clearInterval(keepAlive);
      await scanning;
      await Promise.allSettled([...driving.values()]);
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

function traceparentOf(ctx: Context): { traceparent?: string } {
  const carried = traceFromContext(ctx);
  return carried === undefined ? {} : { traceparent: carried.traceparent };
}

function endSpan(span: Span | undefined, failed: boolean): void {
  if (span === undefined) return;
  safely(() => {
    if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
}

function outcomeOf(journal: SagaJournal): SagaOutcome<unknown> {
  if (journal.status === "completed") return { status: "completed", output: journal.output };
  const error = journal.error ?? { code: "UNKNOWN", message: "no error recorded" };
  return journal.status === "failed"
    ? { status: "failed", error }
    : { status: "compensated", error };
}

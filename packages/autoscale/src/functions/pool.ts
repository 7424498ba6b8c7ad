import { StrataError, toStrataError, type Clock, type Logger, type Timer } from "@strata/core";

/** What a handler is given besides its input. */
export interface FunctionContext<I> {
  /** The warm instance running this invocation (what `init` made). */
  readonly instance: I;
  /** Aborts when the invocation is given up (trigger stopping, handler timeout). */
  readonly signal: AbortSignal;
  /** 1 on the first delivery, then 2, 3, … on redeliveries after failures. */
  readonly attempt: number;
  /** Stable across redeliveries of the same input: pass it on to make effects idempotent. */
  readonly idempotencyKey: string;
  /** The input waited for an instance to start (no instance was warm when it arrived). */
  readonly coldStart: boolean;
}

/** How a trigger hands one input to the pool. */
export interface Delivery {
  readonly signal: AbortSignal;
  readonly attempt: number;
  readonly idempotencyKey: string;
}

/** A retry schedule: exponential from `initialMs` up to `maxMs`, with jitter. */
export interface RetryBackoff {
  readonly initialMs?: number;
  readonly maxMs?: number;
}

/** Latency percentiles over the most recent samples (ms; 0 when there are none). */
export interface LatencyStats {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Where a function is in its life. */
export type FunctionState =
  | { readonly type: "running" }
  /** Finishing what it started; new inputs wait and are redelivered after the stop. */
  | { readonly type: "draining" }
  | { readonly type: "stopped" }
  /** The trigger cannot go on (e.g. its resume point was dropped from the journal). */
  | { readonly type: "failed"; readonly error: StrataError };

/** A function's pool, as counted since it was created. */
export interface FunctionStats {
  readonly name: string;
  readonly state: FunctionState;
  /** Warm instances now. */
  readonly instances: number;
  /** Instances whose `init` is running (or being retried) now. */
  readonly starting: number;
  /** Instances that finished `init` and became warm. */
  readonly started: number;
  /** Instances retired (idle, or at stop). */
  readonly retired: number;
  /** `init` calls that failed (each is retried with backoff). */
  readonly initFailures: number;
  /** How long `init` took, for instances that started. */
  readonly init: LatencyStats;
  /**
   * Inputs that arrived with no warm instance, and how long each waited for its handler to
   * start (arrival to handler start: the cold start as the input experienced it).
   */
  readonly coldStarts: LatencyStats;
  /** Inputs that arrived while an instance was warm. */
  readonly warmHits: number;
  /** warmHits / (warmHits + cold starts); 1 before any input. */
  readonly warmHitRatio: number;
  /** Inputs waiting for an instance now. */
  readonly backlog: number;
  /** Handlers running now. */
  readonly running: number;
  /** Handler runs that succeeded. */
  readonly processed: number;
  /** Handler runs that failed (each failure is retried by the trigger's policy). */
  readonly failed: number;
  /** Inputs given up on after the last attempt (dead-lettered). */
  readonly deadLettered: number;
}

/** How a pool runs. */
export interface PoolConfig<I, In> {
  readonly name: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly init: () => Promise<I> | I;
  readonly dispose: ((instance: I) => Promise<void> | void) | undefined;
  readonly handler: (input: In, ctx: FunctionContext<I>) => Promise<void> | void;
  readonly minInstances: number;
  readonly maxInstances: number;
  readonly perInstanceConcurrency: number;
  readonly targetBacklogPerInstance: number;
  readonly idleMs: number;
  readonly evaluateEveryMs: number;
  readonly prewarm: ((now: number) => number) | undefined;
  readonly initBackoff: Required<RetryBackoff>;
}

type InstanceState<I> =
  | { readonly type: "starting" }
  | { readonly type: "ready"; readonly value: I }
  | { readonly type: "retired" };

interface Instance<I> {
  readonly id: number;
  state: InstanceState<I>;
  active: number;
  /** Monotonic time it last finished (or started) work. */
  lastUsed: number;
}

interface Work<In> {
  readonly input: In;
  readonly delivery: Delivery;
  readonly arrivedAt: number;
  readonly cold: boolean;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  readonly detach: () => void;
}

/** Waits `ms` on the clock; false at once when `signal` aborts first. */
export function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      timer.clear();
      resolve(false);
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The delay before retry `attempt` (1-based): exponential, capped, with jitter from the clock. */
export function backoffDelay(
  clock: Clock,
  backoff: Required<RetryBackoff>,
  attempt: number,
): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 1));
  return ceiling / 2 + (clock.random() * ceiling) / 2;
}

/** Keeps the most recent samples and answers nearest-rank percentiles. */
class Samples {
  private readonly values: number[] = [];
  private next = 0;
  count = 0;
  private readonly limit: number;
  constructor(limit = 1_024) {
    this.limit = limit;
  }
  add(value: number): void {
    this.count++;
    if (this.values.length < this.limit) this.values.push(value);
    else this.values[this.next] = value;
    this.next = (this.next + 1) % this.limit;
  }
  summary(): LatencyStats {
    if (this.values.length === 0) return { count: this.count, p50Ms: 0, p99Ms: 0, maxMs: 0 };
    const sorted = [...this.values].sort((a, b) => a - b);
    const rank = (p: number): number =>
      sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number;
    return {
      count: this.count,
      p50Ms: rank(0.5),
      p99Ms: rank(0.99),
      maxMs: sorted[sorted.length - 1] as number,
    };
  }
}

/**
 * The instances of one function: routes each input to a warm instance with a free slot
 * (packing work onto the busiest, so the others go idle and can be retired), starts instances
 * when the backlog per instance passes the target or the pre-warm hook asks for more, and retires
 * instances idle for `idleMs` down to the floor (`minInstances`, or what pre-warm wants; zero by
 * default).
 */
export class InstancePool<I, In> {
  private readonly config: PoolConfig<I, In>;
  private readonly instances = new Set<Instance<I>>();
  private readonly queue: Work<In>[] = [];
  /** Inputs that arrived while draining: never started, redelivered by the trigger later. */
  private readonly held = new Set<Work<In>>();
  private readonly stopping = new AbortController();
  private readonly coldSamples = new Samples();
  private readonly initSamples = new Samples();
  private timer: Timer | undefined;
  private nextId = 1;
  private running = 0;
  private prewarmWanted = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  private counters = {
    started: 0,
    retired: 0,
    initFailures: 0,
    warmHits: 0,
    processed: 0,
    failed: 0,
    deadLettered: 0,
  };
  state: FunctionState = { type: "running" };

  constructor(config: PoolConfig<I, In>) {
    this.config = config;
  }

  /** Starts the evaluation timer and the floor of instances. */
  start(): void {
    this.refreshPrewarm();
    this.evaluate();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopping.signal.aborted) return;
    this.timer = this.config.clock.setTimer(() => {
      this.timer = undefined;
      this.refreshPrewarm();
      this.evaluate();
      this.schedule();
    }, this.config.evaluateEveryMs);
  }

  private refreshPrewarm(): void {
    const hook = this.config.prewarm;
    if (hook === undefined || this.draining) {
      this.prewarmWanted = 0;
      return;
    }
    try {
      const wanted = hook(this.config.clock.now());
      if (typeof wanted !== "number" || !Number.isFinite(wanted) || wanted < 0) {
        this.config.logger.warn({ wanted }, "prewarm returned a bad count; ignoring it");
        this.prewarmWanted = 0;
        return;
      }
      this.prewarmWanted = Math.min(this.config.maxInstances, Math.ceil(wanted));
    } catch (error) {
      this.config.logger.warn({ err: error }, "prewarm hook failed; ignoring it");
      this.prewarmWanted = 0;
    }
  }

  /** Runs `input` on an instance; rejects with the handler's error (the trigger retries). */
  submit(input: In, delivery: Delivery): Promise<void> {
    if (this.stopping.signal.aborted) {
      return Promise.reject(new StrataError("UNAVAILABLE", `function ${this.config.name} stopped`));
    }
    if (delivery.signal.aborted) {
      return Promise.reject(new StrataError("CANCELLED", "delivery cancelled"));
    }
    const arrivedAt = this.config.clock.monotonic();
    const cold = !this.hasWarm();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.queue.indexOf(work);
        if (index >= 0) this.queue.splice(index, 1);
        this.held.delete(work);
        reject(toStrataError(delivery.signal.reason, `function ${this.config.name}`));
        this.settleIdle();
      };
      const work: Work<In> = {
        input,
        delivery,
        arrivedAt,
        cold,
        resolve,
        reject,
        detach: () => delivery.signal.removeEventListener("abort", onAbort),
      };
      delivery.signal.addEventListener("abort", onAbort, { once: true });
      if (this.draining) {
        this.held.add(work);
        return;
      }
      const instance = this.pick();
      if (instance !== undefined) {
        this.run(work, instance);
        return;
      }
      this.queue.push(work);
      this.evaluate();
    });
  }

  private hasWarm(): boolean {
    for (const instance of this.instances) if (instance.state.type === "ready") return true;
    return false;
  }

  /** The warm instance with a free slot that is busiest (then most recently used). */
  private pick(): Instance<I> | undefined {
    let best: Instance<I> | undefined;
    for (const instance of this.instances) {
      if (instance.state.type !== "ready") continue;
      if (instance.active >= this.config.perInstanceConcurrency) continue;
      if (
        best === undefined ||
        instance.active > best.active ||
        (instance.active === best.active && instance.lastUsed > best.lastUsed)
      ) {
        best = instance;
      }
    }
    return best;
  }

  private run(work: Work<In>, instance: Instance<I>): void {
    const { clock } = this.config;
    const state = instance.state as { type: "ready"; value: I };
    instance.active++;
    this.running++;
    const startedAt = clock.monotonic();
    instance.lastUsed = startedAt;
    if (work.cold) this.coldSamples.add(startedAt - work.arrivedAt);
    else this.counters.warmHits++;
    const ctx: FunctionContext<I> = {
      instance: state.value,
      signal: work.delivery.signal,
      attempt: work.delivery.attempt,
      idempotencyKey: work.delivery.idempotencyKey,
      coldStart: work.cold,
    };
    void (async () => {
      try {
        await this.config.handler(work.input, ctx);
        this.counters.processed++;
        work.resolve();
      } catch (error) {
        this.counters.failed++;
        work.reject(error);
      } finally {
        work.detach();
        instance.active--;
        this.running--;
        instance.lastUsed = clock.monotonic();
        this.pump();
        this.settleIdle();
      }
    })();
  }

  /** Hands waiting inputs to free slots. */
  private pump(): void {
    while (this.queue.length > 0) {
      const instance = this.pick();
      if (instance === undefined) return;
      this.run(this.queue.shift() as Work<In>, instance);
    }
  }

  /** Instances wanted for the load now (0 with nothing to do). */
  private wantedByLoad(): number {
    const demand = this.queue.length + this.running;
    return demand === 0 ? 0 : Math.ceil(demand / this.config.targetBacklogPerInstance);
  }

  private floor(): number {
    return this.draining ? 0 : Math.max(this.config.minInstances, this.prewarmWanted);
  }

  private live(): number {
    return this.instances.size;
  }

  /** Starts instances up to what the backlog and the floor want; retires idle ones above it. */
  evaluate(): void {
    if (this.stopping.signal.aborted) return;
    const { config } = this;
    const byLoad = this.wantedByLoad();
    const desired = Math.min(config.maxInstances, Math.max(this.floor(), byLoad));
    let live = this.live();
    while (live < desired) {
      this.startInstance();
      live++;
    }
    const keep = Math.max(this.floor(), byLoad);
    if (live <= keep) return;
    const now = config.clock.monotonic();
    const idle = [...this.instances]
      .filter(
        (i) => i.state.type === "ready" && i.active === 0 && now - i.lastUsed >= config.idleMs,
      )
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const instance of idle) {
      if (live <= keep) break;
      this.retire(instance);
      live--;
    }
  }

  private startInstance(): void {
    const instance: Instance<I> = {
      id: this.nextId++,
      state: { type: "starting" },
      active: 0,
      lastUsed: this.config.clock.monotonic(),
    };
    this.instances.add(instance);
    void this.boot(instance);
  }

  /** Runs `init`, retrying with backoff while the instance is still wanted. */
  private async boot(instance: Instance<I>): Promise<void> {
    const { config } = this;
    const signal = this.stopping.signal;
    for (let attempt = 1; ; attempt++) {
      const began = config.clock.monotonic();
      try {
        const value = await config.init();
        if (instance.state.type !== "starting" || signal.aborted) {
          await this.disposeValue(value);
          return;
        }
        instance.state = { type: "ready", value };
        instance.lastUsed = config.clock.monotonic();
        this.initSamples.add(instance.lastUsed - began);
        this.counters.started++;
        this.pump();
        this.evaluate();
        return;
      } catch (error) {
        this.counters.initFailures++;
        config.logger.warn(
          { err: error, function: config.name, instance: instance.id, attempt },
          "function instance failed to start; retrying after backoff",
        );
      }
      // Still wanted? Work that went away (or a lower floor) means this start can stop trying.
      const wanted = Math.min(config.maxInstances, Math.max(this.floor(), this.wantedByLoad()));
      if (this.live() > wanted || signal.aborted) {
        this.instances.delete(instance);
        instance.state = { type: "retired" };
        return;
      }
      if (
        !(await pause(
          config.clock,
          backoffDelay(config.clock, config.initBackoff, attempt),
          signal,
        ))
      ) {
        this.instances.delete(instance);
        instance.state = { type: "retired" };
        return;
      }
    }
  }

  private retire(instance: Instance<I>): void {
    const state = instance.state;
    this.instances.delete(instance);
    instance.state = { type: "retired" };
    if (state.type !== "ready") return;
    this.counters.retired++;
    void this.disposeValue(state.value);
  }

  private async disposeValue(value: I): Promise<void> {
    try {
      await this.config.dispose?.(value);
    } catch (error) {
      this.config.logger.warn({ err: error, function: this.config.name }, "dispose failed");
    }
  }

  /** Counts an input the trigger gave up on. */
  deadLettered(): void {
    this.counters.deadLettered++;
  }

  private settleIdle(): void {
    if (this.queue.length > 0 || this.running > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /**
   * Stops taking new work: inputs that arrive from now on are held (never started) until the
   * trigger stops and redelivers them elsewhere. Resolves once everything queued or running before
   * has finished, or after `timeoutMs`.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (!this.draining) {
      this.draining = true;
      if (this.state.type === "running") this.state = { type: "draining" };
    }
    if (this.queue.length === 0 && this.running === 0) return;
    this.evaluate();
    await new Promise<void>((resolve) => {
      const timer = this.config.clock.setTimer(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        timer.clear();
        resolve();
      });
    });
  }

  /** Stops the pool: held inputs are refused, instances retired (disposed). */
  async close(): Promise<void> {
    this.stopping.abort();
    this.timer?.clear();
    for (const work of [...this.held, ...this.queue.splice(0)]) {
      work.detach();
      work.reject(new StrataError("UNAVAILABLE", `function ${this.config.name} stopped`));
    }
    this.held.clear();
    const disposing: Promise<void>[] = [];
    for (const instance of [...this.instances]) {
      const state = instance.state;
      this.instances.delete(instance);
      instance.state = { type: "retired" };
      if (state.type === "ready") {
        this.counters.retired++;
        disposing.push(this.disposeValue(state.value));
      }
    }
    await Promise.all(disposing);
    if (this.state.type !== "failed") this.state = { type: "stopped" };
  }

  fail(error: StrataError): void {
    this.state = { type: "failed", error };
  }

  stats(): FunctionStats {
    let instances = 0;
    let starting = 0;
    for (const instance of this.instances) {
      if (instance.state.type === "ready") instances++;
      else if (instance.state.type === "starting") starting++;
    }
    const coldStarts = this.coldSamples.summary();
    const total = this.counters.warmHits + coldStarts.count;
    return {
      name: this.config.name,
      state: this.state,
      instances,
      starting,
      started: this.counters.started,
      retired: this.counters.retired,
      initFailures: this.counters.initFailures,
      init: this.initSamples.summary(),
      coldStarts,
      warmHits: this.counters.warmHits,
      warmHitRatio: total === 0 ? 1 : this.counters.warmHits / total,
      backlog: this.queue.length + this.held.size,
      running: this.running,
      processed: this.counters.processed,
      failed: this.counters.failed,
      deadLettered: this.counters.deadLettered,
    };
  }
}

/**
 * A service as the simulator sees it: replicas of fixed capacity behind one queue, each an
 * M/M/1 server whose rate is set so that its p99 latency reaches the SLO exactly when it serves
 * `capacityPerReplica` requests per second.
 */
export interface ServiceModel {
  /** Requests per second one replica serves with its p99 latency at the SLO. */
  readonly capacityPerReplica: number;
  /** From asking for a replica to it serving (ms); it costs from the moment it is asked for. */
  readonly startupMs: number;
  /** The latency objective: p99 under this many ms. */
  readonly sloMs: number;
  /** Longest a request waits in the queue before it is dropped (ms). */
  readonly maxQueueMs: number;
}

/** The defaults the CLI and the bench use. */
export const DEFAULT_MODEL: ServiceModel = {
  capacityPerReplica: 100,
  startupMs: 120_000,
  sloMs: 200,
  maxQueueMs: 10_000,
};

/** What one simulated second looked like. */
export interface SecondStats {
  readonly arrived: number;
  readonly served: number;
  /** Requests that took longer than the SLO or were dropped. */
  readonly late: number;
  readonly dropped: number;
  /** Requests waiting at the end of the second. */
  readonly queued: number;
  readonly ready: number;
  /** Replicas asked for (ready or starting): what is paid for. */
  readonly requested: number;
  /** Served per replica asked for against capacity, capped at 1. */
  readonly utilisation: number;
  /** Busy fraction of the replicas' service rate (CPU), 0..1, starting replicas idle. */
  readonly cpu: number;
  /** Estimated p99 latency (ms). */
  readonly p99Ms: number;
}

/** `ln(100)`: an M/M/1 server's p99 response time is ln(100) / (mu − lambda). */
const LN100 = Math.log(100);

/**
 * The replicas of one service, stepped one second at a time: asked-for replicas start serving
 * `startupMs` later; load beyond the ready replicas' service rate queues, and what would wait
 * longer than `maxQueueMs` is dropped.
 */
export class ServiceState {
  readonly #model: ServiceModel;
  /** Requests one replica completes per second at most (M/M/1 service rate). */
  readonly #mu: number;
  #ready: number;
  /** Times (ms) at which starting replicas become ready, earliest first. */
  readonly #starting: number[] = [];
  #queue = 0;

  constructor(model: ServiceModel, initialReplicas: number) {
    this.#model = model;
    this.#mu = model.capacityPerReplica + LN100 / (model.sloMs / 1000);
    this.#ready = initialReplicas;
  }

  get ready(): number {
    return this.#ready;
  }

  get requested(): number {
    return this.#ready + this.#starting.length;
  }

  /** Asks for `replicas` in all: starts new ones, or stops starting ones first, then ready ones. */
  scale(replicas: number, now: number): void {
    const target = Math.max(0, Math.floor(replicas));
    while (this.requested < target) this.#starting.push(now + this.#model.startupMs);
    while (this.requested > target) {
      if (this.#starting.length > 0) this.#starting.pop();
      else this.#ready--;
    }
  }

  /** Advances one second at `now` (ms) with `arrivals` requests arriving. */
  step(now: number, arrivals: number): SecondStats {
    while (this.#starting.length > 0 && (this.#starting[0] ?? Infinity) <= now) {
      this.#starting.shift();
      this.#ready++;
    }
    const ready = this.#ready;
    const rate = ready * this.#mu;
    const pending = this.#queue + arrivals;
    const served = Math.min(pending, rate);
    let queued = pending - served;
    const limit = Math.max(rate, arrivals) * (this.#model.maxQueueMs / 1000);
    const dropped = Math.max(0, queued - limit);
    queued -= dropped;
    this.#queue = queued;
    const sloS = this.#model.sloMs / 1000;
    let lateFraction: number;
    let p99Ms: number;
    if (ready === 0) {
      lateFraction = 1;
      p99Ms = this.#model.maxQueueMs;
    } else if (queued > 1e-9 || arrivals >= rate) {
      lateFraction = 1;
      p99Ms = ((rate > 0 ? queued / rate : 0) + LN100 / this.#mu) * 1000;
    } else {
      const perReplica = arrivals / ready;
      lateFraction = Math.min(1, Math.exp(-(this.#mu - perReplica) * sloS));
      p99Ms = (LN100 / (this.#mu - perReplica)) * 1000;
    }
    return {
      arrived: arrivals,
      served,
      late: Math.min(arrivals, arrivals * lateFraction + dropped),
      dropped,
      queued,
      ready,
      requested: this.requested,
      // Means over every replica asked for, the starting ones idle: the HPA's reading of
      // not-yet-ready pods for a scale-up, which keeps `ceil(replicas × metric / target)` from
      // compounding while the replicas it already asked for are still starting.
      utilisation:
        ready === 0 ? 0 : Math.min(1, served / (this.requested * this.#model.capacityPerReplica)),
      cpu: rate === 0 ? 0 : served / (this.requested * this.#mu),
      p99Ms,
    };
  }
}

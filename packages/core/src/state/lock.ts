import { StrataError, isStrataError } from "../errors/index.js";
import { systemClock, type Clock, type Timer } from "../ports/clock.js";
import type { StrongKV } from "../ports/strong-kv.js";
import { checkKey } from "./keys.js";

/** A held lock. */
export interface Lock extends AsyncDisposable {
  readonly name: string;
  /**
   * The fencing token: strictly greater for every later holder of the same lock (and of any lock
   * on the same store). Pass it with every write the lock protects and have the resource refuse
   * tokens older than the newest it has seen: a holder paused past its lease cannot then clobber
   * its successor.
   */
  readonly token: number;
  /** Aborts when the lock is lost (lease expired, taken over) or released. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

/** Options for {@link acquireLock}. */
export interface LockOptions {
  /** The lock expires this long after the last keep-alive if its holder goes quiet (ms); default 10 000. */
  readonly ttlMs?: number;
  /** Give up waiting after this long (ms); default: try once. */
  readonly waitMs?: number;
  /** Who holds it, for tools; default a random id. */
  readonly owner?: string;
  readonly signal?: AbortSignal;
  readonly clock?: Clock;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Holder {
  readonly owner: string;
  /** Wall-clock expiry (ms), for stores without leases. */
  readonly expiresAt: number;
}

/**
 * Acquires a lock on a StrongKV with a fencing token (the revision of the write that took it).
 * On stores with leases the lock key lives on a lease kept alive in the background; elsewhere
 * (NATS) the key records an expiry and an expired lock is taken over with compare-and-set.
 * Fails with ABORTED when the lock is held and `waitMs` runs out.
 *
 * @example
 * await using lock = await acquireLock(kv, "jobs/nightly", { ttlMs: 5_000, waitMs: 30_000 });
 * await ledger.post(entry, { fence: lock.token });
 */
export async function acquireLock(
  kv: StrongKV,
  name: string,
  options: LockOptions = {},
): Promise<Lock> {
  const key = checkKey(`locks/${name}`);
  const clock = options.clock ?? systemClock();
  const ttlMs = options.ttlMs ?? 10_000;
  if (!(Number.isFinite(ttlMs) && ttlMs >= 50))
    throw new StrataError("INVALID_ARGUMENT", "lock ttlMs must be at least 50");
  const owner = options.owner ?? `owner-${Math.floor(clock.random() * 2 ** 40).toString(36)}`;
  const giveUpAt = clock.monotonic() + (options.waitMs ?? 0);
  const controller = new AbortController();
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    const taken = await tryTake(kv, key, owner, ttlMs, clock);
    if (taken !== undefined) {
      let timer: Timer | undefined;
      let released = false;
      const lose = (why: string): void => {
        if (!controller.signal.aborted)
          controller.abort(new StrataError("ABORTED", `lock ${name} lost: ${why}`));
      };
      // Keep the lease (or the recorded expiry) fresh at a third of its time to live.
      const refresh = (): void => {
        timer = clock.setTimer(() => {
          if (released) return;
          const renewing =
            taken.lease !== undefined
              ? kv.keepAlive(taken.lease)
              : kv
                  .compareAndSet(
                    key,
                    enc.encode(
                      JSON.stringify({ owner, expiresAt: clock.now() + ttlMs } satisfies Holder),
                    ),
                    taken.revision,
                  )
                  .then((revision) => {
                    taken.revision = revision;
                  });
          renewing.then(refresh, (error: unknown) =>
            lose(error instanceof Error ? error.message : String(error)),
          );
        }, ttlMs / 3);
      };
      refresh();
      const release = async (): Promise<void> => {
        if (released) return;
        released = true;
        timer?.clear();
        lose("released");
        if (taken.lease !== undefined) await kv.revokeLease(taken.lease).catch(() => undefined);
        else await kv.delete(key, { expectedRevision: taken.revision }).catch(() => undefined);
      };
      return {
        name,
        token: taken.token,
        signal: controller.signal,
        release,
        [Symbol.asyncDispose]: release,
      };
    }
    if (clock.monotonic() >= giveUpAt) {
      throw new StrataError("ABORTED", `lock ${name} is held by another owner`, {
        details: { lock: name },
      });
    }
    const delay = Math.min(500, 10 * 2 ** Math.min(attempt, 6)) * (0.5 + clock.random() / 2);
    // The wait ends early when the caller gives up: closing whatever waits for the lock must not
    // wait out the backoff (the clock's timers do not keep the process alive meanwhile).
    await new Promise<void>((resolve) => {
      const signal = options.signal;
      const wake = (): void => {
        timer.clear();
        resolve();
      };
      const timer = clock.setTimer(() => {
        signal?.removeEventListener("abort", wake);
        resolve();
      }, delay);
      signal?.addEventListener("abort", wake, { once: true });
      if (signal?.aborted === true) wake();
    });
  }
}

async function tryTake(
  kv: StrongKV,
  key: string,
  owner: string,
  ttlMs: number,
  clock: Clock,
): Promise<{ token: number; revision: number; lease: string | undefined } | undefined> {
  const value = (): Uint8Array =>
    enc.encode(JSON.stringify({ owner, expiresAt: clock.now() + ttlMs } satisfies Holder));
  if (kv.capabilities.leases) {
    const lease = await kv.grantLease(ttlMs);
    try {
      const revision = await kv.create(key, value(), { lease });
      return { token: revision, revision, lease };
    } catch (error) {
      await kv.revokeLease(lease).catch(() => undefined);
      if (isStrataError(error, "ALREADY_EXISTS")) return undefined;
      throw error;
    }
  }
  const current = await kv.get(key);
  if (current !== undefined) {
    let holder: Holder | undefined;
    try {
      holder = JSON.parse(dec.decode(current.value)) as Holder;
    } catch {
      holder = undefined;
    }
    if (holder !== undefined && holder.expiresAt > clock.now()) return undefined;
  }
  try {
    const revision = await kv.compareAndSet(key, value(), current?.revision ?? 0);
    return { token: revision, revision, lease: undefined };
  } catch (error) {
    if (isStrataError(error, "FAILED_PRECONDITION")) return undefined;
    throw error;
  }
}

import { pairOperations, type HistoryEvent, type Operation } from "./history.js";

/** A mistake in how a workload uses a recorder: a stable `code` says which. */
export class RecorderError extends Error {
  override readonly name = "RecorderError";
  /**
   * `PROCESS_BUSY`: a process invoked while its previous operation was in flight.
   * `ALREADY_COMPLETED`: an operation was completed twice.
   * `NOT_JSON`: a value that JSON cannot carry (a bigint, a function, a cycle).
   */
  readonly code: "PROCESS_BUSY" | "ALREADY_COMPLETED" | "NOT_JSON";

  constructor(code: RecorderError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** An event as recorded: a history event with its time, and the error text of a failure. */
export interface RecordedEvent extends HistoryEvent {
  readonly time: number;
  /** Why an operation failed or its outcome is unknown, when `record` caught an error. */
  readonly error?: string;
}

/** An operation in flight: complete it exactly once. */
export interface OperationHandle {
  readonly process: number | string;
  readonly f: string;
  /** It happened; `value` is its result (a read's value). Default: the invocation's value. */
  ok(value?: unknown): void;
  /** It certainly did not happen. Default value: the invocation's. */
  fail(value?: unknown): void;
  /** Its outcome is unknown (a timeout, a lost connection). Default value: the invocation's. */
  info(value?: unknown): void;
  /**
   * It never reached the system under test (refused by the client's own circuit breaker, say):
   * it neither happened nor observed anything, so its invocation is taken out of the history.
   * Unlike `fail`, this claims nothing (a failed compare-and-set claims its compare ran).
   */
  discard(): void;
}

/** An operation for `record`: who runs it, what it is, on which key. */
export interface RecordedOperation {
  readonly process: number | string;
  readonly f: string;
  readonly value: unknown;
  readonly key?: string;
}

/** How `record` reads an error: `fail` it certainly did not happen, `info` it may have. */
export type ClassifyError = (error: unknown) => "fail" | "info";

/** Records a history as a workload's clients run. */
export interface Recorder {
  /**
   * A process begins an operation. A process is single-threaded, as in Jepsen: it must complete
   * one operation before invoking the next.
   *
   * @throws {RecorderError} `PROCESS_BUSY` when the process has an operation in flight.
   */
  invoke(process: number | string, f: string, value: unknown, key?: string): OperationHandle;
  /**
   * Runs `fn` as one operation: `ok` with its result (or, when it returns `undefined`, the
   * invocation's value), else `fail` or `info` as `classify` says (default: `info`, the safe
   * answer when nothing is known). The error is rethrown after it is recorded.
   *
   * @example
   * await recorder.record(3, "add", 42, () => set.add(42), (e) => (isRejected(e) ? "fail" : "info"));
   */
  record<T>(
    process: number | string,
    f: string,
    value: unknown,
    fn: () => Promise<T>,
    classify?: ClassifyError,
  ): Promise<T>;
  /** The same, with the operation as an object, which may name a key (a register, a replica). */
  record<T>(op: RecordedOperation, fn: () => Promise<T>, classify?: ClassifyError): Promise<T>;
  /** The events so far, in the order they happened. */
  events(): RecordedEvent[];
  /** The events paired into operations (operations in flight count as `info`). */
  operations(): Operation[];
  /**
   * The history as Strata's JSON format, `{ "history": [ …one event a line… ] }`, which
   * `parseJsonHistory` reads back.
   *
   * @throws {RecorderError} `NOT_JSON` when a recorded value cannot be written as JSON.
   */
  toJson(): string;
}

/**
 * A recorder for a workload's history. Times are milliseconds from `now` (default
 * `performance.now`, a monotonic clock), never running backwards even if `now` does.
 *
 * @example
 * const recorder = createRecorder();
 * const op = recorder.invoke(0, "write", 3, "x");
 * try {
 *   await kv.put("x", 3);
 *   op.ok();
 * } catch (error) {
 *   op.info();
 * }
 * await writeFile("history.json", recorder.toJson());
 */
export function createRecorder(options: { readonly now?: () => number } = {}): Recorder {
  const now = options.now ?? (() => performance.now());
  const events: RecordedEvent[] = [];
  const inFlight = new Map<string, string>();
  let last = -Infinity;
  const clock = (): number => {
    const t = now();
    last = Number.isFinite(t) ? Math.max(last, t) : last;
    return Number.isFinite(last) ? last : 0;
  };

  const begin = (
    process: number | string,
    f: string,
    value: unknown,
    key: string | undefined,
  ): {
    readonly handle: OperationHandle;
    readonly finish: (type: "ok" | "fail" | "info", result: unknown, error?: string) => void;
  } => {
    const id = String(process);
    const busy = inFlight.get(id);
    if (busy !== undefined)
      throw new RecorderError(
        "PROCESS_BUSY",
        `process ${id} invokes ${f} while its ${busy} is in flight: a process runs one operation at a time; use another process id for concurrent operations`,
      );
    inFlight.set(id, f);
    const k = key === undefined ? {} : { key };
    const invocation: RecordedEvent = {
      process,
      type: "invoke",
      f,
      value: value ?? null,
      time: clock(),
      ...k,
    };
    events.push(invocation);
    let done = false;
    const finish = (type: "ok" | "fail" | "info", result: unknown, error?: string): void => {
      if (done)
        throw new RecorderError(
          "ALREADY_COMPLETED",
          `process ${id}'s ${f} is already complete; it cannot also be ${type}`,
        );
      done = true;
      inFlight.delete(id);
      events.push({
        process,
        type,
        f,
        value: (result === undefined ? value : result) ?? null,
        time: clock(),
        ...k,
        ...(error === undefined ? {} : { error }),
      });
    };
    const handle: OperationHandle = {
      process,
      f,
      ok: (result) => finish("ok", result),
      fail: (result) => finish("fail", result),
      info: (result) => finish("info", result),
      discard: () => {
        if (done)
          throw new RecorderError(
            "ALREADY_COMPLETED",
            `process ${id}'s ${f} is already complete; it cannot also be discarded`,
          );
        done = true;
        inFlight.delete(id);
        const at = events.lastIndexOf(invocation);
        if (at >= 0) events.splice(at, 1);
      },
    };
    return { handle, finish };
  };

  return {
    invoke: (process, f, value, key) => begin(process, f, value, key).handle,
    async record<T>(
      first: number | string | RecordedOperation,
      ...rest: readonly unknown[]
    ): Promise<T> {
      const [op, fn, classify] = (
        typeof first === "object"
          ? [first, ...rest]
          : [{ process: first, f: rest[0], value: rest[1] }, ...rest.slice(2)]
      ) as [RecordedOperation, () => Promise<T>, ClassifyError | undefined];
      const { finish } = begin(op.process, op.f, op.value, op.key);
      let result: T;
      try {
        result = await fn();
      } catch (error) {
        finish(safeClassify(classify, error), undefined, errorText(error));
        throw error;
      }
      finish("ok", result);
      return result;
    },
    events: () => [...events],
    operations: () => pairOperations(events),
    toJson() {
      const lines = events.map((event, i) => {
        try {
          return `    ${JSON.stringify(event, refuseBigint)}`;
        } catch (error) {
          throw new RecorderError(
            "NOT_JSON",
            `event ${i} (process ${String(event.process)} ${event.type} ${event.f}) holds a value JSON cannot carry: ${errorText(error)}`,
            { cause: error },
          );
        }
      });
      return `{\n  "history": [\n${lines.join(",\n")}\n  ]\n}\n`;
    },
  };
}

function safeClassify(classify: ClassifyError | undefined, error: unknown): "fail" | "info" {
  try {
    return classify?.(error) === "fail" ? "fail" : "info";
  } catch {
    return "info";
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function refuseBigint(_key: string, value: unknown): unknown {
  if (typeof value === "bigint")
    throw new TypeError(`a bigint (${value}n); record it as a number or a string`);
  if (typeof value === "function" || typeof value === "symbol")
    throw new TypeError(`a ${typeof value}`);
  return value;
}

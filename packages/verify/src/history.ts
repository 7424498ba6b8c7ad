/**
 * Histories as Jepsen records them: each client operation is an `invoke` event followed, from the
 * same process, by its completion — `ok` (it happened), `fail` (it did not happen) or `info` (the
 * client cannot tell). `pairOperations` turns the events into operations with a call and a
 * return time, which is what the checkers work on.
 */

/** What happened to one operation, as Jepsen records it. */
export type EventType = "invoke" | "ok" | "fail" | "info";

/** One line of a history: a process invoked an operation, or learned how it ended. */
export interface HistoryEvent {
  readonly process: number | string;
  readonly type: EventType;
  /** The operation: `read`, `write`, `cas` for registers. */
  readonly f: string;
  /** Invocation: the argument (`cas`: `[expected, new]`); completion: the result (a read's value). */
  readonly value: unknown;
  /** The register the operation touches; histories without keys are one register. */
  readonly key?: string;
  /** When it happened, in any unit; without times, the event's position in the history. */
  readonly time?: number;
  /** Where the event was read from (1-based line of the input), for error messages. */
  readonly line?: number;
}

/** How an operation ended: `info` means the outcome is unknown. */
export type Outcome = "ok" | "fail" | "info";

/** An operation with its invocation and completion paired up. */
export interface Operation {
  /** Position among the history's operations (in order of completion, then pending ones). */
  readonly id: number;
  readonly process: number | string;
  readonly f: string;
  /** The register; `""` when the history has no keys. */
  readonly key: string;
  /** The invocation's argument. */
  readonly input: unknown;
  /** The completion's value; `undefined` for `info` (outcome unknown). */
  readonly output: unknown;
  readonly outcome: Outcome;
  /** Invocation time. */
  readonly call: number;
  /** Return time; `Infinity` for `info`: it may take effect at any later point, or never. */
  readonly ret: number;
  /** Input line of the invocation, when the history came from a file. */
  readonly line?: number;
}

/** A history that cannot be checked: says where and why. */
export class HistoryError extends Error {
  override readonly name = "HistoryError";
  /** A stable code for programs that sort errors; always `INVALID_HISTORY`. */
  readonly code = "INVALID_HISTORY";
  /** 1-based line of the input, when known. */
  readonly line: number | undefined;
  /** 1-based column, when known. */
  readonly column: number | undefined;

  constructor(message: string, where: { readonly line?: number; readonly column?: number } = {}) {
    super(message);
    this.line = where.line;
    this.column = where.column;
  }
}

/** `line 12` when the event came from a file, else `event 11` (0-based position). */
export function describeEventPlace(event: { readonly line?: number }, index: number): string {
  return event.line === undefined ? `event ${index}` : `line ${event.line}`;
}

interface Pending {
  readonly event: HistoryEvent;
  readonly time: number;
  readonly index: number;
}

/**
 * Pairs each invocation with the next completion of the same process. An invocation that is
 * never completed counts as `info` (the process crashed: outcome unknown). Times are taken from
 * the events when every event has one, otherwise from the events' positions.
 *
 * @throws {HistoryError} when a process completes what it never invoked, invokes twice, completes
 * a different operation, or when times are missing on some events or run backwards.
 *
 * @example
 * pairOperations([
 *   { process: 0, type: "invoke", f: "write", value: 1 },
 *   { process: 0, type: "ok", f: "write", value: 1 },
 * ]); // [{ id: 0, f: "write", input: 1, outcome: "ok", call: 0, ret: 1, ... }]
 */
export function pairOperations(events: readonly HistoryEvent[]): Operation[] {
  const timed = events.filter((e) => e.time !== undefined).length;
  if (timed !== 0 && timed !== events.length) {
    const index = events.findIndex((e) => e.time === undefined);
    const event = events[index] as HistoryEvent;
    throw new HistoryError(
      `${describeEventPlace(event, index)}: has no time while other events have one (give every event a time, or none)`,
      placeOf(event),
    );
  }
  const open = new Map<string, Pending>();
  const ops: Operation[] = [];
  events.forEach((event, index) => {
    const time = event.time ?? index;
    const process = String(event.process);
    const place = (): string => describeEventPlace(event, index);
    if (event.type === "invoke") {
      const previous = open.get(process);
      if (previous !== undefined) {
        throw new HistoryError(
          `${place()}: process ${process} invokes ${event.f} before its ${previous.event.f} (${describeEventPlace(previous.event, previous.index)}) completed`,
          placeOf(event),
        );
      }
      open.set(process, { event, time, index });
      return;
    }
    const invoked = open.get(process);
    if (invoked === undefined) {
      throw new HistoryError(
        `${place()}: process ${process} completes ${event.f} (${event.type}) without invoking it`,
        placeOf(event),
      );
    }
    if (invoked.event.f !== event.f) {
      throw new HistoryError(
        `${place()}: process ${process} completes ${event.f} but invoked ${invoked.event.f}`,
        placeOf(event),
      );
    }
    if (
      event.key !== undefined &&
      invoked.event.key !== undefined &&
      event.key !== invoked.event.key
    ) {
      throw new HistoryError(
        `${place()}: completes key ${JSON.stringify(event.key)} but invoked key ${JSON.stringify(invoked.event.key)}`,
        placeOf(event),
      );
    }
    if (time < invoked.time) {
      throw new HistoryError(
        `${place()}: completes at time ${time}, before its invocation at ${invoked.time}`,
        placeOf(event),
      );
    }
    open.delete(process);
    ops.push(operation(ops.length, invoked, event, time));
  });
  for (const pending of open.values())
    ops.push(operation(ops.length, pending, undefined, Infinity));
  return ops;
}

function placeOf(event: HistoryEvent): { line?: number } {
  return event.line === undefined ? {} : { line: event.line };
}

function operation(
  id: number,
  invoked: Pending,
  completion: HistoryEvent | undefined,
  time: number,
): Operation {
  const outcome: Outcome = completion === undefined ? "info" : (completion.type as Outcome);
  const { event } = invoked;
  return {
    id,
    process: event.process,
    f: event.f,
    key: event.key ?? completion?.key ?? "",
    input: event.value,
    output: outcome === "info" ? undefined : completion?.value,
    outcome,
    call: invoked.time,
    ret: outcome === "info" ? Infinity : time,
    ...(event.line === undefined ? {} : { line: event.line }),
  };
}

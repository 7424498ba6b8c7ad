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
  /** When it happened; defaults to the event's position in the history. */
  readonly time?: number;
}

/** An operation with its invocation and completion paired up. */
export interface Operation {
  readonly id: number;
  readonly process: number | string;
  readonly f: string;
  readonly key: string;
  /** The invocation's argument. */
  readonly input: unknown;
  /** The completion's value; `undefined` for `info` (outcome unknown). */
  readonly output: unknown;
  readonly outcome: "ok" | "fail" | "info";
  readonly call: number;
  /** Return time; `Infinity` for `info`: it may take effect at any later point, or never. */
  readonly ret: number;
}

/** A history that cannot be checked: says which event and why. */
export class HistoryError extends Error {
  override readonly name = "HistoryError";
}

/**
 * Pairs each invocation with the next completion of the same process. An invocation never
 * completed counts as `info` (the process crashed: outcome unknown).
 */
export function pairOperations(events: readonly HistoryEvent[]): Operation[] {
  const open = new Map<string, { event: HistoryEvent; time: number; index: number }>();
  const ops: Operation[] = [];
  let id = 0;
  events.forEach((event, index) => {
    const time = event.time ?? index;
    const process = String(event.process);
    if (event.type === "invoke") {
      if (open.has(process)) {
        throw new HistoryError(
          `event ${index}: process ${process} invokes again before its previous operation completed`,
        );
      }
      open.set(process, { event, time, index });
      return;
    }
    const invoked = open.get(process);
    if (invoked === undefined)
      throw new HistoryError(
        `event ${index}: process ${process} completes an operation it never invoked`,
      );
    if (invoked.event.f !== event.f) {
      throw new HistoryError(
        `event ${index}: process ${process} completes ${event.f} but invoked ${invoked.event.f}`,
      );
    }
    open.delete(process);
    ops.push({
      id: id++,
      process: invoked.event.process,
      f: event.f,
      key: invoked.event.key ?? event.key ?? "",
      input: invoked.event.value,
      output: event.type === "info" ? undefined : event.value,
      outcome: event.type,
      call: invoked.time,
      ret: event.type === "info" ? Infinity : time,
    });
  });
  for (const { event, time } of open.values()) {
    ops.push({
      id: id++,
      process: event.process,
      f: event.f,
      key: event.key ?? "",
      input: event.value,
      output: undefined,
      outcome: "info",
      call: time,
      ret: Infinity,
    });
  }
  return ops;
}

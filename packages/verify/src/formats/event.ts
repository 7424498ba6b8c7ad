import { HistoryError, type EventType, type HistoryEvent } from "../history.js";

const TYPES: readonly EventType[] = ["invoke", "ok", "fail", "info"];

/**
 * Checks one decoded event (from JSON, EDN or a log line) and makes a `HistoryEvent` of it.
 * `where` names the place for messages (`line 12`); unknown fields are ignored, as Jepsen adds
 * its own (`:index`, `:error`, `:node`).
 */
export function toEvent(
  raw: Readonly<Record<string, unknown>>,
  where: string,
  line: number | undefined,
): HistoryEvent {
  const at = line === undefined ? {} : { line };
  const bad = (message: string): never => {
    throw new HistoryError(`${where}: ${message}`, at);
  };
  const { type, process, f, key, time } = raw;
  if (typeof type !== "string" || !isType(type))
    return bad(`type must be one of ${TYPES.join(", ")}, got ${show(type)}`);
  if (
    !(typeof process === "number" && Number.isSafeInteger(process)) &&
    !(typeof process === "string" && process !== "")
  )
    return bad(`process must be an integer or a name, got ${show(process)}`);
  if (typeof f !== "string" || f === "") return bad(`f must name the operation, got ${show(f)}`);
  if (key !== undefined && key !== null && typeof key !== "string" && typeof key !== "number")
    return bad(`key must be a string or a number, got ${show(key)}`);
  if (time !== undefined && (typeof time !== "number" || !Number.isFinite(time)))
    return bad(`time must be a finite number, got ${show(time)}`);
  return {
    process,
    type,
    f,
    value: raw["value"] ?? null,
    ...(key === undefined || key === null ? {} : { key: String(key) }),
    ...(time === undefined ? {} : { time }),
    ...at,
  };
}

const isType = (value: string): value is EventType => (TYPES as readonly string[]).includes(value);

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

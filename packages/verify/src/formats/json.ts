import { HistoryError, type HistoryEvent } from "../history.js";
import { toEvent } from "./event.js";

/**
 * Strata's JSON history, in one of three shapes:
 *
 * - an array of events: `[{...}, {...}]`;
 * - an object with the events under `history`: `{ "history": [...] }` (room for metadata);
 * - JSON Lines: one event object per line.
 *
 * Each event is
 * `{ "process": 0, "type": "invoke" | "ok" | "fail" | "info", "f": "read" | "write" | "cas",
 *    "value": <any JSON>, "key"?: "x", "time"?: 12.5 }`:
 * `process` is an integer or a name; `value` is the argument on `invoke` (`cas`:
 * `[expected, new]`) and the result on completion (a read's value; `null` is nil); `key` names
 * the register (histories without keys are one register); `time` is in any unit — give it on
 * every event or none (then the order of the events is their time). Unknown fields are ignored.
 *
 * @throws {HistoryError} naming the line of the first malformed event.
 */
export function parseJsonHistory(text: string): HistoryEvent[] {
  const start = text.search(/\S/);
  if (start === -1) throw new HistoryError("the history is empty");
  const asDocument = tryParse(text);
  if (asDocument.ok) {
    const data = asDocument.value;
    const list = Array.isArray(data)
      ? data
      : typeof data === "object" && data !== null && "history" in data
        ? data.history
        : undefined;
    if (Array.isArray(list)) {
      const lines = elementLines(text);
      return list.map((raw: unknown, i) => event(raw, i, lines[i]));
    }
    if (typeof data === "object" && data !== null && !Array.isArray(data) && "type" in data)
      return [event(data, 0, 1)]; // one event: a one-line JSON Lines history
    throw new HistoryError(
      'expected an array of events, { "history": [...] }, or one event object per line',
    );
  } else if (text[start] === "[" || !/\n\s*\S/.test(text.slice(start))) {
    throw syntaxError(asDocument.error, text, 1);
  }
  // JSON Lines.
  const events: HistoryEvent[] = [];
  text.split("\n").forEach((lineText, i) => {
    if (lineText.trim() === "") return;
    const parsed = tryParse(lineText);
    if (!parsed.ok) throw syntaxError(parsed.error, lineText, i + 1);
    events.push(event(parsed.value, events.length, i + 1));
  });
  return events;
}

function event(raw: unknown, index: number, line: number | undefined): HistoryEvent {
  const where = line === undefined ? `event ${index}` : `line ${line}`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new HistoryError(
      `${where}: expected an event object`,
      line === undefined ? {} : { line },
    );
  return toEvent(raw as Record<string, unknown>, where, line);
}

function tryParse(text: string): { ok: true; value: unknown } | { ok: false; error: Error } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

/** A JSON syntax error with its line, computed from the parser's `position N` when it gives one. */
function syntaxError(error: Error, text: string, firstLine: number): HistoryError {
  const position = /position (\d+)/.exec(error.message);
  if (position === null)
    return new HistoryError(`not valid JSON (line ${firstLine}): ${error.message}`, {
      line: firstLine,
    });
  const at = Number(position[1]);
  const before = text.slice(0, at);
  const line = firstLine + (before.match(/\n/g)?.length ?? 0);
  const column = at - before.lastIndexOf("\n");
  return new HistoryError(`not valid JSON at line ${line}, column ${column}: ${error.message}`, {
    line,
    column,
  });
}

/**
 * The 1-based line on which each event of a JSON document starts, so that errors about an event
 * can name its line. Scans for the elements of the top-level array, or of the array under the
 * top-level `history` key.
 */
function elementLines(text: string): number[] {
  const lines: number[] = [];
  const stack: Array<"[" | "{"> = [];
  let line = 1;
  let target = -1; // depth of the events array once found
  let lastKey = "";
  let expectingKey = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === "\n") {
      line++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r") continue;
    if (expectElement && c !== "]") {
      lines.push(line);
      expectElement = false;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (expectingKey && stack.length === 1) lastKey = text.slice(i + 1, j);
      expectingKey = false;
      i = j;
      continue;
    }
    if (c === "[" || c === "{") {
      stack.push(c);
      const isTarget =
        c === "[" &&
        ((stack.length === 1 && target === -1) ||
          (stack.length === 2 && stack[0] === "{" && lastKey === "history"));
      if (isTarget) {
        target = stack.length;
        expectElement = true;
      }
      expectingKey = c === "{";
      continue;
    }
    if (c === "]" || c === "}") {
      if (stack.length === target && c === "]") target = -2; // done: later arrays are not events
      stack.pop();
      continue;
    }
    if (c === ",") {
      if (stack.length === target) expectElement = true;
      expectingKey = stack[stack.length - 1] === "{";
    }
  }
  return lines;
}

import type { HistoryEvent } from "../history.js";
import { parseEdnHistory } from "./edn.js";
import { parseJepsenLog } from "./jepsen-log.js";
import { parseJsonHistory } from "./json.js";

export { parseEdnHistory } from "./edn.js";
export { parseJepsenLog } from "./jepsen-log.js";
export { parseJsonHistory } from "./json.js";

/** The history formats the checkers read. */
export type HistoryFormat = "json" | "edn" | "jepsen-log";

export const HISTORY_FORMATS: readonly HistoryFormat[] = ["json", "edn", "jepsen-log"];

/**
 * Guesses a history's format from its file name (`.json`/`.jsonl`, `.edn`, `.log`) or, failing
 * that, from its first characters: `{:` or `[{:` is EDN, `{"` or `[{"` JSON, a `jepsen.util`
 * line a Jepsen log.
 */
export function detectFormat(text: string, fileName = ""): HistoryFormat {
  if (/\.jsonl?$/i.test(fileName)) return "json";
  if (/\.edn$/i.test(fileName)) return "edn";
  if (/\.log$/i.test(fileName)) return "jepsen-log";
  const head = text.replace(/^(\s|;[^\n]*\n)*/, "").slice(0, 200);
  if (/^[[(]?\s*\{\s*:/.test(head) || head.startsWith("(")) return "edn";
  if (/jepsen\.util\s+-/.test(text.slice(0, 10_000))) return "jepsen-log";
  return "json";
}

/**
 * Reads a history in the given format.
 *
 * @throws {HistoryError} naming the line of the first malformed event.
 */
export function parseHistory(text: string, format: HistoryFormat): HistoryEvent[] {
  switch (format) {
    case "json":
      return parseJsonHistory(text);
    case "edn":
      return parseEdnHistory(text);
    case "jepsen-log":
      return parseJepsenLog(text);
  }
}

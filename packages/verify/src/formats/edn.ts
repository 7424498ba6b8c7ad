import { HistoryError, type HistoryEvent } from "../history.js";
import { EdnMap, EdnReader, Keyword, toPlain, type Edn } from "./edn-reader.js";
import { toEvent } from "./event.js";

/**
 * Jepsen's EDN history: maps such as `{:process 0, :type :invoke, :f :cas, :value [3 4]}`, either
 * one after another (Jepsen's `history.edn`) or inside one vector or list (Knossos's test data).
 * Keywords become strings (`:write` → `"write"`), `nil` becomes `null`. Events of non-client
 * processes (`:process :nemesis`) are left out, as Jepsen's checkers do: they are the fault
 * injector's, not operations on the system under test.
 *
 * @throws {HistoryError} with the line and column of the first thing it cannot read.
 *
 * @example
 * parseEdnHistory("{:process 0, :type :invoke, :f :write, :value 3}");
 * // [{ process: 0, type: "invoke", f: "write", value: 3, line: 1 }]
 */
export function parseEdnHistory(text: string): HistoryEvent[] {
  const reader = new EdnReader(text);
  const events: HistoryEvent[] = [];
  const take = (item: Edn, line: number, column: number): void => {
    if (!(item instanceof EdnMap))
      throw new HistoryError(`EDN line ${line}, column ${column}: expected an event map {...}`, {
        line,
        column,
      });
    if (item.get("process") instanceof Keyword) return; // :nemesis and friends
    events.push(toEvent(toPlain(item) as Record<string, unknown>, `line ${item.line}`, item.line));
  };
  if (reader.atEnd()) throw new HistoryError("the history is empty");
  while (!reader.atEnd()) {
    const form = reader.read();
    if (Array.isArray(form.value)) {
      for (const item of form.value as readonly Edn[]) {
        const where = item instanceof EdnMap ? item : form;
        take(item, where.line, where.column);
      }
    } else take(form.value, form.line, form.column);
  }
  return events;
}

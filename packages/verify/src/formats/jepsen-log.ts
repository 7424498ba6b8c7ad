import { HistoryError, type HistoryEvent } from "../history.js";
import { EdnReader, Keyword, toPlain } from "./edn-reader.js";
import { toEvent } from "./event.js";

const MARK = /\bjepsen\.util\s+-\s+/;
/** What makes a `jepsen.util` line an operation: a process, then a keyword. */
const OPERATION = /^(?:\d+|:[\w.-]+)[\t ]+:/;
const FIELDS = /^(\S+)[\t ]+(\S+)[\t ]+(\S+)(?:[\t ]+(.*))?$/;

/**
 * Jepsen log lines, as Jepsen's `jepsen.util/log-op` writes them and as Knossos and Porcupine
 * keep their test histories:
 *
 *     INFO  jepsen.util - 2	:invoke	:cas	[3 0]
 *
 * After the logger's `jepsen.util - ` come the process, the type, the operation and its value in
 * EDN, separated by tabs (runs of spaces are accepted too); a further tab-separated field, the
 * error, is ignored. Lines of other loggers, and `jepsen.util` messages that do not start with a
 * process and a keyword, are skipped; an operation line that does not have that shape is an
 * error naming its line. The nemesis's lines (`:nemesis	:info	:start	nil`) are left out. An
 * event's time is its line number.
 *
 * @throws {HistoryError} naming the line (and column, inside a value).
 */
export function parseJepsenLog(text: string): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  let seen = 0;
  text.split("\n").forEach((rawLine, i) => {
    const line = i + 1;
    const mark = MARK.exec(rawLine);
    if (mark === null) return;
    const start = mark.index + mark[0].length;
    const body = rawLine.slice(start).replace(/\s+$/, "");
    if (!OPERATION.test(body)) return; // a jepsen.util message, not an operation
    seen++;
    const fail = (message: string): never => {
      throw new HistoryError(`line ${line}: ${message}`, { line });
    };
    const fields = FIELDS.exec(body);
    if (fields === null) return fail("expected <process> :<type> :<f> <value> after jepsen.util -");
    const [, process, type, f, valueText] = fields as unknown as [
      string,
      string,
      string,
      string,
      string | undefined,
    ];
    if (process.startsWith(":")) return; // :nemesis, not a client
    if (!/^:[\w-]+$/.test(type)) fail(`type must be a keyword such as :invoke, got "${type}"`);
    if (!/^:[\w./-]+$/.test(f)) fail(`f must be a keyword such as :read, got "${f}"`);
    let value: unknown = null;
    if (valueText !== undefined && valueText !== "") {
      const column = start + body.length - valueText.length + 1;
      const reader = new EdnReader(valueText, { line, column });
      const read = reader.read();
      const rest = valueText.slice(reader.offset);
      // After a tab comes Jepsen's error field; anything else after the value is a mistake.
      if (rest.trim() !== "" && !rest.startsWith("\t"))
        fail(`unexpected "${rest.trim()}" after the value`);
      value = read.value instanceof Keyword ? read.value.name : toPlain(read.value);
    }
    events.push(
      toEvent(
        { process: Number(process), type: type.slice(1), f: f.slice(1), value, time: line },
        `line ${line}`,
        line,
      ),
    );
  });
  if (seen === 0)
    throw new HistoryError(
      "no Jepsen operation lines found (expected `jepsen.util - <process>\\t:<type>\\t:<f>\\t<value>`)",
    );
  return events;
}

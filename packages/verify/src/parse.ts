import { HistoryError, type EventType, type HistoryEvent } from "./history.js";

const TYPES: readonly string[] = ["invoke", "ok", "fail", "info"];

function event(raw: Record<string, unknown>, where: string): HistoryEvent {
  const type = raw["type"];
  const process = raw["process"];
  const f = raw["f"];
  if (typeof type !== "string" || !TYPES.includes(type))
    throw new HistoryError(`${where}: type must be one of ${TYPES.join(", ")}`);
  if (typeof process !== "number" && typeof process !== "string")
    throw new HistoryError(`${where}: process must be a number or string`);
  if (typeof f !== "string") throw new HistoryError(`${where}: f must be a string`);
  const key = raw["key"];
  const time = raw["time"];
  if (key !== undefined && key !== null && typeof key !== "string" && typeof key !== "number") {
    throw new HistoryError(`${where}: key must be a string or number`);
  }
  if (time !== undefined && (typeof time !== "number" || !Number.isFinite(time)))
    throw new HistoryError(`${where}: time must be a number`);
  return {
    process,
    type: type as EventType,
    f,
    value: raw["value"] ?? null,
    ...(key === undefined || key === null ? {} : { key: String(key) }),
    ...(time === undefined ? {} : { time }),
  };
}

/**
 * Strata's JSON history: an array (or `{ "history": [...] }`) of events
 * `{ "process": 0, "type": "invoke" | "ok" | "fail" | "info", "f": "read" | "write" | "cas",
 *    "value": ..., "key"?: "k", "time"?: 12.5 }`; `cas` values are `[expected, new]`.
 */
export function parseJsonHistory(text: string): HistoryEvent[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new HistoryError(
      `not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const list = Array.isArray(data) ? data : (data as { history?: unknown } | null)?.history;
  if (!Array.isArray(list))
    throw new HistoryError("expected an array of events (or { history: [...] })");
  return list.map((raw: unknown, i) => {
    if (typeof raw !== "object" || raw === null)
      throw new HistoryError(`event ${i}: expected an object`);
    return event(raw as Record<string, unknown>, `event ${i}`);
  });
}

// ---- EDN (the subset Jepsen histories use) ---------------------------------------------------

type Edn = null | boolean | number | string | { keyword: string } | Edn[] | Map<string, Edn>;

class EdnReader {
  private pos = 0;
  private readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  private where(): string {
    const before = this.text.slice(0, this.pos);
    const line = before.split("\n").length;
    const column = this.pos - before.lastIndexOf("\n");
    return `line ${line}, column ${column}`;
  }
  private fail(message: string): never {
    throw new HistoryError(`EDN ${this.where()}: ${message}`);
  }
  private skip(): void {
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) return;
      if (c === ";") {
        while (this.pos < this.text.length && this.text[this.pos] !== "\n") this.pos++;
      } else if (/[\s,]/.test(c)) this.pos++;
      else return;
    }
  }
  atEnd(): boolean {
    this.skip();
    return this.pos >= this.text.length;
  }
  read(): Edn {
    this.skip();
    const c = this.text[this.pos];
    if (c === undefined) this.fail("unexpected end of input");
    if (c === "{") return this.readMap();
    if (c === "[" || c === "(") return this.readSeq(c === "[" ? "]" : ")");
    if (c === '"') return this.readString();
    if (c === ":") {
      this.pos++;
      const name = this.token();
      if (name === "") this.fail("empty keyword");
      return { keyword: name };
    }
    if (c === "#") this.fail("tagged literals and sets are not supported");
    const token = this.token();
    if (token === "nil") return null;
    if (token === "true") return true;
    if (token === "false") return false;
    if (/^[-+]?\d+N?$/.test(token)) return Number(token.replace(/N$/, ""));
    if (/^[-+]?\d*\.\d+(e[-+]?\d+)?M?$/i.test(token)) return Number(token.replace(/M$/, ""));
    if (token === "") this.fail(`unexpected character "${c}"`);
    this.fail(`unsupported value "${token}"`);
  }
  private token(): string {
    const start = this.pos;
    while (this.pos < this.text.length && !/[\s,{}[\]()";]/.test(this.text[this.pos] as string))
      this.pos++;
    return this.text.slice(start, this.pos);
  }
  private readString(): string {
    this.pos++;
    let out = "";
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined) this.fail("unterminated string");
      if (c === '"') return out;
      if (c === "\\") {
        const e = this.text[this.pos++];
        out += e === "n" ? "\n" : e === "t" ? "\t" : (e ?? "");
      } else out += c;
    }
  }
  private readSeq(close: string): Edn[] {
    this.pos++;
    const items: Edn[] = [];
    for (;;) {
      this.skip();
      if (this.text[this.pos] === close) {
        this.pos++;
        return items;
      }
      if (this.pos >= this.text.length) this.fail(`missing "${close}"`);
      items.push(this.read());
    }
  }
  private readMap(): Map<string, Edn> {
    this.pos++;
    const map = new Map<string, Edn>();
    for (;;) {
      this.skip();
      if (this.text[this.pos] === "}") {
        this.pos++;
        return map;
      }
      if (this.pos >= this.text.length) this.fail('missing "}"');
      const key = this.read();
      if (typeof key !== "object" || key === null || !("keyword" in key))
        this.fail("map keys must be keywords");
      map.set(key.keyword, this.read());
    }
  }
}

function plain(value: Edn): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [k, plain(v)]));
  if (typeof value === "object" && value !== null) return value.keyword;
  return value;
}

/** Jepsen's EDN history: a sequence of maps such as `{:process 0, :type :invoke, :f :write, :value 3}`. */
export function parseEdnHistory(text: string): HistoryEvent[] {
  const reader = new EdnReader(text);
  const events: HistoryEvent[] = [];
  const take = (item: Edn, i: number): void => {
    if (!(item instanceof Map)) throw new HistoryError(`EDN event ${i}: expected a map`);
    events.push(event(plain(item) as Record<string, unknown>, `EDN event ${i}`));
  };
  while (!reader.atEnd()) {
    const item = reader.read();
    if (Array.isArray(item)) item.forEach((x, i) => take(x, events.length + i));
    else take(item, events.length);
  }
  return events;
}

/**
 * Jepsen log lines: `INFO  jepsen.util - 2	:invoke	:cas	[3 0]` — tab-separated process, type,
 * f and value after the logger's prefix. Lines without that shape are ignored.
 */
export function parseJepsenLog(text: string): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  text.split("\n").forEach((line, i) => {
    const match = /jepsen\.util\s+-\s+(\S+)\t:(\w+)\t:([\w-]+)(?:\t(.*))?$/.exec(line.trimEnd());
    if (match === null) return;
    const [, process, type, f, rawValue] = match as unknown as [
      string,
      string,
      string,
      string,
      string | undefined,
    ];
    let value: unknown = null;
    if (rawValue !== undefined && rawValue.trim() !== "") {
      try {
        value = plain(new EdnReader(rawValue).read());
      } catch (error) {
        throw new HistoryError(
          `line ${i + 1}: bad value "${rawValue}": ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    events.push(
      event(
        { process: /^\d+$/.test(process) ? Number(process) : process, type, f, value, time: i },
        `line ${i + 1}`,
      ),
    );
  });
  if (events.length === 0)
    throw new HistoryError(
      "no Jepsen log lines found (expected `jepsen.util - <process>\\t:<type>\\t:<f>\\t<value>`)",
    );
  return events;
}

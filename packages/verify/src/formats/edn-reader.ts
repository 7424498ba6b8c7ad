import { HistoryError } from "../history.js";

/**
 * A strict reader for the part of EDN (github.com/edn-format/edn) that Jepsen histories use:
 * `nil`, `true`, `false`, integers, decimals, strings, keywords, vectors, lists and maps, with
 * `;` comments and commas as whitespace. Anything else — sets, tagged literals (`#inst`),
 * symbols, characters, ratios, integers JavaScript cannot hold exactly — is refused with its
 * line and column, rather than guessed at.
 */

/** An EDN keyword such as `:invoke`; `name` is without the colon. */
export class Keyword {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/** An EDN map; keys are scalars (keywords, strings, numbers), as in Jepsen's histories. */
export class EdnMap {
  readonly entries: ReadonlyMap<string, { readonly key: EdnScalar; readonly value: Edn }>;
  /** Where the map's `{` is (1-based). */
  readonly line: number;
  readonly column: number;
  constructor(
    entries: ReadonlyMap<string, { readonly key: EdnScalar; readonly value: Edn }>,
    where: { readonly line: number; readonly column: number },
  ) {
    this.entries = entries;
    this.line = where.line;
    this.column = where.column;
  }
  /** The value under keyword `:name`. */
  get(name: string): Edn | undefined {
    return this.entries.get(keywordKey(name))?.value;
  }
}

export type EdnScalar = null | boolean | number | string | Keyword;
export type Edn = EdnScalar | readonly Edn[] | EdnMap;

/** A value read, with where it started. */
export interface Located {
  readonly value: Edn;
  readonly line: number;
  readonly column: number;
}

const keywordKey = (name: string): string => `:${name}`;

function scalarKey(key: EdnScalar): string {
  if (key instanceof Keyword) return keywordKey(key.name);
  if (typeof key === "string") return JSON.stringify(key);
  return String(key);
}

const DELIMITER = /[\s,{}[\]()";]/;
const INTEGER = /^[-+]?(0|[1-9]\d*)N?$/;
const DECIMAL = /^[-+]?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?M?$/;
const KEYWORD = /^[A-Za-z*+!_?<>=.\-$%&][\w*+!?<>=.\-$%&:#'/]*$/;
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  n: "\n",
  t: "\t",
  r: "\r",
  b: "\b",
  f: "\f",
};

/** Reads EDN text form by form. Positions in errors are 1-based and offset by `origin`. */
export class EdnReader {
  private pos = 0;
  private lineStarts: number[] | undefined;
  private readonly text: string;
  private readonly origin: { readonly line: number; readonly column: number };

  constructor(
    text: string,
    origin: { readonly line: number; readonly column: number } = { line: 1, column: 1 },
  ) {
    this.text = text;
    this.origin = origin;
  }

  /** How far the reader has read, in characters. */
  get offset(): number {
    return this.pos;
  }

  /** True when only whitespace and comments remain. */
  atEnd(): boolean {
    this.skip();
    return this.pos >= this.text.length;
  }

  /** Reads the next form. */
  read(): Located {
    this.skip();
    const start = this.pos;
    const where = this.place(start);
    return { value: this.readValue(start), ...where };
  }

  /** Line and column of an offset in the text. */
  place(offset: number): { line: number; column: number } {
    if (this.lineStarts === undefined) {
      const starts = [0];
      for (let i = this.text.indexOf("\n"); i !== -1; i = this.text.indexOf("\n", i + 1))
        starts.push(i + 1);
      this.lineStarts = starts;
    }
    const starts = this.lineStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    const column = offset - (starts[lo] as number);
    return lo === 0
      ? { line: this.origin.line, column: this.origin.column + column }
      : { line: this.origin.line + lo, column: column + 1 };
  }

  private fail(message: string, offset = this.pos): never {
    const { line, column } = this.place(offset);
    throw new HistoryError(`EDN line ${line}, column ${column}: ${message}`, { line, column });
  }

  private skip(): void {
    while (this.pos < this.text.length) {
      const c = this.text[this.pos] as string;
      if (c === ";") {
        const end = this.text.indexOf("\n", this.pos);
        this.pos = end === -1 ? this.text.length : end;
      } else if (c === "," || /\s/.test(c)) this.pos++;
      else return;
    }
  }

  private readValue(start: number): Edn {
    const c = this.text[this.pos];
    if (c === undefined) this.fail("unexpected end of input");
    switch (c) {
      case "{":
        return this.readMap(start);
      case "[":
        return this.readSequence("]", start);
      case "(":
        return this.readSequence(")", start);
      case '"':
        return this.readString(start);
      case ":":
        return this.readKeyword(start);
      case "}":
      case "]":
      case ")":
        return this.fail(`unexpected "${c}"`);
      case "#":
        return this.fail(
          this.text[this.pos + 1] === "{"
            ? "sets (#{...}) are not supported in histories"
            : `tagged literals (${this.token() || "#"}) are not supported in histories`,
          start,
        );
      case "\\":
        return this.fail("characters (\\c) are not supported in histories");
      default:
        return this.readAtom(start);
    }
  }

  private token(): string {
    const start = this.pos;
    while (this.pos < this.text.length && !DELIMITER.test(this.text[this.pos] as string))
      this.pos++;
    return this.text.slice(start, this.pos);
  }

  private readKeyword(start: number): Keyword {
    this.pos++;
    const name = this.token();
    if (!KEYWORD.test(name)) this.fail(`malformed keyword ":${name}"`, start);
    return new Keyword(name);
  }

  private readAtom(start: number): EdnScalar {
    const token = this.token();
    if (token === "nil") return null;
    if (token === "true") return true;
    if (token === "false") return false;
    if (INTEGER.test(token)) {
      const n = Number(token.replace(/N$/, ""));
      if (!Number.isSafeInteger(n))
        this.fail(`integer ${token} is too large to be represented exactly`, start);
      return n;
    }
    if (DECIMAL.test(token)) return Number(token.replace(/M$/, ""));
    if (token === "") this.fail(`unexpected character "${this.text[this.pos] as string}"`, start);
    if (/^[-+]?\d/.test(token)) this.fail(`malformed number "${token}"`, start);
    this.fail(`unexpected symbol "${token}" (strings are quoted, keywords start with ":")`, start);
  }

  private readString(start: number): string {
    this.pos++;
    let out = "";
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined) this.fail("unterminated string", start);
      if (c === '"') return out;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = this.text[this.pos++];
      if (e === "u") {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("malformed \\u escape", this.pos - 2);
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
        continue;
      }
      const escaped = e === undefined ? undefined : ESCAPES[e];
      if (escaped === undefined) this.fail(`unknown escape "\\${e ?? ""}" in string`, this.pos - 2);
      out += escaped;
    }
  }

  private readSequence(close: "]" | ")", start: number): Edn[] {
    this.pos++;
    const items: Edn[] = [];
    for (;;) {
      this.skip();
      if (this.pos >= this.text.length)
        this.fail(`missing "${close}" for the one opened here`, start);
      if (this.text[this.pos] === close) {
        this.pos++;
        return items;
      }
      items.push(this.readValue(this.pos));
    }
  }

  private readMap(start: number): EdnMap {
    this.pos++;
    const entries = new Map<string, { key: EdnScalar; value: Edn }>();
    for (;;) {
      this.skip();
      if (this.pos >= this.text.length) this.fail('missing "}" for the map opened here', start);
      if (this.text[this.pos] === "}") {
        this.pos++;
        return new EdnMap(entries, this.place(start));
      }
      const keyAt = this.pos;
      const key = this.readValue(keyAt);
      if (Array.isArray(key) || key instanceof EdnMap)
        this.fail("map keys must be keywords, strings or numbers", keyAt);
      const k = scalarKey(key as EdnScalar);
      if (entries.has(k)) this.fail(`duplicate map key ${k}`, keyAt);
      this.skip();
      if (this.pos >= this.text.length || this.text[this.pos] === "}")
        this.fail(`map key ${k} has no value`, keyAt);
      entries.set(k, { key: key as EdnScalar, value: this.readValue(this.pos) });
    }
  }
}

/**
 * Plain JavaScript for an EDN value: keywords become their names (`:write` → `"write"`),
 * vectors and lists arrays, maps objects keyed by the key's name.
 */
export function toPlain(value: Edn): unknown {
  if (value instanceof Keyword) return value.name;
  if (value instanceof EdnMap) {
    const out: Record<string, unknown> = {};
    for (const { key, value: v } of value.entries.values())
      out[key instanceof Keyword ? key.name : String(key)] = toPlain(v);
    return out;
  }
  if (Array.isArray(value)) return (value as readonly Edn[]).map(toPlain);
  return value;
}

import type { Operation } from "./history.js";
import type { Model } from "./model.js";

/**
 * A value in canonical JSON: object keys sorted, `undefined` as `null` (nil), so that values that
 * mean the same compare equal however they were written.
 */
export function canonicalValue(value: unknown): string {
  if (value === undefined || value === null) return "null";
  if (typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalValue).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalValue(v)}`).join(",")}}`;
}

/** Whether two register values are the same value (deep equality; `undefined` is nil). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || a === null) return b === undefined || b === null;
  if (typeof a !== "object" || typeof b !== "object" || b === null) return false;
  return canonicalValue(a) === canonicalValue(b);
}

/** FNV-1a over a string, 32 bits. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function hashValue(value: unknown): number {
  if (typeof value === "number" && Number.isInteger(value))
    return Math.imul(value | 0, 0x9e3779b1) >>> 0;
  return hashString(canonicalValue(value));
}

const casInput = (op: Operation): readonly [unknown, unknown] =>
  Array.isArray(op.input) ? (op.input as [unknown, unknown]) : [undefined, undefined];

const show = (value: unknown): string => (value === undefined ? "?" : canonicalValue(value));

/** How the register model reads a history. */
export interface RegisterModelOptions {
  /**
   * What a failed `cas` says. `"mismatch"` (the default): the compare ran and did not match, an
   * observation that the value was not `expected`. `"no-effect"`: only that it did not take
   * effect — for clients that also report other definite errors as `fail`, as some Jepsen
   * clients do (Knossos reads histories this way).
   */
  readonly failedCas?: "mismatch" | "no-effect";
}

/**
 * Per-key registers with `read`, `write` and `cas` (input `[expected, new]`), as Jepsen records
 * them. Registers start at `initial` (nil unless given).
 *
 * - `read` ok: returned the current value. A read that failed or whose outcome is unknown
 *   constrains nothing.
 * - `write` ok or info: sets the value (info: perhaps). A failed write did not happen.
 * - `cas` ok: the value was `expected` and became `new`. `fail`: the compare ran and did not
 *   match — an observation that the value was not `expected`. `info`: either of the two.
 *
 * @example
 * checkLinearizable(pairOperations(events), registerModel(0));
 */
export function registerModel(
  initial: unknown = null,
  options: RegisterModelOptions = {},
): Model<unknown> {
  const failedCasObserves = (options.failedCas ?? "mismatch") === "mismatch";
  return {
    init: () => initial ?? null,
    equal: sameValue,
    hash: hashValue,
    partition(ops) {
      const byKey = new Map<string, Operation[]>();
      for (const op of ops) {
        const list = byKey.get(op.key);
        if (list === undefined) byKey.set(op.key, [op]);
        else list.push(op);
      }
      return byKey;
    },
    irrelevant: (op) =>
      op.outcome === "fail"
        ? op.f !== "cas" || !failedCasObserves
        : op.f === "read" && op.outcome !== "ok",
    observation: (op) => op.f === "read" || (op.f === "cas" && op.outcome === "fail"),
    blind: (op) => op.f === "write",
    removable(remain) {
      // Drop writes and cas whose values no remaining operation reads or compares against: in a
      // linearization, until the next change of value only remaining operations that see no
      // difference run after them — unless one is a failed cas, whose compare might then match.
      const mentioned = new Set<string>();
      let failedCas = false;
      for (const op of remain) {
        if (op.f === "read") mentioned.add(canonicalValue(op.output));
        if (op.f === "cas") mentioned.add(canonicalValue(casInput(op)[0]));
        if (op.f === "cas" && op.outcome === "fail") failedCas = true;
      }
      return (op) => {
        if (op.f === "read" || (op.f === "cas" && op.outcome === "fail")) return true;
        if (failedCas) return false;
        return !mentioned.has(canonicalValue(op.f === "write" ? op.input : casInput(op)[1]));
      };
    },
    validate(op) {
      switch (op.f) {
        case "read":
        case "write":
          return undefined;
        case "cas":
          return Array.isArray(op.input) && op.input.length === 2
            ? undefined
            : `cas takes [expected, new], got ${show(op.input)}`;
        default:
          return `unknown operation "${op.f}" (a register knows read, write and cas)`;
      }
    },
    step(state, op) {
      switch (op.f) {
        case "read":
          // Only ok reads reach the search (the others are irrelevant).
          return sameValue(op.output, state) ? { ok: true, state } : { ok: false };
        case "write":
          return { ok: true, state: op.input ?? null };
        case "cas": {
          const [expected, next] = op.input as readonly [unknown, unknown];
          const matches = sameValue(state, expected);
          switch (op.outcome) {
            case "ok":
              return matches ? { ok: true, state: next ?? null } : { ok: false };
            case "fail":
              return matches ? { ok: false } : { ok: true, state };
            case "info":
              return { ok: true, state: matches ? (next ?? null) : state };
          }
          break;
        }
      }
      return { ok: false };
    },
    describe(op) {
      switch (op.f) {
        case "read":
          return `read -> ${show(op.output)}`;
        case "write":
          return `write ${show(op.input)}`;
        case "cas": {
          const [expected, next] = Array.isArray(op.input) ? (op.input as unknown[]) : [];
          return `cas ${show(expected)} -> ${show(next)}`;
        }
        default:
          return `${op.f} ${show(op.input)}`;
      }
    },
    describeState: show,
  };
}

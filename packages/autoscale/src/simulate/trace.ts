import { open } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { StrataError } from "@strata/core";

/** One point of a load trace: from `second` on, `rps` requests per second arrive. */
export interface TracePoint {
  readonly second: number;
  readonly rps: number;
}

/** A load trace: points in strictly increasing time order, at least two. */
export type Trace = readonly TracePoint[];

/** Largest trace accepted, in bytes (a year at one-minute resolution fits with room to spare). */
export const MAX_TRACE_BYTES = 16 * 1024 * 1024;
/** Most points accepted. */
export const MAX_TRACE_POINTS = 1_000_000;
/** Longest trace accepted: 90 days, so a replay's cost stays bounded. */
export const MAX_TRACE_SECONDS = 90 * 86_400;
/** Highest load accepted (requests per second). */
export const MAX_TRACE_RPS = 1e9;

/** The traces shipped with the package. */
export const BUILTIN_TRACES = ["diurnal", "black-friday", "flash-crowds"] as const;

const NUMBER = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", message);
}

/**
 * Parses a load trace: CSV lines `seconds,requests per second`, seconds strictly increasing,
 * both non-negative decimals. Blank lines and `#` comments are skipped; a first line that is a
 * header (`seconds,rps`) is too. Anything else throws `INVALID_ARGUMENT` naming the line.
 *
 * @example
 * parseTrace("seconds,rps\n0,100\n60,120\n"); // [{ second: 0, rps: 100 }, { second: 60, rps: 120 }]
 */
export function parseTrace(csv: string): Trace {
  if (csv.length > MAX_TRACE_BYTES) {
    throw invalid(`trace is larger than ${MAX_TRACE_BYTES} bytes`);
  }
  const points: TracePoint[] = [];
  const lines = csv.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    const where = `trace line ${i + 1}`;
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(",").map((field) => field.trim());
    if (points.length === 0 && fields.length === 2 && !NUMBER.test(fields[0] ?? "")) {
      if (/^[a-z_ ]+$/i.test(fields[0] ?? "") && /^[a-z_/ ]+$/i.test(fields[1] ?? "")) continue;
    }
    if (fields.length !== 2) {
      throw invalid(`${where}: expected "seconds,rps", got ${fields.length} fields`);
    }
    const [secondText = "", rpsText = ""] = fields;
    if (!NUMBER.test(secondText)) {
      throw invalid(
        `${where}: seconds must be a non-negative number, got ${JSON.stringify(secondText.slice(0, 30))}`,
      );
    }
    if (!NUMBER.test(rpsText)) {
      throw invalid(
        `${where}: rps must be a non-negative number, got ${JSON.stringify(rpsText.slice(0, 30))}`,
      );
    }
    const second = Number(secondText);
    const rps = Number(rpsText);
    if (second > MAX_TRACE_SECONDS) {
      throw invalid(`${where}: seconds must be at most ${MAX_TRACE_SECONDS}, got ${secondText}`);
    }
    if (!Number.isFinite(rps) || rps > MAX_TRACE_RPS) {
      throw invalid(`${where}: rps must be at most ${MAX_TRACE_RPS}, got ${rpsText}`);
    }
    const previous = points.at(-1);
    if (previous !== undefined && second <= previous.second) {
      throw invalid(`${where}: seconds must increase, got ${second} after ${previous.second}`);
    }
    if (points.length >= MAX_TRACE_POINTS) {
      throw invalid(`${where}: a trace holds at most ${MAX_TRACE_POINTS} points`);
    }
    points.push({ second, rps });
  }
  if (points.length < 2) throw invalid(`trace needs at least two points, got ${points.length}`);
  return points;
}

/** The path of a shipped trace. */
export function builtinTracePath(name: (typeof BUILTIN_TRACES)[number]): string {
  return fileURLToPath(new URL(`../../traces/${name}.csv`, import.meta.url));
}

/**
 * Reads and parses a trace: a shipped trace by name (`diurnal`, `black-friday`,
 * `flash-crowds`) or a CSV file by path. Files larger than {@link MAX_TRACE_BYTES} are refused
 * without being read whole.
 */
export async function loadTrace(nameOrPath: string): Promise<Trace> {
  const builtin = (BUILTIN_TRACES as readonly string[]).includes(nameOrPath);
  const path = builtin
    ? builtinTracePath(nameOrPath as (typeof BUILTIN_TRACES)[number])
    : nameOrPath;
  let text: string;
  try {
    const file = await open(path, "r");
    try {
      const info = await file.stat();
      if (!info.isFile()) throw invalid(`trace ${path} is not a file`);
      if (info.size > MAX_TRACE_BYTES) {
        throw invalid(`trace ${path} is ${info.size} bytes; at most ${MAX_TRACE_BYTES} are read`);
      }
      text = await file.readFile("utf8");
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof StrataError) throw error;
    const code = (error as { code?: unknown }).code;
    throw new StrataError(
      "NOT_FOUND",
      `cannot read trace ${path}${typeof code === "string" ? ` (${code})` : ""}`,
      { cause: error },
    );
  }
  try {
    return parseTrace(text);
  } catch (error) {
    if (error instanceof StrataError) {
      throw new StrataError(error.code, `${path}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

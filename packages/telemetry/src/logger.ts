import { trace } from "@opentelemetry/api";
import type { Logger } from "@strata/core";
import { StrataError } from "@strata/core";
import { pino, type DestinationStream, type Level, type Logger as PinoLogger } from "pino";

/** Fields whose values never reach a log line (with `*.` variants one level down). */
export const DEFAULT_REDACT: readonly string[] = [
  "password",
  "secret",
  "token",
  "accessToken",
  "refreshToken",
  "apiKey",
  "authorization",
  "cookie",
  "cardNumber",
  "cvv",
  "privateKey",
  "clientSecret",
  "headers.authorization",
  "headers.cookie",
  "headers['set-cookie']",
];

const LEVELS: ReadonlySet<string> = new Set([
  "trace",
  "debug",
  "info",
  "warn",
  "error",
  "fatal",
  "silent",
]);

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Default level (`STRATA_LOG_LEVEL`; default `info`). */
  readonly level?: Level | "silent";
  /**
   * Levels per module: a child logger bound with `{ module: "events" }` (or a service name bound
   * as `{ service: "orders" }`) logs at this level. From `STRATA_LOG_LEVELS=events=debug,orders=warn`
   * when not given.
   */
  readonly modules?: Readonly<Record<string, Level | "silent">>;
  /** More field paths to redact (pino path syntax), added to {@link DEFAULT_REDACT}. */
  readonly redact?: readonly string[];
  /** Fields on every line, e.g. `{ node: "n1" }`. */
  readonly base?: Readonly<Record<string, unknown>>;
  /** Where lines go; default stdout. */
  readonly destination?: DestinationStream;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * A pino JSON logger shaped as Strata's Logger port: every line carries the active span's
 * `trace_id` and `span_id` (so logs join traces), node and service fields from child bindings,
 * secrets redacted, and a level per module.
 *
 * @example
 * const logger = createLogger({ modules: { events: "debug" } });
 * const node = createNode({ transport, logger });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const level = checkLevel(options.level ?? env.STRATA_LOG_LEVEL ?? "info", "level");
  const modules = options.modules ?? parseModules(env.STRATA_LOG_LEVELS);
  for (const [name, value] of Object.entries(modules)) checkLevel(value, `modules.${name}`);
  const paths = [...DEFAULT_REDACT, ...(options.redact ?? [])];
  const redact = [
    ...new Set([...paths, ...paths.filter((p) => !p.includes(".")).map((p) => `*.${p}`)]),
  ];
  const root = pino(
    {
      level,
      base: { ...options.base },
      redact: { paths: redact, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const span = trace.getActiveSpan();
        if (span === undefined) return {};
        const ctx = span.spanContext();
        return { trace_id: ctx.traceId, span_id: ctx.spanId, trace_flags: `0${ctx.traceFlags}` };
      },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
  return wrap(root, modules);
}

function wrap(logger: PinoLogger, modules: Readonly<Record<string, string>>): Logger {
  return {
    debug: (fields, message) => logger.debug(fields, message),
    info: (fields, message) => logger.info(fields, message),
    warn: (fields, message) => logger.warn(fields, message),
    error: (fields, message) => logger.error(fields, message),
    child(bindings: object) {
      const b = bindings as Record<string, unknown>;
      const name =
        typeof b.module === "string"
          ? b.module
          : typeof b.service === "string"
            ? b.service
            : undefined;
      const moduleLevel = name === undefined ? undefined : modules[name];
      return wrap(
        moduleLevel === undefined ? logger.child(b) : logger.child(b, { level: moduleLevel }),
        modules,
      );
    },
  };
}

function checkLevel(value: string, what: string): Level | "silent" {
  if (!LEVELS.has(value)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `log ${what} must be one of ${[...LEVELS].join(", ")}; got ${JSON.stringify(value)}`,
    );
  }
  return value as Level | "silent";
}

function parseModules(text: string | undefined): Record<string, Level | "silent"> {
  const out: Record<string, Level | "silent"> = {};
  if (text === undefined || text.trim() === "") return out;
  for (const part of text.split(",")) {
    const [name, value] = part.split("=").map((s) => s.trim());
    if (name === undefined || name === "" || value === undefined) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `STRATA_LOG_LEVELS must look like "events=debug,orders=warn"; got ${JSON.stringify(text)}`,
      );
    }
    out[name] = checkLevel(value, `level of ${name}`);
  }
  return out;
}

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./io.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses a command's arguments strictly; unknown flags and missing values are usage errors. */
export function parse<O extends Options>(
  argv: readonly string[],
  options: O,
): {
  values: ReturnType<
    typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>
  >["values"];
  positionals: string[];
} {
  try {
    const parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError(
      error instanceof Error ? error.message.replace(/^TypeError \[\w+\]: /, "") : String(error),
    );
  }
}

/** A positive integer flag, or a usage error naming the flag. */
export function positiveInt(
  name: string,
  value: string | undefined,
  fallback: number,
  max = 1_000_000,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`--${name} must be an integer from 1 to ${max}, got "${value}"`);
  }
  return Number(value);
}

/** A positive number flag (decimals allowed), or a usage error. */
export function positiveNumber(
  name: string,
  value: string | undefined,
  fallback: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0 || n > max) {
    throw new UsageError(
      `--${name} must be a number greater than 0 and at most ${max}, got "${value}"`,
    );
  }
  return n;
}

/** The NATS URL from --nats or STRATA_NATS_URL; undefined when neither is set. */
export function natsUrl(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const url = flag ?? env["STRATA_NATS_URL"];
  return url === undefined || url.trim() === "" ? undefined : url;
}

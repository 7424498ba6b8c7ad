import { defaultRetryable, isErrorCode, type ErrorCode } from "./codes.js";

const BRAND = Symbol.for("strata.error");

/** Structured, JSON-safe details attached to an error. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/** Options for {@link StrataError}. */
export interface StrataErrorOptions {
  /** Overrides the code's default retryability. */
  readonly retryable?: boolean;
  /** Structured details; they cross the wire, so keep secrets and internals out. */
  readonly details?: ErrorDetails;
  /** The underlying error; stays in this process, never crosses the wire. */
  readonly cause?: unknown;
}

/**
 * The one error type Strata raises and callers catch.
 *
 * @example
 * throw new StrataError("NOT_FOUND", `product ${id} not found`, { details: { id } });
 */
export class StrataError<C extends ErrorCode = ErrorCode> extends Error {
  override readonly name = "StrataError";
  /** A brand shared by every copy of this package, so checks work across duplicated installs. */
  readonly [BRAND] = true;
  readonly code: C;
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  constructor(code: C, message: string, options: StrataErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? defaultRetryable(code);
    this.details = options.details ?? {};
  }

  /** The form that crosses the wire: code, message, retryable flag, details; never a stack. */
  toWire(): WireError {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      details: this.details,
    };
  }
}

/** An error as it travels between nodes. */
export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  readonly details: ErrorDetails;
}

/** True for a {@link StrataError}, optionally with one of the given codes. */
export function isStrataError<C extends ErrorCode>(
  value: unknown,
  ...codes: C[]
): value is StrataError<C> {
  const branded =
    value instanceof StrataError ||
    (typeof value === "object" &&
      value !== null &&
      (value as Record<symbol, unknown>)[BRAND] === true);
  return branded && (codes.length === 0 || codes.includes((value as StrataError).code as C));
}

/**
 * Normalises anything thrown into an Error, so boundaries never handle strings or `undefined`.
 */
export function ensureError(value: unknown): Error {
  if (value instanceof Error) return value;
  let text: string;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return new Error(`non-error thrown: ${text}`, { cause: value });
}

/**
 * Converts anything thrown into a {@link StrataError}. Errors that are not already Strata errors
 * become `INTERNAL` with a generic message, so that internals never reach a caller.
 */
export function toStrataError(value: unknown, context = "call"): StrataError {
  if (isStrataError(value)) return value;
  if (
    value instanceof DOMException &&
    (value.name === "AbortError" || value.name === "TimeoutError")
  ) {
    return value.name === "TimeoutError"
      ? new StrataError("DEADLINE_EXCEEDED", `${context}: deadline exceeded`, { cause: value })
      : new StrataError("CANCELLED", `${context}: cancelled`, { cause: value });
  }
  return new StrataError("INTERNAL", `${context}: internal error`, { cause: ensureError(value) });
}

const MAX_MESSAGE = 2048;

/**
 * Rebuilds an error received from the wire. Anything that does not look like a wire error becomes
 * `INTERNAL` ("malformed error"), so a hostile peer cannot make us throw something else.
 */
export function fromWireError(value: unknown): StrataError {
  if (typeof value !== "object" || value === null) {
    return new StrataError("INTERNAL", "malformed error from peer");
  }
  const raw = value as Record<string, unknown>;
  const code = isErrorCode(raw["code"]) ? raw["code"] : "UNKNOWN";
  const message =
    typeof raw["message"] === "string" ? raw["message"].slice(0, MAX_MESSAGE) : "error from peer";
  const details =
    typeof raw["details"] === "object" && raw["details"] !== null && !Array.isArray(raw["details"])
      ? (raw["details"] as ErrorDetails)
      : {};
  const retryable =
    typeof raw["retryable"] === "boolean" ? raw["retryable"] : defaultRetryable(code);
  return new StrataError(code, message, { retryable, details });
}

/**
 * The error-code catalogue. Codes follow gRPC's status set so that they map one to one onto
 * gRPC and HTTP gateways; `OK` is not an error and is left out.
 */
export const ERROR_CODES = [
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A stable error code from the catalogue; `switch (err.code)` over it is checked for exhaustiveness. */
export type ErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/** True when `value` is one of the catalogue's codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && CODE_SET.has(value);
}

/**
 * Whether an error with this code is worth retrying when nothing else is known. The retry policy
 * still retries only idempotent actions or calls that carry an idempotency key.
 */
export function defaultRetryable(code: ErrorCode): boolean {
  switch (code) {
    case "UNAVAILABLE":
    case "ABORTED":
    case "RESOURCE_EXHAUSTED":
      return true;
    case "CANCELLED":
    case "UNKNOWN":
    case "INVALID_ARGUMENT":
    case "DEADLINE_EXCEEDED":
    case "NOT_FOUND":
    case "ALREADY_EXISTS":
    case "PERMISSION_DENIED":
    case "FAILED_PRECONDITION":
    case "OUT_OF_RANGE":
    case "UNIMPLEMENTED":
    case "INTERNAL":
    case "DATA_LOSS":
    case "UNAUTHENTICATED":
      return false;
  }
}

/** HTTP status for each code, as gRPC-HTTP gateways map them. */
export function httpStatus(code: ErrorCode): number {
  switch (code) {
    case "CANCELLED":
      return 499;
    case "UNKNOWN":
    case "INTERNAL":
    case "DATA_LOSS":
      return 500;
    case "INVALID_ARGUMENT":
    case "OUT_OF_RANGE":
    case "FAILED_PRECONDITION":
      return 400;
    case "DEADLINE_EXCEEDED":
      return 504;
    case "NOT_FOUND":
      return 404;
    case "ALREADY_EXISTS":
    case "ABORTED":
      return 409;
    case "PERMISSION_DENIED":
      return 403;
    case "RESOURCE_EXHAUSTED":
      return 429;
    case "UNIMPLEMENTED":
      return 501;
    case "UNAVAILABLE":
      return 503;
    case "UNAUTHENTICATED":
      return 401;
  }
}

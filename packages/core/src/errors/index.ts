export { ERROR_CODES, defaultRetryable, httpStatus, isErrorCode } from "./codes.js";
export type { ErrorCode } from "./codes.js";
export {
  StrataError,
  ensureError,
  fromWireError,
  isStrataError,
  toStrataError,
} from "./strata-error.js";
export type { ErrorDetails, StrataErrorOptions, WireError } from "./strata-error.js";

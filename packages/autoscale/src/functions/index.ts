export { createFunction } from "./create-function.js";
export type {
  BlobFunctionOptions,
  EventFunctionOptions,
  FunctionOptions,
  StrataFunction,
} from "./create-function.js";
export type { BlobDeadLetter } from "./blob-trigger.js";
export type {
  FunctionContext,
  FunctionState,
  FunctionStats,
  LatencyStats,
  RetryBackoff,
} from "./pool.js";

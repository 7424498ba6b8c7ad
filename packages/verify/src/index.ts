/**
 * Strata's verification toolkit: histories and their file formats, sequential models, the
 * linearizability checker, and the `strata check` command.
 */
export { HistoryError, pairOperations } from "./history.js";
export type { EventType, HistoryEvent, Operation, Outcome } from "./history.js";
export {
  HISTORY_FORMATS,
  detectFormat,
  parseEdnHistory,
  parseHistory,
  parseJepsenLog,
  parseJsonHistory,
} from "./formats/index.js";
export type { HistoryFormat } from "./formats/index.js";
export type { Model, StepResult } from "./model.js";
export { registerModel } from "./register-model.js";
export type { RegisterModelOptions } from "./register-model.js";
export { checkLinearizable } from "./linearizable.js";
export type {
  CheckOptions,
  Counterexample,
  RegisterCheckOptions,
  Verdict,
} from "./linearizable.js";
export { CHECK_HELP, formatVerdict, runCheckCommand } from "./check-command.js";
export type { CheckIo } from "./check-command.js";

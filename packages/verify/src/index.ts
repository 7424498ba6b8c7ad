/** Strata's verification toolkit: histories, models, and the linearizability checker. */
export { HistoryError, pairOperations } from "./history.js";
export type { EventType, HistoryEvent, Operation } from "./history.js";
export { registerModel } from "./model.js";
export type { Model } from "./model.js";
export { checkLinearizable } from "./linearizable.js";
export type { Counterexample, Verdict } from "./linearizable.js";
export { parseEdnHistory, parseJepsenLog, parseJsonHistory } from "./parse.js";
export { CHECK_HELP, runCheckCommand } from "./check-command.js";

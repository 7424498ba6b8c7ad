/**
 * Strata's verification toolkit: histories and their file formats, a recorder for them, sequential
 * models, the linearizability checker, the set, bank and CRDT checkers, simulated workloads, and
 * the `strata check` command.
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
export { RecorderError, createRecorder } from "./recorder.js";
export type {
  ClassifyError,
  OperationHandle,
  RecordedEvent,
  RecordedOperation,
  Recorder,
} from "./recorder.js";
export { checkSet } from "./checkers/set.js";
export type { SetAnomaly, SetRecovered, SetVerdict } from "./checkers/set.js";
export { checkBank } from "./checkers/bank.js";
export type {
  BankAnomaly,
  BankFinalCheck,
  BankOptions,
  BankVerdict,
  LowerBound,
} from "./checkers/bank.js";
export { checkCounter } from "./checkers/counter.js";
export type { ConvergenceOptions, CounterAnomaly, CounterVerdict } from "./checkers/counter.js";
export { checkCrdtSet } from "./checkers/crdt-set.js";
export type { CrdtSetAnomaly, CrdtSetVerdict } from "./checkers/crdt-set.js";
export type { CheckerOptions, OperationRef, OutcomeCounts } from "./checkers/common.js";
export {
  seededRegisterPlans,
  simulateBankHistory,
  simulateCounterHistory,
  simulateRegisterHistory,
  simulateSetHistory,
} from "./generate.js";
export type {
  PlannedRegisterOp,
  RegisterSimulationOptions,
  SimulatedBank,
  WorkloadSimulationOptions,
} from "./generate.js";

/**
 * Strata's chaos bench: a cluster of real processes (NATS servers, Strata nodes) behind
 * fault-injecting proxies, nemeses, workloads that record histories, experiments as code and
 * their reports. The checkers themselves live in @strata/verify.
 */
export { startChaosCluster } from "./cluster.js";
export type { ChaosCluster, ChaosClusterOptions, ChaosNode, ChaosProcess } from "./cluster.js";
export {
  anyNode,
  anyServer,
  isolate,
  kill,
  latency,
  loss,
  partition,
  partitionRegions,
  pause,
  restart,
  skew,
} from "./faults.js";
export type { Fault, Target, Undo } from "./faults.js";
export { defineExperiment, serves, totalOutage } from "./experiment.js";
export type { AbortCondition, Experiment, Hypothesis, Step } from "./experiment.js";
export { Metrics } from "./metrics.js";
export type { OpOutcome, TimelinePoint, WindowStats } from "./metrics.js";
export { runExperiment, workloadByName } from "./runner.js";
export type { ExperimentReport, FaultRecord, HypothesisResult, RunOptions } from "./runner.js";
export { renderHtmlReport } from "./report.js";
export { BROKEN_SUITE, EXPERIMENTS, VERIFY_SUITE } from "./experiments/index.js";
export { CHAOS_HELP, loadExperiment, runChaosCommand } from "./command.js";
export type { ChaosIo } from "./command.js";
export { BREAKAGES, WORKLOADS } from "./services.js";
export type { Breakage, NodeConfig, WorkloadName } from "./services.js";
export { registerWorkload } from "./workloads/register.js";
export { bankWorkload } from "./workloads/bank.js";
export { setWorkload } from "./workloads/set.js";
export { crdtWorkload } from "./workloads/crdt.js";
export { counterWorkload } from "./workloads/counter.js";
export type { Workload, WorkloadContext, WorkloadVerdict } from "./workloads/workload.js";
export { skewedClock } from "./clock.js";

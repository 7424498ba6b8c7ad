/**
 * Strata's elastic scale: signals from the runtime, scaling policies (threshold, target tracking,
 * predictive), actuators (local processes, Kubernetes, a KEDA external scaler), event-triggered
 * functions with scale-to-zero and pre-warming, and a trace-driven simulator.
 */
export type {
  Actuator,
  ScalingBounds,
  ScalingDecision,
  ScalingPolicy,
  ServiceSignals,
} from "./types.js";
export { collectSignals } from "./signals.js";
export type { SignalSources } from "./signals.js";
export { createAutoscaler } from "./autoscaler.js";
export type {
  Autoscaler,
  AutoscalerOptions,
  RecordedDecision,
  ScaledService,
} from "./autoscaler.js";
export { createLocalActuator, processLauncher } from "./actuators/local.js";
export type {
  Launcher,
  LocalActuator,
  LocalActuatorOptions,
  Replica,
  SupervisedService,
} from "./actuators/local.js";
export {
  POLICY_TYPES,
  parsePolicyConfig,
  type PolicyConfig,
  type PolicyConfigInput,
  type PredictiveConfig,
  type ScalingMetric,
  type TargetTrackingConfig,
  type ThresholdConfig,
} from "./policies/config.js";
export type { PolicyOptions } from "./policies/common.js";
export { createPolicy } from "./policies/create-policy.js";
export { createThresholdPolicy } from "./policies/threshold.js";
export { createTargetTrackingPolicy } from "./policies/target-tracking.js";
export { createPredictivePolicy } from "./policies/predictive.js";
export { HoltWinters, type HoltWintersOptions } from "./policies/holt-winters.js";
export { DEFAULT_MODEL, type ServiceModel } from "./simulate/model.js";
export {
  compare,
  simulate,
  type SimulateOptions,
  type SimulatedPolicy,
  type SimulationResult,
} from "./simulate/simulate.js";
export {
  BUILTIN_TRACES,
  MAX_TRACE_BYTES,
  MAX_TRACE_POINTS,
  builtinTracePath,
  loadTrace,
  parseTrace,
  type Trace,
  type TracePoint,
} from "./simulate/trace.js";
export { createFunction } from "./functions/index.js";
export type {
  BlobDeadLetter,
  BlobFunctionOptions,
  EventFunctionOptions,
  FunctionContext,
  FunctionOptions,
  FunctionState,
  FunctionStats,
  LatencyStats,
  RetryBackoff,
  StrataFunction,
} from "./functions/index.js";
export { KUBERNETES_ACTUATOR_RBAC_RULE, createKubernetesActuator } from "./actuators/kubernetes.js";
export type {
  KubeConnection,
  KubernetesActuator,
  KubernetesActuatorEvent,
  KubernetesActuatorOptions,
  KubernetesCallOptions,
} from "./actuators/kubernetes.js";
export { KEDA_HTTP_PREFIX, kedaReading, startKedaExternalScaler } from "./actuators/keda.js";
export type {
  KedaExternalScaler,
  KedaExternalScalerOptions,
  KedaMetric,
  KedaReading,
} from "./actuators/keda.js";

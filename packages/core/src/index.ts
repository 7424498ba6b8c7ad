/**
 * Strata's core: the runtime (nodes, routing, membership, call context), the ports adapters
 * implement, the embedded adapter, the codec and the error catalogue.
 */
export * from "./errors/index.js";
export * from "./ports/index.js";
export * from "./codec/index.js";
export { action, defineService } from "./service/define-service.js";
export type {
  ActionContract,
  ActionInput,
  ActionOutput,
  HandlerInput,
  HandlerOutput,
  Handlers,
  Schema,
  ServiceContract,
  ServiceContractSpec,
  ServiceHooks,
  ServiceImplementation,
  AnyServiceImplementation,
  ContractInfo,
} from "./service/define-service.js";
export type { Client, ClientOptions } from "./service/client.js";
export { formatPath, validate } from "./service/schema.js";
export type { FieldIssue } from "./service/schema.js";
export type { CallContext, CallOptions, Principal, RoutingStrategy } from "./runtime/context.js";
export { createNode, groupOf, isAdminService } from "./runtime/node.js";
export type {
  NodeClientOptions,
  NodeOptions,
  NodeTelemetryOptions,
  NodeStatsReport,
  StrataNode,
  UntypedCallOptions,
} from "./runtime/node.js";
export type { NodeEvent, NodeState, NodeStats, ResilienceEvent } from "./runtime/events.js";
export type { CheckResult, HealthCheck, HealthReport } from "./runtime/health.js";
export { ADMIN_SERVICE, adminContract } from "./runtime/admin.js";
export { anySchema, customSchema, objectSchema } from "./service/custom-schema.js";
export * from "./resilience/index.js";
export type { LeaveReason, MembershipEvent } from "./runtime/membership.js";
export { HashRing, hash32 } from "./runtime/hash-ring.js";
export { handleSignals } from "./runtime/signals.js";
export { createEmbeddedNetwork } from "./adapters/embedded/index.js";
export { openEmbeddedKv } from "./adapters/embedded/embedded-kv.js";
export type { EmbeddedKv, EmbeddedKvOptions } from "./adapters/embedded/embedded-kv.js";
export type {
  KvCallOptions,
  KvCapabilities,
  KvEntry,
  KvEvent,
  KvPage,
  KvTransaction,
  KvTxnCheck,
  KvTxnWrite,
  ReadConsistency,
  StrongKV,
} from "./ports/strong-kv.js";
export {
  checkExpectedRevision,
  checkKey,
  checkLeaseTtl,
  checkLimit,
  checkPrefix,
  checkTransaction,
  checkValue,
  leaseNotFound,
  MAX_TXN_WRITES,
  noTransactions,
  revisionConflict,
} from "./state/keys.js";
export { EventQueue } from "./state/event-queue.js";
export { createStateStore } from "./state/store.js";
export { acquireLock } from "./state/lock.js";
export type { Lock, LockOptions } from "./state/lock.js";
export * from "./state/crdt/index.js";
export { compareHlc, createHlc, decodeHlc, encodeHlc } from "./ports/hlc.js";
export type { Hlc, HybridClock } from "./ports/hlc.js";
export { SLOTS, ShardedKv, prefixHashTag, slotOf } from "./state/sharded-kv.js";
export type { ShardGroup, ShardMapSnapshot } from "./state/sharded-kv.js";
export type { ShardCoordinationOptions } from "./state/shard-map.js";
export type { StateStore, UpdateOptions, Versioned } from "./state/store.js";
export type { EmbeddedNetwork, EmbeddedNetworkOptions } from "./adapters/embedded/index.js";
export { runLoad } from "./load/run-load.js";
export { runOpenLoad } from "./load/run-open-load.js";
export type { OpenLoadOptions, OpenLoadReport } from "./load/run-open-load.js";
export type { LatencySummary, LoadOptions, LoadProgress, LoadReport } from "./load/run-load.js";
// Hybrid logical clock: byte encoding (sorts like the timestamps) and options.
export { hlcFromBytes, hlcToBytes } from "./ports/hlc.js";
export type { HlcOptions } from "./ports/hlc.js";
export type {
  AppendInput,
  AppendResult,
  EventLog,
  LogCallOptions,
  LogCapabilities,
  LogRecord,
  ReadOptions,
  StreamInfo,
  StreamSpec,
} from "./ports/log.js";
export {
  MAX_LOG_PAYLOAD,
  checkAppend,
  checkFromSeq,
  checkPartition,
  checkReadLimit,
  checkStreamName,
  checkStreamSpec,
  streamNotFound,
  wrongLastSeq,
} from "./events/log-checks.js";
export * from "./events/index.js";
export { openEmbeddedLog } from "./adapters/embedded/embedded-log.js";
export type { EmbeddedLog, EmbeddedLogOptions } from "./adapters/embedded/embedded-log.js";
export {
  DURATION_BUCKETS_S,
  INSTRUMENTATION_SCOPE,
  INSTRUMENTATION_VERSION,
} from "./observability/telemetry.js";
export type { TelemetryOptions } from "./observability/telemetry.js";
export { instrumentKv } from "./observability/kv-telemetry.js";
export {
  contextFromTrace,
  formatTraceparent,
  parseBaggage,
  parseTraceparent,
  serializeBaggage,
  traceFromContext,
} from "./observability/trace-context.js";
export { CallWindow } from "./observability/call-window.js";
export type { ActionSnapshot, CallWindowOptions } from "./observability/call-window.js";
export {
  DEFAULT_BURN_RATE_RULES,
  SloMonitor,
  checkSloSpec,
  isServerFault,
} from "./observability/slo.js";
export type {
  BurnRateRule,
  SloAlertEvent,
  SloKind,
  SloSpec,
  SloStatus,
} from "./observability/slo.js";
export type { TelemetrySnapshot } from "./observability/snapshot.js";
export { eventLoopDelay } from "./observability/node-gauges.js";
export { openEmbeddedBlob } from "./adapters/embedded/embedded-blob.js";
export type { EmbeddedBlob, EmbeddedBlobOptions } from "./adapters/embedded/embedded-blob.js";

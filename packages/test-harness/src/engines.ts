/**
 * The engines part of the harness, without the vitest conformance suites: what a program outside
 * a test run (the chaos bench, `strata chaos`) may import.
 */
export { startNatsCluster } from "./nats-cluster.js";
export type {
  NatsClientLinks,
  NatsCluster,
  NatsClusterOptions,
  NatsServerHandle,
  PartitionOptions,
} from "./nats-cluster.js";
export { MIN_NATS_SERVER, findNatsServer, parseNatsVersion, repoRoot } from "./find-nats.js";
export { freePort } from "./free-port.js";
export { waitFor } from "./wait-for.js";
export { tempDir } from "./temp-dir.js";
export type { TempDir } from "./temp-dir.js";
export { findPostgresBin, startPostgres } from "./postgres.js";
export type { PostgresCluster, PostgresServer } from "./postgres.js";
export { reapOnExit, releaseDir, removeOnExit } from "./reaper.js";
export { BASE_RTO_MS, MAX_RTO_MS, startTcpProxy } from "./tcp-proxy.js";
export type { CutMode, LinkFaults, TcpProxy, TcpProxyOptions, TcpProxyStats } from "./tcp-proxy.js";
export { TextCapture } from "./text-capture.js";

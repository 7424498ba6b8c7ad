/** Test harness: real engines started on free loopback ports in temporary folders, and broken on purpose. */
export { startNatsCluster } from "./nats-cluster.js";
export type { NatsCluster, NatsClusterOptions, NatsServerHandle } from "./nats-cluster.js";
export { MIN_NATS_SERVER, findNatsServer, parseNatsVersion, repoRoot } from "./find-nats.js";
export { freePort } from "./free-port.js";
export { waitFor } from "./wait-for.js";
export { tempDir } from "./temp-dir.js";
export type { TempDir } from "./temp-dir.js";
export { describeLogConformance, describeStrongKvConformance } from "./conformance/index.js";
export type { LogFixture, StrongKvFixture } from "./conformance/index.js";
export { findPostgresBin, startPostgres } from "./postgres.js";
export type { PostgresCluster, PostgresServer } from "./postgres.js";

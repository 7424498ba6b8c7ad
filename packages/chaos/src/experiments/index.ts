import { defineExperiment, serves, totalOutage, type Experiment } from "../experiment.js";
import {
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
} from "../faults.js";

const steady = [serves({ minThroughput: 5, maxErrorRate: 0.05 })];
const abort = [totalOutage(20_000)];

/** The experiments `strata chaos run <name>` and `npm run verify` know by name. */
export const EXPERIMENTS: Readonly<Record<string, Experiment>> = {
  "kill-node": defineExperiment({
    name: "kill-node",
    description: "kill -9 a Strata node, restart it 6 s later, then again with another one",
    durationMs: 16_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 2_000, fault: kill(anyNode), for: 6_000 },
      { at: 10_000, fault: kill(anyNode), for: 4_000 },
    ],
  }),
  "kill-server": defineExperiment({
    name: "kill-server",
    description:
      "kill -9 a NATS server (JetStream R3 keeps a quorum), restart it, then restart another at once",
    durationMs: 16_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 2_000, fault: kill(anyServer), for: 7_000 },
      { at: 12_000, fault: restart(anyServer) },
    ],
  }),
  "pause-server": defineExperiment({
    name: "pause-server",
    description:
      "SIGSTOP a NATS server for 5 s (it keeps its connections and answers nothing), twice",
    durationMs: 16_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 2_000, fault: pause(anyServer), for: 5_000 },
      { at: 9_000, fault: pause(anyServer), for: 5_000 },
    ],
  }),
  "partition-regions": defineExperiment({
    name: "partition-regions",
    description:
      "cut the first region (one NATS server and its nodes) off from the rest for 8 s; CRDT replicas diverge and must converge after the heal",
    durationMs: 14_000,
    hypothesis: steady,
    abort,
    method: [{ at: 2_000, fault: partitionRegions(), for: 8_000 }],
  }),
  "isolate-server": defineExperiment({
    name: "isolate-server",
    description: "isolate one NATS server from every other process for 8 s",
    durationMs: 14_000,
    hypothesis: steady,
    abort,
    method: [{ at: 2_000, fault: isolate(anyServer), for: 8_000 }],
  }),
  "slow-network": defineExperiment({
    name: "slow-network",
    description: "50 ± 25 ms latency on a NATS server's links, then 5% loss on another's",
    durationMs: 14_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 2_000, fault: latency(anyServer, 50, 25), for: 5_000 },
      { at: 8_000, fault: loss(anyServer, 0.05), for: 5_000 },
    ],
  }),
  "clock-skew": defineExperiment({
    name: "clock-skew",
    description: "move one node's wall clock 30 s ahead and another's 30 s behind",
    durationMs: 12_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 1_000, fault: skew("node-1", 30_000), for: 10_000 },
      { at: 1_000, fault: skew("node-2", -30_000), for: 10_000 },
    ],
  }),
  "postgres-faults": defineExperiment({
    name: "postgres-faults",
    description:
      "registers on PostgreSQL (and on JetStream beside them): kill -9 PostgreSQL and restart it, then cut node-1 off from it",
    workloads: ["pg-register", "register"],
    durationMs: 16_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 2_000, fault: kill("pg"), for: 4_000 },
      {
        at: 9_000,
        fault: partition([["node-1"], ["pg"]], "cut node-1 from PostgreSQL"),
        for: 5_000,
      },
    ],
  }),
  "sharded-register": defineExperiment({
    name: "sharded-register",
    description:
      "registers on a store sharded over PostgreSQL groups, every node a router of one map: two shard groups are added while clients run, and a router is paused (SIGSTOP) while the second one takes its slots",
    workloads: ["sharded-register"],
    durationMs: 16_000,
    hypothesis: steady,
    abort,
    method: [{ at: 2_300, fault: pause("node-3"), for: 4_000 }],
  }),
  "broken-register": defineExperiment({
    name: "broken-register",
    description:
      "a deliberately broken store that acknowledges writes before it makes them: the linearizability checker must catch it",
    cluster: { breakage: "ack-before-write" },
    workloads: ["register"],
    durationMs: 6_000,
    hypothesis: steady,
    method: [],
  }),
  "broken-set": defineExperiment({
    name: "broken-set",
    description:
      "a consumer that silently drops one event in 25: the set checker must report them lost",
    cluster: { breakage: "lose-events" },
    workloads: ["set"],
    durationMs: 6_000,
    hypothesis: steady,
    method: [],
  }),
  "broken-crdt": defineExperiment({
    name: "broken-crdt",
    description:
      "replicas that never ship their updates: the set and counter convergence checkers must catch it",
    cluster: { breakage: "skip-crdt-replication" },
    workloads: ["crdt", "counter"],
    durationMs: 6_000,
    hypothesis: steady,
    method: [],
  }),
  demo: defineExperiment({
    name: "demo",
    description: "the demo's chaos: kill a node, then partition the regions, under every workload",
    durationMs: 14_000,
    hypothesis: steady,
    abort,
    method: [
      { at: 1_000, fault: kill("node-3"), for: 5_000 },
      { at: 7_000, fault: partitionRegions(), for: 6_000 },
    ],
  }),
};

/** The experiments `npm run verify` runs: every nemesis, every workload. */
export const VERIFY_SUITE = [
  "kill-node",
  "kill-server",
  "pause-server",
  "partition-regions",
  "isolate-server",
  "slow-network",
  "clock-skew",
  "postgres-faults",
  "sharded-register",
] as const;

/** Deliberately broken systems: each must end in an anomaly. */
export const BROKEN_SUITE = ["broken-register", "broken-set", "broken-crdt"] as const;

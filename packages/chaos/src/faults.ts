import type { ChaosCluster, ChaosNode } from "./cluster.js";

/** Undoes a fault: heals, resumes, restarts what it broke. */
export type Undo = () => Promise<void>;

/** A process picked when the fault starts: a name, or a choice made then. */
export type Target = string | ((cluster: ChaosCluster, random: () => number) => string);

/**
 * A fault the nemesis can inject. `inject` breaks something and returns how to undo it; the
 * runner undoes every fault still active at the end of the method or on abort (the rollback).
 */
export interface Fault {
  /** What it does, for the progress lines and the report (`kill node-2`). */
  readonly name: string;
  inject(cluster: ChaosCluster, random: () => number): Promise<{ undo: Undo; detail: string }>;
}

const pick = <T>(items: readonly T[], random: () => number): T => {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error("nothing to pick from");
  return item;
};

const resolve = (target: Target, cluster: ChaosCluster, random: () => number): string =>
  typeof target === "string" ? target : target(cluster, random);

/** A Strata node chosen at random among those running. */
export const anyNode: Target = (cluster, random) =>
  pick(
    cluster.nodes.filter((n) => n.running),
    random,
  ).name;

/** A NATS server chosen at random among those running. */
export const anyServer: Target = (cluster, random) =>
  pick(
    cluster.servers.filter((s) => s.kind === "nats" && s.running),
    random,
  ).name;

/** kill -9; undone by a restart. */
export function kill(target: Target): Fault {
  return {
    name: `kill ${typeof target === "string" ? target : "a process"}`,
    async inject(cluster, random) {
      const name = resolve(target, cluster, random);
      const process = cluster.process(name);
      await process.kill();
      return { detail: `kill -9 ${name}`, undo: () => process.restart() };
    },
  };
}

/** kill -9 and start again at once. */
export function restart(target: Target): Fault {
  return {
    name: `restart ${typeof target === "string" ? target : "a process"}`,
    async inject(cluster, random) {
      const name = resolve(target, cluster, random);
      await cluster.process(name).restart();
      return { detail: `kill -9 and restart ${name}`, undo: () => Promise.resolve() };
    },
  };
}

/** SIGSTOP (the process holds its connections and answers nothing); undone by SIGCONT. */
export function pause(target: Target): Fault {
  return {
    name: `pause ${typeof target === "string" ? target : "a process"}`,
    inject(cluster, random) {
      const name = resolve(target, cluster, random);
      const process = cluster.process(name);
      process.pause();
      return Promise.resolve({
        detail: `SIGSTOP ${name}`,
        undo: () => {
          process.resume();
          return Promise.resolve();
        },
      });
    },
  };
}

/** Cuts every link between the groups; undone by healing. */
export function partition(
  groups:
    | ReadonlyArray<readonly string[]>
    | ((cluster: ChaosCluster, random: () => number) => ReadonlyArray<readonly string[]>),
  name = "partition",
): Fault {
  return {
    name,
    inject(cluster, random) {
      const chosen = typeof groups === "function" ? groups(cluster, random) : groups;
      cluster.partition(chosen);
      return Promise.resolve({
        detail: `partition ${chosen.map((g) => g.join(",")).join(" | ")}`,
        undo: () => {
          cluster.heal();
          return Promise.resolve();
        },
      });
    },
  };
}

/** Cuts one process off from every other. */
export function isolate(target: Target): Fault {
  return partition(
    (cluster, random) => {
      const name = resolve(target, cluster, random);
      const others = [...cluster.servers, ...cluster.nodes]
        .map((p) => p.name)
        .filter((n) => n !== name);
      return [[name], [...others, "client"]];
    },
    `isolate ${typeof target === "string" ? target : "a process"}`,
  );
}

/**
 * Splits the cluster by region: the nodes of the first region with the first NATS server, the
 * rest (and the workloads' client) with the others. The minority side has no JetStream quorum.
 */
export function partitionRegions(): Fault {
  return partition((cluster) => {
    const first = cluster.nodes[0]?.region;
    const inFirst = (n: ChaosNode): boolean => n.region === first;
    const [head, ...rest] = cluster.servers.map((s) => s.name); // NATS first, then PostgreSQL
    return [
      [...(head === undefined ? [] : [head]), ...cluster.nodes.filter(inFirst).map((n) => n.name)],
      [...rest, ...cluster.nodes.filter((n) => !inFirst(n)).map((n) => n.name), "client"],
    ];
  }, "partition the regions");
}

/** Adds latency (and jitter) to every link of a process; undone by clearing it. */
export function latency(target: Target, delayMs: number, jitterMs = 0): Fault {
  return {
    name: `latency ${delayMs} ms on ${typeof target === "string" ? target : "a process"}`,
    inject(cluster, random) {
      const name = resolve(target, cluster, random);
      const links = cluster.links(name);
      for (const link of links) link.set({ delayMs, jitterMs });
      return Promise.resolve({
        detail: `+${delayMs}±${jitterMs} ms on ${links.length} links of ${name}`,
        undo: () => {
          for (const link of links) link.clear();
          return Promise.resolve();
        },
      });
    },
  };
}

/** Loses packets on every link of a process (TCP retransmits: delivery stalls); undone by clearing. */
export function loss(target: Target, probability: number): Fault {
  return {
    name: `loss ${probability} on ${typeof target === "string" ? target : "a process"}`,
    inject(cluster, random) {
      const name = resolve(target, cluster, random);
      const links = cluster.links(name);
      for (const link of links) link.set({ loss: probability });
      return Promise.resolve({
        detail: `loss ${probability} on ${links.length} links of ${name}`,
        undo: () => {
          for (const link of links) link.clear();
          return Promise.resolve();
        },
      });
    },
  };
}

/** Moves a node's wall clock (its clock port) by `ms`; undone by setting it back. */
export function skew(target: Target, ms: number): Fault {
  return {
    name: `clock skew ${ms} ms on ${typeof target === "string" ? target : "a node"}`,
    inject(cluster, random) {
      const name = resolve(target, cluster, random);
      const node = cluster.nodes.find((n) => n.name === name);
      if (node === undefined) throw new Error(`clock skew needs a Strata node, not "${name}"`);
      node.skew(ms);
      return Promise.resolve({
        detail: `${name} clock ${ms > 0 ? "+" : ""}${ms} ms`,
        undo: () => {
          node.skew(0);
          return Promise.resolve();
        },
      });
    },
  };
}

/**
 * Test fixtures for the core's own tests: an embedded cluster driven by one manual clock, so that
 * heartbeats, deadlines and drains happen exactly when a test advances time. Not part of the build.
 */
import { expect } from "vitest";
import { z } from "zod";
import {
  createEmbeddedNetwork,
  type EmbeddedNetwork,
  type EmbeddedNetworkOptions,
} from "../adapters/embedded/index.js";
import { StrataError, type ErrorCode } from "../errors/index.js";
import { manualClock, type ManualClock } from "../ports/index.js";
import { createNode, type NodeOptions, type StrataNode } from "../runtime/node.js";
import { defineService } from "../service/define-service.js";

/** Heartbeat settings every fixture node uses; time only moves when a test advances it. */
export const HEARTBEAT_MS = 100;
export const DEAD_AFTER_MS = 350;

/** Lets every queued microtask (and the chains they start) run: messages, replies, handlers. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Awaits a promise that must reject with a StrataError and returns that error. */
export async function failure(promise: Promise<unknown>): Promise<StrataError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StrataError);
    return error as StrataError;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

/** Asserts that `promise` rejects with a StrataError of `code` and returns it. */
export async function failsWith(promise: Promise<unknown>, code: ErrorCode): Promise<StrataError> {
  const error = await failure(promise);
  expect(error.code, error.message).toBe(code);
  return error;
}

/** Tracks whether a promise has settled, without awaiting it. */
export function track<T>(promise: Promise<T>): {
  readonly settled: () => boolean;
  readonly promise: Promise<T>;
} {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  // The outcome is asserted by whoever awaits `promise`; this copy must not report it twice.
  tracked.catch(() => undefined);
  return { settled: () => done, promise };
}

/** A promise with its resolver: a gate that a test opens to let a handler finish. */
export function gate(): { readonly wait: Promise<void>; readonly open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** The service most tests call: an echo that says which node answered. */
export const echo = defineService({
  name: "echo",
  version: "1.0.0",
  actions: {
    echo: {
      input: z.object({ text: z.string() }),
      output: z.object({ text: z.string(), node: z.string() }),
      idempotent: true,
    },
  },
});

/** An echo implementation that counts the calls it served, per node. */
export function echoOn(nodeId: string, served: Map<string, number>) {
  return echo.implement({
    echo: ({ text }) => {
      served.set(nodeId, (served.get(nodeId) ?? 0) + 1);
      return { text, node: nodeId };
    },
  });
}

/** Node options a fixture node may take (its transport and clock come from the cluster). */
export type FixtureNodeOptions = Omit<NodeOptions, "transport" | "clock"> & { readonly id: string };

/** An embedded cluster on a manual clock. Dispose it to stop every node. */
export interface TestCluster extends AsyncDisposable {
  readonly network: EmbeddedNetwork;
  readonly clock: ManualClock;
  readonly nodes: Map<string, StrataNode>;
  /** Creates and starts a node, then lets the cluster learn about it. */
  add(options: FixtureNodeOptions): Promise<StrataNode>;
  /** Moves time forward in heartbeat-sized steps, delivering messages after each step. */
  advance(ms: number): Promise<void>;
  /**
   * Awaits `promise` while moving time forward in small steps, for calls whose retries or
   * timeouts wait on the clock. Fails after `maxMs` of virtual time.
   */
  settle<T>(promise: Promise<T>, maxMs?: number): Promise<T>;
  /** The node with this id (throws if none). */
  node(id: string): StrataNode;
}

/**
 * Creates an embedded cluster whose nodes share one manual clock.
 *
 * @example
 * await using cluster = createTestCluster();
 * const a = await cluster.add({ id: "a", services: [impl] });
 */
export function createTestCluster(options: EmbeddedNetworkOptions = {}): TestCluster {
  const network = createEmbeddedNetwork(options);
  const clock = manualClock({ seed: 7 });
  const nodes = new Map<string, StrataNode>();
  return {
    network,
    clock,
    nodes,
    async add(nodeOptions) {
      const node = createNode({
        heartbeatIntervalMs: HEARTBEAT_MS,
        deadAfterMs: DEAD_AFTER_MS,
        ...nodeOptions,
        transport: network.transport(),
        clock,
      });
      nodes.set(node.id, node);
      await node.start();
      await flush();
      return node;
    },
    async advance(ms) {
      let left = ms;
      while (left > 0) {
        const step = Math.min(left, HEARTBEAT_MS / 4);
        clock.advance(step);
        left -= step;
        await flush();
      }
    },
    async settle(promise, maxMs = 60_000) {
      const tracked = track(promise);
      for (let spent = 0; !tracked.settled(); spent += 10) {
        if (spent > maxMs) throw new Error(`still pending after ${maxMs} ms of virtual time`);
        await flush();
        if (!tracked.settled()) clock.advance(10);
      }
      return promise;
    },
    node(id) {
      const node = nodes.get(id);
      if (node === undefined) throw new Error(`no node ${id} in the cluster`);
      return node;
    },
    async [Symbol.asyncDispose]() {
      // A drain that waits on a stuck handler ends at its drain bound, which only advancing the
      // manual clock reaches.
      const stops = [...nodes.values()].map((node) => track(node.stop()));
      for (let i = 0; i < 100 && stops.some((stop) => !stop.settled()); i++) {
        await flush();
        clock.advance(1_000);
      }
      await Promise.allSettled(stops.map((stop) => stop.promise));
    },
  };
}

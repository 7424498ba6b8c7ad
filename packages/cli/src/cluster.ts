import { createEmbeddedNetwork, createNode, type StrataNode } from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import { UsageError } from "./io.js";

/** How a command reaches the cluster. */
export interface ClusterTarget {
  readonly nats: string | undefined;
  readonly cluster: string | undefined;
}

/**
 * A node with no services that joins the cluster to look and call. Only NATS clusters can be
 * reached from another process; an embedded cluster lives inside its own process.
 */
export async function clientNode(target: ClusterTarget, what: string): Promise<StrataNode> {
  if (target.nats === undefined) {
    throw new UsageError(
      `${what} needs a cluster to talk to: pass --nats <url> or set STRATA_NATS_URL (an embedded cluster lives inside its own process)`,
    );
  }
  const node = createNode({
    id: `cli-${process.pid}`,
    transport: createNatsTransport({
      servers: target.nats,
      ...(target.cluster === undefined ? {} : { cluster: target.cluster }),
      connection: { maxReconnectAttempts: 2, timeout: 3_000 },
    }),
    admin: false,
  });
  await node.start();
  return node;
}

/** An embedded single-node network, for `strata dev` without --nats. */
export function embeddedNetwork(): ReturnType<typeof createEmbeddedNetwork> {
  return createEmbeddedNetwork();
}

/** Waits up to `ms` for nodes to announce themselves (membership is learned from heartbeats). */
export async function settle(node: StrataNode, ms: number, until?: () => boolean): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (until?.() === true) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

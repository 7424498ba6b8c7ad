import {
  createEmbeddedNetwork,
  createNode,
  defineService,
  type NodeTelemetryOptions,
  type ResilienceOptions,
  type StrataNode,
} from "@strata/core";
import { createNatsTransport } from "@strata/nats";

/** A Strata caller/callee pair for the side-by-side run. */
export interface StrataPeer extends AsyncDisposable {
  call(payload: object): Promise<unknown>;
}

// A pass-through Standard Schema: the peers' echo actions validate nothing either, so the run
// compares call paths, not validators.
const any = {
  "~standard": {
    version: 1 as const,
    vendor: "bench",
    validate: (value: unknown) => ({ value }),
  },
};

/** The echo contract every Strata benchmark calls. */
export const echo = defineService({
  name: "echo",
  version: "1.0.0",
  actions: { echo: { input: any, output: any, idempotent: true } },
});
const impl = echo.implement({ echo: (input) => input });

async function pair(server: StrataNode, client: StrataNode): Promise<StrataPeer> {
  await server.start();
  if (client !== server) await client.start();
  await client.waitForService("echo", { timeoutMs: 10_000 });
  const c = client.client(echo);
  return {
    call: (payload) => c.echo(payload),
    [Symbol.asyncDispose]: async () => {
      if (client !== server) await client.stop();
      await server.stop();
    },
  };
}

/** Which policy chain the caller runs: the default one, or none at all (for measuring its cost). */
export type PolicyChain = "default" | "none";

/** Every call-path policy switched off. */
export const NO_POLICIES: ResilienceOptions = {
  defaults: { retry: false, breaker: false },
  retryBudget: false,
  outlier: false,
};

function resilience(chain: PolicyChain): { resilience?: ResilienceOptions } {
  return chain === "none" ? { resilience: NO_POLICIES } : {};
}

/** Caller and callee are different nodes of one embedded network (one process). */
export function strataEmbedded(chain: PolicyChain = "default"): Promise<StrataPeer> {
  const network = createEmbeddedNetwork();
  const server = createNode({ id: "server", transport: network.transport(), services: [impl] });
  const client = createNode({ id: "client", transport: network.transport(), ...resilience(chain) });
  return pair(server, client);
}

/** Caller and callee are the same node: the analogue of Moleculer's local call. */
export function strataLocal(chain: PolicyChain = "default"): Promise<StrataPeer> {
  const network = createEmbeddedNetwork();
  const node = createNode({
    id: "local",
    transport: network.transport(),
    services: [impl],
    ...resilience(chain),
  });
  return pair(node, node);
}

/**
 * Two nodes in this process, each with its own NATS connection to the same server; `telemetry`
 * (per side) routes their spans and metrics, for measuring what observability costs.
 */
export function strataNats(
  url: string,
  chain: PolicyChain = "default",
  telemetry?: { readonly server?: NodeTelemetryOptions; readonly client?: NodeTelemetryOptions },
  cluster = "bench",
): Promise<StrataPeer> {
  const server = createNode({
    id: `s-server-${cluster}`,
    transport: createNatsTransport({ servers: url, cluster }),
    services: [impl],
    ...(telemetry?.server === undefined ? {} : { telemetry: telemetry.server }),
  });
  const client = createNode({
    id: `s-client-${cluster}`,
    transport: createNatsTransport({ servers: url, cluster }),
    ...resilience(chain),
    ...(telemetry?.client === undefined ? {} : { telemetry: telemetry.client }),
  });
  return pair(server, client);
}

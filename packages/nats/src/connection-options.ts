/**
 * nats.js connection options for a process that must stay on the servers it was given and notice
 * a dead or black-holed one within seconds: it keeps reconnecting for as long as it lives (every
 * 250 ms), ignores the cluster's gossip of other servers' URLs (a node of one region must not
 * wander onto another region's servers, and a client behind proxies must not bypass them), pings
 * every 2 s and gives up on a server after two unanswered pings, and spends at most 2 s on each
 * connection attempt (a black-holed server accepts the TCP connection and never answers; the
 * nats.js default would hold each attempt 20 s).
 *
 * @example
 * const nc = await connect({ servers: [url], ...PINNED_CONNECTION });
 * const transport = createNatsTransport({ servers: [url], connection: PINNED_CONNECTION });
 */
export const PINNED_CONNECTION = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
  ignoreClusterUpdates: true,
  pingInterval: 2_000,
  maxPingOut: 2,
  timeout: 2_000,
} as const;

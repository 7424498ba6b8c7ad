/** Strata's NATS adapter: a Transport over NATS core request/reply (nats-server >= 2.10). */
export { createNatsTransport } from "./nats-transport.js";
export type {
  NatsTlsOptions,
  NatsTransportHandle,
  NatsTransportOptions,
} from "./nats-transport.js";
export { MIN_NATS_VERSION, checkServerVersion } from "./server-version.js";
export { PINNED_CONNECTION } from "./connection-options.js";
export { openNatsKv } from "./nats-kv.js";
export type { NatsKvOptions } from "./nats-kv.js";
export { openNatsLog } from "./jetstream-log.js";
export type { NatsLogOptions } from "./jetstream-log.js";

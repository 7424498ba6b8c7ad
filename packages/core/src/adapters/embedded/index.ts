export { createEmbeddedNetwork } from "./embedded-network.js";
export type { EmbeddedNetwork, EmbeddedNetworkOptions } from "./embedded-network.js";

/** The code of docs/getting-started.md, one module per step of the guide. */
export { catalog, catalogImpl, main as firstService, runCatalog } from "./01-first-service.js";
export { orders, main as stateAndEvents, runShop } from "./02-state-and-events.js";
export type { Engines } from "./02-state-and-events.js";
export { main as onNats } from "./03-on-nats.js";
export type { Servers } from "./03-on-nats.js";

/** The commerce reference system: services, seed data and the `strata demo` runner. */
export { ProductSchema, catalog, catalogService } from "./services/catalog.js";
export { StockSchema, inventory, inventoryService, seedInventory } from "./services/inventory.js";
export { seedCatalog, seedStock } from "./data/seed.js";
export type { Product } from "./data/seed.js";
export { runDemo } from "./demo/run-demo.js";
export type { DemoOptions, DemoReport } from "./demo/run-demo.js";

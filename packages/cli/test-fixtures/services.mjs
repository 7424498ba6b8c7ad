// A module for `strata dev`: it exports service implementations.
import { catalogService, seedCatalog } from "@strata/example-commerce";

export const catalog = catalogService(seedCatalog(50));

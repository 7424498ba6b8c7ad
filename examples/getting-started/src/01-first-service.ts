import {
  createEmbeddedNetwork,
  createNode,
  defineService,
  StrataError,
  type Transport,
} from "@strata/core";
import { z } from "zod";

// 1. The contract: a name, a semantic version, and actions with input and output schemas.
export const catalog = defineService({
  name: "catalog",
  version: "1.0.0",
  actions: {
    getProduct: {
      input: z.object({ id: z.string() }),
      output: z.object({ id: z.string(), name: z.string(), priceMinor: z.number().int() }),
      idempotent: true, // safe to run twice, so the call path may retry it
    },
    quote: {
      input: z.object({ id: z.string(), quantity: z.number().int().min(1) }),
      output: z.object({ totalMinor: z.number().int() }),
      idempotent: true,
    },
  },
});

// 2. The implementation: one handler per action. Inputs arrive validated and typed.
const products = new Map([["p-1", { id: "p-1", name: "Kettle", priceMinor: 2_999 }]]);

function find(id: string): { id: string; name: string; priceMinor: number } {
  const product = products.get(id);
  if (product === undefined) throw new StrataError("NOT_FOUND", `no product ${id}`);
  return product;
}

export const catalogImpl = catalog.implement({
  getProduct: ({ id }) => find(id),
  quote: ({ id, quantity }) => ({ totalMinor: find(id).priceMinor * quantity }),
});

// 3. Two nodes: n1 serves the catalog, n2 calls it. `transport` gives each node its link.
export async function runCatalog(transport: () => Transport) {
  await using n1 = createNode({ id: "n1", transport: transport(), services: [catalogImpl] });
  await using n2 = createNode({ id: "n2", transport: transport() });
  await Promise.all([n1.start(), n2.start()]);
  await n2.waitForService("catalog");

  // 4. A typed client, inferred from the contract.
  const client = n2.client(catalog, { timeoutMs: 1_000 });
  const product = await client.getProduct({ id: "p-1" }); // { id, name, priceMinor }
  const quote = await client.quote({ id: "p-1", quantity: 3 }); // { totalMinor: 8997 }

  // 5. Input is validated on the serving node; a violation never reaches the handler.
  let refused: StrataError | undefined;
  try {
    await client.quote({ id: "p-1", quantity: 0 });
  } catch (error) {
    if (!(error instanceof StrataError)) throw error;
    refused = error; // code INVALID_ARGUMENT, details.issues [{ path: "quantity", message }]
  }
  return { product, quote, refused };
}

// Embedded: both nodes in this process, on an in-memory network. No server to install.
export async function main() {
  const network = createEmbeddedNetwork();
  return runCatalog(() => network.transport());
}

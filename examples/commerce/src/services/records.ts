import { defineService } from "@strata/core";
import { z } from "zod";

/**
 * Patient records, the kind of data the gateway must guard: who may read which record is
 * decided by Cedar policies (examples/commerce/policies), not by this code.
 */
export const records = defineService({
  name: "records",
  version: "1.0.0",
  description: "Patient records, read under policy",
  actions: {
    get: {
      input: z.object({ recordId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) }),
      output: z.object({ recordId: z.string(), summary: z.string() }),
      idempotent: true,
    },
  },
});

export function recordsService() {
  return records.implement({
    get: ({ recordId }) => ({ recordId, summary: `record ${recordId}: no known allergies` }),
  });
}

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeStrongKvConformance } from "@strata/test-harness";
import { openEmbeddedKv } from "./embedded-kv.js";

describeStrongKvConformance("embedded", {
  async open() {
    const dir = await mkdtemp(join(tmpdir(), "strata-kv-conformance-"));
    const kv = await openEmbeddedKv({ dir });
    return Object.assign(kv, {
      async [Symbol.asyncDispose]() {
        await kv.close();
        await rm(dir, { recursive: true, force: true });
      },
    });
  },
});

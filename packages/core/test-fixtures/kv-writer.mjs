// Writes keys to an embedded store as fast as it can and prints each acknowledged write, so a
// test can kill -9 this process and check that recovery kept every acknowledged write.
// Usage: node kv-writer.mjs <dir> <concurrency>
import { openEmbeddedKv } from "@strata/core";

const [dir, concurrencyArg = "8"] = process.argv.slice(2);
const kv = await openEmbeddedKv({ dir });
process.stdout.write("ready\n");
let next = 0;
async function writer() {
  for (;;) {
    const i = next++;
    const key = `k/${String(i).padStart(8, "0")}`;
    const revision = await kv.put(key, new TextEncoder().encode(`v${i}`));
    process.stdout.write(`${key} ${revision}\n`);
  }
}
await Promise.all(Array.from({ length: Number(concurrencyArg) }, writer));

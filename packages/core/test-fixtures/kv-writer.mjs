// Writes keys to an embedded store as fast as it can and prints each acknowledged write, so a
// test can kill -9 this process and check that recovery kept every acknowledged write.
// Usage: node kv-writer.mjs <dir> <concurrency> [put|txn]
// In txn mode each write is one transaction of three puts, t/<n>/a, t/<n>/b and t/<n>/c, printed
// as "t/<n> <revision>": recovery must keep all three or none.
import { openEmbeddedKv } from "@strata/core";

const [dir, concurrencyArg = "8", mode = "put"] = process.argv.slice(2);
const kv = await openEmbeddedKv({ dir });
process.stdout.write("ready\n");
let next = 0;
async function writer() {
  for (;;) {
    const i = next++;
    const value = new TextEncoder().encode(`v${i}`);
    if (mode === "txn") {
      const key = `t/${String(i).padStart(8, "0")}`;
      const revision = await kv.transaction({
        writes: ["a", "b", "c"].map((part) => ({ type: "put", key: `${key}/${part}`, value })),
      });
      process.stdout.write(`${key} ${revision}\n`);
    } else {
      const key = `k/${String(i).padStart(8, "0")}`;
      const revision = await kv.put(key, value);
      process.stdout.write(`${key} ${revision}\n`);
    }
  }
}
await Promise.all(Array.from({ length: Number(concurrencyArg) }, writer));

// Appends records to an embedded log as fast as it can and prints each acknowledged append, so a
// test can kill -9 this process and check that recovery kept every acknowledged record.
// Usage: node log-writer.mjs <dir> <concurrency> <segmentBytes>
import { openEmbeddedLog } from "@strata/core";

const [dir, concurrencyArg = "8", segmentBytesArg = "65536"] = process.argv.slice(2);
const log = await openEmbeddedLog({ dir, segmentBytes: Number(segmentBytesArg) });
await log.ensureStream({ name: "crash", partitions: 4 });
process.stdout.write("ready\n");
let next = 0;
async function writer() {
  for (;;) {
    const i = next++;
    const { seq } = await log.append("crash", {
      partition: i % 4,
      id: `w-${i}`,
      key: `k${i % 13}`,
      headers: { n: String(i) },
      payload: new TextEncoder().encode(`payload-${i}`),
    });
    process.stdout.write(`${i} ${seq}\n`);
  }
}
await Promise.all(Array.from({ length: Number(concurrencyArg) }, writer));

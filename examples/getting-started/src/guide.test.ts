import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { startNatsCluster, startPostgres } from "@strata/test-harness/engines";
import { describe, expect, it } from "vitest";
import { main as firstService } from "./01-first-service.js";
import { main as stateAndEvents } from "./02-state-and-events.js";
import { main as onNats } from "./03-on-nats.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const guidePath = join(root, "docs", "getting-started.md");

/** Every fenced block whose info string names a file: ```ts file=examples/…/01-first-service.ts */
function fileBlocks(markdown: string): Array<{ file: string; code: string; line: number }> {
  const blocks: Array<{ file: string; code: string; line: number }> = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})\S*\s+.*\bfile=(\S+)/.exec(lines[i] ?? "");
    if (open === null) continue;
    const [, fence, file] = open as unknown as [string, string, string];
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== fence) end++;
    if (end === lines.length) throw new Error(`unclosed block for ${file} at line ${i + 1}`);
    blocks.push({ file, code: lines.slice(start, end).join("\n") + "\n", line: i + 1 });
    i = end;
  }
  return blocks;
}

describe("docs/getting-started.md", () => {
  it("shows every example file verbatim, so the guide cannot drift from tested code", async () => {
    const blocks = fileBlocks(await readFile(guidePath, "utf8"));
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      const source = await readFile(join(root, block.file), "utf8");
      expect(block.code, `${block.file} (guide line ${block.line})`).toBe(source);
    }
    // Every step of the guide is in it (index.ts and the tests are not steps).
    const steps = (await readdir(here)).filter(
      (f) => /^\d\d-.*\.ts$/.test(f) && !f.includes(".test."),
    );
    const shown = new Set(blocks.map((b) => b.file));
    for (const step of steps) {
      expect(shown, `docs/getting-started.md lacks ${step}`).toContain(
        relative(root, join(here, step)),
      );
    }
  });
});

describe("the guide's code", () => {
  it("step 1: answers a typed call and refuses bad input with INVALID_ARGUMENT", async () => {
    const { product, quote, refused } = await firstService();
    expect(product).toEqual({ id: "p-1", name: "Kettle", priceMinor: 2_999 });
    expect(quote).toEqual({ totalMinor: 8_997 });
    expect(refused?.code).toBe("INVALID_ARGUMENT");
    expect(refused?.details["issues"]).toEqual([expect.objectContaining({ path: "quantity" })]);
  });

  it("step 2: sells exactly the stock, retries conflicts, and applies each event once", async () => {
    const report = await stateAndEvents();
    expect(report.placed).toBe(7);
    expect(report.refused).toBe(3);
    expect(report.remaining).toBe(0);
    // Ten concurrent compare-and-set updates of one key: conflicts happened and were retried.
    expect(report.stockAttempts).toBeGreaterThan(10);
    // Every event delivered at least twice (the replay), every effect applied once.
    expect(report.deliveries).toBeGreaterThanOrEqual(14);
    expect(report.notified).toBe(7);
  });

  it("step 3: runs the same code on NATS and PostgreSQL", async () => {
    await using nats = await startNatsCluster();
    await using pg = await startPostgres();
    const { catalog, shop } = await onNats({ natsUrl: nats.url, postgresUrl: pg.primary.url });
    expect(catalog.product.name).toBe("Kettle");
    expect(catalog.refused?.code).toBe("INVALID_ARGUMENT");
    expect(shop).toMatchObject({ placed: 7, refused: 3, remaining: 0, notified: 7 });
    expect(shop.stockAttempts).toBeGreaterThan(10);
    expect(shop.deliveries).toBeGreaterThanOrEqual(14);
  });
});

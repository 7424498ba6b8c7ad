import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openEmbeddedKv, type EmbeddedKv } from "../adapters/embedded/embedded-kv.js";
import { SLOTS, ShardedKv, slotOf } from "./sharded-kv.js";

const dirs: string[] = [];
async function store(sync = false): Promise<EmbeddedKv> {
  const dir = await mkdtemp(join(tmpdir(), "strata-shard-"));
  dirs.push(dir);
  return openEmbeddedKv({ dir, sync });
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("ShardedKv", () => {
  it("refuses leases and store-wide watch resumption, which shard groups cannot provide", async () => {
    await using sharded = new ShardedKv([{ id: "a", region: "eu", kv: await store() }]);
    await expect(sharded.grantLease()).rejects.toMatchObject({ code: "UNIMPLEMENTED" });
    await expect(sharded.put("k", new Uint8Array(1), { lease: "l" })).rejects.toMatchObject({
      code: "UNIMPLEMENTED",
    });
    expect(() => sharded.watch("", { fromRevision: 1 })).toThrow(/no store-wide revision/);
    expect(() => new ShardedKv([])).toThrow(/at least one group/);
  });

  it("spreads slots evenly and routes every key to one group", async () => {
    const groups = await Promise.all(
      ["a", "b"].map(async (id) => ({ id, region: id === "a" ? "eu" : "us", kv: await store() })),
    );
    await using sharded = new ShardedKv(groups);
    const counts = new Map<string, number>();
    for (const owner of sharded.map().owners) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    expect(counts.get("a")).toBe(SLOTS / 2);
    for (let i = 0; i < 200; i++) {
      const key = `k/${i}`;
      await sharded.put(key, new TextEncoder().encode(String(i)));
      const owner = sharded.groupOf(key);
      expect(await owner.kv.get(key)).toBeDefined();
      for (const g of groups) if (g.id !== owner.id) expect(await g.kv.get(key)).toBeUndefined();
    }
    expect(slotOf("k/1")).toBe(slotOf("k/1"));
  });

  it("adds a group under concurrent writes with no lost and no duplicated write", async () => {
    // Durable stores make each write take a while, widening the windows a mover must respect.
    const groups = await Promise.all(
      ["a", "b"].map(async (id) => ({ id, region: "eu", kv: await store(true) })),
    );
    await using sharded = new ShardedKv(groups);
    await Promise.all(
      Array.from({ length: 1_000 }, (_, i) => sharded.put(`k/${i}`, new TextEncoder().encode("0"))),
    );
    // Writers increment existing counters and create new keys while the new group takes its share.
    let stop = false;
    const increments = new Map<string, number>();
    const created = new Set<string>();
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        if (n % 3 === 0) {
          const key = `new/${w}-${n}`;
          await sharded.create(key, new TextEncoder().encode(key));
          created.add(key);
          continue;
        }
        const key = `k/${(w * 7919 + n * 104729) % 1_000}`;
        const current = await sharded.get(key);
        const next = Number(new TextDecoder().decode(current?.value)) + 1;
        try {
          await sharded.compareAndSet(
            key,
            new TextEncoder().encode(String(next)),
            current?.revision ?? 0,
          );
          increments.set(key, (increments.get(key) ?? 0) + 1);
        } catch {
          // lost a race with another writer: not counted
        }
      }
    };
    const writers = Array.from({ length: 16 }, (_, w) => writer(w));
    const c = { id: "c", region: "us", kv: await store(true) };
    const moved = await sharded.addGroup(c);
    stop = true;
    await Promise.all(writers);
    expect(moved).toBeGreaterThan(250);
    expect(created.size).toBeGreaterThan(50);
    expect(sharded.map().owners.filter((o) => o === "c")).toHaveLength(Math.floor(SLOTS / 3));
    const everyKey = [...Array.from({ length: 1_000 }, (_, i) => `k/${i}`), ...created];
    for (const key of everyKey) {
      const entry = await sharded.get(key);
      expect(entry, key).toBeDefined();
      if (key.startsWith("k/")) {
        // every acknowledged increment, exactly once
        expect(Number(new TextDecoder().decode(entry?.value)), key).toBe(increments.get(key) ?? 0);
      }
      let holders = 0;
      for (const g of [...groups, c]) if ((await g.kv.get(key)) !== undefined) holders++;
      expect(holders, key).toBe(1);
    }
  });
});

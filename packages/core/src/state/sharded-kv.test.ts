import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openEmbeddedKv, type EmbeddedKv } from "../adapters/embedded/embedded-kv.js";
import { SLOTS, ShardedKv, prefixHashTag, slotOf } from "./sharded-kv.js";

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
  it("runs a transaction whose keys share a slot on the slot's group, and refuses one across slots", async () => {
    const enc = (v: string): Uint8Array => new TextEncoder().encode(v);
    const groups = await Promise.all(
      ["a", "b"].map(async (id) => ({ id, region: "eu", kv: await store() })),
    );
    await using sharded = new ShardedKv(groups);
    expect(sharded.capabilities.transactions).toBe(true);
    // A second key in the slot of "acct/0", and one in another slot.
    let same = 1;
    while (slotOf(`acct/${same}`) !== slotOf("acct/0")) same++;
    let other = 1;
    while (slotOf(`acct/${other}`) === slotOf("acct/0")) other++;
    const base = await sharded.put("acct/0", enc("10"));
    const revision = await sharded.transaction({
      checks: [{ key: "acct/0", revision: base }],
      writes: [
        { type: "put", key: "acct/0", value: enc("7") },
        { type: "put", key: `acct/${same}`, value: enc("3") },
      ],
    });
    const owner = sharded.groupOf("acct/0").kv;
    expect((await owner.get(`acct/${same}`))?.revision).toBe(revision);
    await expect(
      sharded.transaction({
        writes: [
          { type: "put", key: "acct/0", value: enc("0") },
          { type: "put", key: `acct/${other}`, value: enc("10") },
        ],
      }),
    ).rejects.toMatchObject({ code: "UNIMPLEMENTED", message: /span 2 shard slots/ });
    expect(new TextDecoder().decode((await sharded.get("acct/0"))?.value)).toBe("7");
    expect(await sharded.get(`acct/${other}`)).toBeUndefined();
    await expect(sharded.transaction({ writes: "x" } as never)).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });

  it("puts keys that share a hash tag in one slot, so one transaction spans them", async () => {
    const groups = await Promise.all(
      ["a", "b", "c"].map(async (id) => ({ id, region: "eu", kv: await store() })),
    );
    const tag = prefixHashTag(2);
    await using sharded = new ShardedKv(groups, { hashTag: tag });
    expect(tag("order/42/lines")).toBe("order/42");
    expect(tag("order/42")).toBe("order/42");
    expect(tag("order")).toBe("order");
    expect(() => prefixHashTag(0)).toThrow(/segments/);
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
    for (let order = 0; order < 30; order++) {
      const lines = `order/${order}/lines`;
      const total = `order/${order}/total`;
      expect(sharded.slotOf(lines)).toBe(sharded.slotOf(total));
      await sharded.transaction({
        writes: [
          { type: "put", key: lines, value: enc("3") },
          { type: "put", key: total, value: enc("99") },
        ],
      });
      expect(sharded.groupOf(lines).id).toBe(sharded.groupOf(total).id);
      expect(await sharded.groupOf(lines).kv.get(total)).toBeDefined();
    }
    // Without the tag the same keys spread over slots, and such transactions are refused.
    const spread = Array.from(
      { length: 30 },
      (_, o) => slotOf(`order/${o}/lines`) === slotOf(`order/${o}/total`),
    );
    expect(spread.filter(Boolean).length).toBeLessThan(30);
  });

  it("declares transactions only when every group has them", async () => {
    const kv = await store();
    // The same store, claiming no transactions (as a NATS KV group would).
    const without = new Proxy(kv, {
      get: (target, property, receiver): unknown =>
        property === "capabilities"
          ? { ...target.capabilities, transactions: false }
          : Reflect.get(target, property, receiver),
    });
    await using sharded = new ShardedKv([
      { id: "a", region: "eu", kv: await store() },
      { id: "b", region: "eu", kv: without },
    ]);
    expect(sharded.capabilities.transactions).toBe(false);
  });
});

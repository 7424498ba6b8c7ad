import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openEmbeddedKv, type EmbeddedKv } from "../adapters/embedded/embedded-kv.js";
import { StrataError } from "../errors/index.js";
import type { StrongKV } from "../ports/strong-kv.js";
import { SLOTS, ShardedKv, slotOf, slotsToGive, type ShardGroup } from "./sharded-kv.js";
import { encodeRouterRecord } from "./shard-map.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

const dirs: string[] = [];
const stores: EmbeddedKv[] = [];
const routers: ShardedKv[] = [];
async function store(sync = false): Promise<EmbeddedKv> {
  const dir = await mkdtemp(join(tmpdir(), "strata-shardc-"));
  dirs.push(dir);
  const kv = await openEmbeddedKv({ dir, sync });
  stores.push(kv);
  return kv;
}
afterEach(async () => {
  for (const router of routers.splice(0)) await router.close();
  for (const kv of stores.splice(0)) await kv.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Opens a router; the stores stay open when it closes (routers share them). */
async function router(
  groups: readonly ShardGroup[],
  coordination: StrongKV,
  options: Partial<Parameters<typeof ShardedKv.open>[1]["coordination"]> = {},
): Promise<ShardedKv> {
  const r = await ShardedKv.open(groups, {
    coordination: { kv: coordination, leaseMs: 600, pollMs: 25, batchSlots: 128, ...options },
  });
  routers.push(r);
  return r;
}

/** A view of a store whose calls fail while `cut` is set, as if the network to it were down. */
function cuttable(kv: StrongKV): { kv: StrongKV; cut: (on: boolean) => void } {
  let cut = false;
  const view = new Proxy(kv, {
    get(target, property, receiver): unknown {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || !cut) return value;
      return () => Promise.reject(new StrataError("UNAVAILABLE", "cut off"));
    },
  });
  return { kv: view, cut: (on) => (cut = on) };
}

/** Polls `check` every 10 ms until it holds (5 s at most). */
async function until(check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in 5 s");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("ShardedKv with a shared map", () => {
  it("moves slots while routers on both sides write, losing and duplicating nothing", async () => {
    const coordination = await store(true);
    const groups = await Promise.all(
      ["a", "b"].map(async (id) => ({ id, region: "eu", kv: await store(true) })),
    );
    const c = { id: "c", region: "us", kv: await store(true) };
    const one = await router(groups, coordination, { routerId: "one" });
    // Router two learns of group c from the map and opens it itself.
    const two = await router(groups, coordination, {
      routerId: "two",
      resolveGroup: (g) => Promise.resolve({ ...g, kv: c.kv }),
    });
    for (let i = 0; i < 300; i++) await one.put(`k/${i}`, enc("0"));
    let stop = false;
    const increments = new Map<string, number>();
    const unknown = new Map<string, number>();
    const writer = async (r: ShardedKv, w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const key = `k/${(w * 7919 + n * 104729) % 300}`;
        const current = await r.get(key);
        try {
          await r.compareAndSet(
            key,
            enc(String(Number(dec(current?.value)) + 1)),
            current?.revision ?? 0,
          );
          increments.set(key, (increments.get(key) ?? 0) + 1);
        } catch (error) {
          if ((error as StrataError).code !== "FAILED_PRECONDITION")
            unknown.set(key, (unknown.get(key) ?? 0) + 1);
        }
      }
    };
    // A key in a slot that will move, read before the move.
    const moves = new Set(slotsToGive(one.map().owners, 3));
    let s = 0;
    while (!moves.has(slotOf(`still/${s}`))) s++;
    const still = `still/${s}`;
    const before = await two.put(still, enc("same"));
    const writers = [0, 1, 2, 3].map((w) => writer(w % 2 === 0 ? one : two, w));
    // A router that opens during the rebalance, given every group up front.
    const three = await router([...groups, c], coordination, { routerId: "three" });
    const moved = await one.addGroup(c);
    stop = true;
    await Promise.all(writers);
    expect(moved).toBeGreaterThan(50);
    expect(unknown.size).toBe(0);
    expect(one.map().owners.filter((o) => o === "c")).toHaveLength(Math.floor(SLOTS / 3));
    await until(() => two.map().epoch === one.map().epoch && three.map().epoch === one.map().epoch);
    expect(two.map().owners).toEqual(one.map().owners);
    for (let i = 0; i < 300; i++) {
      const key = `k/${i}`;
      for (const r of [one, two, three])
        expect(Number(dec((await r.get(key))?.value)), key).toBe(increments.get(key) ?? 0);
      let holders = 0;
      for (const g of [...groups, c]) if ((await g.kv.get(key)) !== undefined) holders++;
      expect(holders, key).toBe(1);
    }
    expect((await one.list("k/", { limit: 1_000 })).entries).toHaveLength(300);
    // Its revision from before the move cannot win a compare-and-set now (the group's revision
    // there may equal it by chance): read again, then it can.
    await expect(two.compareAndSet(still, enc("next"), before)).rejects.toMatchObject({
      code: "ABORTED",
      details: { reason: "moved" },
    });
    const after = await two.get(still);
    expect(after?.revision).toBeGreaterThan(2 ** 40);
    expect(await two.compareAndSet(still, enc("next"), after?.revision ?? 0)).toBeGreaterThan(
      after?.revision ?? 0,
    );
  });

  it("fences a router that went silent: a rebalance waits out its lease, and its late answer is not trusted", async () => {
    const coordination = await store();
    const a = await store();
    const b = await store();
    const groups = [
      { id: "a", region: "eu", kv: a },
      { id: "b", region: "eu", kv: b },
    ];
    // Router "late" reaches the map through a link the test cuts, and group a through a gate.
    const link = cuttable(coordination);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let held = 0;
    const gatedA = new Proxy(a, {
      get(target, property, receiver): unknown {
        if (property !== "put") return Reflect.get(target, property, receiver);
        return async (...args: Parameters<StrongKV["put"]>) => {
          held++;
          await gate;
          return target.put(...args);
        };
      },
    });
    const leader = await router(groups, coordination, { routerId: "leader" });
    const c = { id: "c", region: "us", kv: await store() };
    const late = await router(
      [
        { id: "a", region: "eu", kv: gatedA },
        { id: "b", region: "eu", kv: b },
      ],
      link.kv,
      { routerId: "late", resolveGroup: (g) => Promise.resolve({ ...g, kv: c.kv }) },
    );
    // A key in group a whose slot the rebalance will give to the new group.
    const moving = new Set(slotsToGive(leader.map().owners, 3));
    let i = 0;
    while (!(moving.has(slotOf(`acct/${i}`)) && leader.groupOf(`acct/${i}`).id === "a")) i++;
    const key = `acct/${i}`;
    await leader.put(key, enc("100"));
    const write = late.put(key, enc("0")).then(
      () => "ok",
      (error: StrataError) => `${error.code}:${String(error.details?.outcome)}`,
    );
    await until(() => held === 1);
    link.cut(true);
    const started = performance.now();
    await leader.addGroup(c);
    // It could not finish before the silent router's lease (600 ms) ran out.
    expect(performance.now() - started).toBeGreaterThan(550);
    expect(leader.groupOf(key).id).toBe("c");
    // The held write lands in group a now, after the copy: its router must not call it done.
    open();
    expect(await write).toBe("UNAVAILABLE:unknown");
    expect(dec((await leader.get(key))?.value)).toBe("100");
    // And the silent router serves nothing until it reaches the map again, then routes anew.
    await expect(late.get(key)).rejects.toMatchObject({ code: "UNAVAILABLE" });
    link.cut(false);
    await until(async () => (await late.get(key).catch(() => undefined)) !== undefined);
    expect(dec((await late.get(key))?.value)).toBe("100");
  });

  it("resumes a rebalance a router held up, from any router", async () => {
    const coordination = await store();
    const groups = await Promise.all(
      ["a", "b"].map(async (id) => ({ id, region: "eu", kv: await store() })),
    );
    const one = await router(groups, coordination, { routerId: "one", ackTimeoutMs: 300 });
    for (let i = 0; i < 200; i++) await one.put(`k/${i}`, enc(String(i)));
    // A router that keeps its record fresh but never applies a new map.
    let stuck = true;
    const stuckBeat = (async () => {
      while (stuck) {
        await coordination.put("shard-map/routers/stuck", encodeRouterRecord(1));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await coordination.delete("shard-map/routers/stuck");
    })();
    const c = { id: "c", region: "us", kv: await store() };
    await expect(one.addGroup(c)).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    // Nothing is frozen meanwhile, and a second rebalance is refused until this one ends.
    await one.put("k/0", enc("zero"));
    await expect(one.addGroup({ id: "d", region: "us", kv: await store() })).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: /resumeRebalance/,
    });
    stuck = false;
    await stuckBeat;
    const two = await router([...groups, c], coordination, { routerId: "two" });
    const moved = await two.resumeRebalance();
    expect(moved).toBeGreaterThan(30);
    await until(() => one.map().epoch === two.map().epoch);
    expect(one.map().owners.filter((o) => o === "c")).toHaveLength(Math.floor(SLOTS / 3));
    expect(dec((await one.get("k/0"))?.value)).toBe("zero");
    for (let i = 1; i < 200; i++) expect(dec((await one.get(`k/${i}`))?.value)).toBe(String(i));
    expect((await one.list("k/", { limit: 500 })).entries).toHaveLength(200);
  });

  it("opens groups added elsewhere through resolveGroup, and refuses what it cannot route", async () => {
    const coordination = await store();
    const groups = await Promise.all(
      ["a", "b"].map(async (id) => ({ id, region: "eu", kv: await store() })),
    );
    const one = await router(groups, coordination);
    const c = { id: "c", region: "us", kv: await store() };
    await one.addGroup(c);
    await one.put("x/1", enc("1"));
    await expect(router(groups, coordination)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: /group c/,
    });
    const resolved: string[] = [];
    const two = await router(groups, coordination, {
      resolveGroup: (g) => {
        resolved.push(g.id);
        return Promise.resolve({ ...g, kv: c.kv });
      },
    });
    expect(resolved).toEqual(["c"]);
    expect(dec((await two.get("x/1"))?.value)).toBe("1");
    await expect(one.addGroup(c)).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    await expect(router(groups, coordination, { leaseMs: 10, pollMs: 25 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(router(groups, coordination, { prefix: "bad prefix" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    const broken = await store();
    await broken.put("shard-map/map", enc('{"v":1,"epoch":1,"groups":[],"owners":[]}'));
    await expect(router(groups, broken)).rejects.toMatchObject({ code: "DATA_LOSS" });
    await broken.put("shard-map/map", enc("not json"));
    await expect(router(groups, broken)).rejects.toMatchObject({ code: "DATA_LOSS" });
    await expect(new ShardedKv(groups).resumeRebalance()).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
  });
});

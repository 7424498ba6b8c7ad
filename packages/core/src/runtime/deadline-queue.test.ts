import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { manualClock } from "../ports/index.js";
import { DeadlineQueue, type DeadlineItem } from "./deadline-queue.js";

interface Item extends DeadlineItem {
  readonly name: string;
}

function item(name: string, deadline: number): Item {
  return { name, deadline, heapIndex: -1 };
}

function setup() {
  const clock = manualClock();
  const expired: Array<{ name: string; at: number }> = [];
  const queue = new DeadlineQueue<Item>(clock, (i) =>
    expired.push({ name: i.name, at: clock.monotonic() }),
  );
  return { clock, queue, expired };
}

describe("DeadlineQueue", () => {
  it("expires items at their deadlines, earliest first, whatever the insertion order", () => {
    const { clock, queue, expired } = setup();
    for (const [name, deadline] of [
      ["c", 30],
      ["a", 10],
      ["e", 50],
      ["b", 20],
      ["d", 40],
    ] as const) {
      queue.push(item(name, deadline));
    }
    expect(queue.size).toBe(5);
    clock.advance(9);
    expect(expired).toEqual([]);
    clock.advance(26);
    expect(expired).toEqual([
      { name: "a", at: 10 },
      { name: "b", at: 20 },
      { name: "c", at: 30 },
    ]);
    expect(queue.size).toBe(2);
    clock.advance(100);
    expect(expired.map((e) => e.name)).toEqual(["a", "b", "c", "d", "e"]);
    expect(queue.size).toBe(0);
  });

  it("drives everything from a single timer", () => {
    const { clock, queue } = setup();
    for (let i = 0; i < 100; i++) queue.push(item(`i${i}`, 1_000 - i));
    expect(clock.pending()).toBe(1);
  });

  it("never expires a removed item, wherever it sat in the heap", () => {
    const { clock, queue, expired } = setup();
    const items = Array.from({ length: 10 }, (_, i) => item(`i${i}`, (i + 1) * 10));
    for (const i of items) queue.push(i);
    queue.remove(items[0] as Item); // the top
    queue.remove(items[9] as Item); // the last
    queue.remove(items[4] as Item); // the middle
    queue.remove(items[4] as Item); // twice is harmless
    expect(items[4]?.heapIndex).toBe(-1);
    expect(queue.size).toBe(7);
    clock.advance(1_000);
    expect(expired.map((e) => e.name)).toEqual(["i1", "i2", "i3", "i5", "i6", "i7", "i8"]);
  });

  it("re-arms for an earlier deadline pushed later", () => {
    const { clock, queue, expired } = setup();
    queue.push(item("late", 100));
    queue.push(item("early", 5));
    clock.advance(5);
    expect(expired).toEqual([{ name: "early", at: 5 }]);
    clock.advance(95);
    expect(expired).toEqual([
      { name: "early", at: 5 },
      { name: "late", at: 100 },
    ]);
  });

  it("re-arms after firing when items remain, and after being emptied", () => {
    const { clock, queue, expired } = setup();
    queue.push(item("a", 10));
    clock.advance(10);
    expect(clock.pending()).toBe(0);
    queue.push(item("b", 15));
    expect(clock.pending()).toBe(1);
    clock.advance(10);
    expect(expired.map((e) => e.name)).toEqual(["a", "b"]);
  });

  it("expires an item already past its deadline on the next tick", () => {
    const { clock, queue, expired } = setup();
    clock.advance(50);
    queue.push(item("stale", 10));
    clock.advance(0);
    expect(expired).toEqual([{ name: "stale", at: 50 }]);
  });

  it("lets an expiry handler push new items", () => {
    const clock = manualClock();
    const names: string[] = [];
    const queue: DeadlineQueue<Item> = new DeadlineQueue<Item>(clock, (i) => {
      names.push(i.name);
      if (i.name === "first") queue.push(item("second", clock.monotonic() + 10));
    });
    queue.push(item("first", 10));
    clock.advance(100);
    expect(names).toEqual(["first", "second"]);
  });

  it("stops its timer but keeps items queued", () => {
    const { clock, queue, expired } = setup();
    queue.push(item("a", 10));
    queue.stop();
    expect(clock.pending()).toBe(0);
    clock.advance(100);
    expect(expired).toEqual([]);
    expect(queue.size).toBe(1);
  });

  it("behaves like a sorted list under random pushes, removals and advances", () => {
    type Command =
      | { readonly type: "push"; readonly delay: number }
      | { readonly type: "remove"; readonly pick: number }
      | { readonly type: "advance"; readonly ms: number };
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({ type: fc.constant("push" as const), delay: fc.integer({ min: 0, max: 200 }) }),
      fc.record({ type: fc.constant("remove" as const), pick: fc.nat() }),
      fc.record({ type: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 120 }) }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 80 }), (commands) => {
        const { clock, queue, expired } = setup();
        const model = new Map<string, Item>(); // what should still be queued
        let next = 0;
        for (const c of commands) {
          switch (c.type) {
            case "push": {
              const i = item(`i${next++}`, clock.monotonic() + c.delay);
              model.set(i.name, i);
              queue.push(i);
              break;
            }
            case "remove": {
              const live = [...model.values()];
              const victim = live[c.pick % Math.max(1, live.length)];
              if (victim === undefined) break;
              model.delete(victim.name);
              queue.remove(victim);
              break;
            }
            case "advance": {
              const before = expired.length;
              clock.advance(c.ms);
              const now = clock.monotonic();
              const due = [...model.values()].filter((i) => i.deadline <= now);
              const fired = expired.slice(before);
              // Exactly the due items fire, each at its own deadline, in deadline order.
              expect(fired.map((e) => e.name).sort()).toEqual(due.map((i) => i.name).sort());
              for (const e of fired) expect(e.at).toBe(model.get(e.name)?.deadline);
              for (let k = 1; k < fired.length; k++) {
                expect(fired[k]?.at).toBeGreaterThanOrEqual(fired[k - 1]?.at ?? 0);
              }
              for (const i of due) model.delete(i.name);
              break;
            }
          }
          expect(queue.size).toBe(model.size);
          expect(clock.pending()).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 300 },
    );
  });
});

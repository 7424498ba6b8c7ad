import type { Clock, Timer } from "../ports/index.js";

/** Something with a deadline that can sit in a {@link DeadlineQueue}. */
export interface DeadlineItem {
  /** Monotonic time (ms) at which the item expires. */
  deadline: number;
  /** Position in the heap; -1 when not queued. Owned by the queue. */
  heapIndex: number;
}

/**
 * An indexed min-heap of deadlines driven by a single timer. Adding and removing an item is
 * O(log n) with no allocation, which keeps per-call timers off the hot path.
 */
export class DeadlineQueue<T extends DeadlineItem> {
  private readonly heap: T[] = [];
  private timer: Timer | undefined;
  private armedAt = Infinity;

  private readonly clock: Clock;
  private readonly onExpire: (item: T) => void;

  constructor(clock: Clock, onExpire: (item: T) => void) {
    this.clock = clock;
    this.onExpire = onExpire;
  }

  get size(): number {
    return this.heap.length;
  }

  push(item: T): void {
    item.heapIndex = this.heap.length;
    this.heap.push(item);
    this.up(item.heapIndex);
    if (item.deadline < this.armedAt) this.arm(item.deadline);
  }

  remove(item: T): void {
    const index = item.heapIndex;
    if (index < 0) return;
    item.heapIndex = -1;
    const last = this.heap.pop();
    if (last === undefined || index === this.heap.length) return;
    this.heap[index] = last;
    last.heapIndex = index;
    this.down(index);
    this.up(last.heapIndex);
  }

  /** The queued items, in no particular order (a copy). */
  items(): T[] {
    return [...this.heap];
  }

  /** Stops the timer; queued items stay queued. */
  stop(): void {
    this.timer?.clear();
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  private arm(at: number): void {
    this.timer?.clear();
    this.armedAt = at;
    this.timer = this.clock.setTimer(
      () => this.fire(),
      Math.max(0, Math.ceil(at - this.clock.monotonic())),
    );
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = this.clock.monotonic();
    for (;;) {
      const top = this.heap[0];
      if (top === undefined) return;
      if (top.deadline > now) {
        this.arm(top.deadline);
        return;
      }
      this.remove(top);
      try {
        this.onExpire(top);
      } catch {
        // One failing expiry must not strand the items behind it; callers log their own errors.
      }
    }
  }

  private up(index: number): void {
    const heap = this.heap;
    const item = heap[index];
    if (item === undefined) return;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as T;
      if (parent.deadline <= item.deadline) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = item;
    item.heapIndex = index;
  }

  private down(index: number): void {
    const heap = this.heap;
    const length = heap.length;
    const item = heap[index];
    if (item === undefined) return;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && (heap[right] as T).deadline < (heap[left] as T).deadline) child = right;
      const childItem = heap[child] as T;
      if (childItem.deadline >= item.deadline) break;
      heap[index] = childItem;
      childItem.heapIndex = index;
      index = child;
    }
    heap[index] = item;
    item.heapIndex = index;
  }
}

/** 32-bit FNV-1a followed by a murmur3 finaliser, for well-spread ring positions. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A consistent-hash ring with virtual nodes. When a member joins or leaves, only the keys on its
 * arcs move (about 1/N of them).
 *
 * @example
 * const ring = new HashRing(["n1", "n2", "n3"]); ring.owner("sku-42"); // "n2"
 */
export class HashRing<M extends string = string> {
  private readonly points: Uint32Array;
  private readonly owners: M[];

  constructor(members: readonly M[], virtualNodes = 128) {
    const entries: Array<[number, M]> = [];
    for (const member of members) {
      for (let v = 0; v < virtualNodes; v++) entries.push([hash32(`${member}#${v}`), member]);
    }
    entries.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    this.points = Uint32Array.from(entries, (e) => e[0]);
    this.owners = entries.map((e) => e[1]);
  }

  /** The member that owns `key`, or undefined for an empty ring. */
  owner(key: string): M | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const h = hash32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo];
  }
}

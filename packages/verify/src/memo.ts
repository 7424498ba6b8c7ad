/**
 * The search's memo of reached (linearized set, state) pairs, laid out to stay small when a
 * search reaches millions of them — which a search that must prove a long history *not*
 * linearizable does, as it has to try every way of ordering the history before the failure.
 *
 * Entries live in parallel typed arrays rather than objects, chained from an open hash table;
 * the sets' words live in one pool. A set is stored as its lowest unlinearized operation, its
 * highest linearized one, the words between them (the rest follows from those two), and the
 * words of the unknown-outcome operations. About 40 bytes an entry, plus the state.
 */
export class Memo<S> {
  private readonly equal: (a: S, b: S) => boolean;
  /** Words of the known-return region, then of the unknown-outcome region. */
  private readonly finiteWords: number;
  private readonly tailWords: number;

  private count = 0;
  private firstOpen: Int32Array<ArrayBuffer>;
  private lastLinearized: Int32Array<ArrayBuffer>;
  private offset: Int32Array<ArrayBuffer>;
  private keyLo: Int32Array<ArrayBuffer>;
  private keyHi: Int32Array<ArrayBuffer>;
  private chain: Int32Array<ArrayBuffer>;
  private readonly states: S[] = [];
  private pool: Uint32Array<ArrayBuffer>;
  private used = 0;
  private heads: Int32Array<ArrayBuffer>;

  /** `expected`: about how many pairs to make room for at first (it grows as needed). */
  constructor(options: {
    readonly finiteWords: number;
    readonly tailWords: number;
    readonly equal: (a: S, b: S) => boolean;
    readonly expected: number;
  }) {
    this.finiteWords = options.finiteWords;
    this.tailWords = options.tailWords;
    this.equal = options.equal;
    const entries = Math.max(16, options.expected);
    this.firstOpen = new Int32Array(entries);
    this.lastLinearized = new Int32Array(entries);
    this.offset = new Int32Array(entries);
    this.keyLo = new Int32Array(entries);
    this.keyHi = new Int32Array(entries);
    this.chain = new Int32Array(entries);
    this.pool = new Uint32Array(entries * (2 + this.tailWords));
    this.heads = new Int32Array(2 ** Math.ceil(Math.log2(entries * 2))).fill(-1);
  }

  /** Pairs remembered so far. */
  get size(): number {
    return this.count;
  }

  /**
   * Remembers the pair unless it is there already; returns whether it was new. `hashLo` and
   * `hashHi` hash set and state together; `bits` is the set, with all operations below
   * `firstOpen` in it and none above `lastLinearized` (in the known-return region).
   */
  add(
    hashLo: number,
    hashHi: number,
    bits: Uint32Array,
    firstOpen: number,
    lastLinearized: number,
    state: S,
  ): boolean {
    const from = firstOpen >>> 5;
    const to = lastLinearized < 0 ? -1 : lastLinearized >>> 5;
    const window = to >= from ? to - from + 1 : 0;
    const mask = this.heads.length - 1;
    const slot = (hashLo ^ Math.imul(hashHi, 0x9e3779b1)) & mask;
    for (let e = this.heads[slot] as number; e !== -1; e = this.chain[e] as number) {
      if (
        this.keyLo[e] !== hashLo ||
        this.keyHi[e] !== hashHi ||
        this.firstOpen[e] !== firstOpen ||
        this.lastLinearized[e] !== lastLinearized
      )
        continue;
      if (this.sameWords(e, bits, from, window) && this.equal(this.states[e] as S, state))
        return false;
    }
    this.store(hashLo, hashHi, bits, firstOpen, lastLinearized, state, from, window, slot);
    return true;
  }

  private sameWords(e: number, bits: Uint32Array, from: number, window: number): boolean {
    let at = this.offset[e] as number;
    for (let j = 0; j < window; j++) if (this.pool[at++] !== bits[from + j]) return false;
    for (let j = 0; j < this.tailWords; j++)
      if (this.pool[at++] !== bits[this.finiteWords + j]) return false;
    return true;
  }

  private store(
    hashLo: number,
    hashHi: number,
    bits: Uint32Array,
    firstOpen: number,
    lastLinearized: number,
    state: S,
    from: number,
    window: number,
    slot: number,
  ): void {
    const e = this.count++;
    if (e >= this.firstOpen.length) this.growEntries();
    const words = window + this.tailWords;
    if (this.used + words > this.pool.length) {
      const pool = new Uint32Array(Math.max(this.pool.length * 2, this.used + words));
      pool.set(this.pool.subarray(0, this.used));
      this.pool = pool;
    }
    this.offset[e] = this.used;
    this.pool.set(bits.subarray(from, from + window), this.used);
    this.pool.set(
      bits.subarray(this.finiteWords, this.finiteWords + this.tailWords),
      this.used + window,
    );
    this.used += words;
    this.firstOpen[e] = firstOpen;
    this.lastLinearized[e] = lastLinearized;
    this.keyLo[e] = hashLo;
    this.keyHi[e] = hashHi;
    this.states[e] = state;
    this.chain[e] = this.heads[slot] as number;
    this.heads[slot] = e;
    if (this.count > this.heads.length * 0.75) this.rehash();
  }

  private growEntries(): void {
    const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.firstOpen = grow(this.firstOpen);
    this.lastLinearized = grow(this.lastLinearized);
    this.offset = grow(this.offset);
    this.keyLo = grow(this.keyLo);
    this.keyHi = grow(this.keyHi);
    this.chain = grow(this.chain);
  }

  private rehash(): void {
    const heads = new Int32Array(this.heads.length * 2).fill(-1);
    const mask = heads.length - 1;
    for (let e = 0; e < this.count; e++) {
      const slot =
        ((this.keyLo[e] as number) ^ Math.imul(this.keyHi[e] as number, 0x9e3779b1)) & mask;
      this.chain[e] = heads[slot] as number;
      heads[slot] = e;
    }
    this.heads = heads;
  }
}

import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import {
  Frontier,
  MemoryMerkleStore,
  consistencyProof,
  createSthSigner,
  generateSthKeys,
  inclusionProof,
  leafHash,
  rootAt,
  signTreeHead,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHead,
} from "@strata/ledger";

/** One measured operation. */
export interface MerkleRow {
  readonly operation: string;
  readonly count: number;
  readonly opsPerSec: number;
  readonly meanUs: number;
}

/** The frontier's size after n appends, beside the full subtree store's. */
export interface FrontierRow {
  readonly entries: number;
  readonly hashes: number;
  readonly frontierBytes: number;
  readonly storeBytes: number;
}

/** What `npm run bench -- merkle` writes to bench/results/merkle.json. */
export interface MerkleResults {
  readonly when: string;
  readonly machine: { readonly cpus: number; readonly node: string };
  readonly leaves: number;
  readonly rows: readonly MerkleRow[];
  readonly frontier: readonly FrontierRow[];
  readonly targets: ReadonlyArray<{
    readonly name: string;
    readonly value: number;
    readonly target: string;
    readonly met: boolean;
  }>;
}

/** A deterministic generator (mulberry32), so every run proves the same indexes. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function measure(operation: string, count: number, fn: (i: number) => void): MerkleRow {
  const started = performance.now();
  for (let i = 0; i < count; i++) fn(i);
  const ms = performance.now() - started;
  return {
    operation,
    count,
    opsPerSec: Math.round((count / ms) * 1000),
    meanUs: Math.round((ms / count) * 1000 * 10) / 10,
  };
}

/**
 * Merkle proof generation and verification against an in-memory tree of 10^6 leaves (10^5 with
 * `quick`), signed tree heads (Ed25519 via node:crypto plus ML-DSA-65 via @noble/post-quantum),
 * and the frontier's size from 10^3 to 10^6 entries. Single-threaded, in one process.
 */
export async function runMerkleBench(options: {
  readonly quick: boolean;
  readonly log: (line: string) => void;
}): Promise<MerkleResults> {
  const { quick, log } = options;
  const leaves = quick ? 100_000 : 1_000_000;
  const proofs = quick ? 5_000 : 50_000;
  const heads = quick ? 20 : 200;
  const rows: MerkleRow[] = [];
  const frontierRows: FrontierRow[] = [];
  const next = random(0x5eed);
  const pick = (below: number): number => Math.floor(next() * below);

  const store = new MemoryMerkleStore();
  const frontier = new Frontier();
  const entry = new Uint8Array(64);
  const view = new DataView(entry.buffer);
  const checkpoints = new Set([1_000, 10_000, 100_000, 1_000_000]);
  const appended = measure("append (leaf hash + subtree store + frontier)", leaves, (i) => {
    view.setUint32(0, i);
    const hash = leafHash(entry);
    store.append(hash);
    frontier.append(hash);
    const n = i + 1;
    if (checkpoints.has(n)) {
      frontierRows.push({
        entries: n,
        hashes: frontier.hashes().length,
        frontierBytes: frontier.toBytes().length,
        storeBytes: store.storedBytes(),
      });
    }
  });
  rows.push(appended);
  log(`appended ${leaves.toLocaleString("en-US")} leaves: ${appended.opsPerSec}/s`);
  const root = frontier.root();
  await Promise.resolve(); // yield once between phases, so a caller's timers and logs get a turn

  const indexes = Array.from({ length: proofs }, () => pick(leaves));
  const inclusion: Uint8Array[][] = [];
  rows.push(
    measure(`inclusion proof, generate (n=${leaves})`, proofs, (i) => {
      inclusion.push(inclusionProof(store, indexes[i] as number, leaves));
    }),
  );
  const leafHashes = indexes.map((i) => store.leafHash(i));
  let invalid = 0;
  rows.push(
    measure(`inclusion proof, verify (n=${leaves})`, proofs, (i) => {
      const ok = verifyInclusion({
        leafHash: leafHashes[i] as Uint8Array,
        index: indexes[i] as number,
        size: leaves,
        proof: inclusion[i] as Uint8Array[],
        root,
      });
      if (!ok) invalid++;
    }),
  );
  log(
    `inclusion proofs: ${rows.at(-2)?.opsPerSec}/s generated, ${rows.at(-1)?.opsPerSec}/s verified`,
  );

  const sizes = Array.from({ length: proofs }, () => 1 + pick(leaves - 1));
  const oldRoots = sizes.map((size) => rootAt(store, size));
  const consistency: Uint8Array[][] = [];
  rows.push(
    measure(`consistency proof, generate (n=${leaves})`, proofs, (i) => {
      consistency.push(consistencyProof(store, sizes[i] as number, leaves));
    }),
  );
  rows.push(
    measure(`consistency proof, verify (n=${leaves})`, proofs, (i) => {
      const ok = verifyConsistency({
        size1: sizes[i] as number,
        size2: leaves,
        root1: oldRoots[i] as Uint8Array,
        root2: root,
        proof: consistency[i] as Uint8Array[],
      });
      if (!ok) invalid++;
    }),
  );
  log(
    `consistency proofs: ${rows.at(-2)?.opsPerSec}/s generated, ${rows.at(-1)?.opsPerSec}/s verified`,
  );
  rows.push(measure("frontier root (fold of the subtree roots)", proofs, () => frontier.root()));

  const { publicKeys, privateKeys } = generateSthKeys();
  const signer = createSthSigner(privateKeys);
  const signed = [] as ReturnType<typeof signTreeHead>[];
  rows.push(
    measure("signed tree head, sign (Ed25519 + ML-DSA-65)", heads, (i) => {
      signed.push(signTreeHead(signer, { size: leaves, root, timestamp: 1_700_000_000_000 + i }));
    }),
  );
  rows.push(
    measure("signed tree head, verify (both signatures)", heads, (i) => {
      if (!verifyTreeHead(signed[i] as (typeof signed)[number], publicKeys)) invalid++;
    }),
  );
  log(`tree heads: ${rows.at(-2)?.opsPerSec}/s signed, ${rows.at(-1)?.opsPerSec}/s verified`);
  if (invalid > 0) throw new Error(`${invalid} honest proofs or heads failed to verify`);

  const largest = frontierRows.at(-1);
  const rate = (operation: string): number =>
    rows.find((r) => r.operation.startsWith(operation))?.opsPerSec ?? 0;
  const targets = [
    {
      name: `inclusion proofs generated per second at n=${leaves}`,
      value: rate("inclusion proof, generate"),
      target: "at least 10,000/s",
      met: rate("inclusion proof, generate") >= 10_000,
    },
    {
      name: `inclusion proofs verified per second at n=${leaves}`,
      value: rate("inclusion proof, verify"),
      target: "at least 10,000/s",
      met: rate("inclusion proof, verify") >= 10_000,
    },
    {
      name: `frontier hashes at ${largest?.entries ?? 0} entries`,
      value: largest?.hashes ?? 0,
      target: "at most log2(n) + 1",
      met: largest !== undefined && largest.hashes <= Math.log2(largest.entries) + 1,
    },
  ];
  return {
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.versions.node },
    leaves,
    rows,
    frontier: frontierRows,
    targets,
  };
}

export function renderMerkleMarkdown(r: MerkleResults, command: string): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  return [
    `Measured ${r.when.slice(0, 10)} on ${r.machine.cpus} cores, Node ${r.machine.node}, with \`${command}\`: one thread, an in-memory tree of ${n(r.leaves)} leaves (RFC 9162, SHA-256 from node:crypto) that keeps every complete subtree hash, proofs for uniformly random leaves and old tree sizes against the full tree. Signed tree heads carry an Ed25519 signature (node:crypto) and an ML-DSA-65 signature (@noble/post-quantum, pure JavaScript); a head verifies only if both do.`,
    "",
    "| operation | count | ops/s | mean µs |",
    "|---|---:|---:|---:|",
    ...r.rows.map(
      (row) => `| ${row.operation} | ${n(row.count)} | ${n(row.opsPerSec)} | ${row.meanUs} |`,
    ),
    "",
    "The frontier a log keeps to know its root holds one hash per set bit of its size, so it grows with log n; the subtree store that makes proofs O(log n) grows with n (about 64 bytes a leaf).",
    "",
    "| entries | frontier hashes | frontier bytes (serialized) | subtree store bytes |",
    "|---:|---:|---:|---:|",
    ...r.frontier.map(
      (row) =>
        `| ${n(row.entries)} | ${row.hashes} | ${n(row.frontierBytes)} | ${n(row.storeBytes)} |`,
    ),
    "",
    ...r.targets.map(
      (t) => `- ${t.met ? "met" : "MISSED"}: ${t.name}: ${n(t.value)} (goal ${t.target})`,
    ),
  ].join("\n");
}

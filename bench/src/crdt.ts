import {
  createCrdtSpace,
  createEmbeddedNetwork,
  createNode,
  join,
  mvRegister,
  orMap,
  type Causal,
  type CrdtSpace,
  type DotMap,
  type DotStore,
  type MVRegister,
  type ORMap,
  type StrataNode,
} from "@strata/core";
import { pack } from "msgpackr";

/** CRDT measurements: merge speed, delta size, convergence after a partition. */
export interface CrdtResults {
  readonly mergesPerSecond: number;
  readonly fullStateBytes: number;
  readonly deltaBytes: number;
  readonly deltaRatio: number;
  readonly convergence: { readonly keysChanged: number; readonly ms: number };
}

/** A 10,000-entry OR-Map as 10,000 updates by replica a leave it. */
function bigMap(): ORMap {
  const entries: Record<string, DotStore> = {};
  for (let i = 0; i < 10_000; i++)
    entries[`sku-${i}`] = { t: "fun", entries: { [`a:${i + 1}`]: i % 7 } };
  return { store: { t: "map", entries }, ctx: { vv: { a: 10_000 }, cloud: [] } };
}

export async function runCrdtBench(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<CrdtResults> {
  // Merge speed: joining small cart deltas into a cart, as a replica does for each one received.
  let cart = orMap.empty();
  const deltas: ORMap[] = [];
  for (let i = 0; i < 2_000; i++) {
    const delta = orMap.update(cart, i % 2 === 0 ? "eu" : "us", `sku-${i % 40}`, (q, r) =>
      mvRegister.write(q as MVRegister<number>, r, i),
    );
    cart = join(cart, delta);
    deltas.push(delta);
  }
  const merges = options.quick ? 20_000 : 200_000;
  let state = orMap.empty();
  const t0 = performance.now();
  for (let i = 0; i < merges; i++) state = join(state, deltas[i % deltas.length] as ORMap);
  const mergesPerSecond = Math.round(merges / ((performance.now() - t0) / 1000));
  options.log(`crdt     merge of a cart delta into a 40-item cart: ${mergesPerSecond} joins/s`);

  // Delta size: 1% of a 10,000-entry map changed.
  let map = bigMap();
  let group = orMap.empty();
  for (let i = 0; i < 100; i++) {
    const delta = orMap.update(map, "b", `sku-${i * 100}`, (q, r) =>
      mvRegister.write(q as MVRegister<number>, r, 99),
    );
    map = join(map, delta);
    group = join(group, delta);
  }
  const fullStateBytes = pack(map).length;
  const deltaBytes = pack(group).length;
  options.log(
    `crdt     10,000-entry OR-Map, 1% changed: delta ${deltaBytes} bytes of ${fullStateBytes} (${((deltaBytes / fullStateBytes) * 100).toFixed(2)}%)`,
  );

  // Convergence after a partition heals, with many keys changed on both sides.
  const keys = options.quick ? 1_000 : 10_000;
  const network = createEmbeddedNetwork();
  const nodes: StrataNode[] = [];
  const spaces: CrdtSpace[] = [];
  try {
    for (const [id, region] of [
      ["eu", "eu"],
      ["us", "us"],
    ] as const) {
      const node = createNode({
        id,
        region,
        transport: network.transport(),
        heartbeatIntervalMs: 100,
        deadAfterMs: 60_000,
      });
      spaces.push(await createCrdtSpace(node, { name: "bench", shipEveryMs: 10 }));
      await node.start();
      nodes.push(node);
    }
    while (nodes.some((n) => n.nodes().length < 2))
      await new Promise((resolve) => setTimeout(resolve, 10));
    network.partition(["eu"], ["us"]);
    const [eu, us] = spaces as [CrdtSpace, CrdtSpace];
    for (let i = 0; i < keys; i++) {
      const space = i % 2 === 0 ? eu : us;
      await space.update(`cart-${i}`, (s: Causal<DotMap>, r) =>
        orMap.update(s, r, "sku-1", (q, r2) => mvRegister.write(q as MVRegister<number>, r2, i)),
      );
    }
    const healed = performance.now();
    network.heal();
    while (eu.keys().length < keys || us.keys().length < keys)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const ms = Math.round(performance.now() - healed);
    options.log(
      `crdt     ${keys} keys changed across a partition: replicas equal ${ms} ms after the heal`,
    );
    return {
      mergesPerSecond,
      fullStateBytes,
      deltaBytes,
      deltaRatio: Math.round((deltaBytes / fullStateBytes) * 10_000) / 10_000,
      convergence: { keysChanged: keys, ms },
    };
  } finally {
    for (const s of spaces) await s[Symbol.asyncDispose]();
    for (const n of nodes) await n.stop({ drainTimeoutMs: 500 });
  }
}

export function renderCrdtMarkdown(r: CrdtResults): string {
  return [
    "",
    "CRDTs (same command):",
    "",
    "| measure | result | target |",
    "|---|---:|---|",
    `| joins of a cart delta into a 40-item cart | ${r.mergesPerSecond.toLocaleString("en-US")}/s | — |`,
    `| delta for 1% of a 10,000-entry OR-Map | ${r.deltaBytes.toLocaleString("en-US")} of ${r.fullStateBytes.toLocaleString("en-US")} bytes (${(r.deltaRatio * 100).toFixed(2)}%) | <= 5% ${r.deltaRatio <= 0.05 ? "(met)" : "(**missed**)"} |`,
    `| convergence after a partition heals, ${r.convergence.keysChanged.toLocaleString("en-US")} keys changed | ${r.convergence.ms} ms | — |`,
  ].join("\n");
}

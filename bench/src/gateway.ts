import { Agent, request } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus } from "node:os";
import {
  createEmbeddedNetwork,
  createNode,
  defineService,
  runLoad,
  type LoadReport,
} from "@strata/core";
import { createGateway, route } from "@strata/gateway";
import { createCedarAuthorizer, createJwtVerifier } from "@strata/security";
import Fastify from "fastify";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { z } from "zod";
import { PAYLOAD } from "./rpc.js";

/** One measured row: a server at one concurrency (median round by throughput). */
export interface GatewayRow {
  readonly server: "strata gateway" | "plain fastify";
  readonly concurrency: number;
  readonly calls: number;
  readonly errors: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** What `npm run bench -- gateway` writes to bench/results/gateway.json. */
export interface GatewayResults {
  readonly when: string;
  readonly machine: { readonly cpus: number; readonly node: string };
  readonly rows: readonly GatewayRow[];
  /** Gateway ÷ plain fastify throughput, by concurrency. */
  readonly ratios: Readonly<Record<string, number>>;
}

export interface GatewayBenchOptions {
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

const ISSUER = "https://issuer.bench";
const AUDIENCE = "bench-api";
const POLICIES = `permit (principal in Role::"reader", action == Action::"orders.get", resource);`;

const orders = defineService({
  name: "orders",
  version: "1.0.0",
  actions: {
    get: {
      input: z.object({ id: z.string().max(64) }),
      output: z.object({
        id: z.string(),
        sku: z.string(),
        qty: z.number(),
        priceMinor: z.number(),
        currency: z.string(),
        tags: z.array(z.string()),
        ok: z.boolean(),
      }),
      idempotent: true,
    },
  },
});

/** A keep-alive HTTP GET that reads the whole answer; rejects on anything but 200. */
function getter(
  base: string,
  path: string,
  agent: Agent,
  headers: Record<string, string>,
): () => Promise<void> {
  const url = new URL(path, base);
  return () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        { host: url.hostname, port: url.port, path: url.pathname, agent, headers },
        (res) => {
          res.resume();
          res.on("end", () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`)),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
}

/**
 * Requests a second and latency through the Strata gateway (JWT verification, Cedar
 * authorization at the edge, a per-client rate limiter, an embedded node calling the service)
 * against a plain fastify handler answering the same JSON, with the same load generator
 * (node:http keep-alive, fixed concurrency) in the same process. The two servers take turns for
 * several rounds; each row is the median round.
 */
export async function runGatewayBench(options: GatewayBenchOptions): Promise<GatewayResults> {
  const concurrencies = [1, 16, 64];
  const rounds = options.quick ? 1 : 3;
  const calls = (c: number): number => {
    const base = c === 1 ? 8_000 : 30_000;
    return options.quick ? Math.floor(base / 10) : base;
  };
  const warmupCalls = options.quick ? 500 : 3_000;

  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench-1", alg: "ES256", use: "sig" };
  const token = await new SignJWT({ roles: ["reader"] })
    .setProtectedHeader({ alg: "ES256", kid: "bench-1" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject("bench-user")
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(privateKey);

  const network = createEmbeddedNetwork();
  const service = createNode({
    id: "orders-1",
    transport: network.transport(),
    services: [orders.implement({ get: ({ id }) => ({ ...PAYLOAD, id }) })],
  });
  const edge = createNode({ id: "edge", transport: network.transport() });
  await Promise.all([service.start(), edge.start()]);
  await edge.waitForService("orders", { timeoutMs: 5_000 });
  const authorizer = await createCedarAuthorizer({ policies: POLICIES });
  const gateway = createGateway({
    node: edge,
    authenticate: createJwtVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [jwk] } }),
    authorizer,
    // High enough never to refuse, so that its cost is measured but not its refusals.
    rateLimit: { perSecond: 1_000_000_000, burst: 1_000_000_000 },
    routes: [route({ method: "GET", path: "/v1/orders/:id", contract: orders, action: "get" })],
  });
  const plain = Fastify({ logger: false });
  plain.get<{ Params: { id: string } }>("/v1/orders/:id", (req) => ({
    ...PAYLOAD,
    id: req.params.id,
  }));
  await plain.listen({ host: "127.0.0.1", port: 0 });
  const plainUrl = `http://127.0.0.1:${(plain.server.address() as AddressInfo).port}`;
  const gatewayUrl = await gateway.listen();

  const samples = new Map<string, GatewayRow[]>();
  const agents: Agent[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const concurrency of concurrencies) {
        for (const [server, base, headers] of [
          ["strata gateway", gatewayUrl, { authorization: `Bearer ${token}` }],
          ["plain fastify", plainUrl, {}],
        ] as const) {
          const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
          agents.push(agent);
          const call = getter(base, "/v1/orders/ord-000042", agent, headers);
          (globalThis as { gc?: () => void }).gc?.();
          const report: LoadReport = await runLoad({
            concurrency,
            calls: calls(concurrency),
            warmupCalls,
            call,
          });
          agent.destroy();
          const row: GatewayRow = {
            server,
            concurrency,
            calls: report.calls,
            errors: report.calls - report.ok,
            rps: Math.round(report.throughput),
            p50Ms: report.latency.p50,
            p99Ms: report.latency.p99,
          };
          const key = `${server}@${concurrency}`;
          samples.set(key, [...(samples.get(key) ?? []), row]);
        }
      }
    }
  } finally {
    for (const agent of agents) agent.destroy();
    await gateway.close();
    await plain.close();
    await authorizer.close();
    await Promise.all([edge.stop(), service.stop()]);
  }

  const rows: GatewayRow[] = [];
  const ratios: Record<string, number> = {};
  for (const concurrency of concurrencies) {
    const pick = (server: GatewayRow["server"]): GatewayRow => {
      const runs = [...(samples.get(`${server}@${concurrency}`) ?? [])].sort(
        (a, b) => a.rps - b.rps,
      );
      const row = runs[Math.floor(runs.length / 2)] as GatewayRow;
      options.log(
        `${server.padEnd(15)} c=${String(concurrency).padStart(3)}  ${String(row.rps).padStart(7)} req/s  p50 ${row.p50Ms.toFixed(3)} ms  p99 ${row.p99Ms.toFixed(3)} ms  (median of ${runs.length}: ${runs.map((r) => r.rps).join(", ")})${row.errors > 0 ? `  errors ${row.errors}` : ""}`,
      );
      return row;
    };
    const g = pick("strata gateway");
    const p = pick("plain fastify");
    rows.push(g, p);
    ratios[`gateway ÷ plain fastify, c=${concurrency}`] =
      p.rps === 0 ? NaN : Math.round((g.rps / p.rps) * 100) / 100;
  }
  return {
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version },
    rows,
    ratios,
  };
}

/** Renders the results as the Gateway section of docs/BENCHMARKS.md. */
export function renderGatewayMarkdown(results: GatewayResults, command: string): string {
  const lines: string[] = [];
  lines.push(
    `Measured ${results.when.slice(0, 10)} on ${results.machine.cpus} cores, Node ${results.machine.node}, with \`${command}\`.`,
  );
  lines.push(
    "`GET /v1/orders/:id` answering a ~120-byte JSON object. The Strata gateway verifies an ES256 JWT, takes a rate-limiter token, validates the input and asks a Cedar authorizer (one policy) at the edge, then calls the service through an embedded node; plain fastify answers the same JSON from its handler. Both servers, the service node and the load generator (node:http keep-alive agent, fixed concurrency, fixed request counts after a warm-up) share one process; the servers take turns for three rounds and each row is the median round.",
  );
  lines.push("");
  lines.push("| server | concurrency | req/s | p50 ms | p99 ms | errors |");
  lines.push("|---|---:|---:|---:|---:|---:|");
  for (const r of results.rows) {
    lines.push(
      `| ${r.server} | ${r.concurrency} | ${r.rps.toLocaleString("en-US")} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.errors} |`,
    );
  }
  lines.push("");
  lines.push("Ratios (gateway ÷ plain fastify, throughput):");
  lines.push("");
  for (const [name, value] of Object.entries(results.ratios)) lines.push(`- ${name}: ${value}x`);
  return lines.join("\n");
}

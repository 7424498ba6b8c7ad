import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createNode } from "@strata/core";
import { createNatsTransport, type NatsTlsOptions } from "@strata/nats";
import {
  createWorkloadIdentity,
  initCa,
  issueWorkloadCertificate,
  preferredTlsGroups,
  probeNatsTls,
  readCa,
  type IssuedCertificate,
} from "@strata/security";
import { startNatsCluster } from "@strata/test-harness";
import { echo } from "./peers/strata-rpc.js";
import {
  measureGroup,
  natsSetupOptions,
  ratiosAgainst,
  type Peer,
  type RpcResults,
} from "./rpc.js";

/** What `npm run bench -- mtls` writes to bench/results/mtls.json. */
export interface MtlsResults extends Pick<RpcResults, "when" | "machine" | "rows"> {
  /** Throughput of each set-up over plaintext, per concurrency. */
  readonly ratios: Readonly<Record<string, number>>;
  /** The key exchange group the TLS server and this runtime agreed on. */
  readonly tlsGroup: string;
}

const BASE = "plaintext";
const SETUPS = [BASE, "mTLS", "mTLS + signed envelopes"] as const;

const impl = echo.implement({ echo: (input) => input });

/**
 * The cost of zero-trust transport on NATS calls: the RPC table's echo call between two nodes of
 * this process over a plaintext server, over a server that requires client certificates
 * (`verify: true`), and over the same with every request signed and verified (workload identity
 * envelopes). The set-ups take turns for several rounds on the same machine.
 */
export async function runMtlsBench(options: {
  readonly quick: boolean;
  readonly log: (line: string) => void;
}): Promise<MtlsResults> {
  const { quick, log } = options;
  const dir = await mkdtemp(join(tmpdir(), "strata-bench-mtls-"));
  try {
    const caDir = join(dir, "ca");
    await initCa({ dir: caDir, trustDomain: "bench.example" });
    const { rootPem, bundlePem: ca } = await readCa(caDir);
    const issue = (service: string, hosts?: string[]): Promise<IssuedCertificate> =>
      issueWorkloadCertificate({
        dir: caDir,
        namespace: "bench",
        service,
        ...(hosts === undefined ? {} : { hosts }),
      });
    const serverCert = await issue("nats", ["127.0.0.1", "localhost"]);
    await writeFile(join(dir, "server.pem"), serverCert.chainPem);
    await writeFile(join(dir, "server.key"), serverCert.keyPem, { mode: 0o600 });
    await writeFile(join(dir, "ca.pem"), ca);
    const callee = await issue("callee");
    const caller = await issue("caller");

    await using plain = await startNatsCluster({ nodes: 1, jetstream: false });
    await using secure = await startNatsCluster({
      nodes: 1,
      jetstream: false,
      tls: {
        certFile: join(dir, "server.pem"),
        keyFile: join(dir, "server.key"),
        caFile: join(dir, "ca.pem"),
        verify: true,
      },
    });
    const negotiated = await probeNatsTls(secure.url, {
      ca,
      cert: caller.chainPem,
      key: caller.keyPem,
    });
    log(`TLS: ${negotiated.protocol}, key exchange ${negotiated.group}`);

    const tlsOf = (cert: IssuedCertificate): NatsTlsOptions => ({
      cert: cert.chainPem,
      key: cert.keyPem,
      ca,
      ecdhCurve: preferredTlsGroups(),
    });
    const signerOf = (cert: IssuedCertificate) =>
      createWorkloadIdentity({
        chainPem: cert.chainPem,
        keyPem: cert.keyPem,
        rootPem,
        trustDomain: "bench.example",
      });
    const make = async (setup: (typeof SETUPS)[number], i: number): Promise<Peer> => {
      const url = setup === BASE ? plain.url : secure.url;
      const signed = setup === "mTLS + signed envelopes";
      const side = async (cert: IssuedCertificate) => ({
        servers: url,
        cluster: `mtls${i}`,
        ...(setup === BASE ? {} : { tls: tlsOf(cert) }),
        ...(signed ? { signer: await signerOf(cert) } : {}),
      });
      const server = createNode({
        id: `m-server-${i}`,
        transport: createNatsTransport(await side(callee)),
        services: [impl],
      });
      const client = createNode({
        id: `m-client-${i}`,
        transport: createNatsTransport(await side(caller)),
      });
      await server.start();
      await client.start();
      await client.waitForService("echo", { timeoutMs: 10_000 });
      const c = client.client(echo);
      return {
        call: (payload) => c.echo(payload),
        [Symbol.asyncDispose]: async () => {
          await client.stop();
          await server.stop();
        },
      };
    };
    const rows = await measureGroup(
      "nats",
      SETUPS.map((name, i) => ({ name, make: () => make(name, i) })),
      natsSetupOptions(quick, log),
    );
    const ratios = ratiosAgainst(rows, BASE);
    return {
      when: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        node: process.versions.node,
        natsServer: secure.servers[0]?.version ?? "unknown",
      },
      rows,
      ratios,
      tlsGroup: `${negotiated.protocol} ${negotiated.group}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function renderMtlsMarkdown(r: MtlsResults, command: string): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  return [
    `Measured ${r.when.slice(0, 10)} on ${r.machine.cpus} cores, Node ${r.machine.node}, nats-server ${r.machine.natsServer}, with \`${command}\`: the echo call of the RPC table between two nodes of one process, over a plaintext server and over a server requiring client certificates from the built-in CA (\`verify: true\`; ${r.tlsGroup}), without and with signed call envelopes (ECDSA P-256 per request, verified by the callee). The set-ups take turns for three rounds; each row is the median round.`,
    "",
    "| set-up | concurrency | calls/s | vs plaintext | p50 ms | p99 ms |",
    "|---|---:|---:|---:|---:|---:|",
    ...[1, 16, 128].flatMap((c) =>
      r.rows
        .filter((row) => row.concurrency === c)
        .map(
          (row) =>
            `| ${row.peer} | ${c} | ${n(row.rps)} | ${row.peer === BASE ? "1x" : `${r.ratios[`${row.peer}@${c}`] ?? "?"}x`} | ${row.p50Ms.toFixed(3)} | ${row.p99Ms.toFixed(3)} |`,
        ),
    ),
  ].join("\n");
}

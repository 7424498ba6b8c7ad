import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, defineService, type StrataNode } from "@strata/core";
import { createNatsTransport } from "@strata/nats";
import { startNatsCluster, type NatsCluster } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CA_FILES, initCa, issueWorkloadCertificate, type IssuedCertificate } from "./ca.js";

const echo = defineService({
  name: "echo",
  version: "1.0.0",
  actions: {
    say: { input: z.object({ text: z.string() }), output: z.object({ text: z.string() }) },
  },
});

/**
 * Nodes reach NATS over mutual TLS with certificates from the built-in CA: the server requires a
 * client certificate from that CA (`verify: true`), and a client trusts only servers it issued.
 */
describe("mutual TLS to NATS with workload certificates", () => {
  let dir: string;
  let cluster: NatsCluster;
  let caBundle: string;
  let orders: IssuedCertificate;
  let gateway: IssuedCertificate;
  const nodes: StrataNode[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-mtls-"));
    const ca = join(dir, "ca");
    await initCa({ dir: ca, trustDomain: "shop.example" });
    caBundle = `${await readFile(join(ca, CA_FILES.rootCert), "utf8")}\n${await readFile(join(ca, CA_FILES.intermediateCert), "utf8")}`;
    const server = await issueWorkloadCertificate({
      dir: ca,
      namespace: "infra",
      service: "nats",
      hosts: ["127.0.0.1", "localhost"],
    });
    await writeFile(join(dir, "server-chain.pem"), server.chainPem);
    await writeFile(join(dir, "server-key.pem"), server.keyPem, { mode: 0o600 });
    await writeFile(join(dir, "ca.pem"), caBundle);
    cluster = await startNatsCluster({
      nodes: 1,
      jetstream: false,
      tls: {
        certFile: join(dir, "server-chain.pem"),
        keyFile: join(dir, "server-key.pem"),
        caFile: join(dir, "ca.pem"),
        verify: true,
      },
    });
    orders = await issueWorkloadCertificate({ dir: ca, namespace: "prod", service: "orders" });
    gateway = await issueWorkloadCertificate({ dir: ca, namespace: "prod", service: "gateway" });
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop({ drainTimeoutMs: 100 })));
    await cluster?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const node = (id: string, tls?: { cert: string; key: string; ca: string }): StrataNode => {
    const n = createNode({
      id,
      transport: createNatsTransport({
        servers: cluster.url,
        cluster: "mtls",
        connection: { maxReconnectAttempts: 0, timeout: 3_000 },
        ...(tls === undefined ? {} : { tls }),
      }),
      heartbeatIntervalMs: 200,
    });
    nodes.push(n);
    return n;
  };

  it("serves calls between nodes that present certificates from the CA, and carries the principal", async () => {
    const server = node("orders-1", { cert: orders.chainPem, key: orders.keyPem, ca: caBundle });
    const seen: unknown[] = [];
    server.serve(
      echo.implement({
        say: ({ text }, ctx) => {
          seen.push(ctx.principal);
          return { text };
        },
      }),
    );
    const client = node("gateway-1", { cert: gateway.chainPem, key: gateway.keyPem, ca: caBundle });
    await server.start();
    await client.start();
    await client.waitForService("echo", { timeoutMs: 10_000 });
    await expect(client.client(echo).say({ text: "over mTLS" })).resolves.toEqual({
      text: "over mTLS",
    });
    // Over an authenticated transport the user a gateway verified reaches the callee.
    const user = { kind: "user", subject: "alice", claims: { roles: ["nurse"] } } as const;
    await client.client(echo, { principal: user }).say({ text: "as alice" });
    expect(seen).toEqual([undefined, user]);
  });

  it("refuses clients without a certificate, with one from another CA, or in plaintext", async () => {
    // No client certificate: the server (verify: true) refuses the handshake.
    await expect(node("anonymous", { cert: "", key: "", ca: caBundle }).start()).rejects.toThrow(
      /cannot connect/,
    );
    // A certificate from another CA.
    const rogueCa = join(dir, "rogue");
    await initCa({ dir: rogueCa, trustDomain: "shop.example" });
    const rogue = await issueWorkloadCertificate({
      dir: rogueCa,
      namespace: "prod",
      service: "orders",
    });
    await expect(
      node("rogue", { cert: rogue.chainPem, key: rogue.keyPem, ca: caBundle }).start(),
    ).rejects.toThrow(/cannot connect/);
    // No TLS at all.
    await expect(node("plaintext").start()).rejects.toThrow(/cannot connect/);
    // A client that trusts only another CA refuses our server.
    const rogueBundle = await readFile(join(rogueCa, CA_FILES.rootCert), "utf8");
    await expect(
      node("distrustful", { cert: orders.chainPem, key: orders.keyPem, ca: rogueBundle }).start(),
    ).rejects.toThrow(/cannot connect/);
  });
});

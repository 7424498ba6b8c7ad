import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createNode,
  defineService,
  isStrataError,
  runOpenLoad,
  type CallContext,
  type StrataNode,
} from "@strata/core";
import { createNatsTransport, type NatsTlsOptions } from "@strata/nats";
import { startNatsCluster, waitFor, type NatsCluster } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  CA_FILES,
  initCa,
  issueWorkloadCertificate,
  readCa,
  type IssuedCertificate,
} from "./ca.js";
import { createWorkloadIdentity, startRenewal, type WorkloadIdentitySigner } from "./workload.js";
import { PQ_GROUP, postQuantumTlsSupported, preferredTlsGroups, probeNatsTls } from "./pq.js";

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
  let caDir: string;
  let rootPem: string;
  let orders: IssuedCertificate;
  let gateway: IssuedCertificate;
  const nodes: StrataNode[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-mtls-"));
    const ca = join(dir, "ca");
    caDir = ca;
    await initCa({ dir: ca, trustDomain: "shop.example" });
    ({ rootPem, bundlePem: caBundle } = await readCa(ca));
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

  const node = (
    id: string,
    tls?: NatsTlsOptions,
    signer?: WorkloadIdentitySigner,
    reconnect = false,
  ): StrataNode => {
    const n = createNode({
      id,
      transport: createNatsTransport({
        servers: cluster.url,
        cluster: "mtls",
        connection: reconnect
          ? { maxReconnectAttempts: -1, reconnectTimeWait: 100, timeout: 3_000 }
          : { maxReconnectAttempts: 0, timeout: 3_000 },
        ...(tls === undefined ? {} : { tls }),
        ...(signer === undefined ? {} : { signer }),
      }),
      heartbeatIntervalMs: 200,
    });
    nodes.push(n);
    return n;
  };

  const signerFor = (cert: IssuedCertificate): Promise<WorkloadIdentitySigner> =>
    createWorkloadIdentity({
      chainPem: cert.chainPem,
      keyPem: cert.keyPem,
      rootPem,
      trustDomain: "shop.example",
    });

  /** Serves echo and records what each call's context said about its caller. */
  const echoServer = (
    id: string,
    cert: IssuedCertificate,
    signer?: WorkloadIdentitySigner,
    reconnect = false,
  ) => {
    const server = node(
      id,
      { cert: cert.chainPem, key: cert.keyPem, ca: caBundle },
      signer,
      reconnect,
    );
    const seen: Array<Pick<CallContext, "principal" | "workload">> = [];
    server.serve(
      echo.implement({
        say: ({ text }, ctx) => {
          seen.push({ principal: ctx.principal, workload: ctx.workload });
          return { text };
        },
      }),
    );
    return { server, seen };
  };

  it("tells the callee which workload called from a signed envelope, and the user it vouches for", async () => {
    const { server, seen } = echoServer("orders-1", orders, await signerFor(orders));
    const client = node(
      "gateway-1",
      { cert: gateway.chainPem, key: gateway.keyPem, ca: caBundle },
      await signerFor(gateway),
    );
    await server.start();
    await client.start();
    await client.waitForService("echo", { timeoutMs: 10_000 });
    await expect(client.client(echo).say({ text: "over mTLS" })).resolves.toEqual({
      text: "over mTLS",
    });
    const user = { kind: "user", subject: "alice", claims: { roles: ["nurse"] } } as const;
    await client.client(echo, { principal: user }).say({ text: "as alice" });
    const workload = "spiffe://shop.example/ns/prod/svc/gateway";
    expect(seen).toEqual([
      { principal: { kind: "workload", id: workload }, workload },
      { principal: user, workload },
    ]);
    await Promise.all([server.stop({ drainTimeoutMs: 100 }), client.stop({ drainTimeoutMs: 100 })]);
  });

  it("never takes a workload identity from a field the caller sets", async () => {
    const { server, seen } = echoServer("orders-2", orders, await signerFor(orders));
    // A workload with a genuine certificate of its own claims to be the payments service.
    const rogueCert = await issueWorkloadCertificate({
      dir: caDir,
      namespace: "prod",
      service: "rogue",
    });
    const rogue = node(
      "rogue-1",
      { cert: rogueCert.chainPem, key: rogueCert.keyPem, ca: caBundle },
      await signerFor(rogueCert),
    );
    // A node with a valid TLS certificate but no signer: its requests carry no envelope.
    const unsigned = node("unsigned-1", {
      cert: gateway.chainPem,
      key: gateway.keyPem,
      ca: caBundle,
    });
    await server.start();
    await rogue.start();
    await unsigned.start();
    await rogue.waitForService("echo", { timeoutMs: 10_000 });
    await unsigned.waitForService("echo", { timeoutMs: 10_000 });
    const payments = {
      kind: "workload",
      id: "spiffe://shop.example/ns/prod/svc/payments",
    } as const;
    await rogue.client(echo, { principal: payments }).say({ text: "I am payments" });
    await rogue.call(
      "echo",
      "say",
      { text: "meta" },
      { meta: { principal: "payments", workload: payments.id } },
    );
    const rogueId = "spiffe://shop.example/ns/prod/svc/rogue";
    expect(seen).toEqual([
      { principal: { kind: "workload", id: rogueId }, workload: rogueId },
      { principal: { kind: "workload", id: rogueId }, workload: rogueId },
    ]);
    // Unsigned requests are refused before any handler runs.
    const refused = await unsigned
      .client(echo, { principal: payments })
      .say({ text: "x" })
      .catch((e: unknown) => e);
    expect(isStrataError(refused, "UNAUTHENTICATED")).toBe(true);
    expect(isStrataError(refused) && refused.details.reason).toBe("unsigned");
    expect(seen).toHaveLength(2);
    await Promise.all([server, rogue, unsigned].map((n) => n.stop({ drainTimeoutMs: 100 })));
  });

  it("treats calls as anonymous when nothing signs them, whatever principal they claim", async () => {
    const { server, seen } = echoServer("orders-3", orders);
    const client = node("gateway-3", { cert: gateway.chainPem, key: gateway.keyPem, ca: caBundle });
    await server.start();
    await client.start();
    await client.waitForService("echo", { timeoutMs: 10_000 });
    const user = { kind: "user", subject: "alice", claims: { roles: ["admin"] } } as const;
    await client.client(echo, { principal: user }).say({ text: "as alice?" });
    expect(seen).toEqual([{ principal: undefined, workload: undefined }]);
    await Promise.all([server.stop({ drainTimeoutMs: 100 }), client.stop({ drainTimeoutMs: 100 })]);
  });

  it("renews a short-lived certificate under traffic without a failed call, and reconnects with the new one", async () => {
    const { server, seen } = echoServer("orders-4", orders, await signerFor(orders), true);
    // A certificate valid for 7.2 s: renewed two thirds in, long before the test ends.
    const first = await issueWorkloadCertificate({
      dir: caDir,
      namespace: "prod",
      service: "gateway",
      validityHours: 0.002,
    });
    const files = { certFile: join(dir, "gw-chain.pem"), keyFile: join(dir, "gw-key.pem") };
    await writeFile(files.certFile, first.chainPem);
    await writeFile(files.keyFile, first.keyPem, { mode: 0o600 });
    const signer = await signerFor(first);
    const client = node("gateway-4", { ...files, caFile: join(dir, "ca.pem") }, signer, true);
    const renewal = startRenewal({
      identity: signer,
      files,
      issue: () =>
        issueWorkloadCertificate({
          dir: caDir,
          namespace: "prod",
          service: "gateway",
          validityHours: 1,
        }),
    });
    try {
      await server.start();
      await client.start();
      await client.waitForService("echo", { timeoutMs: 10_000 });
      let failed = 0;
      let ok = 0;
      await runOpenLoad({
        rate: 100,
        durationMs: 6_500,
        call: async () => {
          try {
            await client.client(echo).say({ text: "tick" });
            ok++;
          } catch {
            failed++;
          }
        },
      });
      expect(renewal.renewals).toBe(1);
      expect(failed).toBe(0);
      expect(ok).toBeGreaterThan(500);
      expect(new Set(seen.map((s) => s.workload))).toEqual(
        new Set(["spiffe://shop.example/ns/prod/svc/gateway"]),
      );
      // Once the first certificate has expired, a reconnect must present the renewed one.
      await waitFor(() => Date.now() > first.notAfter.getTime() + 500, { timeoutMs: 10_000 });
      await cluster.servers[0]?.restart();
      await waitFor(
        async () => {
          try {
            await client.client(echo).say({ text: "after restart" }, { timeoutMs: 1_000 });
            return true;
          } catch {
            return false;
          }
        },
        { timeoutMs: 15_000, message: "no call succeeded after the reconnect" },
      );
    } finally {
      renewal.stop();
      await Promise.all([
        server.stop({ drainTimeoutMs: 100 }),
        client.stop({ drainTimeoutMs: 100 }),
      ]);
    }
  });

  it("offers the post-quantum hybrid group where the runtime has it and reports the group agreed", async () => {
    const negotiated = await probeNatsTls(cluster.url, {
      ca: caBundle,
      cert: gateway.chainPem,
      key: gateway.keyPem,
    });
    expect(negotiated.protocol).toBe("TLSv1.3");
    expect(["X25519", PQ_GROUP]).toContain(negotiated.group);
    if (!postQuantumTlsSupported()) expect(negotiated.postQuantum).toBe(false);
    // Nodes connect with the same preference list.
    const { server, seen } = echoServer("orders-5", orders);
    const client = node("gateway-5", {
      cert: gateway.chainPem,
      key: gateway.keyPem,
      ca: caBundle,
      ecdhCurve: preferredTlsGroups(),
    });
    await server.start();
    await client.start();
    await client.waitForService("echo", { timeoutMs: 10_000 });
    await client.client(echo).say({ text: "groups" });
    expect(seen).toHaveLength(1);
    await Promise.all([server.stop({ drainTimeoutMs: 100 }), client.stop({ drainTimeoutMs: 100 })]);
    // Something that is not NATS is reported as such.
    await expect(
      probeNatsTls(`127.0.0.1:${cluster.servers[0]?.monitorPort}`, {
        ca: caBundle,
        timeoutMs: 1_000,
      }),
    ).rejects.toThrow(/not a NATS server|no INFO/);
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
    // An expired certificate from our own CA.
    const expired = await issueWorkloadCertificate({
      dir: caDir,
      namespace: "prod",
      service: "orders",
      validityHours: 1,
      now: new Date(Date.now() - 3 * 3_600_000),
    });
    await expect(
      node("expired", { cert: expired.chainPem, key: expired.keyPem, ca: caBundle }).start(),
    ).rejects.toThrow(/cannot connect/);
    // A self-signed certificate: the rogue CA's root, presented with its own key.
    const selfSigned = {
      cert: await readFile(join(rogueCa, CA_FILES.rootCert), "utf8"),
      key: await readFile(join(rogueCa, CA_FILES.rootKey), "utf8"),
      ca: caBundle,
    };
    await expect(node("self-signed", selfSigned).start()).rejects.toThrow(/cannot connect/);
    // No TLS at all.
    await expect(node("plaintext").start()).rejects.toThrow(/cannot connect/);
    // A client that trusts only another CA refuses our server.
    const rogueBundle = await readFile(join(rogueCa, CA_FILES.rootCert), "utf8");
    await expect(
      node("distrustful", { cert: orders.chainPem, key: orders.keyPem, ca: rogueBundle }).start(),
    ).rejects.toThrow(/cannot connect/);
  });
});

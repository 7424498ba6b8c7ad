import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { connect, createServer as createTlsServer } from "node:tls";
import { createEmbeddedNetwork, createNode, defineService } from "@strata/core";
import { createLogger } from "@strata/telemetry";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CA_FILES, initCa, issueWorkloadCertificate } from "./ca.js";
import { createCedarAuthorizer } from "./cedar.js";
import { createIntrospector } from "./introspection.js";
import { createJwtVerifier } from "./jwt.js";
import { postQuantumTlsSupported, preferredTlsGroups, tlsGroupReport } from "./pq.js";
import { createWorkloadIdentity, startRenewal } from "./workload.js";

/**
 * Secrets never reach the logs: the security block's failures, logged through the node's pino
 * logger as an application would log them, are scanned for every token and credential used.
 */
describe("secrets stay out of logs", () => {
  let jwks: Server;
  let jwksUrl: string;
  beforeAll(async () => {
    jwks = createServer((_, res) => res.writeHead(200).end(JSON.stringify({ keys: [] })));
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
  });
  afterAll(async () => {
    jwks.closeAllConnections();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  });

  it("leaves no token, key or client secret in any log line", async () => {
    let output = "";
    const logger = createLogger({
      level: "debug",
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          output += chunk.toString("utf8");
          done();
        },
      }),
    });
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const token = await new SignJWT({ roles: ["nurse"] })
      .setProtectedHeader({ alg: "ES256", kid: "unknown" })
      .setIssuer("https://issuer.test")
      .setAudience("api")
      .setSubject("nina")
      .setExpirationTime("5m")
      .sign(privateKey);
    const secret = "introspection-client-secret-0123456789";
    const verifier = createJwtVerifier({ issuer: "https://issuer.test", audience: "api", jwksUrl });
    const introspector = createIntrospector({
      url: "http://127.0.0.1:9/introspect",
      clientId: "gateway",
      clientSecret: secret,
      timeoutMs: 200,
    });
    // An application logs what the security block throws, with the request it was serving.
    for (const attempt of [() => verifier.verify(token), () => introspector.introspect(token)]) {
      try {
        await attempt();
      } catch (error) {
        logger.warn(
          { err: error, headers: { authorization: `Bearer ${token}` }, clientSecret: secret },
          "request refused",
        );
      }
    }
    // A denied call logs its principal and reason.
    const api = defineService({
      name: "records",
      version: "1.0.0",
      actions: { get: { input: z.object({ recordId: z.string() }), output: z.object({}) } },
    });
    const network = createEmbeddedNetwork();
    const server = createNode({
      id: "records",
      transport: network.transport(),
      services: [api.implement({ get: () => ({}) })],
      authorizer: await createCedarAuthorizer({ policies: "" }),
      logger,
    });
    const gateway = createNode({ id: "gw", transport: network.transport(), logger });
    await server.start();
    await gateway.start();
    await gateway.waitForService("records");
    await gateway
      .client(api, { principal: { kind: "user", subject: "nina", claims: { token, secret } } })
      .get({ recordId: "r-1" })
      .catch(() => undefined);
    await gateway.stop({ drainTimeoutMs: 50 });
    await server.stop({ drainTimeoutMs: 50 });
    await new Promise<void>((resolve) => setImmediate(resolve));

    expect(output).toContain("request refused");
    expect(output).toContain("call denied");
    const signature = token.split(".")[2] as string;
    expect(output).not.toContain(signature);
    expect(output).not.toContain(token.slice(0, 60));
    expect(output).not.toContain(secret);
    const jwk = await exportJWK(privateKey);
    expect(output).not.toContain(jwk.d as string);
  });

  it("keeps workload private keys out of errors and renewal logs", async () => {
    let output = "";
    const logger = createLogger({
      level: "debug",
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          output += chunk.toString("utf8");
          done();
        },
      }),
    });
    const dir = await mkdtemp(join(tmpdir(), "strata-secrets-"));
    try {
      await initCa({ dir: join(dir, "ca"), trustDomain: "shop.example" });
      const rootPem = await readFile(join(dir, "ca", CA_FILES.rootCert), "utf8");
      const a = await issueWorkloadCertificate({
        dir: join(dir, "ca"),
        namespace: "p",
        service: "a",
      });
      const b = await issueWorkloadCertificate({
        dir: join(dir, "ca"),
        namespace: "p",
        service: "b",
      });
      const keyBody = (pem: string) => pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
      // A key that does not match, and one that is not a key: the errors name neither.
      for (const keyPem of [b.keyPem, `${a.keyPem.slice(0, 80)}garbage`]) {
        const error = await createWorkloadIdentity({
          chainPem: a.chainPem,
          keyPem,
          rootPem,
          trustDomain: "shop.example",
        }).catch((e: unknown) => e);
        logger.error({ err: error }, "identity refused");
      }
      // A renewal that fails with the key in hand logs the failure, not the key.
      const signer = await createWorkloadIdentity({
        chainPem: a.chainPem,
        keyPem: a.keyPem,
        rootPem,
        trustDomain: "shop.example",
      });
      const renewal = startRenewal({
        identity: signer,
        logger,
        issue: () => Promise.resolve({ chainPem: b.chainPem, keyPem: b.keyPem }),
      });
      await renewal.renewNow().catch(() => undefined);
      renewal.stop();
      expect(output).toContain("identity refused");
      expect(output).toContain("could not renew");
      for (const pem of [a.keyPem, b.keyPem]) {
        expect(output).not.toContain(keyBody(pem).slice(0, 40));
        expect(output).not.toContain(keyBody(pem).slice(-40));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("post-quantum TLS readiness", () => {
  it("offers the hybrid group only where OpenSSL has it", () => {
    const report = tlsGroupReport();
    expect(report.groups).toBe(preferredTlsGroups());
    expect(report.postQuantum).toBe(postQuantumTlsSupported());
    // Node 20 links OpenSSL 3.0: no ML-KEM. Where a newer OpenSSL has it, it is preferred.
    if (report.openssl.startsWith("3.0.")) expect(report.postQuantum).toBe(false);
    expect(report.groups.startsWith("X25519MLKEM768")).toBe(report.postQuantum);
  });

  it("names the group a handshake negotiated", async () => {
    const { initCa, issueWorkloadCertificate } = await import("./ca.js");
    const { mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "strata-pq-"));
    try {
      await initCa({ dir, trustDomain: "shop.example" });
      const cert = await issueWorkloadCertificate({
        dir,
        namespace: "infra",
        service: "tls",
        hosts: ["127.0.0.1"],
      });
      const server = createTlsServer(
        { cert: cert.chainPem, key: cert.keyPem, ecdhCurve: preferredTlsGroups() },
        (socket) => socket.end(),
      );
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as AddressInfo).port;
      const group = await new Promise<string | undefined>((resolve, reject) => {
        const socket = connect(
          { host: "127.0.0.1", port, rejectUnauthorized: false, ecdhCurve: preferredTlsGroups() },
          () => {
            const info = socket.getEphemeralKeyInfo() as { name?: string } | null;
            resolve(info?.name);
            socket.end();
          },
        );
        socket.on("error", reject);
      });
      server.close();
      expect(group).toBe(postQuantumTlsSupported() ? "X25519MLKEM768" : "X25519");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isStrataError } from "@strata/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  CA_FILES,
  initCa,
  issueWorkloadCertificate,
  parseSpiffeId,
  readCa,
  spiffeIdOf,
  verifyWorkloadCertificate,
  writeIssued,
} from "./ca.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});
async function fresh(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "strata-ca-"));
  dirs.push(dir);
  return dir;
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isStrataError(error, "UNAUTHENTICATED")) return String(error.details.reason);
    throw error;
  }
  return "accepted";
}

describe("workload identity CA", () => {
  it("issues short-lived SPIFFE certificates that verify against the root", async () => {
    const dir = await fresh();
    await initCa({ dir, trustDomain: "shop.example" });
    const issued = await issueWorkloadCertificate({ dir, namespace: "prod", service: "orders" });
    expect(issued.spiffeId).toBe("spiffe://shop.example/ns/prod/svc/orders");
    const hours = (issued.notAfter.getTime() - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);
    // Node's own X.509 parser reads it: URI SAN and the key usage for TLS both ways.
    const leaf = new X509Certificate(issued.certPem);
    expect(leaf.subjectAltName).toBe("URI:spiffe://shop.example/ns/prod/svc/orders");
    expect(leaf.keyUsage).toEqual(
      expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]),
    );
    expect(leaf.ca).toBe(false);
    const { rootPem, trustDomain } = await readCa(dir);
    const identity = await verifyWorkloadCertificate(issued.chainPem, { rootPem, trustDomain });
    expect(identity).toMatchObject({ namespace: "prod", service: "orders", trustDomain });
  });

  it("keeps private keys to their owner and never overwrites a CA", async () => {
    const dir = await fresh();
    await initCa({ dir, trustDomain: "shop.example" });
    for (const file of [CA_FILES.rootKey, CA_FILES.intermediateKey]) {
      expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600);
    }
    await expect(initCa({ dir, trustDomain: "shop.example" })).rejects.toThrow(/already exists/);
    const out = join(dir, "orders");
    await writeIssued(
      out,
      await issueWorkloadCertificate({ dir, namespace: "prod", service: "orders" }),
    );
    expect((await stat(join(out, "key.pem"))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(out, "key.pem"), "utf8")).toMatch(/BEGIN PRIVATE KEY/);
  });

  it("rejects missing, expired, not-yet-valid, self-signed, foreign and wrong-domain certificates", async () => {
    const dir = await fresh();
    await initCa({ dir, trustDomain: "shop.example" });
    const { rootPem, trustDomain } = await readCa(dir);
    const verify = (chain: string, now?: Date) =>
      verifyWorkloadCertificate(chain, {
        rootPem,
        trustDomain,
        ...(now === undefined ? {} : { now }),
      });
    const good = await issueWorkloadCertificate({
      dir,
      namespace: "prod",
      service: "orders",
      validityHours: 1,
    });
    expect(await reason(verify(good.chainPem))).toBe("accepted");
    expect(await reason(verify(""))).toBe("missing");
    expect(await reason(verify(good.chainPem, new Date(Date.now() + 2 * 3_600_000)))).toBe(
      "expired",
    );
    expect(await reason(verify(good.chainPem, new Date(Date.now() - 3_600_000)))).toBe(
      "not-yet-valid",
    );
    // The leaf without its intermediate does not chain to the root.
    expect(await reason(verify(good.certPem))).toBe("untrusted");
    // Another CA, same trust domain name: its certificates are not ours.
    const other = await fresh();
    await initCa({ dir: other, trustDomain: "shop.example" });
    const foreign = await issueWorkloadCertificate({
      dir: other,
      namespace: "prod",
      service: "orders",
    });
    expect(await reason(verify(foreign.chainPem))).toBe("untrusted");
    // A self-signed "root" presented as a workload.
    expect(await reason(verify(await readFile(join(other, CA_FILES.rootCert), "utf8")))).toBe(
      "untrusted",
    );
    // Our own intermediate is a CA, not a workload.
    expect(
      await reason(verify(`${await readFile(join(dir, CA_FILES.intermediateCert), "utf8")}`)),
    ).toBe("not-a-workload");
    // A genuine certificate of another trust domain.
    const elsewhere = await fresh();
    await initCa({ dir: elsewhere, trustDomain: "billing.example" });
    const theirs = await issueWorkloadCertificate({
      dir: elsewhere,
      namespace: "prod",
      service: "orders",
    });
    const theirRoot = await readCa(elsewhere);
    expect(
      await reason(
        verifyWorkloadCertificate(theirs.chainPem, { rootPem: theirRoot.rootPem, trustDomain }),
      ),
    ).toBe("wrong-trust-domain");
    // Garbage between the PEM markers.
    expect(
      await reason(
        verify("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----"),
      ),
    ).toBe("malformed");
  });

  it("reads and writes SPIFFE IDs strictly", () => {
    expect(spiffeIdOf("shop.example", "prod", "orders")).toBe(
      "spiffe://shop.example/ns/prod/svc/orders",
    );
    expect(parseSpiffeId("spiffe://shop.example/ns/prod/svc/orders")).toEqual({
      trustDomain: "shop.example",
      namespace: "prod",
      service: "orders",
    });
    for (const bad of [
      "https://shop.example/ns/prod/svc/orders",
      "spiffe://Shop.Example/ns/prod/svc/orders",
      "spiffe://shop.example/ns/prod/svc/orders/extra",
      "spiffe://shop.example/svc/orders",
      "spiffe://shop.example/ns/../svc/orders",
    ]) {
      expect(parseSpiffeId(bad), bad).toBeUndefined();
    }
    expect(() => spiffeIdOf("shop.example", "prod", "a/b")).toThrow(/namespace and service/);
    expect(() => spiffeIdOf("UPPER", "prod", "orders")).toThrow(/trust domain/);
  });
});

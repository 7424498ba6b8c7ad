import "reflect-metadata";
import { createPrivateKey, createSign, webcrypto } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { isStrataError, manualClock, type ManualClock } from "@strata/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CA_FILES, initCa, issueWorkloadCertificate, type IssuedCertificate } from "./ca.js";
import { createWorkloadIdentity, startRenewal, type WorkloadIdentitySigner } from "./workload.js";

const BINDING = "strata.c.n.orders-1\nstrata.c.r.gateway-1.7";
const frame = (text: string): Uint8Array => new TextEncoder().encode(text);

async function reasonOf(attempt: () => unknown): Promise<string> {
  try {
    await attempt();
  } catch (error) {
    if (isStrataError(error, "UNAUTHENTICATED") && typeof error.details.reason === "string") {
      return error.details.reason;
    }
    throw error;
  }
  return "opened";
}

/**
 * Signed call envelopes: a callee learns the caller's workload from the caller's certificate and
 * a signature over the frame, its time and where it travels, never from a field the caller sets.
 */
describe("workload identity envelopes", () => {
  let dir: string;
  let ca: string;
  let rootPem: string;
  let gateway: IssuedCertificate;
  let orders: IssuedCertificate;
  let clock: ManualClock;
  let caller: WorkloadIdentitySigner;
  let callee: WorkloadIdentitySigner;

  const identity = (cert: IssuedCertificate, extra: { trustDomain?: string } = {}) =>
    createWorkloadIdentity({
      chainPem: cert.chainPem,
      keyPem: cert.keyPem,
      rootPem,
      trustDomain: extra.trustDomain ?? "shop.example",
      clock,
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-envelope-"));
    ca = join(dir, "ca");
    await initCa({ dir: ca, trustDomain: "shop.example" });
    rootPem = await readFile(join(ca, CA_FILES.rootCert), "utf8");
    gateway = await issueWorkloadCertificate({ dir: ca, namespace: "prod", service: "gateway" });
    orders = await issueWorkloadCertificate({ dir: ca, namespace: "prod", service: "orders" });
    clock = manualClock({ start: Date.now() });
    caller = await identity(gateway);
    callee = await identity(orders);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("opens what a trusted workload sealed, naming that workload", async () => {
    const sealed = caller.seal(frame("hello"), BINDING);
    expect(sealed.length).toBeLessThanOrEqual(5 + caller.overheadBytes);
    const opened = await callee.open(sealed, BINDING);
    expect(opened.workload).toBe("spiffe://shop.example/ns/prod/svc/gateway");
    expect(new TextDecoder().decode(opened.frame)).toBe("hello");
    // The second envelope from the same certificate verifies synchronously (cached chain).
    const again = callee.open(caller.seal(frame("again"), BINDING), BINDING);
    expect(again).not.toBeInstanceOf(Promise);
  });

  it("refuses tampered frames, other bindings, replays, stale and unsigned envelopes", async () => {
    const sealed = caller.seal(frame("pay 10"), BINDING);
    const tampered = Uint8Array.from(sealed);
    tampered[tampered.length - 1] = "9".charCodeAt(0);
    expect(await reasonOf(() => callee.open(tampered, BINDING))).toBe("bad-signature");
    // The same envelope sent to another node, or with another reply address.
    expect(await reasonOf(() => callee.open(sealed, "strata.c.n.orders-2\nx"))).toBe(
      "bad-signature",
    );
    expect(await reasonOf(() => callee.open(sealed, BINDING))).toBe("opened");
    expect(await reasonOf(() => callee.open(sealed, BINDING))).toBe("replayed");
    const old = caller.seal(frame("old"), BINDING);
    clock.advance(31_000);
    expect(await reasonOf(() => callee.open(old, BINDING))).toBe("stale");
    expect(await reasonOf(() => callee.open(frame("plain msgpack"), BINDING))).toBe("unsigned");
    expect(await reasonOf(() => callee.open(new Uint8Array(0), BINDING))).toBe("unsigned");
    expect(await reasonOf(() => callee.open(sealed.subarray(0, 40), BINDING))).toBe("malformed");
    const wrongVersion = Uint8Array.from(sealed);
    wrongVersion[2] = 9;
    expect(await reasonOf(() => callee.open(wrongVersion, BINDING))).toBe("malformed");
    expect(callee.stats().refused).toMatchObject({ "bad-signature": 2, replayed: 1, stale: 1 });
  });

  it("refuses certificates from another CA, another trust domain, self-signed ones and CAs", async () => {
    const rogueCa = join(dir, "rogue");
    await initCa({ dir: rogueCa, trustDomain: "shop.example" });
    const rogueRoot = await readFile(join(rogueCa, CA_FILES.rootCert), "utf8");
    const rogue = await issueWorkloadCertificate({
      dir: rogueCa,
      namespace: "prod",
      service: "payments",
    });
    const rogueSigner = await createWorkloadIdentity({
      chainPem: rogue.chainPem,
      keyPem: rogue.keyPem,
      rootPem: rogueRoot,
      trustDomain: "shop.example",
      clock,
    });
    expect(await reasonOf(() => callee.open(rogueSigner.seal(frame("x"), BINDING), BINDING))).toBe(
      "untrusted",
    );

    const otherCa = join(dir, "other");
    await initCa({ dir: otherCa, trustDomain: "bank.example" });
    const other = await issueWorkloadCertificate({ dir: otherCa, namespace: "p", service: "s" });
    const otherSigner = await createWorkloadIdentity({
      chainPem: other.chainPem,
      keyPem: other.keyPem,
      rootPem: await readFile(join(otherCa, CA_FILES.rootCert), "utf8"),
      trustDomain: "bank.example",
      clock,
    });
    // A callee that trusts both roots still refuses the other trust domain.
    const both = await createWorkloadIdentity({
      chainPem: orders.chainPem,
      keyPem: orders.keyPem,
      rootPem,
      trustDomain: "shop.example",
      clock,
    });
    expect(await reasonOf(() => both.open(otherSigner.seal(frame("x"), BINDING), BINDING))).toBe(
      "untrusted",
    );

    // A self-signed certificate naming the payments workload, in a correctly signed envelope.
    const forged = await selfSignedEnvelope(
      "spiffe://shop.example/ns/prod/svc/payments",
      frame("refund"),
      BINDING,
      clock.now(),
    );
    expect(await reasonOf(() => callee.open(forged, BINDING))).toBe("untrusted");

    // A real certificate of another workload with a signature made by a key that is not its own.
    const stolen = splice(caller.seal(frame("x"), BINDING), certDerOf(orders.certPem));
    expect(await reasonOf(() => callee.open(stolen, BINDING))).toBe("bad-signature");

    // The intermediate CA's certificate presented as a caller (no one holds its key here anyway).
    const intermediate = await readFile(join(ca, CA_FILES.intermediateCert), "utf8");
    const asCa = splice(caller.seal(frame("x"), BINDING), certDerOf(intermediate));
    expect(await reasonOf(() => callee.open(asCa, BINDING))).toMatch(/untrusted|not-a-workload/);
  });

  it("refuses an expired caller certificate and an unusable own certificate or key", async () => {
    const shortLived = await issueWorkloadCertificate({
      dir: ca,
      namespace: "prod",
      service: "cart",
      validityHours: 1,
      now: new Date(clock.now()),
    });
    const cart = await identity(shortLived);
    const fresh = callee.open(cart.seal(frame("ok"), BINDING), BINDING);
    await expect(Promise.resolve(fresh)).resolves.toMatchObject({
      workload: "spiffe://shop.example/ns/prod/svc/cart",
    });
    clock.advance(2 * 3_600_000);
    // Cached certificates expire too; the envelope itself is fresh.
    expect(await reasonOf(() => callee.open(cart.seal(frame("late"), BINDING), BINDING))).toBe(
      "expired",
    );
    await expect(
      createWorkloadIdentity({
        chainPem: gateway.chainPem,
        keyPem: orders.keyPem,
        rootPem,
        trustDomain: "shop.example",
      }),
    ).rejects.toThrow(/does not belong/);
    await expect(
      createWorkloadIdentity({
        chainPem: gateway.chainPem,
        keyPem: "not a key",
        rootPem,
        trustDomain: "shop.example",
      }),
    ).rejects.toThrow(/not a readable PEM key/);
    await expect(
      createWorkloadIdentity({
        chainPem: gateway.chainPem,
        keyPem: gateway.keyPem,
        rootPem,
        trustDomain: "bank.example",
      }),
    ).rejects.toThrow(/not usable/);
  });

  it("rotates to a renewed certificate without refusing envelopes sealed before", async () => {
    const now = new Date();
    const first = await issueWorkloadCertificate({
      dir: ca,
      namespace: "prod",
      service: "records",
      validityHours: 3,
      now,
    });
    const fixed = manualClock({ start: now.getTime() });
    const records = await createWorkloadIdentity({
      chainPem: first.chainPem,
      keyPem: first.keyPem,
      rootPem,
      trustDomain: "shop.example",
      clock: fixed,
    });
    const receiver = await createWorkloadIdentity({
      chainPem: orders.chainPem,
      keyPem: orders.keyPem,
      rootPem,
      trustDomain: "shop.example",
      clock: fixed,
    });
    const files = {
      certFile: join(dir, "records-chain.pem"),
      keyFile: join(dir, "records-key.pem"),
    };
    let issued = 0;
    const renewal = startRenewal({
      identity: records,
      clock: fixed,
      files,
      issue: async () => {
        issued++;
        return issueWorkloadCertificate({
          dir: ca,
          namespace: "prod",
          service: "records",
          validityHours: 3,
          now: new Date(fixed.now()),
        });
      },
    });
    // Two thirds into the three-hour lifetime the timer renews.
    fixed.advance(2 * 3_600_000 - 1_000);
    const before = records.seal(frame("before"), BINDING);
    expect(renewal.renewals).toBe(0);
    fixed.advance(2_000);
    await waitUntil(() => renewal.renewals === 1);
    expect(issued).toBe(1);
    expect(records.stats().rotations).toBe(1);
    expect(records.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    expect(await readFile(files.certFile, "utf8")).toContain("BEGIN CERTIFICATE");
    expect((await stat(files.keyFile)).mode & 0o777).toBe(0o600);
    // Sealed with the old certificate (still valid) and with the new one: both open.
    expect((await receiver.open(before, BINDING)).workload).toContain("/svc/records");
    const after = records.seal(frame("after"), BINDING);
    expect(Buffer.from(after).includes(Buffer.from(certDerOf(first.certPem)))).toBe(false);
    expect((await receiver.open(after, BINDING)).workload).toContain("/svc/records");
    // A renewed certificate for another workload is refused.
    await expect(records.rotate(orders.chainPem, orders.keyPem)).rejects.toThrow(
      /must keep the workload identity/,
    );
    renewal.stop();
  });
});

/** Polls until `done` (the renewal runs on the clock's timer, asynchronously). */
async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(done()).toBe(true);
}

function certDerOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}

/** Replaces an envelope's certificate, keeping its time, signature and frame. */
function splice(sealed: Uint8Array, cert: Buffer): Uint8Array {
  const view = Buffer.from(sealed);
  const oldLength = view.readUInt16BE(11);
  const head = Buffer.from(view.subarray(0, 13));
  head.writeUInt16BE(cert.length, 11);
  return Buffer.concat([head, cert, view.subarray(13 + oldLength)]);
}

/** An envelope built by hand around a self-signed certificate (what an attacker can make). */
async function selfSignedEnvelope(
  spiffeId: string,
  payload: Uint8Array,
  binding: string,
  now: number,
): Promise<Uint8Array> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=payments",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    keys,
    signingAlgorithm: algorithm,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId }])],
  });
  const der = Buffer.from(cert.rawData);
  const head = Buffer.alloc(13 + der.length);
  head.set([0x53, 0x45, 1]);
  head.writeUInt32BE(Math.floor(now / 0x1_0000_0000), 3);
  head.writeUInt32BE(now >>> 0, 7);
  head.writeUInt16BE(der.length, 11);
  der.copy(head, 13);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const signature = createSign("sha256").update(head).update(binding).update(payload).sign(key);
  return Buffer.concat([head, Buffer.from([signature.length]), signature, payload]);
}

import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { StrataError } from "@strata/core";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const TRUST_DOMAIN = /^[a-z0-9][a-z0-9.-]{0,250}$/;
/** A path segment of a SPIFFE ID: not `.` or `..`. */
const SEGMENT = /^(?!\.{1,2}$)[a-zA-Z0-9._-]{1,128}$/;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The files of a CA folder. Keys are written readable by the owner only. */
export const CA_FILES = {
  rootCert: "root.pem",
  rootKey: "root.key",
  intermediateCert: "intermediate.pem",
  intermediateKey: "intermediate.key",
  config: "ca.json",
} as const;

/** A workload's identity as its certificate proves it. */
export interface WorkloadIdentity {
  /** `spiffe://<trust-domain>/ns/<namespace>/svc/<service>`. */
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly service: string;
  readonly notAfter: Date;
}

/** A freshly issued leaf certificate. */
export interface IssuedCertificate extends WorkloadIdentity {
  readonly certPem: string;
  /** The leaf and the intermediate, leaf first (what a TLS peer sends). */
  readonly chainPem: string;
  /** PKCS #8 PEM. Never log it. */
  readonly keyPem: string;
}

/** The SPIFFE ID of a workload. */
export function spiffeIdOf(trustDomain: string, namespace: string, service: string): string {
  checkTrustDomain(trustDomain);
  if (!SEGMENT.test(namespace) || !SEGMENT.test(service)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "namespace and service must be 1-128 of A-Z a-z 0-9 . _ -",
    );
  }
  return `spiffe://${trustDomain}/ns/${namespace}/svc/${service}`;
}

/** Reads `spiffe://<td>/ns/<ns>/svc/<svc>`, or undefined when the URI is not one. */
export function parseSpiffeId(
  uri: string,
): { trustDomain: string; namespace: string; service: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/svc\/([^/]+)$/.exec(uri);
  if (m === null) return undefined;
  const [, trustDomain, namespace, service] = m as unknown as [string, string, string, string];
  if (!TRUST_DOMAIN.test(trustDomain) || !SEGMENT.test(namespace) || !SEGMENT.test(service)) {
    return undefined;
  }
  return { trustDomain, namespace, service };
}

/**
 * Creates a CA in `dir`: a root (10 years by default) and an intermediate (1 year) that issues
 * workload certificates, both ECDSA P-256. Refuses to overwrite an existing CA.
 */
export async function initCa(options: {
  readonly dir: string;
  readonly trustDomain: string;
  readonly rootValidityDays?: number;
  readonly intermediateValidityDays?: number;
  readonly now?: Date;
}): Promise<{ readonly rootPem: string; readonly intermediatePem: string }> {
  checkTrustDomain(options.trustDomain);
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const exists = await stat(join(options.dir, CA_FILES.config)).then(
    () => true,
    () => false,
  );
  if (exists) {
    throw new StrataError("ALREADY_EXISTS", `a CA already exists in ${options.dir}`);
  }
  const now = options.now ?? new Date();
  const rootKeys = await generateKeys();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Strata root CA ${options.trustDomain}, O=Strata`,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + (options.rootValidityDays ?? 3_650) * DAY),
    keys: rootKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const intermediateKeys = await generateKeys();
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=Strata intermediate CA ${options.trustDomain}, O=Strata`,
    issuer: root.subject,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + (options.intermediateValidityDays ?? 365) * DAY),
    publicKey: intermediateKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(intermediateKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const rootPem = root.toString("pem");
  const intermediatePem = intermediate.toString("pem");
  await writeSecret(join(options.dir, CA_FILES.rootKey), await keyPem(rootKeys.privateKey));
  await writeSecret(
    join(options.dir, CA_FILES.intermediateKey),
    await keyPem(intermediateKeys.privateKey),
  );
  await writeFile(join(options.dir, CA_FILES.rootCert), rootPem);
  await writeFile(join(options.dir, CA_FILES.intermediateCert), intermediatePem);
  await writeFile(
    join(options.dir, CA_FILES.config),
    `${JSON.stringify({ trustDomain: options.trustDomain }, null, 2)}\n`,
  );
  return { rootPem, intermediatePem };
}

/**
 * Issues a short-lived workload certificate (24 h by default) from the CA in `dir`, its SPIFFE ID
 * in the URI SAN, usable for TLS client and server authentication.
 */
export async function issueWorkloadCertificate(options: {
  readonly dir: string;
  readonly namespace: string;
  readonly service: string;
  readonly validityHours?: number;
  /** Host names and IP addresses a server presenting this certificate answers to (TLS SANs). */
  readonly hosts?: readonly string[];
  readonly now?: Date;
}): Promise<IssuedCertificate> {
  const { trustDomain } = await readConfig(options.dir);
  const spiffeId = spiffeIdOf(trustDomain, options.namespace, options.service);
  const hours = options.validityHours ?? 24;
  if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 90) {
    throw new StrataError("INVALID_ARGUMENT", "validityHours must be above 0 and at most 2160");
  }
  const intermediate = new x509.X509Certificate(
    await readFile(join(options.dir, CA_FILES.intermediateCert), "utf8"),
  );
  const signingKey = await importKey(
    await readFile(join(options.dir, CA_FILES.intermediateKey), "utf8"),
  );
  const keys = await generateKeys();
  const now = options.now ?? new Date();
  const notAfter = new Date(now.getTime() + hours * HOUR);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.service}, OU=${options.namespace}, O=Strata`,
    issuer: intermediate.subject,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: "url", value: spiffeId },
          ...(options.hosts ?? []).map((host) =>
            isIP(host) === 0
              ? { type: "dns" as const, value: host }
              : { type: "ip" as const, value: host },
          ),
        ],
        true,
      ),
      await x509.AuthorityKeyIdentifierExtension.create(intermediate.publicKey),
    ],
  });
  const certPem = leaf.toString("pem");
  return {
    spiffeId,
    trustDomain,
    namespace: options.namespace,
    service: options.service,
    notAfter,
    certPem,
    chainPem: `${certPem}\n${intermediate.toString("pem")}\n`,
    keyPem: await keyPem(keys.privateKey),
  };
}

/**
 * Verifies a workload's certificate chain (leaf first, then intermediates) against the trusted
 * root: signatures, validity windows, CA constraints, and exactly one SPIFFE ID in the trust
 * domain. Rejections are `UNAUTHENTICATED` with `details.reason`: `missing`, `malformed`,
 * `expired`, `not-yet-valid`, `untrusted`, `not-a-workload`, `wrong-trust-domain`.
 */
export async function verifyWorkloadCertificate(
  chainPem: string,
  options: { readonly rootPem: string; readonly trustDomain: string; readonly now?: Date },
): Promise<WorkloadIdentity> {
  if (typeof chainPem !== "string" || !chainPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw unauthenticated("missing", "no client certificate");
  }
  let chain: x509.X509Certificate[];
  let root: x509.X509Certificate;
  try {
    const blocks =
      chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    chain = blocks.map((block) => new x509.X509Certificate(block));
    root = new x509.X509Certificate(options.rootPem);
  } catch {
    throw unauthenticated("malformed", "the certificate is not readable");
  }
  const leaf = chain[0];
  if (leaf === undefined || chain.length > 4) {
    throw unauthenticated("malformed", "the certificate chain is empty or too long");
  }
  const now = options.now ?? new Date();
  // Walk from the leaf to the trusted root: each certificate signed by the next (the root last).
  const path = [...chain, root];
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i] as x509.X509Certificate;
    const issuer = path[i + 1] as x509.X509Certificate;
    if (now < cert.notBefore)
      throw unauthenticated("not-yet-valid", "a certificate is not valid yet");
    if (now > cert.notAfter) throw unauthenticated("expired", "a certificate has expired");
    let ok = false;
    try {
      ok =
        cert.issuer === issuer.subject &&
        (await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }));
    } catch {
      ok = false;
    }
    if (!ok)
      throw unauthenticated("untrusted", "the certificate does not chain to the trusted root");
    if (i > 0 && !isCa(cert)) {
      throw unauthenticated("untrusted", "an intermediate certificate is not a CA");
    }
  }
  if (now > root.notAfter) throw unauthenticated("expired", "the trusted root has expired");
  if (isCa(leaf)) throw unauthenticated("not-a-workload", "a CA certificate is not a workload");
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = (san?.names.items ?? []).filter((n) => n.type === "url").map((n) => n.value);
  const ids = uris.map(parseSpiffeId).filter((id) => id !== undefined);
  if (ids.length !== 1 || uris.length !== 1) {
    throw unauthenticated("not-a-workload", "the certificate names no single SPIFFE ID");
  }
  const id = ids[0] as NonNullable<ReturnType<typeof parseSpiffeId>>;
  if (id.trustDomain !== options.trustDomain) {
    throw unauthenticated("wrong-trust-domain", "the certificate is from another trust domain");
  }
  return {
    spiffeId: uris[0] as string,
    ...id,
    notAfter: leaf.notAfter,
  };
}

/** The trust domain, root and trust bundle of a CA folder. */
export async function readCa(dir: string): Promise<{
  trustDomain: string;
  rootPem: string;
  /** The root and the intermediate (PEM): the bundle TLS peers trust (NATS `ca_file`, `tls.ca`). */
  bundlePem: string;
}> {
  const { trustDomain } = await readConfig(dir);
  const rootPem = await readFile(join(dir, CA_FILES.rootCert), "utf8");
  const intermediatePem = await readFile(join(dir, CA_FILES.intermediateCert), "utf8");
  return { trustDomain, rootPem, bundlePem: `${rootPem}\n${intermediatePem}` };
}

function isCa(cert: x509.X509Certificate): boolean {
  return cert.getExtension(x509.BasicConstraintsExtension)?.ca === true;
}

async function readConfig(dir: string): Promise<{ trustDomain: string }> {
  let text: string;
  try {
    text = await readFile(join(dir, CA_FILES.config), "utf8");
  } catch {
    throw new StrataError("NOT_FOUND", `no CA in ${dir} (run strata ca init)`);
  }
  const value = JSON.parse(text) as { trustDomain?: unknown };
  if (typeof value.trustDomain !== "string") {
    throw new StrataError(
      "FAILED_PRECONDITION",
      `${join(dir, CA_FILES.config)} names no trust domain`,
    );
  }
  checkTrustDomain(value.trustDomain);
  return { trustDomain: value.trustDomain };
}

function checkTrustDomain(trustDomain: string): void {
  if (typeof trustDomain !== "string" || !TRUST_DOMAIN.test(trustDomain)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `trust domain must be lower-case letters, digits, dots and dashes, e.g. shop.example.com`,
    );
  }
}

function unauthenticated(reason: string, message: string): StrataError {
  return new StrataError("UNAUTHENTICATED", message, { details: { reason } });
}

function serial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] as number) & 0x7f; // a positive serial
  return Buffer.from(bytes).toString("hex");
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<CryptoKey> {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return webcrypto.subtle.importKey("pkcs8", Buffer.from(body, "base64"), ALGORITHM, false, [
    "sign",
  ]);
}

/** Writes a private key readable by its owner only (created so, never widened after). */
async function writeSecret(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600, flag: "wx" });
  await chmod(path, 0o600);
}

/** Writes an issued certificate and its key to a folder (the key readable by its owner only). */
export async function writeIssued(dir: string, issued: IssuedCertificate): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, "cert.pem"), issued.certPem);
  await writeFile(join(dir, "chain.pem"), issued.chainPem);
  await writeFile(join(dir, "key.pem"), issued.keyPem, { mode: 0o600 });
  await chmod(join(dir, "key.pem"), 0o600);
}

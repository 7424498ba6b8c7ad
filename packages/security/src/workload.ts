import {
  X509Certificate,
  createHash,
  createPrivateKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { rename, writeFile } from "node:fs/promises";
import {
  StrataError,
  systemClock,
  type CallSigner,
  type Clock,
  type Logger,
  type OpenedFrame,
  type Timer,
} from "@strata/core";
import { verifyWorkloadCertificate } from "./ca.js";

/**
 * The envelope's layout (all integers big-endian):
 *
 *   "S" "E" version(1) | time ms (u32 high, u32 low) | cert length (u16) | leaf certificate (DER)
 *   | signature length (u8) | ECDSA P-256 / SHA-256 signature (DER) | frame
 *
 * The signature covers everything before it, then the binding (where the frame travels), then
 * the frame. The leaf travels in every envelope so that any callee can verify any caller without
 * a lookup; callees verify each distinct certificate's chain once and cache it.
 */
const MAGIC_0 = 0x53;
const MAGIC_1 = 0x45;
const VERSION = 1;
const HEAD = 3 + 8 + 2;
const MAX_SIGNATURE = 72;
const MAX_CERT = 4096;

/** Options for {@link createWorkloadIdentity}. */
export interface WorkloadIdentityOptions {
  /** This workload's certificate chain, leaf first (PEM), as `strata ca issue` writes it. */
  readonly chainPem: string;
  /** The leaf's private key (PKCS#8 PEM). Never logged. */
  readonly keyPem: string;
  /** The trust root (PEM) every caller's certificate must chain to. */
  readonly rootPem: string;
  readonly trustDomain: string;
  /**
   * Extra intermediate CA certificates (PEM) callers' leaves may chain through, besides the ones
   * in this workload's own chain (for an intermediate being rotated).
   */
  readonly intermediatesPem?: string;
  /** How far an envelope's time may be from this node's clock. Default 30 s. */
  readonly maxSkewMs?: number;
  /** Envelopes remembered to refuse replays within the skew window. Default 100 000. */
  readonly replayCacheSize?: number;
  /** Distinct caller certificates whose verification is cached. Default 1 000. */
  readonly certificateCacheSize?: number;
  readonly clock?: Clock;
}

/** Counters of a workload identity. */
export interface WorkloadIdentityStats {
  readonly sealed: number;
  readonly opened: number;
  /** Refused envelopes by reason. */
  readonly refused: Readonly<Record<string, number>>;
  /** Certificates swapped in by {@link WorkloadIdentitySigner.rotate}. */
  readonly rotations: number;
}

/** A workload's identity as a call signer: signs what it sends, verifies what it receives. */
export interface WorkloadIdentitySigner extends CallSigner {
  /** This workload's SPIFFE ID. */
  readonly workload: string;
  /** When the current certificate expires. */
  readonly notAfter: Date;
  /** When the current certificate became valid. */
  readonly notBefore: Date;
  /**
   * Swaps in a renewed certificate and key (same SPIFFE ID). Calls signed before keep verifying
   * while their certificate is valid, so nothing in flight fails.
   */
  rotate(chainPem: string, keyPem: string): Promise<void>;
  stats(): WorkloadIdentityStats;
}

interface Credential {
  readonly certDer: Buffer;
  readonly key: KeyObject;
  readonly workload: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly intermediates: string;
}

interface TrustedCaller {
  readonly workload: string;
  readonly key: KeyObject;
  readonly notAfter: number;
}

/**
 * A workload identity from a certificate the built-in CA issued, for signed call envelopes:
 * every request carries the caller's leaf certificate and a signature over the frame, the time
 * and where it travels. A callee verifies the chain (once per certificate), the signature, the
 * time window and that it has not seen the envelope before, and only then learns who called.
 * Refusals are `UNAUTHENTICATED` with `details.reason`: `unsigned`, `malformed`, `stale`,
 * `replayed`, `bad-signature`, or a certificate reason (`expired`, `untrusted`,
 * `wrong-trust-domain`, `not-a-workload`, …).
 */
export async function createWorkloadIdentity(
  options: WorkloadIdentityOptions,
): Promise<WorkloadIdentitySigner> {
  const clock = options.clock ?? systemClock();
  const maxSkewMs = positive(options.maxSkewMs ?? 30_000, "maxSkewMs");
  const replayCap = positive(options.replayCacheSize ?? 100_000, "replayCacheSize");
  const certCap = positive(options.certificateCacheSize ?? 1_000, "certificateCacheSize");
  const trust = { rootPem: options.rootPem, trustDomain: options.trustDomain };
  let current = await loadCredential(options.chainPem, options.keyPem, options, clock);
  const trusted = new Map<string, TrustedCaller>();
  /** Signature prefix → when it may be forgotten; insertion order is time order. */
  const seen = new Map<string, number>();
  const refused: Record<string, number> = {};
  let sealed = 0;
  let opened = 0;
  let rotations = 0;

  const refuse = (reason: string, message: string): StrataError => {
    refused[reason] = (refused[reason] ?? 0) + 1;
    return new StrataError("UNAUTHENTICATED", `call envelope: ${message}`, {
      details: { reason },
    });
  };

  const finish = (
    caller: TrustedCaller,
    sealedFrame: Uint8Array,
    signedEnd: number,
    signature: Uint8Array,
    binding: string,
    frameStart: number,
    now: number,
  ): OpenedFrame => {
    if (now > caller.notAfter) throw refuse("expired", "the caller's certificate has expired");
    // One-shot verification of one buffer is about a third cheaper than a streaming verifier.
    const signed = Buffer.concat([
      sealedFrame.subarray(0, signedEnd),
      Buffer.from(binding),
      sealedFrame.subarray(frameStart),
    ]);
    let ok = false;
    try {
      ok = verify("sha256", signed, caller.key, signature);
    } catch {
      ok = false;
    }
    if (!ok) throw refuse("bad-signature", "the signature does not verify");
    // Replays: an envelope is accepted once. Entries older than the skew window can go, since
    // their time check refuses them anyway; past the cap the oldest go first.
    const id = Buffer.from(signature).toString("latin1");
    if (seen.has(id)) throw refuse("replayed", "the envelope was seen before");
    for (const [key, until] of seen) {
      if (until > now && seen.size < replayCap) break;
      seen.delete(key);
    }
    seen.set(id, now + 2 * maxSkewMs);
    opened++;
    return { frame: sealedFrame.subarray(frameStart), workload: caller.workload };
  };

  const signer: WorkloadIdentitySigner = {
    get workload() {
      return current.workload;
    },
    get notAfter() {
      return current.notAfter;
    },
    get notBefore() {
      return current.notBefore;
    },
    get overheadBytes() {
      return HEAD + current.certDer.length + 1 + MAX_SIGNATURE;
    },
    seal(frame, binding) {
      const credential = current;
      const cert = credential.certDer;
      const head = Buffer.allocUnsafe(HEAD + cert.length);
      const now = clock.now();
      head[0] = MAGIC_0;
      head[1] = MAGIC_1;
      head[2] = VERSION;
      head.writeUInt32BE(Math.floor(now / 0x1_0000_0000), 3);
      head.writeUInt32BE(now >>> 0, 7);
      head.writeUInt16BE(cert.length, 11);
      cert.copy(head, HEAD);
      const signature = sign(
        "sha256",
        Buffer.concat([head, Buffer.from(binding), frame]),
        credential.key,
      );
      const out = Buffer.allocUnsafe(head.length + 1 + signature.length + frame.length);
      head.copy(out, 0);
      out[head.length] = signature.length;
      signature.copy(out, head.length + 1);
      out.set(frame, head.length + 1 + signature.length);
      sealed++;
      return out;
    },
    open(sealedFrame, binding) {
      if (sealedFrame.length < HEAD || sealedFrame[0] !== MAGIC_0 || sealedFrame[1] !== MAGIC_1) {
        throw refuse("unsigned", "the request carries no envelope");
      }
      if (sealedFrame[2] !== VERSION) throw refuse("malformed", "unknown envelope version");
      const view = Buffer.from(sealedFrame.buffer, sealedFrame.byteOffset, sealedFrame.length);
      const at = view.readUInt32BE(3) * 0x1_0000_0000 + view.readUInt32BE(7);
      const certLength = view.readUInt16BE(11);
      const signedEnd = HEAD + certLength;
      if (certLength === 0 || certLength > MAX_CERT || sealedFrame.length < signedEnd + 1) {
        throw refuse("malformed", "the envelope is truncated");
      }
      const signatureLength = sealedFrame[signedEnd] as number;
      const frameStart = signedEnd + 1 + signatureLength;
      if (signatureLength === 0 || signatureLength > MAX_SIGNATURE || frameStart > view.length) {
        throw refuse("malformed", "the envelope is truncated");
      }
      const now = clock.now();
      if (Math.abs(now - at) > maxSkewMs) {
        throw refuse("stale", "the envelope's time is outside the accepted window");
      }
      const signature = sealedFrame.subarray(signedEnd + 1, frameStart);
      const certDer = view.subarray(HEAD, signedEnd);
      const fingerprint = createHash("sha256").update(certDer).digest("base64");
      const known = trusted.get(fingerprint);
      if (known !== undefined) {
        return finish(known, sealedFrame, signedEnd, signature, binding, frameStart, now);
      }
      return verifyCaller(Buffer.from(certDer), current.intermediates, trust, now).then(
        (caller) => {
          if (trusted.size >= certCap) {
            const oldest = trusted.keys().next();
            if (oldest.done !== true) trusted.delete(oldest.value);
          }
          trusted.set(fingerprint, caller);
          return finish(caller, sealedFrame, signedEnd, signature, binding, frameStart, now);
        },
        (error: unknown) => {
          const reason =
            error instanceof StrataError && typeof error.details.reason === "string"
              ? error.details.reason
              : "untrusted";
          throw refuse(reason, `the caller's certificate is refused (${reason})`);
        },
      );
    },
    async rotate(chainPem, keyPem) {
      const next = await loadCredential(chainPem, keyPem, options, clock);
      if (next.workload !== current.workload) {
        throw new StrataError(
          "INVALID_ARGUMENT",
          `a renewed certificate must keep the workload identity ${current.workload}, got ${next.workload}`,
        );
      }
      current = next;
      rotations++;
    },
    stats: () => ({ sealed, opened, refused: { ...refused }, rotations }),
  };
  return signer;
}

async function loadCredential(
  chainPem: string,
  keyPem: string,
  options: WorkloadIdentityOptions,
  clock: Clock,
): Promise<Credential> {
  const identity = await verifyWorkloadCertificate(chainPem, {
    rootPem: options.rootPem,
    trustDomain: options.trustDomain,
    now: new Date(clock.now()),
  }).catch((error: unknown) => {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `this workload's certificate is not usable: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  });
  const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  const leaf = new X509Certificate((blocks ?? [])[0] as string);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    // The key's text stays out of the message.
    throw new StrataError(
      "INVALID_ARGUMENT",
      "this workload's private key is not a readable PEM key",
    );
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "this workload's private key does not belong to its certificate",
    );
  }
  return {
    certDer: leaf.raw,
    key,
    workload: identity.spiffeId,
    notBefore: new Date(leaf.validFrom),
    notAfter: identity.notAfter,
    intermediates: [...(blocks ?? []).slice(1), options.intermediatesPem ?? ""].join("\n"),
  };
}

async function verifyCaller(
  certDer: Buffer,
  intermediates: string,
  trust: { readonly rootPem: string; readonly trustDomain: string },
  now: number,
): Promise<TrustedCaller> {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certDer);
  } catch {
    throw new StrataError("UNAUTHENTICATED", "unreadable certificate", {
      details: { reason: "malformed" },
    });
  }
  const identity = await verifyWorkloadCertificate(`${leaf.toString()}\n${intermediates}`, {
    ...trust,
    now: new Date(now),
  });
  return {
    workload: identity.spiffeId,
    key: leaf.publicKey,
    notAfter: identity.notAfter.getTime(),
  };
}

function positive(value: number, what: string): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new StrataError("INVALID_ARGUMENT", `${what} must be a positive integer`);
  }
  return value;
}

/** Options for {@link startRenewal}. */
export interface RenewalOptions {
  readonly identity: WorkloadIdentitySigner;
  /**
   * Issues a fresh certificate and key for this workload: from a CA folder
   * (`issueWorkloadCertificate`) or by asking a CA service.
   */
  readonly issue: () => Promise<{ readonly chainPem: string; readonly keyPem: string }>;
  /**
   * Files TLS clients read the certificate from (the NATS transport's `certFile`/`keyFile`),
   * replaced atomically on renewal; the key file is readable by its owner only.
   */
  readonly files?: { readonly certFile: string; readonly keyFile: string };
  /** Fraction of the certificate's lifetime after which it is renewed. Default 2/3. */
  readonly at?: number;
  /** Wait before trying again after a failed renewal. Default 30 s. */
  readonly retryMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A running renewal loop. */
export interface Renewal {
  /** Renews now (also what the timer does). */
  renewNow(): Promise<void>;
  readonly renewals: number;
  readonly failures: number;
  stop(): void;
}

/**
 * Renews a workload's certificate before it expires: at `at` of its lifetime a new one is issued,
 * written over the TLS files (if any) and swapped into the signer. Connections that are up stay
 * up (TLS checks certificates at the handshake) and reconnects read the new files, so no call is
 * dropped. A failed renewal is logged and retried until the certificate expires.
 */
export function startRenewal(options: RenewalOptions): Renewal {
  const clock = options.clock ?? systemClock();
  const at = options.at ?? 2 / 3;
  if (!(at > 0 && at < 1)) throw new StrataError("INVALID_ARGUMENT", "at must be in (0, 1)");
  const retryMs = positive(options.retryMs ?? 30_000, "retryMs");
  const { identity } = options;
  let timer: Timer | undefined;
  let stopped = false;
  let renewals = 0;
  let failures = 0;
  let running: Promise<void> | undefined;

  const schedule = (ms: number): void => {
    timer?.clear();
    if (!stopped) timer = clock.setTimer(() => void renewal.renewNow().catch(() => undefined), ms);
  };
  // Lifetime is counted from when the certificate took effect here, not from its backdated
  // notBefore; a floor of one second keeps a CA that issues near-expired certificates from
  // turning this into a busy loop.
  let since = clock.now();
  const scheduleNext = (): void => {
    const from = Math.max(identity.notBefore.getTime(), since);
    const due = from + (identity.notAfter.getTime() - from) * at;
    schedule(Math.max(1_000, due - clock.now()));
  };
  const renew = async (): Promise<void> => {
    try {
      const issued = await options.issue();
      if (options.files !== undefined) await replaceFiles(options.files, issued);
      await identity.rotate(issued.chainPem, issued.keyPem);
      since = clock.now();
      renewals++;
      options.logger?.info(
        { workload: identity.workload, notAfter: identity.notAfter.toISOString() },
        "renewed the workload certificate",
      );
      scheduleNext();
    } catch (error) {
      failures++;
      options.logger?.warn(
        {
          workload: identity.workload,
          error: error instanceof Error ? error.message : String(error),
        },
        "could not renew the workload certificate; retrying",
      );
      schedule(retryMs);
      throw error;
    }
  };
  const renewal: Renewal = {
    renewNow() {
      running ??= renew().finally(() => {
        running = undefined;
      });
      return running;
    },
    get renewals() {
      return renewals;
    },
    get failures() {
      return failures;
    },
    stop() {
      stopped = true;
      timer?.clear();
    },
  };
  scheduleNext();
  return renewal;
}

/** Replaces certificate and key files by renaming fresh ones over them (never half-written). */
async function replaceFiles(
  files: { readonly certFile: string; readonly keyFile: string },
  issued: { readonly chainPem: string; readonly keyPem: string },
): Promise<void> {
  const suffix = `.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(files.certFile + suffix, issued.chainPem, { mode: 0o644, flag: "wx" });
  await writeFile(files.keyFile + suffix, issued.keyPem, { mode: 0o600, flag: "wx" });
  await rename(files.keyFile + suffix, files.keyFile);
  await rename(files.certFile + suffix, files.certFile);
}

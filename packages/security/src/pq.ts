import { createSecureContext } from "node:tls";

/** The hybrid post-quantum key exchange group of TLS 1.3 (ML-KEM-768 with X25519). */
export const PQ_GROUP = "X25519MLKEM768";

/**
 * Whether this Node's OpenSSL offers {@link PQ_GROUP} (OpenSSL 3.5 and later do; Node 20 links
 * OpenSSL 3.0 and does not).
 */
export function postQuantumTlsSupported(): boolean {
  try {
    createSecureContext({ ecdhCurve: PQ_GROUP });
    return true;
  } catch {
    return false;
  }
}

/**
 * The key exchange groups to offer, most preferred first: the post-quantum hybrid when this
 * runtime has it, then X25519 and P-256. Pass it as `ecdhCurve` to TLS servers and clients.
 */
export function preferredTlsGroups(): string {
  return postQuantumTlsSupported() ? `${PQ_GROUP}:X25519:P-256` : "X25519:P-256";
}

/** What a runtime offers, for reports: its OpenSSL version and whether the hybrid group is on. */
export function tlsGroupReport(): {
  readonly openssl: string;
  readonly postQuantum: boolean;
  readonly groups: string;
} {
  return {
    openssl: process.versions.openssl ?? "unknown",
    postQuantum: postQuantumTlsSupported(),
    groups: preferredTlsGroups(),
  };
}

import { createConnection, isIP, type Socket } from "node:net";
import { connect as connectTls, createSecureContext } from "node:tls";
import { StrataError } from "@strata/core";

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

/** What a TLS handshake with a NATS server agreed on. */
export interface NegotiatedTls {
  /** The key exchange group, for example `X25519` or `X25519MLKEM768`. */
  readonly group: string;
  /** `TLSv1.3` or `TLSv1.2`. */
  readonly protocol: string;
  /** Whether the group is the post-quantum hybrid. */
  readonly postQuantum: boolean;
}

/**
 * Performs one TLS handshake with a NATS server the way clients do (the server's plaintext INFO
 * line, then the upgrade) and reports the key exchange group it agreed on. The socket is closed
 * right after; nothing is sent in the clear but the TCP handshake.
 */
export async function probeNatsTls(
  url: string,
  tls: {
    readonly ca: string;
    readonly cert?: string;
    readonly key?: string;
    readonly ecdhCurve?: string;
    readonly timeoutMs?: number;
  },
): Promise<NegotiatedTls> {
  const parsed = new URL(url.includes("://") ? url : `nats://${url}`);
  const host = parsed.hostname;
  const port = Number(parsed.port === "" ? 4222 : parsed.port);
  const timeoutMs = tls.timeoutMs ?? 5_000;
  const raw = await new Promise<Socket>((resolve, reject) => {
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new StrataError("UNAVAILABLE", `no INFO from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    let seen = "";
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString("latin1");
      if (!seen.includes("\r\n")) {
        if (seen.length > 64 * 1024) socket.destroy(new Error("INFO line too long"));
        return;
      }
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      if (!seen.startsWith("INFO ")) {
        socket.destroy();
        reject(new StrataError("FAILED_PRECONDITION", `${host}:${port} is not a NATS server`));
        return;
      }
      resolve(socket);
    };
    socket.on("data", onData);
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new StrataError("UNAVAILABLE", `cannot reach ${host}:${port}: ${error.message}`));
    });
  });
  return await new Promise<NegotiatedTls>((resolve, reject) => {
    const secure = connectTls({
      socket: raw,
      servername: isIP(host) === 0 ? host : undefined,
      ca: tls.ca,
      ...(tls.cert === undefined ? {} : { cert: tls.cert }),
      ...(tls.key === undefined ? {} : { key: tls.key }),
      ecdhCurve: tls.ecdhCurve ?? preferredTlsGroups(),
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new StrataError("UNAVAILABLE", `TLS handshake with ${host}:${port} timed out`));
    }, timeoutMs);
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      const info = secure.getEphemeralKeyInfo() as { name?: string } | null;
      const group = info?.name ?? "unknown";
      const protocol = secure.getProtocol() ?? "unknown";
      secure.destroy();
      resolve({ group, protocol, postQuantum: group === PQ_GROUP });
    });
    secure.once("error", (error) => {
      clearTimeout(timer);
      secure.destroy();
      reject(
        new StrataError(
          "UNAVAILABLE",
          `TLS handshake with ${host}:${port} failed: ${(error as Error).message}`,
        ),
      );
    });
  });
}

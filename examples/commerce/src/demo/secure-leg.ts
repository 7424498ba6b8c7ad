import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createEmbeddedNetwork, isStrataError, type Transport } from "@strata/core";
import { createNatsTransport, type NatsTransportHandle } from "@strata/nats";
import {
  createWorkloadIdentity,
  initCa,
  issueWorkloadCertificate,
  preferredTlsGroups,
  probeNatsTls,
  readCa,
  startRenewal,
  type Renewal,
  type WorkloadIdentitySigner,
} from "@strata/security";
import { findNatsServer, startNatsCluster, type NatsCluster } from "@strata/test-harness";

/** The demo's trust domain and the workloads of its secure leg. */
export const TRUST_DOMAIN = "commerce.demo";
export const GATEWAY_WORKLOAD = `spiffe://${TRUST_DOMAIN}/ns/shop/svc/gateway`;

/** What the secure leg reports in the demo summary. */
export interface SecureLegReport {
  /** `mtls` when the records leg ran over NATS with mutual TLS; `embedded` otherwise. */
  readonly mode: "mtls" | "embedded";
  /** Why the leg is embedded (no nats-server 2.10 found), when it is. */
  readonly note?: string;
  /** The TLS version and key exchange group agreed with the NATS server. */
  readonly tls?: string;
  readonly postQuantum?: boolean;
  /** Workload certificates renewed while the demo ran (the gateway's lives 24 s). */
  readonly renewals: number;
  /** Requests whose signed envelope verified at the records node. */
  readonly envelopesVerified: number;
  /** Requests refused because their envelope was missing or did not verify. */
  readonly envelopesRefused: number;
}

/** Transports for the records node and the edge node that calls it, and what they did. */
export interface SecureLeg extends AsyncDisposable {
  readonly records: Transport;
  readonly edge: Transport;
  report(): SecureLegReport;
}

/**
 * The demo's zero-trust leg. With a nats-server 2.10 on the machine (`npm run setup:engines`
 * provides one), the records node and the edge node that serves users talk over a local NATS
 * server that requires client certificates from a CA created for the run; every request carries
 * a signed envelope naming its workload, and the edge node's certificate lives 24 s so that it is
 * renewed under traffic. Without a server both run on an in-process network and the summary
 * says so.
 */
export async function startSecureLeg(options: {
  readonly dir: string;
  readonly log: (line: string) => void;
}): Promise<SecureLeg> {
  let nats: { path: string; version: string } | undefined;
  try {
    nats = await findNatsServer();
  } catch (error) {
    const note = `no nats-server 2.10 found (${error instanceof Error ? error.message : String(error)}); run npm run setup:engines for the mTLS leg`;
    const network = createEmbeddedNetwork();
    return {
      records: network.transport(),
      edge: network.transport(),
      report: () => ({
        mode: "embedded",
        note,
        renewals: 0,
        envelopesVerified: 0,
        envelopesRefused: 0,
      }),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    };
  }
  const caDir = join(options.dir, "ca");
  // A kept data folder (--data) keeps its CA: a second run issues from it again.
  await initCa({ dir: caDir, trustDomain: TRUST_DOMAIN }).catch((error: unknown) => {
    if (!isStrataError(error, "ALREADY_EXISTS")) throw error;
  });
  const { rootPem, bundlePem: caBundle } = await readCa(caDir);
  const files = {
    serverCert: join(options.dir, "nats.pem"),
    serverKey: join(options.dir, "nats.key"),
    ca: join(options.dir, "ca-bundle.pem"),
    edgeCert: join(options.dir, "gateway.pem"),
    edgeKey: join(options.dir, "gateway.key"),
  };
  const server = await issueWorkloadCertificate({
    dir: caDir,
    namespace: "infra",
    service: "nats",
    hosts: ["127.0.0.1", "localhost"],
  });
  await writeFile(files.serverCert, server.chainPem);
  await writeFile(files.serverKey, server.keyPem, { mode: 0o600 });
  await writeFile(files.ca, caBundle);
  const issue = (service: string, validityHours?: number) =>
    issueWorkloadCertificate({
      dir: caDir,
      namespace: "shop",
      service,
      ...(validityHours === undefined ? {} : { validityHours }),
    });
  const recordsCert = await issue("records");
  // 24 s: renewed two thirds in (16 s), while users' requests flow.
  const edgeLifetimeHours = 24 / 3_600;
  const edgeCert = await issue("gateway", edgeLifetimeHours);
  await writeFile(files.edgeCert, edgeCert.chainPem);
  await writeFile(files.edgeKey, edgeCert.keyPem, { mode: 0o600 });

  let cluster: NatsCluster | undefined;
  let renewal: Renewal | undefined;
  try {
    cluster = await startNatsCluster({
      nodes: 1,
      jetstream: false,
      tls: { certFile: files.serverCert, keyFile: files.serverKey, caFile: files.ca, verify: true },
    });
    const negotiated = await probeNatsTls(cluster.url, {
      ca: caBundle,
      cert: recordsCert.chainPem,
      key: recordsCert.keyPem,
    });
    const signer = (cert: { chainPem: string; keyPem: string }): Promise<WorkloadIdentitySigner> =>
      createWorkloadIdentity({
        chainPem: cert.chainPem,
        keyPem: cert.keyPem,
        rootPem,
        trustDomain: TRUST_DOMAIN,
      });
    const recordsSigner = await signer(recordsCert);
    const edgeSigner = await signer(edgeCert);
    renewal = startRenewal({
      identity: edgeSigner,
      files: { certFile: files.edgeCert, keyFile: files.edgeKey },
      issue: () => issue("gateway", edgeLifetimeHours),
    });
    const ecdhCurve = preferredTlsGroups();
    const records: NatsTransportHandle = createNatsTransport({
      servers: cluster.url,
      cluster: "secure",
      name: "strata:records-1",
      tls: { cert: recordsCert.chainPem, key: recordsCert.keyPem, ca: caBundle, ecdhCurve },
      signer: recordsSigner,
    });
    const edge: NatsTransportHandle = createNatsTransport({
      servers: cluster.url,
      cluster: "secure",
      name: "strata:gateway-edge",
      tls: { certFile: files.edgeCert, keyFile: files.edgeKey, caFile: files.ca, ecdhCurve },
      signer: edgeSigner,
    });
    options.log(
      `strata demo: records over NATS ${nats.version} with mutual TLS (${negotiated.protocol}, ${negotiated.group}) and signed call envelopes`,
    );
    const started = cluster;
    const running = renewal;
    return {
      records,
      edge,
      report: () => ({
        mode: "mtls",
        tls: `${negotiated.protocol} ${negotiated.group}`,
        postQuantum: negotiated.postQuantum,
        renewals: running.renewals,
        envelopesVerified: recordsSigner.stats().opened,
        envelopesRefused: records.refusedEnvelopes,
      }),
      [Symbol.asyncDispose]: async () => {
        running.stop();
        await started.stop();
      },
    };
  } catch (error) {
    renewal?.stop();
    await cluster?.stop();
    throw error;
  }
}

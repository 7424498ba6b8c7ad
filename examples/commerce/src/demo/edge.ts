import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { runOpenLoad, seededRandom, type StrataNode } from "@strata/core";
import { createGateway, route, type Gateway } from "@strata/gateway";
import { createJwtVerifier, type JwtVerifier } from "@strata/security";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from "jose";
import { records } from "../services/records.js";

const ISSUER = "https://id.commerce.test";
const AUDIENCE = "commerce-gateway";

/** A local identity provider for the demo: an ES256 key, its JWKS on loopback, and tokens. */
export interface TestIssuer extends AsyncDisposable {
  readonly jwksUrl: string;
  /** A token for `sub` with `claims`, expiring in `expiresInSec` (negative: already expired). */
  token(sub: string, claims: Record<string, unknown>, expiresInSec?: number): Promise<string>;
  /** A token signed with a key the issuer does not publish (a forgery). */
  forged(sub: string, claims: Record<string, unknown>): Promise<string>;
  /** The gateway's verifier for this issuer's tokens. */
  verifier(): JwtVerifier;
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const rogue = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "demo-1", alg: "ES256", use: "sig" };
  const server = createServer((req, res) => {
    if (req.url !== "/.well-known/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  const sign = (
    key: CryptoKey,
    kid: string,
    sub: string,
    claims: Record<string, unknown>,
    exp: number,
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + exp)
      .sign(key);
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    jwksUrl,
    token: (sub, claims, expiresInSec = 300) =>
      sign(privateKey, "demo-1", sub, claims, expiresInSec),
    forged: (sub, claims) => sign(rogue.privateKey, "demo-1", sub, claims, 300),
    verifier: () => createJwtVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl }),
    [Symbol.asyncDispose]: close,
  };
}

/** The demo's HTTP gateway in front of the records service, listening on loopback. */
export interface RecordsGateway extends AsyncDisposable {
  readonly gateway: Gateway;
  /** Base URL, such as `http://127.0.0.1:41234`. */
  readonly url: string;
}

/**
 * Starts the HTTP gateway for patient records: `GET /v1/records/:recordId` → `records.get`,
 * bearer tokens verified against the issuer's JWKS. Requests without a token pass on as
 * anonymous so that the records nodes' Cedar policies (deny by default) decide, as they would
 * for any caller; a token that is present must verify.
 */
export async function startGateway(node: StrataNode, issuer: TestIssuer): Promise<RecordsGateway> {
  const gateway = createGateway({
    node,
    authenticate: issuer.verifier(),
    routes: [
      route({
        method: "GET",
        path: "/v1/records/:recordId",
        contract: records,
        action: "get",
        auth: "optional",
        summary: "Read a patient record (under policy)",
      }),
    ],
    title: "Commerce records API",
    version: "1.0.0",
  });
  try {
    const url = await gateway.listen({ host: "127.0.0.1", port: 0 });
    return { gateway, url, [Symbol.asyncDispose]: () => gateway.close() };
  } catch (error) {
    await gateway.close();
    throw error;
  }
}

/** What the records traffic found: each request's outcome against what the policies intend. */
export interface EdgeReport {
  readonly requests: number;
  readonly allowed: number;
  /** Refused at the gateway (401): the token did not verify, by reason. */
  readonly unauthenticated: Readonly<Record<string, number>>;
  /** Refused by policy (403) at the records service. */
  readonly denied: number;
  /** Outcomes other than the one the scenario expects: must be 0. */
  readonly unexpected: number;
}

type Scenario = {
  readonly name: string;
  readonly expect: "allow" | "deny" | "unauthenticated";
  readonly token: () => string | undefined;
  readonly recordId: () => string;
};

/**
 * Users reach patient records over HTTP through the gateway: it verifies each bearer token and
 * calls from `gateway` (a node) with the verified user as principal; the records nodes' Cedar
 * policies decide. A mix of nurses, patients reading their own and others' records, a sealed
 * record, no token, an expired token and a forged one. Outcomes are read from the HTTP status
 * and the problem's `code` and `reason`.
 */
export async function runRecordsTraffic(options: {
  readonly gateway: StrataNode;
  readonly issuer: TestIssuer;
  readonly durationMs: number;
  readonly rate: number;
  readonly signal?: AbortSignal;
}): Promise<EdgeReport> {
  const { issuer } = options;
  await using http = await startGateway(options.gateway, issuer);
  const random = seededRandom(21);
  const nurse = await issuer.token("nina", { roles: ["nurse"] });
  const patient = await issuer.token("paul", { patientId: "rec-1" });
  const expired = await issuer.token("nina", { roles: ["nurse"] }, -3_600);
  const forged = await issuer.forged("mallory", { roles: ["nurse"] });
  const scenarios: Scenario[] = [
    {
      name: "nurse",
      expect: "allow",
      token: () => nurse,
      recordId: () => `rec-${1 + Math.floor(random() * 50)}`,
    },
    { name: "own record", expect: "allow", token: () => patient, recordId: () => "rec-1" },
    {
      name: "another's record",
      expect: "deny",
      token: () => patient,
      recordId: () => "rec-2",
    },
    { name: "sealed", expect: "deny", token: () => nurse, recordId: () => "sealed" },
    { name: "no token", expect: "deny", token: () => undefined, recordId: () => "rec-1" },
    {
      name: "expired",
      expect: "unauthenticated",
      token: () => expired,
      recordId: () => "rec-1",
    },
    {
      name: "forged",
      expect: "unauthenticated",
      token: () => forged,
      recordId: () => "rec-1",
    },
  ];
  let requests = 0;
  let allowed = 0;
  let denied = 0;
  let unexpected = 0;
  const unauthenticated: Record<string, number> = {};
  await runOpenLoad({
    rate: options.rate,
    durationMs: options.durationMs,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    call: async () => {
      const scenario = scenarios[Math.floor(random() * scenarios.length)] as Scenario;
      requests++;
      const token = scenario.token();
      const response = await fetch(
        `${http.url}/v1/records/${encodeURIComponent(scenario.recordId())}`,
        { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
      );
      const body = (await response.json()) as { code?: unknown; reason?: unknown };
      let outcome: "allow" | "deny" | "unauthenticated";
      if (response.status === 200) {
        outcome = "allow";
        allowed++;
      } else if (response.status === 401 && body.code === "UNAUTHENTICATED") {
        outcome = "unauthenticated";
        const reason = typeof body.reason === "string" ? body.reason : "unknown";
        unauthenticated[reason] = (unauthenticated[reason] ?? 0) + 1;
      } else if (response.status === 403 && body.code === "PERMISSION_DENIED") {
        outcome = "deny";
        denied++;
      } else {
        throw new Error(
          `records gateway answered HTTP ${response.status} (${String(body.code)}) for scenario "${scenario.name}"`,
        );
      }
      if (outcome !== scenario.expect) unexpected++;
    },
  });
  return { requests, allowed, unauthenticated, denied, unexpected };
}

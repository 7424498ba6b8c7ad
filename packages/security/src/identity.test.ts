import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isStrataError, manualClock, type StrataError } from "@strata/core";
import {
  SignJWT,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIntrospector } from "./introspection.js";
import { createJwtVerifier } from "./jwt.js";

const ISSUER = "https://issuer.test";
const AUDIENCE = "strata-gateway";

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function rejection(promise: Promise<unknown>): Promise<StrataError> {
  try {
    await promise;
  } catch (error) {
    if (isStrataError(error)) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");

interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
  readonly publicPem: string;
}

async function signingKey(kid: string, alg: "RS256" | "ES256"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, jwk, publicPem: await exportSPKI(publicKey) };
}

async function token(
  key: SigningKey,
  claims: Record<string, unknown> = {},
  options: { exp?: number; nbf?: number; iss?: string; aud?: string; sub?: string | null } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(options.exp ?? now + 300);
  if (options.sub !== null) jwt = jwt.setSubject(options.sub ?? "alice");
  if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf);
  return jwt.sign(key.privateKey);
}

describe("JWT verification", () => {
  let rsa: SigningKey;
  let ec: SigningKey;
  let jwks: JSONWebKeySet;
  let fetches = 0;
  let up = true;
  let issuer: { url: string; server: Server };

  beforeAll(async () => {
    rsa = await signingKey("k1", "RS256");
    ec = await signingKey("k2", "ES256");
    jwks = { keys: [rsa.jwk, ec.jwk] };
    issuer = await serve((req, res) => {
      fetches++;
      if (!up) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(jwks));
    });
  });
  afterAll(() => close(issuer.server));

  const verifier = (extra: Partial<Parameters<typeof createJwtVerifier>[0]> = {}) =>
    createJwtVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUrl: `${issuer.url}/jwks`,
      jwksCooldownMs: 10,
      ...extra,
    });

  it("accepts a valid token and returns the user with its claims", async () => {
    const v = verifier();
    const principal = await v.verify(await token(rsa, { roles: ["nurse"] }));
    expect(principal).toMatchObject({ kind: "user", subject: "alice" });
    expect(principal.claims.roles).toEqual(["nurse"]);
    expect((await v.verify(await token(ec, {}, { sub: "bob" }))).subject).toBe("bob");
  });

  it("rejects each attack with UNAUTHENTICATED and the reason, never echoing the token", async () => {
    const v = verifier();
    const now = Math.floor(Date.now() / 1000);
    const good = await token(rsa);
    const [header, payload] = good.split(".") as [string, string, string];
    const forgedPayload = b64({
      ...(JSON.parse(Buffer.from(payload, "base64url").toString()) as object),
      sub: "admin",
    });
    // HS256 "signed" with the RSA public key as the HMAC secret: the classic key confusion.
    const { createHmac } = await import("node:crypto");
    const hsHeader = b64({ alg: "HS256", kid: "k1", typ: "JWT" });
    const hsSignature = createHmac("sha256", rsa.publicPem)
      .update(`${hsHeader}.${payload}`)
      .digest("base64url");
    const cases: Array<[string, string, string]> = [
      ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${payload}.`, "algorithm-not-allowed"],
      ["alg None (case)", `${b64({ alg: "None" })}.${payload}.`, "algorithm-not-allowed"],
      [
        "HS256 with the public key",
        `${hsHeader}.${payload}.${hsSignature}`,
        "algorithm-not-allowed",
      ],
      [
        "payload changed",
        `${header}.${forgedPayload}.${good.split(".")[2] as string}`,
        "bad-signature",
      ],
      ["expired", await token(rsa, {}, { exp: now - 120 }), "expired"],
      ["not valid yet", await token(rsa, {}, { nbf: now + 600 }), "not-yet-valid"],
      ["wrong issuer", await token(rsa, {}, { iss: "https://evil.test" }), "wrong-issuer"],
      ["wrong audience", await token(rsa, {}, { aud: "someone-else" }), "wrong-audience"],
      ["no subject", await token(rsa, {}, { sub: null }), "invalid-claims"],
      ["garbage", "not.a.jwt", "malformed"],
      ["two segments", "abc.def", "malformed"],
      ["oversized", `${"a".repeat(9_000)}.b.c`, "malformed"],
    ];
    for (const [name, bad, reason] of cases) {
      const error = await rejection(v.verify(bad));
      expect(error.code, name).toBe("UNAUTHENTICATED");
      expect(error.details.reason, name).toBe(reason);
      expect(error.message, name).not.toContain(bad.slice(0, 40));
    }
  });

  it("allows clock skew up to the tolerance and no more", async () => {
    const now = Math.floor(Date.now() / 1000);
    const v = verifier({ clockToleranceSec: 60 });
    await expect(v.verify(await token(rsa, {}, { exp: now - 30 }))).resolves.toBeDefined();
    expect(
      (await rejection(v.verify(await token(rsa, {}, { exp: now - 90 })))).details.reason,
    ).toBe("expired");
    expect(() => verifier({ clockToleranceSec: 3_600 })).toThrow(/0 to 300/);
  });

  it("follows key rotation during traffic: new keys are fetched, removed ones refused", async () => {
    const v = verifier({ jwksCooldownMs: 0 });
    await v.verify(await token(rsa));
    const rotated = await signingKey("k3", "ES256");
    let failures = 0;
    let verified = 0;
    const traffic = (async () => {
      for (let i = 0; i < 200; i++) {
        try {
          await v.verify(await token(i % 2 === 0 ? rsa : ec));
          verified++;
        } catch {
          failures++;
        }
      }
    })();
    jwks = { keys: [rsa.jwk, ec.jwk, rotated.jwk] }; // the issuer publishes a new key...
    const fresh = await token(rotated);
    await expect(v.verify(fresh)).resolves.toMatchObject({ subject: "alice" }); // ...used at once
    await traffic;
    expect(failures).toBe(0);
    expect(verified).toBe(200);
    // The old RSA key is withdrawn; once the cache is refreshed its tokens are refused.
    jwks = { keys: [ec.jwk, rotated.jwk] };
    const short = verifier({ jwksCacheMaxAgeMs: 1, jwksCooldownMs: 0 });
    expect((await rejection(short.verify(await token(rsa)))).details.reason).toBe("unknown-key");
    jwks = { keys: [rsa.jwk, ec.jwk] };
  });

  it("fails closed when the key set cannot be fetched", async () => {
    up = false;
    try {
      const error = await rejection(verifier().verify(await token(rsa)));
      expect(error.code).toBe("UNAVAILABLE");
      expect(error.details.reason).toBe("jwks-unavailable");
    } finally {
      up = true;
    }
    const closed = createJwtVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUrl: "http://127.0.0.1:9/jwks",
    });
    expect((await rejection(closed.verify(await token(rsa)))).code).toBe("UNAVAILABLE");
    expect(fetches).toBeGreaterThan(0);
  });

  it("refuses unsafe configuration", () => {
    expect(() => verifier({ algorithms: ["RS256", "HS256"] })).toThrow(/asymmetric/);
    expect(() => verifier({ algorithms: ["none"] })).toThrow(/not allowed/);
    expect(() =>
      createJwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUrl: "http://issuer.example/jwks",
      }),
    ).toThrow(/https/);
    expect(() => createJwtVerifier({ issuer: ISSUER, audience: AUDIENCE })).toThrow(/exactly one/);
    expect(() => createJwtVerifier({ issuer: [], audience: AUDIENCE, jwks })).toThrow(/issuer/);
  });
});

describe("OAuth 2.0 token introspection", () => {
  let requests = 0;
  let mode: "normal" | "slow" | "error" | "garbage" = "normal";
  let endpoint: { url: string; server: Server };

  beforeAll(async () => {
    endpoint = await serve((req, res) => {
      requests++;
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        const expected = `Basic ${Buffer.from("gateway:s3cret").toString("base64")}`;
        if (req.headers.authorization !== expected) {
          res.writeHead(401).end();
          return;
        }
        if (mode === "slow") return; // never answers
        if (mode === "error") {
          res.writeHead(500).end("boom");
          return;
        }
        if (mode === "garbage") {
          res.writeHead(200, { "content-type": "application/json" }).end("<html>");
          return;
        }
        const token = new URLSearchParams(body).get("token");
        const now = Math.floor(Date.now() / 1000);
        const answer =
          token === "good"
            ? {
                active: true,
                sub: "alice",
                aud: "records",
                iss: ISSUER,
                exp: now + 3_600,
                scope: "read",
              }
            : token === "soon"
              ? { active: true, sub: "bob", aud: "records", iss: ISSUER, exp: now + 5 }
              : token === "elsewhere"
                ? { active: true, sub: "eve", aud: "billing", iss: ISSUER, exp: now + 3_600 }
                : { active: false };
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
      });
    });
  });
  afterAll(() => close(endpoint.server));

  const introspector = (extra: Partial<Parameters<typeof createIntrospector>[0]> = {}) =>
    createIntrospector({
      url: `${endpoint.url}/introspect`,
      clientId: "gateway",
      clientSecret: "s3cret",
      audience: "records",
      issuer: ISSUER,
      timeoutMs: 300,
      ...extra,
    });

  it("returns the principal of an active token and caches answers both ways", async () => {
    const i = introspector();
    const before = requests;
    const principal = await i.introspect("good");
    expect(principal).toMatchObject({ kind: "user", subject: "alice" });
    expect(principal.claims.scope).toBe("read");
    await i.introspect("good");
    expect(requests - before).toBe(1);
    for (let n = 0; n < 3; n++) {
      const error = await rejection(i.introspect("revoked"));
      expect(error.code).toBe("UNAUTHENTICATED");
      expect(error.details.reason).toBe("inactive");
    }
    expect(requests - before).toBe(2);
    expect((await rejection(i.introspect("elsewhere"))).details.reason).toBe("wrong-audience");
  });

  it("shares one request among concurrent checks of a token", async () => {
    const i = introspector();
    const before = requests;
    await Promise.all(Array.from({ length: 20 }, () => i.introspect("good")));
    expect(requests - before).toBe(1);
  });

  it("keeps an active answer no longer than the token lives", async () => {
    const clock = manualClock({ start: Date.now() });
    const i = introspector({ clock, maxCacheMs: 60_000 });
    const before = requests;
    await expect(i.introspect("soon")).resolves.toMatchObject({ subject: "bob" });
    clock.advance(6_000); // past its exp (5 s): asked again, and no longer accepted
    expect((await rejection(i.introspect("soon"))).details.reason).toBe("inactive");
    expect(requests - before).toBe(2);
  });

  it("fails closed when the endpoint is down, slow, failing or answering garbage", async () => {
    for (const m of ["slow", "error", "garbage"] as const) {
      mode = m;
      try {
        const started = performance.now();
        const error = await rejection(introspector().introspect(`token-${m}`));
        expect(error.code, m).toBe("UNAVAILABLE");
        expect(error.details.reason, m).toBe("introspection-unavailable");
        expect(performance.now() - started, m).toBeLessThan(5_000);
      } finally {
        mode = "normal";
      }
    }
    const down = introspector({ url: "http://127.0.0.1:9/introspect" });
    expect((await rejection(down.introspect("good"))).code).toBe("UNAVAILABLE");
    // A failure is not cached: once the endpoint is back, the token is accepted.
    const i = introspector();
    mode = "error";
    await rejection(i.introspect("good"));
    mode = "normal";
    await expect(i.introspect("good")).resolves.toMatchObject({ subject: "alice" });
  });

  it("bounds its cache and refuses unsafe configuration", async () => {
    const i = introspector({ maxEntries: 5 });
    for (let n = 0; n < 20; n++) await rejection(i.introspect(`unknown-${n}`));
    expect(i.size()).toBe(5);
    expect(() => introspector({ url: "http://auth.example/introspect" })).toThrow(/https/);
    expect(() => introspector({ clientSecret: "" })).toThrow(/clientSecret/);
    expect((await rejection(i.introspect(""))).details.reason).toBe("malformed");
  });
});

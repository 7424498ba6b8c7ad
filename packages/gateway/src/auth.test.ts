import type { Principal } from "@strata/core";
import {
  createCedarAuthorizer,
  createIntrospector,
  createJwtVerifier,
  type CedarAuthorizer,
} from "@strata/security";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, route } from "./index.js";
import {
  AUDIENCE,
  ISSUER,
  notesV1,
  serve,
  startCluster,
  startIssuer,
  type Cluster,
  type Issuer,
} from "./test-support/fixtures.js";

let issuer: Issuer;

beforeAll(async () => {
  issuer = await startIssuer();
});
afterAll(async () => {
  await issuer?.[Symbol.asyncDispose]();
});

const getNote = route({
  method: "GET",
  path: "/v1/notes/:noteId",
  contract: notesV1,
  action: "get",
});
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("failing closed", () => {
  it("answers 503 when the issuer's keys cannot be fetched, and recovers when they can", async () => {
    await using cluster = await startCluster();
    await using gateway = createGateway({
      node: cluster.edge,
      // A verifier that has never fetched the keys, so nothing is cached.
      authenticate: createJwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUrl: issuer.jwksUrl,
        jwksCooldownMs: 0,
      }),
      routes: [getNote],
    });
    const token = await issuer.token("alice");
    issuer.up = false;
    try {
      const response = await gateway.app.inject({
        method: "GET",
        url: "/v1/notes/n-1",
        headers: bearer(token),
      });
      expect(response.statusCode).toBe(503);
      expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({
        type: "https://strata.dev/errors/unavailable",
        code: "UNAVAILABLE",
        detail: "the service is unavailable; retry later",
      });
      expect(cluster.runs.get).toBe(0);
    } finally {
      issuer.up = true;
    }
    const later = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: bearer(token),
    });
    expect(later.statusCode).toBe(200);
  });

  it("answers 500 when an authenticator answers something that is not a user", async () => {
    await using cluster = await startCluster();
    await using gateway = createGateway({
      node: cluster.edge,
      authenticate: {
        verify: () => Promise.resolve({ kind: "node", id: "n1" } as Principal),
      },
      routes: [getNote],
    });
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: bearer("abc"),
    });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toMatchObject({
      code: "INTERNAL",
      detail: "an internal error occurred",
    });
    expect(cluster.runs.get).toBe(0);
  });
});

describe("OAuth 2.0 introspection", () => {
  it("authenticates opaque tokens with the authorization server, failing closed", async () => {
    let up = true;
    const server = await serve((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => (body += chunk));
      req.on("end", () => {
        if (!up) {
          res.writeHead(503).end();
          return;
        }
        const token = new URLSearchParams(body).get("token");
        const answer =
          token === "opaque-carol"
            ? { active: true, sub: "carol", aud: "notes", exp: Math.floor(Date.now() / 1000) + 60 }
            : { active: false };
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
      });
    });
    try {
      await using cluster = await startCluster();
      await using gateway = createGateway({
        node: cluster.edge,
        authenticate: createIntrospector({
          url: `${server.url}/introspect`,
          clientId: "gateway",
          clientSecret: "s3cret",
          audience: "notes",
          negativeCacheMs: 1,
        }),
        routes: [getNote],
      });
      const get = (token: string) =>
        gateway.app.inject({ method: "GET", url: "/v1/notes/n-1", headers: bearer(token) });
      const ok = await get("opaque-carol");
      expect(ok.statusCode).toBe(200);
      expect(ok.json().seen.principal).toBe("user:carol");
      const inactive = await get("opaque-unknown");
      expect(inactive.statusCode).toBe(401);
      expect(inactive.json()).toMatchObject({ code: "UNAUTHENTICATED", reason: "inactive" });
      up = false;
      const down = await get("opaque-dave");
      expect(down.statusCode).toBe(503);
      expect(down.json().code).toBe("UNAVAILABLE");
      expect(cluster.runs.get).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe("authorization", () => {
  const EDGE_POLICIES = `
    permit (principal in Role::"reader", action == Action::"notes.get", resource);
    forbid (principal, action, resource == Note::"edge-secret");
  `;
  const CALLEE_POLICIES = `
    permit (principal, action, resource);
    forbid (principal, action == Action::"notes.get", resource == Note::"callee-secret");
  `;
  const resources = { "notes.get": { type: "Note", field: "noteId" } };
  let cluster: Cluster;
  let calleeAuthorizer: CedarAuthorizer;

  beforeAll(async () => {
    calleeAuthorizer = await createCedarAuthorizer({ policies: CALLEE_POLICIES, resources });
    cluster = await startCluster({ authorizer: calleeAuthorizer });
  });
  afterAll(async () => {
    await cluster?.[Symbol.asyncDispose]();
    await calleeAuthorizer?.close();
  });

  it("denies at the edge with 403 before any call, and at the callee with 403 too", async () => {
    const edgeAuthorizer = await createCedarAuthorizer({ policies: EDGE_POLICIES, resources });
    await using gateway = createGateway({
      node: cluster.edge,
      authenticate: createJwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUrl: issuer.jwksUrl,
      }),
      authorizer: edgeAuthorizer,
      routes: [getNote],
    });
    const reader = await issuer.token("rita", { roles: ["reader"] });
    const stranger = await issuer.token("sam", { roles: ["guest"] });
    const get = (token: string, id: string) =>
      gateway.app.inject({ method: "GET", url: `/v1/notes/${id}`, headers: bearer(token) });

    const allowed = await get(reader, "n-1");
    expect(allowed.statusCode).toBe(200);
    const runs = cluster.runs.get;

    for (const [token, id] of [
      [reader, "edge-secret"],
      [stranger, "n-1"],
    ] as const) {
      const denied = await get(token, id);
      expect(denied.statusCode).toBe(403);
      expect(denied.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(denied.json()).toMatchObject({
        type: "https://strata.dev/errors/permission-denied",
        code: "PERMISSION_DENIED",
        status: 403,
        detail: "the request is not permitted",
      });
      // The policy's reasoning is logged, not sent.
      expect(denied.body).not.toMatch(/forbid|policy|Role/);
    }
    expect(cluster.runs.get).toBe(runs);
    expect(edgeAuthorizer.stats().denied).toBe(2);

    const calleeDenied = await get(reader, "callee-secret");
    expect(calleeDenied.statusCode).toBe(403);
    expect(calleeDenied.json().code).toBe("PERMISSION_DENIED");
    expect(cluster.runs.get).toBe(runs);
    await edgeAuthorizer.close();
  });

  it("validates the input before authorizing, answering bad input with 400", async () => {
    await using gateway = createGateway({
      node: cluster.edge,
      authenticate: createJwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUrl: issuer.jwksUrl,
      }),
      authorizer: {
        authorize: () => {
          throw new Error("must not be asked");
        },
      },
      routes: [getNote],
    });
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1?verbose=loud",
      headers: bearer(await issuer.token("rita")),
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().issues).toEqual([{ path: "verbose", message: expect.any(String) }]);
  });

  it("denies when the authorizer throws", async () => {
    await using gateway = createGateway({
      node: cluster.edge,
      authenticate: createJwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUrl: issuer.jwksUrl,
      }),
      authorizer: {
        authorize: () => {
          throw new Error("policy store down");
        },
      },
      routes: [getNote],
    });
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: bearer(await issuer.token("rita")),
    });
    expect(response.statusCode).toBe(403);
    expect(response.body).not.toContain("policy store down");
  });
});

describe("readiness", () => {
  it("is unready while a routed service version has no ready instance", async () => {
    await using cluster = await startCluster();
    const gateway = createGateway({
      node: cluster.edge,
      authenticate: createJwtVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [] } }),
      routes: [
        getNote,
        route({
          method: "GET",
          path: "/v3/notes/:noteId",
          contract: { ...notesV1, version: "3.0.0" },
          action: "get",
        }),
      ],
    });
    const unready = await gateway.app.inject({ method: "GET", url: "/readyz" });
    expect(unready.statusCode).toBe(503);
    expect(unready.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(unready.json()).toMatchObject({
      code: "UNAVAILABLE",
      services: { "notes@^1.4.0": 1, "notes@^3.0.0": 0 },
    });
    await gateway.close();
    await gateway.close(); // idempotent
  });

  it("turns unready when the only instance of a service stops", async () => {
    await using cluster = await startCluster();
    await using gateway = createGateway({
      node: cluster.edge,
      authenticate: createJwtVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [] } }),
      routes: [getNote],
    });
    expect((await gateway.app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
    await cluster.v1.stop();
    const response = await gateway.app.inject({ method: "GET", url: "/readyz" });
    expect(response.statusCode).toBe(503);
    expect(response.json().services).toEqual({ "notes@^1.4.0": 0 });
  });
});

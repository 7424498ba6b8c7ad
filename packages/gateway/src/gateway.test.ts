import { createJwtVerifier } from "@strata/security";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, route, type Gateway } from "./index.js";
import {
  AUDIENCE,
  ISSUER,
  notesV1,
  notesV2,
  startCluster,
  startIssuer,
  type Cluster,
  type Issuer,
} from "./test-support/fixtures.js";

let issuer: Issuer;
let cluster: Cluster;
let gateway: Gateway;
let token: string;

const routes = () => [
  route({ method: "GET", path: "/v1/notes/:noteId", contract: notesV1, action: "get" }),
  route({
    method: "PUT",
    path: "/v1/notes/:noteId",
    contract: notesV1,
    action: "create",
    successStatus: 201,
  }),
  route({ method: "DELETE", path: "/v1/notes/:noteId", contract: notesV1, action: "remove" }),
  route({ method: "POST", path: "/v1/failures", contract: notesV1, action: "fail" }),
  route({
    method: "GET",
    path: "/v2/notes/:id",
    contract: notesV2,
    action: "get",
    summary: "Read a note (v2 shape)",
  }),
];

beforeAll(async () => {
  issuer = await startIssuer();
  cluster = await startCluster();
  gateway = createGateway({
    node: cluster.edge,
    authenticate: createJwtVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUrl: issuer.jwksUrl,
    }),
    routes: routes(),
    rateLimit: false,
    title: "Notes API",
    version: "2.1.0",
  });
  token = await issuer.token("alice");
});

afterAll(async () => {
  await gateway?.close();
  await cluster?.[Symbol.asyncDispose]();
  await issuer?.[Symbol.asyncDispose]();
});

const auth = () => ({ authorization: `Bearer ${token}` });

describe("routing", () => {
  it("serves /v1 and /v2 side by side from different contract versions", async () => {
    const v1 = await gateway.app.inject({ method: "GET", url: "/v1/notes/n-1", headers: auth() });
    expect(v1.statusCode).toBe(200);
    expect(v1.headers["content-type"]).toMatch(/^application\/json/);
    expect(v1.json()).toMatchObject({ noteId: "n-1", text: "note n-1" });
    const v2 = await gateway.app.inject({ method: "GET", url: "/v2/notes/n-1", headers: auth() });
    expect(v2.statusCode).toBe(200);
    expect(v2.json()).toEqual({ id: "n-1", body: "note n-1", format: "v2" });
  });

  it("calls with the verified user as principal and the request id as the only meta", async () => {
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-2",
      headers: auth(),
    });
    const id = response.headers["x-request-id"];
    expect(typeof id).toBe("string");
    expect(response.json().seen).toEqual({
      principal: "user:alice",
      meta: { requestId: id },
      traceId: null,
    });
  });

  it("maps query and path for GET, body and path for PUT, with the path winning", async () => {
    const get = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-3?verbose=yes&noteId=other",
      headers: auth(),
    });
    expect(get.statusCode).toBe(200);
    expect(get.json().noteId).toBe("n-3");
    const put = await gateway.app.inject({
      method: "PUT",
      url: "/v1/notes/n-4",
      headers: { ...auth(), "content-type": "application/json" },
      payload: { noteId: "elsewhere", text: "hello" },
    });
    expect(put.statusCode).toBe(201);
    expect(put.json()).toMatchObject({ noteId: "n-4", text: "hello" });
  });

  it("answers 204 when the action returns nothing", async () => {
    const response = await gateway.app.inject({
      method: "DELETE",
      url: "/v1/notes/n-5",
      headers: auth(),
    });
    expect(response.statusCode).toBe(204);
    expect(response.body).toBe("");
  });

  it("answers invalid input with 400 problem+json listing the field issues", async () => {
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1?verbose=maybe",
      headers: auth(),
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    const problem = response.json();
    expect(problem).toMatchObject({
      type: "https://strata.dev/errors/invalid-argument",
      status: 400,
      code: "INVALID_ARGUMENT",
      instance: response.headers["x-request-id"],
    });
    expect(problem.issues).toEqual([{ path: "verbose", message: expect.any(String) }]);
  });
});

describe("upstream errors", () => {
  const fail = (kind: string) =>
    gateway.app.inject({
      method: "POST",
      url: "/v1/failures",
      headers: { ...auth(), "content-type": "application/json" },
      payload: { kind },
    });

  it.each([
    ["internal", 500, "INTERNAL"],
    ["throw", 500, "INTERNAL"],
    ["not-found", 404, "NOT_FOUND"],
    ["unavailable", 503, "UNAVAILABLE"],
    ["busy", 429, "RESOURCE_EXHAUSTED"],
    ["bad-input", 400, "INVALID_ARGUMENT"],
  ])("maps %s to %i with code %s and no internals", async (kind, status, code) => {
    const response = await fail(kind);
    expect(response.statusCode).toBe(status);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    const problem = response.json();
    expect(problem.code).toBe(code);
    expect(problem.status).toBe(status);
    expect(problem.type).toBe(
      `https://strata.dev/errors/${code.toLowerCase().replaceAll("_", "-")}`,
    );
    expect(Object.keys(problem as object).sort()).toEqual(
      ["type", "title", "status", "detail", "instance", "code"]
        .concat(code === "INVALID_ARGUMENT" ? ["issues"] : [])
        .sort(),
    );
    // Neither stack frames, file paths, hosts nor secrets from inside.
    for (const leak of ["hunter2", "db.ts", "secretField", "db-7", "at ", "stack", "TypeError"]) {
      expect(response.body).not.toContain(leak);
    }
  });

  it("keeps the message of caller-facing codes and sets Retry-After for RESOURCE_EXHAUSTED", async () => {
    expect((await fail("not-found")).json().detail).toBe("note n-9 not found");
    const busy = await fail("busy");
    expect(busy.headers["retry-after"]).toBe("3");
    expect((await fail("internal")).json().detail).toBe("an internal error occurred");
  });
});

describe("HTTP-level problems", () => {
  it("answers an unknown route with 404 problem+json", async () => {
    const response = await gateway.app.inject({ method: "GET", url: "/v3/notes/n-1" });
    expect(response.statusCode).toBe(404);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({
      type: "https://strata.dev/errors/route-not-found",
      code: "NOT_FOUND",
      status: 404,
    });
  });

  it("answers a known path with another method with 405 and Allow", async () => {
    const response = await gateway.app.inject({
      method: "POST",
      url: "/v1/notes/n-1",
      headers: { ...auth(), "content-type": "application/json" },
      payload: {},
    });
    expect(response.statusCode).toBe(405);
    expect(response.headers["allow"]).toBe("DELETE, GET, HEAD, PUT");
    expect(response.json()).toMatchObject({ code: "UNIMPLEMENTED", status: 405 });
  });

  it("sets the security headers on every answer and names no server", async () => {
    for (const url of ["/v1/notes/n-1", "/nope", "/healthz"]) {
      const response = await gateway.app.inject({ method: "GET", url, headers: auth() });
      expect(response.headers).toMatchObject({
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
        "strict-transport-security": "max-age=31536000; includeSubDomains",
        "x-frame-options": "DENY",
        "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
        "referrer-policy": "no-referrer",
        "cross-origin-resource-policy": "same-origin",
      });
      expect(response.headers["x-powered-by"]).toBeUndefined();
      expect(response.headers["server"]).toBeUndefined();
    }
  });
});

describe("OpenAPI", () => {
  it("serves a 3.1 document listing both versions with request and response schemas", async () => {
    const response = await gateway.app.inject({ method: "GET", url: "/openapi.json" });
    expect(response.statusCode).toBe(200);
    const doc = response.json();
    expect(doc).toEqual(gateway.openapi());
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.jsonSchemaDialect).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(doc.info).toEqual({ title: "Notes API", version: "2.1.0" });
    expect(Object.keys(doc.paths as object).sort()).toEqual([
      "/healthz",
      "/readyz",
      "/v1/failures",
      "/v1/notes/{noteId}",
      "/v2/notes/{id}",
    ]);
    const get1 = doc.paths["/v1/notes/{noteId}"].get;
    expect(get1["x-strata-version"]).toBe("^1.4.0");
    expect(get1.security).toEqual([{ bearer: [] }]);
    expect(get1.parameters).toEqual([
      {
        name: "noteId",
        in: "path",
        required: true,
        schema: expect.objectContaining({ type: "string" }),
      },
      {
        name: "verbose",
        in: "query",
        required: false,
        schema: { type: "string", enum: ["yes", "no"] },
      },
    ]);
    const put1 = doc.paths["/v1/notes/{noteId}"].put;
    const body = put1.requestBody.content["application/json"].schema;
    expect(body.properties).toHaveProperty("text");
    expect(body.properties).not.toHaveProperty("noteId");
    expect(body.required).toEqual(["text"]);
    expect(put1.responses["201"].content["application/json"].schema).toEqual({
      $ref: "#/components/schemas/notes.v1.4.0.create.output",
    });
    expect(put1.responses["413"]).toEqual({ $ref: "#/components/responses/Problem413" });
    const get2 = doc.paths["/v2/notes/{id}"].get;
    expect(get2.summary).toBe("Read a note (v2 shape)");
    const out2 = doc.components.schemas["notes.v2.0.0.get.output"];
    expect(out2.properties.format).toEqual({ type: "string", const: "v2" });
    // Every $ref resolves inside the document, and no schema carries its own $schema.
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (typeof node === "object" && node !== null) {
        for (const [key, value] of Object.entries(node)) {
          if (key === "$ref") refs.push(value as string);
          if (key === "$schema") throw new Error("embedded $schema");
          walk(value);
        }
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) {
      const target = ref
        .slice(2)
        .split("/")
        .reduce<unknown>((at, key) => (at as Record<string, unknown> | undefined)?.[key], doc);
      expect(target, ref).toBeDefined();
    }
    // Operation ids are unique.
    const ids = Object.values(doc.paths as object).flatMap((item) =>
      Object.values(item as Record<string, { operationId: string }>).map((op) => op.operationId),
    );
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("health", () => {
  it("answers liveness and readiness from the node's view of the cluster", async () => {
    const live = await gateway.app.inject({ method: "GET", url: "/healthz" });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: "ok" });
    const ready = await gateway.app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({
      status: "ready",
      services: { "notes@^1.4.0": 1, "notes@^2.0.0": 1 },
    });
  });
});

describe("a real socket", () => {
  it("listens, answers over fetch, and reports its stats", async () => {
    const url = await gateway.listen();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ok = await fetch(`${url}/v2/notes/n-7`, { headers: auth() });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ id: "n-7", body: "note n-7", format: "v2" });
    const missing = await fetch(`${url}/v2/notes/n-7`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="strata"');
    const stats = gateway.stats();
    expect(stats.requests).toBeGreaterThan(2);
    expect(stats.byStatus["200"]).toBeGreaterThan(0);
    expect(stats.byCode.UNAUTHENTICATED).toBeGreaterThan(0);
  });
});

describe("configuration", () => {
  const base = () => ({
    node: cluster.edge,
    authenticate: createJwtVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [] } }),
  });

  it.each([
    [
      "a duplicate route",
      {
        routes: [
          route({ method: "GET", path: "/v1/notes/:noteId", contract: notesV1, action: "get" }),
          route({ method: "GET", path: "/v1/notes/:id", contract: notesV2, action: "get" }),
        ],
      },
      /duplicates/,
    ],
    [
      "an action the contract lacks",
      { routes: [{ method: "GET", path: "/v1/x", contract: notesV2, action: "create" }] },
      /has no action "create"/,
    ],
    [
      "a reserved path",
      { routes: [route({ method: "GET", path: "/healthz", contract: notesV2, action: "get" })] },
      /served by the gateway itself/,
    ],
    [
      "a malformed path",
      { routes: [route({ method: "GET", path: "/v1/a b", contract: notesV2, action: "get" })] },
      /path segment/,
    ],
    [
      "an unknown method",
      { routes: [{ method: "TRACE", path: "/v1/x", contract: notesV2, action: "get" }] },
      /method must be one of/,
    ],
    ["a bad body limit", { routes: routes(), bodyLimitBytes: 0 }, /bodyLimitBytes/],
    ["a fractional body limit", { routes: routes(), bodyLimitBytes: 10.5 }, /bodyLimitBytes/],
    ["a bad rate limit", { routes: routes(), rateLimit: { perSecond: -1 } }, /perSecond/],
    ["no routes", { routes: [] }, /non-empty/],
    [
      "an authenticator without verify or introspect",
      { routes: routes(), authenticate: {} },
      /verify\(token\)/,
    ],
  ])("refuses %s", (_name, extra, message) => {
    expect(() => createGateway({ ...base(), ...(extra as object) } as never)).toThrow(message);
  });
});

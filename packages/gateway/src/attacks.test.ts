import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { manualClock } from "@strata/core";
import { createJwtVerifier } from "@strata/security";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, route, type Gateway } from "./index.js";
import {
  AUDIENCE,
  ISSUER,
  notesV1,
  startCluster,
  startIssuer,
  unsignedToken,
  type Cluster,
  type Issuer,
} from "./test-support/fixtures.js";

let issuer: Issuer;
let cluster: Cluster;
let gateway: Gateway;
let url: string;
let alice: string;

const BODY_LIMIT = 1024;

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
    routes: [
      route({ method: "GET", path: "/v1/notes/:noteId", contract: notesV1, action: "get" }),
      route({ method: "PUT", path: "/v1/notes/:noteId", contract: notesV1, action: "create" }),
      route({
        method: "GET",
        path: "/v1/public/:noteId",
        contract: notesV1,
        action: "get",
        auth: "optional",
      }),
      route({
        method: "POST",
        path: "/v1/public",
        contract: notesV1,
        action: "create",
        auth: "optional",
      }),
    ],
    rateLimit: false,
    bodyLimitBytes: BODY_LIMIT,
  });
  url = await gateway.listen();
  alice = await issuer.token("alice");
});

afterAll(async () => {
  await gateway?.close();
  await cluster?.[Symbol.asyncDispose]();
  await issuer?.[Symbol.asyncDispose]();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("bad tokens are refused with 401 and never reach a handler", () => {
  it.each([
    ["alg: none", () => Promise.resolve(unsignedToken("root")), "algorithm-not-allowed"],
    ["expired", () => issuer.token("alice", {}, { expiresInSec: -3_600 }), "expired"],
    ["wrong audience", () => issuer.token("alice", {}, { aud: "another-api" }), "wrong-audience"],
    ["signed by an unpublished key", () => issuer.forged("mallory"), "bad-signature"],
    ["not a JWT", () => Promise.resolve("not.a-jwt"), "malformed"],
  ])("%s", async (_name, make, reason) => {
    const before = cluster.runs.get;
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: bearer(await make()),
    });
    expect(response.statusCode).toBe(401);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(response.headers["www-authenticate"]).toBe(
      'Bearer realm="strata", error="invalid_token"',
    );
    expect(response.json()).toMatchObject({
      type: "https://strata.dev/errors/unauthenticated",
      status: 401,
      code: "UNAUTHENTICATED",
      reason,
    });
    expect(cluster.runs.get).toBe(before);
  });

  it("refuses a bad token even on a route open to anonymous callers", async () => {
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/public/n-1",
      headers: bearer(unsignedToken("root")),
    });
    expect(response.statusCode).toBe(401);
  });

  it("refuses other schemes and a missing token", async () => {
    for (const authorization of ["Basic YWxpY2U6cHc=", "Bearer", "Bearer a b", `Token ${alice}`]) {
      const response = await gateway.app.inject({
        method: "GET",
        url: "/v1/notes/n-1",
        headers: { authorization },
      });
      expect(response.statusCode, authorization).toBe(401);
      expect(response.json().reason).toBe("malformed");
    }
    const none = await gateway.app.inject({ method: "GET", url: "/v1/notes/n-1" });
    expect(none.statusCode).toBe(401);
    expect(none.json().reason).toBe("missing");
  });
});

describe("identity comes only from the verified token", () => {
  const forgedHeaders = {
    "x-strata-principal": JSON.stringify({ kind: "user", subject: "root", claims: {} }),
    "x-user": "root",
    "x-forwarded-user": "root",
    "x-remote-user": "root",
    "x-auth-request-user": "root",
    "x-strata-meta-role": "admin",
    "x-meta-role": "admin",
    meta: JSON.stringify({ role: "admin" }),
  };

  it("ignores forged identity headers without a token (401) and with one (the token's user)", async () => {
    const refused = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: forgedHeaders,
    });
    expect(refused.statusCode).toBe(401);
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: { ...forgedHeaders, ...bearer(alice) },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().seen).toEqual({
      principal: "user:alice",
      meta: { requestId: response.headers["x-request-id"] },
      traceId: null,
    });
  });

  it("passes anonymous callers on as anonymous, whatever they claim", async () => {
    const response = await gateway.app.inject({
      method: "GET",
      url: "/v1/public/n-1",
      headers: forgedHeaders,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().seen.principal).toBeNull();
    expect(Object.keys(response.json().seen.meta as object)).toEqual(["requestId"]);
  });

  it("never takes a principal (or meta) from the JSON body", async () => {
    const before = cluster.runs.principals.length;
    const response = await gateway.app.inject({
      method: "POST",
      url: "/v1/public",
      headers: { ...forgedHeaders, "content-type": "application/json" },
      payload: {
        noteId: "n-1",
        text: "hi",
        principal: { kind: "user", subject: "root", claims: { roles: ["admin"] } },
        meta: { role: "admin" },
      },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().seen.principal).toBeNull();
    expect(cluster.runs.principals.slice(before)).toEqual([undefined]);
    const withToken = await gateway.app.inject({
      method: "PUT",
      url: "/v1/notes/n-1",
      headers: { ...bearer(alice), "content-type": "application/json" },
      payload: { text: "hi", principal: { kind: "user", subject: "root", claims: {} } },
    });
    expect(withToken.json().seen.principal).toBe("user:alice");
  });
});

describe("bodies", () => {
  const put = (payload: string, contentType?: string) =>
    gateway.app.inject({
      method: "PUT",
      url: "/v1/notes/n-1",
      headers: {
        ...bearer(alice),
        ...(contentType === undefined ? {} : { "content-type": contentType }),
      },
      payload,
    });

  it("refuses a body over the limit with 413 before any handler runs", async () => {
    const before = cluster.runs.create;
    const response = await put(
      JSON.stringify({ text: "x".repeat(BODY_LIMIT * 4) }),
      "application/json",
    );
    expect(response.statusCode).toBe(413);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({
      type: "https://strata.dev/errors/payload-too-large",
      code: "RESOURCE_EXHAUSTED",
      status: 413,
    });
    expect(cluster.runs.create).toBe(before);
  });

  it("refuses an oversized chunked body (no content-length) with 413", async () => {
    const before = cluster.runs.create;
    const { status, body } = await new Promise<{ status: number; body: string }>(
      (resolve, reject) => {
        const req = httpRequest(
          `${url}/v1/notes/n-1`,
          {
            method: "PUT",
            headers: { ...bearer(alice), "content-type": "application/json" },
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (text += chunk));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on("error", reject);
        req.write('{"text":"');
        for (let i = 0; i < 8; i++) req.write("y".repeat(512));
        req.end('"}');
      },
    );
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ code: "RESOURCE_EXHAUSTED", status: 413 });
    expect(cluster.runs.create).toBe(before);
  });

  it.each([
    ["truncated JSON", '{"text": "hi"'],
    ["not JSON at all", "text=hi"],
    ["prototype poisoning", '{"text":"hi","__proto__":{"admin":true}}'],
    ["constructor poisoning", '{"text":"hi","constructor":{"prototype":{"admin":true}}}'],
    ["an empty body", ""],
  ])("answers %s with 400 problem+json", async (_name, payload) => {
    const response = await put(payload, "application/json");
    expect(response.statusCode).toBe(400);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({ code: "INVALID_ARGUMENT", status: 400 });
    expect(response.body).not.toContain("admin");
  });

  it("answers a body that is not a JSON object with 400 when the path has parameters", async () => {
    const response = await put('["text"]', "application/json");
    expect(response.statusCode).toBe(400);
    expect(response.json().detail).toBe("the request body must be a JSON object");
  });

  it.each([
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
  ])("answers content-type %s with 415", async (contentType) => {
    const before = cluster.runs.create;
    const response = await put('{"text":"hi"}', contentType);
    expect(response.statusCode).toBe(415);
    expect(response.json()).toMatchObject({
      type: "https://strata.dev/errors/unsupported-media-type",
      code: "INVALID_ARGUMENT",
      status: 415,
    });
    expect(cluster.runs.create).toBe(before);
  });
});

describe("headers the gateway echoes or forwards", () => {
  it("echoes a plain client request id and replaces anything else", async () => {
    const plain = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: { ...bearer(alice), "x-request-id": "req-42.a_b" },
    });
    expect(plain.headers["x-request-id"]).toBe("req-42.a_b");
    expect(plain.json().seen.meta.requestId).toBe("req-42.a_b");
    for (const hostile of [
      "a b",
      "<script>",
      "x".repeat(65),
      "id;set-cookie=1",
      "\u00e9t\u00e9",
      "a%0d%0aset-cookie:x=1",
    ]) {
      const response = await gateway.app.inject({
        method: "GET",
        url: "/v1/notes/n-1",
        headers: { ...bearer(alice), "x-request-id": hostile },
      });
      const id = response.headers["x-request-id"];
      expect(id, hostile).toMatch(/^[0-9a-f-]{36}$/);
      expect(response.json().instance ?? response.json().seen.meta.requestId).toBe(id);
    }
  });

  it("never reflects CR/LF or non-ASCII bytes sent on the wire", async () => {
    const port = new URL(url).port;
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write(
          Buffer.concat([
            Buffer.from(
              `GET /v1/notes/n-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\nx-request-id: abc`,
            ),
            Buffer.from([0xc3, 0xa9, 0x0d]), // "é" and a lone CR inside the value
            Buffer.from("Set-Cookie: pwned=1\r\ntraceparent: 00-zz\r\n\r\n"),
          ]),
        );
      });
      let text = "";
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => (text += chunk));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    // Node's parser refuses the bare CR outright; either way nothing of the value comes back.
    expect(raw).toMatch(/^HTTP\/1\.1 (400|200)/);
    expect(raw.toLowerCase()).not.toContain("set-cookie");
    expect(raw).not.toContain("abc\u00c3");
    const latin = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write(
          Buffer.concat([
            Buffer.from(
              `GET /v1/notes/n-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\nx-request-id: abc`,
            ),
            Buffer.from([0xc3, 0xa9]),
            Buffer.from("\r\ntraceparent: 00-\u00e9\r\n\r\n"),
          ]),
        );
      });
      let text = "";
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => (text += chunk));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(latin).toMatch(/^HTTP\/1\.1 200/);
    const echoed = /\r\nx-request-id: ([^\r\n]*)\r\n/i.exec(latin)?.[1];
    expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    expect(latin).toContain('"traceId":null');
  });

  it("passes a valid traceparent on and ignores malformed ones", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const valid = await gateway.app.inject({
      method: "GET",
      url: "/v1/notes/n-1",
      headers: {
        ...bearer(alice),
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
        tracestate: "vendor=abc",
      },
    });
    expect(valid.statusCode).toBe(200);
    expect(valid.json().seen.traceId).toBe(traceId);
    for (const traceparent of [
      "00-zz-00f067aa0ba902b7-01",
      `00-${traceId.toUpperCase()}-00f067aa0ba902b7-01`,
      `00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
      `00-${traceId}-00f067aa0ba902b7-01 ; x`,
      `ff-${traceId}-00f067aa0ba902b7-01`,
    ]) {
      const response = await gateway.app.inject({
        method: "GET",
        url: "/v1/notes/n-1",
        headers: { ...bearer(alice), traceparent },
      });
      expect(response.statusCode, traceparent).toBe(200);
      expect(response.json().seen.traceId, traceparent).toBeNull();
      expect(JSON.stringify(response.headers)).not.toContain(traceparent);
    }
  });
});

describe("rate limits", () => {
  it("answers 429 with Retry-After per client, and refills with time", async () => {
    const clock = manualClock();
    await using limited = createGateway({
      node: cluster.edge,
      authenticate: createJwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUrl: issuer.jwksUrl,
      }),
      routes: [
        route({ method: "GET", path: "/v1/notes/:noteId", contract: notesV1, action: "get" }),
      ],
      rateLimit: { perSecond: 1, burst: 2 },
      clock,
    });
    const bob = await issuer.token("bob");
    const get = (token?: string) =>
      limited.app.inject({
        method: "GET",
        url: "/v1/notes/n-1",
        headers: token === undefined ? {} : bearer(token),
      });
    expect((await get(alice)).statusCode).toBe(200);
    expect((await get(alice)).statusCode).toBe(200);
    const before = cluster.runs.get;
    const refused = await get(alice);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(refused.json()).toMatchObject({ code: "RESOURCE_EXHAUSTED", status: 429 });
    expect(cluster.runs.get).toBe(before);
    // Another client has its own bucket.
    expect((await get(bob)).statusCode).toBe(200);
    clock.advance(1_000);
    expect((await get(alice)).statusCode).toBe(200);
    // Failed authentications spend the client address's bucket: guessing is limited too.
    expect((await get()).statusCode).toBe(401);
    expect((await get()).statusCode).toBe(401);
    const guessing = await get();
    expect(guessing.statusCode).toBe(429);
    expect(guessing.headers["retry-after"]).toBe("1");
  });
});

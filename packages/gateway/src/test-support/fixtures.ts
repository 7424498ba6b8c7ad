import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  StrataError,
  createEmbeddedNetwork,
  createNode,
  defineService,
  type Authorizer,
  type CallContext,
  type Principal,
  type StrataNode,
} from "@strata/core";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from "jose";
import { z } from "zod";

export const ISSUER = "https://issuer.test";
export const AUDIENCE = "strata-gateway";

/** A local identity provider: an ES256 key, its JWKS on loopback (which can be taken down). */
export interface Issuer extends AsyncDisposable {
  readonly url: string;
  readonly jwksUrl: string;
  /** False makes the JWKS endpoint answer 503. */
  up: boolean;
  token(
    sub: string,
    claims?: Record<string, unknown>,
    options?: { readonly expiresInSec?: number; readonly aud?: string; readonly kid?: string },
  ): Promise<string>;
  /** A token signed by a key the issuer does not publish, under a published key id. */
  forged(sub: string): Promise<string>;
}

export async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const rogue = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const state = { up: true };
  const http = await serve((_req, res) => {
    if (!state.up) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
  });
  const sign = (
    key: CryptoKey,
    sub: string,
    claims: Record<string, unknown>,
    options: { expiresInSec?: number; aud?: string; kid?: string },
  ): Promise<string> =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: options.kid ?? "k1" })
      .setIssuer(ISSUER)
      .setAudience(options.aud ?? AUDIENCE)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSec ?? 300))
      .sign(key);
  return {
    url: http.url,
    jwksUrl: `${http.url}/jwks`,
    get up() {
      return state.up;
    },
    set up(value: boolean) {
      state.up = value;
    },
    token: (sub, claims = {}, options = {}) => sign(privateKey, sub, claims, options),
    forged: (sub) => sign(rogue.privateKey, sub, {}, {}),
    [Symbol.asyncDispose]: () => http.close(),
  };
}

/** An unsigned token (`alg: none`) claiming to be `sub`. */
export function unsignedToken(sub: string): string {
  const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${b64({ alg: "none", typ: "JWT" })}.${b64({ iss: ISSUER, aud: AUDIENCE, sub, exp: now + 300 })}.`;
}

const NoteId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

/** What the v1 handlers report about the call they served. */
const Seen = z.object({
  principal: z.string().nullable(),
  meta: z.record(z.string(), z.string()),
  traceId: z.string().nullable(),
});

export const notesV1 = defineService({
  name: "notes",
  version: "1.4.0",
  actions: {
    get: {
      input: z.object({ noteId: NoteId, verbose: z.enum(["yes", "no"]).optional() }),
      output: z.object({ noteId: z.string(), text: z.string(), seen: Seen }),
      idempotent: true,
    },
    create: {
      input: z.object({ noteId: NoteId, text: z.string().max(100_000) }),
      output: z.object({ noteId: z.string(), text: z.string(), seen: Seen }),
    },
    remove: {
      input: z.object({ noteId: NoteId }),
      output: z.void(),
    },
    fail: {
      input: z.object({
        kind: z.enum(["internal", "throw", "not-found", "unavailable", "busy", "bad-input"]),
      }),
      output: z.object({}),
    },
  },
});

export const notesV2 = defineService({
  name: "notes",
  version: "2.0.0",
  actions: {
    get: {
      input: z.object({ id: NoteId }),
      output: z.object({ id: z.string(), body: z.string(), format: z.literal("v2") }),
      idempotent: true,
    },
  },
});

/** Handler runs, by action, so tests can assert a refused request never reached a handler. */
export interface Runs {
  get: number;
  create: number;
  v2: number;
  principals: Array<Principal | undefined>;
}

function seen(context: CallContext): z.infer<typeof Seen> {
  const p = context.principal;
  return {
    principal:
      p === undefined ? null : p.kind === "user" ? `user:${p.subject}` : `${p.kind}:${p.id}`,
    meta: { ...context.meta },
    traceId: context.trace?.traceparent.split("-")[1] ?? null,
  };
}

export interface Cluster extends AsyncDisposable {
  /** The node the gateway calls from (serves nothing itself). */
  readonly edge: StrataNode;
  readonly v1: StrataNode;
  readonly v2: StrataNode;
  readonly runs: Runs;
}

/** Three embedded nodes: the gateway's, one serving notes 1.x, one serving notes 2.x. */
export async function startCluster(
  options: { readonly authorizer?: Authorizer } = {},
): Promise<Cluster> {
  const network = createEmbeddedNetwork();
  const runs: Runs = { get: 0, create: 0, v2: 0, principals: [] };
  const v1 = createNode({
    id: "notes-v1",
    transport: network.transport(),
    heartbeatIntervalMs: 100,
    ...(options.authorizer === undefined ? {} : { authorizer: options.authorizer }),
    services: [
      notesV1.implement({
        get: ({ noteId }, context) => {
          runs.get++;
          runs.principals.push(context.principal);
          return { noteId, text: `note ${noteId}`, seen: seen(context) };
        },
        create: ({ noteId, text }, context) => {
          runs.create++;
          runs.principals.push(context.principal);
          return { noteId, text, seen: seen(context) };
        },
        remove: () => undefined,
        fail: ({ kind }) => {
          switch (kind) {
            case "internal":
              throw new StrataError("INTERNAL", "db password=hunter2 at /srv/app/db.ts:42");
            case "throw":
              throw new TypeError("Cannot read properties of undefined (reading 'secretField')");
            case "not-found":
              throw new StrataError("NOT_FOUND", "note n-9 not found");
            case "unavailable":
              throw new StrataError("UNAVAILABLE", "replica db-7.internal:5432 refused");
            case "busy":
              throw new StrataError("RESOURCE_EXHAUSTED", "queue full", {
                details: { retryAfterMs: 2_500 },
              });
            case "bad-input":
              throw new StrataError("INVALID_ARGUMENT", "text is too rude", {
                details: { issues: [{ path: "text", message: "too rude" }] },
              });
          }
        },
      }),
    ],
  });
  const v2 = createNode({
    id: "notes-v2",
    transport: network.transport(),
    heartbeatIntervalMs: 100,
    services: [
      notesV2.implement({
        get: ({ id }) => {
          runs.v2++;
          return { id, body: `note ${id}`, format: "v2" as const };
        },
      }),
    ],
  });
  const edge = createNode({
    id: "edge",
    transport: network.transport(),
    heartbeatIntervalMs: 100,
  });
  await Promise.all([v1.start(), v2.start(), edge.start()]);
  await edge.waitForService("notes", { range: "^1.0.0", timeoutMs: 5_000 });
  await edge.waitForService("notes", { range: "^2.0.0", timeoutMs: 5_000 });
  return {
    edge,
    v1,
    v2,
    runs,
    [Symbol.asyncDispose]: async () => {
      await Promise.all([edge.stop(), v1.stop(), v2.stop()]);
    },
  };
}

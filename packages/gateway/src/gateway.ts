import type { AddressInfo } from "node:net";
import {
  RateLimiter,
  StrataError,
  isStrataError,
  silentLogger,
  systemClock,
  toStrataError,
  validate,
  type AuthorizationDecision,
  type Authorizer,
  type Clock,
  type ErrorCode,
  type Logger,
  type RateLimitOptions,
  type StrataNode,
  type UntypedCallOptions,
} from "@strata/core";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import semver from "semver";
import { authenticatorOf, type Authenticator, type UserPrincipal } from "./auth.js";
import { SECURITY_HEADERS, credentialsOf, requestIdOf, traceOf } from "./headers.js";
import { buildOpenApi, type OpenApiDocument } from "./openapi.js";
import {
  PROBLEM_CONTENT_TYPE,
  gatewayProblem,
  problemFromError,
  type GatewayProblem,
  type Problem,
} from "./problem.js";
import {
  checkRate,
  defaultInput,
  resolveRoutes,
  type GatewayRoute,
  type ResolvedRoute,
  type RouteRequest,
} from "./routes.js";

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** The node calls are made from (it need not serve anything itself). */
  readonly node: StrataNode;
  readonly routes: readonly GatewayRoute[];
  /** Verifies bearer tokens: a JWT verifier or an introspector from `@strata/security`. */
  readonly authenticate: Authenticator;
  /**
   * Asked at the edge, before the call, with the validated input: a denial fails fast with 403.
   * The callee's node still authorizes with its own policies.
   */
  readonly authorizer?: Authorizer;
  /**
   * Per-client token bucket (client = the token's subject, else the client's IP); `false` for
   * none. Default 100 requests a second with bursts of 200.
   */
  readonly rateLimit?: RateLimitOptions | false;
  /** Largest request body (bytes); default 64 KiB, at most 64 MiB. */
  readonly bodyLimitBytes?: number;
  /** Time budget of each call (ms); default 10 000. */
  readonly timeoutMs?: number;
  /** Longest time to receive a whole request (ms), against slow senders; default 30 000. */
  readonly requestTimeoutMs?: number;
  /**
   * Trust `X-Forwarded-For` from these proxies for the client IP (fastify's `trustProxy`);
   * default false: the IP is the socket's peer.
   */
  readonly trustProxy?: boolean | string | readonly string[];
  readonly logger?: Logger;
  /** Time for the rate limiter; default the system clock. */
  readonly clock?: Clock;
  /** The OpenAPI document's `info.title`; default "Strata API". */
  readonly title?: string;
  /** The OpenAPI document's `info.version` (the API's, not a service's); default "1.0.0". */
  readonly version?: string;
  readonly description?: string;
}

/** Counters of what the gateway answered. */
export interface GatewayStats {
  readonly requests: number;
  /** Answers by HTTP status. */
  readonly byStatus: Readonly<Record<string, number>>;
  /** Problem answers by Strata error code. */
  readonly byCode: Readonly<Partial<Record<ErrorCode, number>>>;
}

/** A running gateway. Dispose it (or `close()`) to stop taking requests. */
export interface Gateway extends AsyncDisposable {
  /** The fastify instance: `app.inject()` for tests, hooks for extensions. */
  readonly app: FastifyInstance;
  /** Starts listening (default 127.0.0.1 on a free port); resolves to the base URL. */
  listen(options?: { readonly host?: string; readonly port?: number }): Promise<string>;
  /** The OpenAPI 3.1 document served at `/openapi.json`. */
  openapi(): OpenApiDocument;
  stats(): GatewayStats;
  /** Stops taking requests, finishes those in flight, closes the server. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_RATE: RateLimitOptions = { perSecond: 100, burst: 200 };
const MAX_BODY = 64 * 1024 * 1024;
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `gateway: ${message}`);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw invalid(`${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

/** What a handler needs to know after authentication. */
interface Caller {
  readonly principal: UserPrincipal | undefined;
  /** Rate-limit key. */
  readonly key: string;
}

/**
 * An HTTP API gateway on fastify: each route calls one service action through `node`, with the
 * verified token's user as the call's principal. Every error is an RFC 9457 problem carrying the
 * Strata error code; no stack or internal message ever reaches a client.
 *
 * @example
 * const gateway = createGateway({
 *   node,
 *   authenticate: createJwtVerifier({ issuer, audience, jwksUrl }),
 *   routes: [route({ method: "GET", path: "/v1/records/:recordId", contract: records, action: "get" })],
 * });
 * const url = await gateway.listen({ port: 8080 });
 */
export function createGateway(options: GatewayOptions): Gateway {
  if (typeof options !== "object" || options === null) throw invalid("options are required");
  const node = options.node;
  if (typeof node !== "object" || node === null || typeof node.call !== "function") {
    throw invalid("node must be a Strata node");
  }
  const authenticate = authenticatorOf(options.authenticate);
  const authorizer = options.authorizer;
  if (authorizer !== undefined && typeof authorizer.authorize !== "function") {
    throw invalid("authorizer must have authorize(request)");
  }
  const bodyLimit = options.bodyLimitBytes ?? 64 * 1024;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1 || bodyLimit > MAX_BODY) {
    throw invalid(`bodyLimitBytes must be an integer from 1 to ${MAX_BODY}`);
  }
  const timeoutMs = positive("timeoutMs", options.timeoutMs, 10_000);
  const requestTimeoutMs = positive("requestTimeoutMs", options.requestTimeoutMs, 30_000);
  const logger = (options.logger ?? silentLogger).child({ component: "gateway" });
  const clock = options.clock ?? systemClock();
  const routes = resolveRoutes(options.routes, timeoutMs);
  const rate = options.rateLimit ?? DEFAULT_RATE;
  if (rate !== false) checkRate(rate, "rateLimit");
  const limiter = rate === false ? undefined : new RateLimiter(clock, rate);
  const document = buildOpenApi(routes, {
    title: options.title ?? "Strata API",
    version: options.version ?? "1.0.0",
    ...(options.description === undefined ? {} : { description: options.description }),
  });

  let requests = 0;
  const byStatus: Record<string, number> = {};
  const byCode: Partial<Record<ErrorCode, number>> = {};
  let closing = false;
  let closed: Promise<void> | undefined;

  const sendProblem = (
    reply: FastifyReply,
    problem: Problem,
    headers: Readonly<Record<string, string>> = {},
  ): FastifyReply => {
    byCode[problem.code] = (byCode[problem.code] ?? 0) + 1;
    return reply
      .code(problem.status)
      .headers(headers)
      .header("content-type", PROBLEM_CONTENT_TYPE)
      .send(JSON.stringify(problem));
  };
  const sendGatewayProblem = (
    request: FastifyRequest,
    reply: FastifyReply,
    kind: GatewayProblem,
    detail: string,
    headers?: Readonly<Record<string, string>>,
  ): FastifyReply =>
    sendProblem(reply, gatewayProblem(kind, { instance: request.id, detail }), headers);
  const retryAfter = (ms: number): Record<string, string> => ({
    "retry-after": String(Math.max(1, Math.ceil(ms / 1000))),
  });

  const app = Fastify({
    logger: false,
    bodyLimit,
    requestTimeout: requestTimeoutMs,
    // The id is chosen here, never taken from fastify's header option: a client's id is kept
    // only when it is plain enough to echo.
    requestIdHeader: false,
    genReqId: (raw) => requestIdOf(raw.headers),
    ...(options.trustProxy === undefined
      ? {}
      : {
          trustProxy:
            typeof options.trustProxy === "object" ? [...options.trustProxy] : options.trustProxy,
        }),
    // fastify's own answer while closing is not a problem document; this gateway answers it.
    return503OnClosing: false,
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    // Bad URLs and over-long parameters: fastify's default answers echo the path.
    frameworkErrors: (error, request, reply) => {
      void sendGatewayProblem(
        request,
        reply,
        "bad-request",
        error.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? "a path parameter is too long"
          : "the request URL is malformed",
      );
    },
  });
  // Only JSON bodies: a text/plain body (which fastify parses by default) is a 415.
  app.removeContentTypeParser("text/plain");

  app.addHook("onRequest", (request, reply, done) => {
    requests++;
    void reply.header("x-request-id", request.id);
    if (closing) {
      void sendProblem(
        reply,
        problemFromError(
          new StrataError("UNAVAILABLE", "the gateway is shutting down"),
          request.id,
        ),
        { connection: "close" },
      );
      return;
    }
    done();
  });
  app.addHook("onSend", (_request, reply, payload, done) => {
    void reply.headers(SECURITY_HEADERS);
    reply.removeHeader("x-powered-by");
    reply.removeHeader("server");
    done(null, payload);
  });
  app.addHook("onResponse", (_request, reply, done) => {
    const status = String(reply.statusCode);
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    done();
  });

  app.setErrorHandler((error: unknown, request, reply) => {
    if (isStrataError(error)) return answerError(error, request, reply);
    const fastifyCode =
      typeof error === "object" && error !== null && "code" in error
        ? (error as { code?: unknown }).code
        : undefined;
    switch (fastifyCode) {
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return sendGatewayProblem(
          request,
          reply,
          "payload-too-large",
          `the request body is larger than ${bodyLimit} bytes`,
        );
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return sendGatewayProblem(
          request,
          reply,
          "unsupported-media-type",
          "the request body must be application/json",
        );
      case "FST_ERR_CTP_INVALID_JSON_BODY":
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
        return sendGatewayProblem(
          request,
          reply,
          "malformed-body",
          "the request body is not valid JSON",
        );
      case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
        return sendGatewayProblem(
          request,
          reply,
          "bad-request",
          "the content-length does not match the body",
        );
      default:
        break;
    }
    const status =
      typeof error === "object" && error !== null && "statusCode" in error
        ? (error as { statusCode?: unknown }).statusCode
        : undefined;
    if (typeof status === "number" && status >= 400 && status < 500) {
      // Any other client error fastify (or Node) raises: its message may quote the request.
      return sendGatewayProblem(request, reply, "bad-request", "the request is malformed");
    }
    return answerError(toStrataError(error, "gateway"), request, reply);
  });

  const answerError = (
    error: StrataError,
    request: FastifyRequest,
    reply: FastifyReply,
  ): FastifyReply => {
    const problem = problemFromError(error, request.id);
    if (problem.status >= 500) {
      logger.error(
        {
          requestId: request.id,
          code: error.code,
          err: error.message,
          cause: error.cause instanceof Error ? error.cause.message : undefined,
        },
        "request failed",
      );
    }
    const headers: Record<string, string> = {};
    if (error.code === "UNAUTHENTICATED") {
      headers["www-authenticate"] =
        problem.reason === "missing"
          ? 'Bearer realm="strata"'
          : 'Bearer realm="strata", error="invalid_token"';
    }
    if (error.code === "RESOURCE_EXHAUSTED") {
      const after = error.details["retryAfterMs"];
      Object.assign(headers, retryAfter(typeof after === "number" ? after : 1_000));
    }
    return sendProblem(reply, problem, headers);
  };

  app.setNotFoundHandler((request, reply) =>
    sendGatewayProblem(request, reply, "route-not-found", "no route matches this path"),
  );

  // ---- authentication and limits -----------------------------------------------------------

  const clientKey = (request: FastifyRequest): string => `ip:${request.ip}`;

  const authenticateRequest = async (
    r: ResolvedRoute,
    request: FastifyRequest,
  ): Promise<Caller> => {
    const credentials = credentialsOf(request.headers);
    if (credentials.type === "none") {
      if (r.auth === "optional") return { principal: undefined, key: clientKey(request) };
      throw new StrataError("UNAUTHENTICATED", "a bearer token is required", {
        details: { reason: "missing" },
      });
    }
    if (credentials.type === "malformed") {
      throw new StrataError(
        "UNAUTHENTICATED",
        "the Authorization header is not a bearer token (Authorization: Bearer <token>)",
        { details: { reason: "malformed" } },
      );
    }
    const principal = await authenticate(credentials.token);
    return { principal, key: `user:${principal.subject}` };
  };

  const limiters = new Map<ResolvedRoute, RateLimiter | undefined>();
  for (const r of routes) {
    limiters.set(
      r,
      r.rateLimit === undefined
        ? limiter
        : r.rateLimit === false
          ? undefined
          : new RateLimiter(clock, r.rateLimit),
    );
  }

  const limit = (bucket: RateLimiter | undefined, key: string): void => {
    if (bucket === undefined || bucket.tryTake(key)) return;
    throw new StrataError("RESOURCE_EXHAUSTED", "rate limit exceeded", {
      details: { reason: "rate-limit", retryAfterMs: bucket.retryAfterMs(key) },
    });
  };

  const authorize = async (
    r: ResolvedRoute,
    principal: UserPrincipal | undefined,
    input: unknown,
    requestId: string,
  ): Promise<void> => {
    if (authorizer === undefined) return;
    const action = r.contract.actions[r.action];
    // The authorizer sees the input as the callee will (validated and parsed): policies read
    // resource ids from its fields.
    const parsed: unknown =
      action === undefined
        ? input
        : await validate(action.input, input, `${r.contract.name}.${r.action} input`);
    let decision: AuthorizationDecision | undefined;
    try {
      decision = await authorizer.authorize({
        principal,
        service: r.contract.name,
        action: r.action,
        input: parsed,
        callerNode: node.id,
      });
    } catch (error) {
      decision = {
        allowed: false,
        reason: `authorizer failed: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
    if (typeof decision !== "object" || decision === null || decision.allowed !== true) {
      const reason =
        typeof decision === "object" && decision !== null && decision.allowed === false
          ? decision.reason
          : "authorizer gave no decision";
      logger.warn(
        {
          requestId,
          principal: principal === undefined ? "anonymous" : `user:${principal.subject}`,
          action: `${r.contract.name}.${r.action}`,
          reason: String(reason).slice(0, 500),
        },
        "request denied at the edge",
      );
      throw new StrataError(
        "PERMISSION_DENIED",
        `${r.contract.name}.${r.action}: permission denied`,
        { details: { reason: "policy" } },
      );
    }
  };

  // ---- routes ------------------------------------------------------------------------------

  const handle = async (
    r: ResolvedRoute,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply> => {
    const bucket = limiters.get(r);
    let caller: Caller;
    try {
      caller = await authenticateRequest(r, request);
    } catch (error) {
      // Failed authentications spend the client address's tokens, so guessing is rate limited
      // like any other traffic.
      if (isStrataError(error, "UNAUTHENTICATED")) limit(bucket, clientKey(request));
      throw error;
    }
    limit(bucket, caller.key);
    const routeRequest: RouteRequest = {
      params: (request.params ?? {}) as Record<string, string>,
      query: (request.query ?? {}) as Record<string, string | string[]>,
      body: request.body,
    };
    const input = r.input === undefined ? defaultInput(r, routeRequest) : r.input(routeRequest);
    await authorize(r, caller.principal, input, request.id);
    const controller = new AbortController();
    // The client hanging up cancels the call (and the callee's work with it).
    const onClose = (): void => {
      if (!reply.raw.writableEnded) controller.abort();
    };
    reply.raw.once("close", onClose);
    const trace = traceOf(request.headers);
    const callOptions: UntypedCallOptions = {
      version: r.range,
      timeoutMs: r.timeoutMs ?? timeoutMs,
      signal: controller.signal,
      meta: { requestId: request.id },
      ...(caller.principal === undefined ? {} : { principal: caller.principal }),
      ...(trace === undefined ? {} : { trace }),
    };
    let output: unknown;
    try {
      output = await node.call(r.contract.name, r.action, input, callOptions);
    } finally {
      reply.raw.off("close", onClose);
    }
    if (output === undefined) return reply.code(204).send();
    return reply.code(r.successStatus ?? 200).send(output);
  };

  const byPath = new Map<string, { path: string; methods: Set<string> }>();
  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.path,
      handler: (request, reply) => handle(r, request, reply),
    });
    const shape = r.path.replace(/:[^/]+/g, ":");
    let entry = byPath.get(shape);
    if (entry === undefined) byPath.set(shape, (entry = { path: r.path, methods: new Set() }));
    entry.methods.add(r.method);
    if (r.method === "GET") entry.methods.add("HEAD");
  }
  // A known path with another method is a 405 naming the allowed ones, not a 404.
  for (const { path, methods } of byPath.values()) {
    const others = METHODS.filter((m) => !methods.has(m));
    if (others.length === 0) continue;
    const allow = [...methods].sort().join(", ");
    app.route({
      method: others,
      url: path,
      handler: (request, reply) =>
        sendGatewayProblem(request, reply, "method-not-allowed", `this path takes ${allow}`, {
          allow,
        }),
    });
  }

  // ---- the gateway's own endpoints ---------------------------------------------------------

  app.get("/openapi.json", (_request, reply) => reply.send(document));
  app.get("/healthz", (_request, reply) => reply.send({ status: "ok" }));
  const targets = [...new Map(routes.map((r) => [`${r.contract.name}@${r.range}`, r])).values()];
  app.get("/readyz", (request, reply) => {
    const services: Record<string, number> = {};
    const missing: string[] = [];
    const running = node.state === "running";
    const ready = running ? node.nodes().filter((n) => n.status === "ready") : [];
    for (const r of targets) {
      const name = `${r.contract.name}@${r.range}`;
      const count = ready.filter((n) =>
        n.services.some(
          (s) =>
            s.name === r.contract.name &&
            semver.satisfies(s.version, r.range, { includePrerelease: true }),
        ),
      ).length;
      services[name] = count;
      if (count === 0) missing.push(name);
    }
    if (!running || missing.length > 0) {
      // Orchestrators read the counts to see which service is missing.
      const problem = problemFromError(new StrataError("UNAVAILABLE", "not ready"), request.id);
      return sendProblem(reply, {
        ...problem,
        detail: running ? "a routed service has no ready instance" : "the node is not running",
        services,
      } as Problem);
    }
    return reply.send({ status: "ready", services });
  });

  const close = (): Promise<void> => {
    closing = true;
    closed ??= app.close();
    return closed;
  };

  return {
    app,
    async listen(listenOptions = {}) {
      const host = listenOptions.host ?? "127.0.0.1";
      await app.listen({ host, port: listenOptions.port ?? 0 });
      const address = app.server.address() as AddressInfo;
      const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
      return `http://${shown}:${address.port}`;
    },
    openapi: () => structuredClone(document),
    stats: () => ({ requests, byStatus: { ...byStatus }, byCode: { ...byCode } }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

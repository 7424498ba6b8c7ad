import { createHash } from "node:crypto";
import { StrataError, systemClock, type Clock } from "@strata/core";
import { checkEndpoint, type UserPrincipal } from "./principal.js";

/** Options of {@link createIntrospector}. */
export interface IntrospectorOptions {
  /** The authorization server's RFC 7662 introspection endpoint. */
  readonly url: string;
  /** This resource server's credentials (HTTP Basic). */
  readonly clientId: string;
  readonly clientSecret: string;
  /** Longest wait for an answer (ms); default 2 000. Past it the request fails closed. */
  readonly timeoutMs?: number;
  /** Longest an active answer is reused (ms), never past the token's `exp`; default 60 000. */
  readonly maxCacheMs?: number;
  /** How long an inactive answer is reused (ms); default 30 000. */
  readonly negativeCacheMs?: number;
  /** Most answers kept (least recently used dropped first); default 10 000. */
  readonly maxEntries?: number;
  /** When set, an active token must name this audience (`aud`). */
  readonly audience?: string;
  /** When set, an active token must come from this issuer (`iss`). */
  readonly issuer?: string;
  readonly clock?: Clock;
  /** The HTTP client (tests); default the global `fetch`. */
  readonly fetch?: typeof fetch;
}

/** Checks opaque (or any) tokens with the authorization server. */
export interface Introspector {
  /**
   * The principal of an active token; `UNAUTHENTICATED` (`details.reason: "inactive"`, or
   * `wrong-audience` / `wrong-issuer`) for one that is not; `UNAVAILABLE`
   * (`introspection-unavailable`) when the server cannot be asked — it fails closed.
   */
  introspect(token: string): Promise<UserPrincipal>;
  /** Answers kept now. */
  size(): number;
}

interface Entry {
  readonly until: number;
  readonly principal: UserPrincipal | undefined;
}

/**
 * OAuth 2.0 token introspection (RFC 7662): asks the authorization server whether a token is
 * active and whose it is. Answers are cached — active ones until the token's `exp` (bounded by
 * `maxCacheMs`), inactive ones for `negativeCacheMs` — by a hash of the token, never the token;
 * concurrent checks of one token share one request.
 */
export function createIntrospector(options: IntrospectorOptions): Introspector {
  const url = checkEndpoint(options.url, "introspection url");
  if (!options.clientId || !options.clientSecret) {
    throw new StrataError("INVALID_ARGUMENT", "introspection needs clientId and clientSecret");
  }
  const clock = options.clock ?? systemClock();
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const maxCacheMs = options.maxCacheMs ?? 60_000;
  const negativeCacheMs = options.negativeCacheMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const authorization = `Basic ${Buffer.from(
    `${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`,
  ).toString("base64")}`;
  const cache = new Map<string, Entry>();
  const inFlight = new Map<string, Promise<Entry>>();

  const remember = (key: string, entry: Entry): void => {
    cache.delete(key);
    cache.set(key, entry);
    while (cache.size > maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
  };

  const ask = async (token: string): Promise<Entry> => {
    let response: Response;
    try {
      response = await doFetch(url, {
        method: "POST",
        headers: {
          authorization,
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: new URLSearchParams({ token, token_type_hint: "access_token" }).toString(),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "error",
      });
    } catch (error) {
      throw unavailable(
        error instanceof Error && error.name === "TimeoutError"
          ? `the introspection endpoint did not answer within ${timeoutMs} ms`
          : "the introspection endpoint cannot be reached",
      );
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw unavailable(`the introspection endpoint answered HTTP ${response.status}`);
    }
    let body: unknown;
    try {
      const text = await response.text();
      if (text.length > 65_536) throw new Error("too long");
      body = JSON.parse(text);
    } catch {
      throw unavailable("the introspection endpoint answered something that is not JSON");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw unavailable("the introspection endpoint answered something that is not an object");
    }
    const claims = body as Record<string, unknown>;
    const now = clock.now();
    if (claims.active !== true) return { until: now + negativeCacheMs, principal: undefined };
    const subject = typeof claims.sub === "string" ? claims.sub : claims.username;
    if (typeof subject !== "string" || subject.length === 0) {
      throw unavailable("the introspection endpoint named no subject for an active token");
    }
    const exp = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
    if (exp <= now) return { until: now + negativeCacheMs, principal: undefined };
    return {
      until: Math.min(exp, now + maxCacheMs),
      principal: { kind: "user", subject, claims },
    };
  };

  const check = (entry: Entry): UserPrincipal => {
    const principal = entry.principal;
    if (principal === undefined) {
      throw new StrataError("UNAUTHENTICATED", "the token is not active", {
        details: { reason: "inactive" },
      });
    }
    const claims = principal.claims;
    if (options.issuer !== undefined && claims.iss !== options.issuer) {
      throw new StrataError("UNAUTHENTICATED", "the token is from an issuer not trusted here", {
        details: { reason: "wrong-issuer" },
      });
    }
    if (options.audience !== undefined) {
      const aud = claims.aud;
      const audiences = Array.isArray(aud) ? aud : [aud];
      if (!audiences.includes(options.audience)) {
        throw new StrataError("UNAUTHENTICATED", "the token is not meant for this audience", {
          details: { reason: "wrong-audience" },
        });
      }
    }
    return principal;
  };

  return {
    async introspect(token) {
      if (typeof token !== "string" || token.length === 0 || token.length > 8_192) {
        throw new StrataError("UNAUTHENTICATED", "no usable bearer token", {
          details: { reason: "malformed" },
        });
      }
      const key = createHash("sha256").update(token).digest("base64url");
      const cached = cache.get(key);
      if (cached !== undefined && cached.until > clock.now()) {
        remember(key, cached);
        return check(cached);
      }
      let pending = inFlight.get(key);
      if (pending === undefined) {
        pending = ask(token).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      const entry = await pending;
      remember(key, entry);
      return check(entry);
    },
    size: () => cache.size,
  };
}

function unavailable(message: string): StrataError {
  return new StrataError("UNAVAILABLE", message, {
    details: { reason: "introspection-unavailable" },
  });
}

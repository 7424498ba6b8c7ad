import { StrataError } from "@strata/core";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from "jose";
import { checkEndpoint, type UserPrincipal } from "./principal.js";

/** Asymmetric algorithms accepted unless told otherwise. `none` and HMAC are never accepted. */
export const DEFAULT_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** Options of {@link createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** Accepted `iss` (one or several). */
  readonly issuer: string | readonly string[];
  /** Accepted `aud` (one or several); the token must name one of them. */
  readonly audience: string | readonly string[];
  /** The issuer's JWKS endpoint (https, or http on a loopback address). */
  readonly jwksUrl?: string;
  /** A fixed key set instead of an endpoint. */
  readonly jwks?: JSONWebKeySet;
  /** Allowed `alg` values; default {@link DEFAULT_ALGORITHMS}. `none` and `HS*` are refused. */
  readonly algorithms?: readonly string[];
  /** Clock skew allowed on `exp`, `nbf` and `iat` (seconds); default 30, at most 300. */
  readonly clockToleranceSec?: number;
  /** Claims a token must carry; default `exp` and `sub`. */
  readonly requiredClaims?: readonly string[];
  /** Longest token accepted (characters); default 8 192. */
  readonly maxTokenLength?: number;
  /** How long fetched keys are trusted before a refetch (ms); default 10 minutes. */
  readonly jwksCacheMaxAgeMs?: number;
  /** Least time between two fetches on unknown key ids (ms); default 30 000. */
  readonly jwksCooldownMs?: number;
  /** Longest JWKS fetch (ms); default 5 000. */
  readonly jwksTimeoutMs?: number;
  /** The current time (tests); default the system clock. */
  readonly now?: () => Date;
}

/** Verifies bearer tokens (JWS-signed JWTs) into user principals. */
export interface JwtVerifier {
  /**
   * The principal a token proves, or a StrataError: `UNAUTHENTICATED` (with `details.reason`:
   * `malformed`, `algorithm-not-allowed`, `bad-signature`, `unknown-key`, `expired`,
   * `not-yet-valid`, `wrong-issuer`, `wrong-audience`, `invalid-claims`), or `UNAVAILABLE`
   * (`jwks-unavailable`) when keys cannot be fetched: it fails closed. Messages never contain the
   * token.
   */
  verify(token: string): Promise<UserPrincipal>;
}

type KeySet = Parameters<typeof jwtVerify>[1];

/**
 * A JWT verifier with jose: keys from a JWKS endpoint, cached and refetched when a token names a
 * key id the cache does not know (key rotation), an algorithm allow-list, and iss, aud, exp and
 * nbf checked with bounded clock skew.
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const issuers = list(options.issuer, "issuer");
  const audiences = list(options.audience, "audience");
  const algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)];
  for (const alg of algorithms) {
    if (alg === "none" || /^HS/i.test(alg)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `algorithm ${alg} is not allowed: bearer tokens must be signed with an asymmetric key`,
      );
    }
  }
  if (algorithms.length === 0) throw new StrataError("INVALID_ARGUMENT", "no algorithms allowed");
  const tolerance = options.clockToleranceSec ?? 30;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > 300) {
    throw new StrataError("INVALID_ARGUMENT", "clockToleranceSec must be from 0 to 300");
  }
  const maxLength = options.maxTokenLength ?? 8_192;
  const required = [...(options.requiredClaims ?? ["exp", "sub"])];
  let keys: KeySet;
  if (options.jwks !== undefined && options.jwksUrl === undefined) {
    keys = createLocalJWKSet(options.jwks);
  } else if (options.jwksUrl !== undefined && options.jwks === undefined) {
    const remote = createRemoteJWKSet(checkEndpoint(options.jwksUrl, "jwksUrl"), {
      cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      timeoutDuration: options.jwksTimeoutMs ?? 5_000,
    });
    // A key set that cannot be fetched is the issuer's problem, not the token's: it is told
    // apart here (jose reports both as its own errors) so that it fails closed as UNAVAILABLE.
    keys = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        if (
          error instanceof errors.JWKSNoMatchingKey ||
          error instanceof errors.JWKSMultipleMatchingKeys
        ) {
          throw error;
        }
        throw new KeysUnavailable();
      }
    };
  } else {
    throw new StrataError("INVALID_ARGUMENT", "give exactly one of jwksUrl and jwks");
  }

  return {
    async verify(token) {
      if (typeof token !== "string" || token.length === 0) {
        throw unauthenticated("malformed", "no bearer token");
      }
      if (token.length > maxLength) {
        throw unauthenticated("malformed", `bearer token longer than ${maxLength} characters`);
      }
      if (token.split(".").length !== 3) {
        throw unauthenticated("malformed", "bearer token is not a signed JWT (JWS compact form)");
      }
      let alg: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        throw unauthenticated("malformed", "bearer token header is not readable");
      }
      if (typeof alg !== "string" || !algorithms.includes(alg)) {
        throw unauthenticated(
          "algorithm-not-allowed",
          `bearer token algorithm ${typeof alg === "string" ? JSON.stringify(alg.slice(0, 20)) : "missing"} is not allowed`,
        );
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: issuers,
          audience: audiences,
          algorithms,
          clockTolerance: tolerance,
          requiredClaims: required,
          ...(options.now === undefined ? {} : { currentDate: options.now() }),
        }));
      } catch (error) {
        throw mapError(error);
      }
      if (typeof payload.sub !== "string" || payload.sub.length === 0) {
        throw unauthenticated("invalid-claims", "bearer token has no subject");
      }
      return { kind: "user", subject: payload.sub, claims: payload };
    },
  };
}

function list(value: string | readonly string[], what: string): string[] {
  const values = typeof value === "string" ? [value] : [...value];
  if (values.length === 0 || values.some((v) => typeof v !== "string" || v.length === 0)) {
    throw new StrataError("INVALID_ARGUMENT", `${what} must be a non-empty string or list`);
  }
  return values;
}

function unauthenticated(reason: string, message: string): StrataError {
  return new StrataError("UNAUTHENTICATED", message, { details: { reason } });
}

/** The issuer's key set could not be fetched (or was not a key set). */
class KeysUnavailable extends Error {
  override readonly name = "KeysUnavailable";
}

/** jose's errors as Strata errors; the messages name the failed check, never the token. */
function mapError(error: unknown): StrataError {
  if (error instanceof KeysUnavailable) {
    return new StrataError("UNAVAILABLE", "the issuer's keys cannot be fetched", {
      details: { reason: "jwks-unavailable" },
    });
  }
  if (error instanceof errors.JWTExpired) return unauthenticated("expired", "bearer token expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "nbf":
        return unauthenticated("not-yet-valid", "bearer token is not valid yet");
      case "iss":
        return unauthenticated("wrong-issuer", "bearer token is from an issuer not trusted here");
      case "aud":
        return unauthenticated("wrong-audience", "bearer token is not meant for this audience");
      default:
        return unauthenticated(
          "invalid-claims",
          `bearer token claim ${JSON.stringify(error.claim)} is invalid`,
        );
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return unauthenticated("algorithm-not-allowed", "bearer token algorithm is not allowed");
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return unauthenticated("bad-signature", "bearer token signature does not verify");
  }
  if (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return unauthenticated(
      "unknown-key",
      "bearer token is signed with a key the issuer does not publish",
    );
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return new StrataError("UNAVAILABLE", "the issuer's keys cannot be fetched", {
      details: { reason: "jwks-unavailable" },
    });
  }
  if (error instanceof errors.JOSEError) {
    return unauthenticated("malformed", "bearer token is not a valid JWT");
  }
  // A network failure fetching the key set: fail closed, but say it is not the token's fault.
  return new StrataError("UNAVAILABLE", "the issuer's keys cannot be fetched", {
    details: { reason: "jwks-unavailable" },
  });
}

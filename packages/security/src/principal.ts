import { StrataError, type Principal } from "@strata/core";

/** An end user, as a verified token or an introspection answer describes them. */
export type UserPrincipal = Extract<Principal, { readonly kind: "user" }>;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/**
 * An identity provider's endpoint: https, or http only on a loopback address (a test issuer or
 * a sidecar). Anything else is refused, so keys and token answers never travel in plaintext.
 */
export function checkEndpoint(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new StrataError("INVALID_ARGUMENT", `${what} is not a URL`);
  }
  if (url.protocol === "https:") return url;
  if (url.protocol === "http:" && LOOPBACK.has(url.hostname)) return url;
  throw new StrataError(
    "INVALID_ARGUMENT",
    `${what} must be https (http only on a loopback address), got ${url.protocol}//${url.hostname}`,
  );
}

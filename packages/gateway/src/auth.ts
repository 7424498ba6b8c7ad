import { StrataError, type Principal } from "@strata/core";

/**
 * What authenticates bearer tokens: a JWT verifier (`verify`) or an OAuth 2.0 introspector
 * (`introspect`) from `@strata/security`, or anything with the same shape. Either answers the
 * token's user or throws a StrataError: `UNAUTHENTICATED` (with `details.reason`) for a bad
 * token, `UNAVAILABLE` when the identity provider cannot be asked.
 */
export type Authenticator =
  | { readonly verify: (token: string) => Promise<Principal> }
  | { readonly introspect: (token: string) => Promise<Principal> };

/** An end user, the only kind of principal a bearer token may prove. */
export type UserPrincipal = Extract<Principal, { readonly kind: "user" }>;

/** The authenticator as one function; refuses anything that has neither method. */
export function authenticatorOf(value: Authenticator): (token: string) => Promise<UserPrincipal> {
  let check: ((token: string) => Promise<Principal>) | undefined;
  if (typeof value === "object" && value !== null) {
    if ("verify" in value && typeof value.verify === "function") {
      check = (token) => value.verify(token);
    } else if ("introspect" in value && typeof value.introspect === "function") {
      check = (token) => value.introspect(token);
    }
  }
  if (check === undefined) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "gateway: authenticate must have verify(token) (a JWT verifier) or introspect(token) (an introspector)",
    );
  }
  const run = check;
  return async (token) => {
    const principal = await run(token);
    // Whatever an authenticator answers, only a user with a subject becomes the principal: a
    // malformed answer is a fault of the set-up and fails closed.
    if (
      typeof principal !== "object" ||
      principal === null ||
      principal.kind !== "user" ||
      typeof principal.subject !== "string" ||
      principal.subject.length === 0
    ) {
      throw new StrataError("INTERNAL", "the authenticator answered no user principal");
    }
    return principal;
  };
}

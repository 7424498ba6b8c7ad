import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { formatTraceparent, parseTraceparent, type TraceContext } from "@strata/core";

/** Headers on every answer: nothing is sniffed, cached, framed, or leaks a referrer. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
};

/** A client-chosen request id is kept only when it is this plain (it is echoed in a header). */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

function single(value: string | string[] | undefined): string | undefined {
  // A repeated header is ambiguous: treat it as absent rather than pick one.
  return typeof value === "string" ? value : undefined;
}

/**
 * The request's id: the client's `x-request-id` when it matches a strict pattern (so it can be
 * echoed without risk of header injection), else a fresh UUID.
 */
export function requestIdOf(headers: IncomingHttpHeaders): string {
  const offered = single(headers["x-request-id"]);
  return offered !== undefined && REQUEST_ID.test(offered) ? offered : randomUUID();
}

/** Largest `tracestate` passed on (the W3C limit). */
const MAX_TRACESTATE = 512;
const PRINTABLE = /^[\x20-\x7e]*$/;

/**
 * The W3C trace context of an incoming request, re-formatted from its parsed form so that only
 * well-formed values travel on; a malformed `traceparent` is ignored (the call starts a new
 * trace), and `tracestate` is dropped unless the traceparent is valid. Baggage from the public
 * internet is not forwarded: it would let any client set values every service reads.
 */
export function traceOf(headers: IncomingHttpHeaders): TraceContext | undefined {
  const traceparent = single(headers["traceparent"]);
  if (traceparent === undefined) return undefined;
  const raw = single(headers["tracestate"]);
  const tracestate =
    raw !== undefined && raw.length <= MAX_TRACESTATE && PRINTABLE.test(raw) ? raw : undefined;
  const span = parseTraceparent(traceparent, tracestate);
  if (span === undefined) return undefined;
  const state = span.traceState?.serialize();
  return state === undefined || state.length === 0
    ? { traceparent: formatTraceparent(span) }
    : { traceparent: formatTraceparent(span), tracestate: state };
}

/** RFC 6750 `b64token`. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** What the `Authorization` header holds. */
export type Credentials =
  | { readonly type: "none" }
  | { readonly type: "bearer"; readonly token: string }
  | { readonly type: "malformed" };

/** Reads a bearer token from `Authorization: Bearer <token>` (RFC 6750); nothing else counts. */
export function credentialsOf(headers: IncomingHttpHeaders): Credentials {
  const value = headers.authorization;
  if (value === undefined) return { type: "none" };
  const space = value.indexOf(" ");
  if (space < 0 || value.slice(0, space).toLowerCase() !== "bearer") return { type: "malformed" };
  const token = value.slice(space + 1).trim();
  return TOKEN.test(token) ? { type: "bearer", token } : { type: "malformed" };
}

import { httpStatus, type ErrorCode, type StrataError } from "@strata/core";

/** Where problem types live; each type is a stable URI under it. */
export const PROBLEM_BASE = "https://strata.dev/errors/";

/** The media type of every error answer (RFC 9457). */
export const PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8";

/**
 * An RFC 9457 problem as the gateway sends it: the standard members plus the Strata error code,
 * field issues for invalid input, and a machine-readable reason for failed authentication.
 */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  /** The request id (also sent as `x-request-id`). */
  readonly instance: string;
  readonly code: ErrorCode;
  /** For `INVALID_ARGUMENT`: which input fields are wrong. */
  readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>;
  /** For `UNAUTHENTICATED`: the failed check (`expired`, `wrong-audience`, `missing`, …). */
  readonly reason?: string;
}

/** Problems the gateway itself raises before a request reaches an action. */
export type GatewayProblem =
  | "route-not-found"
  | "method-not-allowed"
  | "payload-too-large"
  | "unsupported-media-type"
  | "malformed-body"
  | "bad-request";

const TITLES: Readonly<Record<GatewayProblem, string>> = {
  "route-not-found": "Route not found",
  "method-not-allowed": "Method not allowed",
  "payload-too-large": "Payload too large",
  "unsupported-media-type": "Unsupported media type",
  "malformed-body": "Malformed request body",
  "bad-request": "Bad request",
};

/** `PERMISSION_DENIED` → `permission-denied`. */
function slug(code: string): string {
  return code.toLowerCase().replaceAll("_", "-");
}

function title(code: ErrorCode): string {
  const words = code.toLowerCase().split("_").join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * What a caller may be told about an error with this code. Codes that describe the caller's own
 * request keep the error's message (services write those for callers); codes that describe the
 * inside of the system get a fixed sentence, so neither internals nor topology (node ids, queue
 * sizes, stack frames) ever leave the gateway.
 */
function safeDetail(error: StrataError): string {
  const code = error.code;
  switch (code) {
    case "INVALID_ARGUMENT":
    case "NOT_FOUND":
    case "ALREADY_EXISTS":
    case "FAILED_PRECONDITION":
    case "OUT_OF_RANGE":
    case "ABORTED":
    case "UNAUTHENTICATED":
      return clip(error.message);
    case "PERMISSION_DENIED":
      return "the request is not permitted";
    case "RESOURCE_EXHAUSTED":
      return "too many requests; retry later";
    case "UNAVAILABLE":
      return "the service is unavailable; retry later";
    case "DEADLINE_EXCEEDED":
      return "the request did not complete in time";
    case "CANCELLED":
      return "the request was cancelled";
    case "UNIMPLEMENTED":
      return "the operation is not implemented";
    case "INTERNAL":
    case "UNKNOWN":
    case "DATA_LOSS":
      return "an internal error occurred";
  }
}

function clip(text: string): string {
  // Messages are single-line text for people; cap them so a service cannot flood the answer.
  const flat = text.replace(/\p{Cc}+/gu, " ");
  return flat.length > 500 ? `${flat.slice(0, 497)}...` : flat;
}

const REASON = /^[a-z][a-z0-9-]{0,39}$/;

/** The problem for a Strata error (from authentication, validation, authorization or the call). */
export function problemFromError(error: StrataError, instance: string): Problem {
  const code = error.code;
  const base = {
    type: `${PROBLEM_BASE}${slug(code)}`,
    title: title(code),
    status: httpStatus(code),
    detail: safeDetail(error),
    instance,
    code,
  };
  if (code === "INVALID_ARGUMENT") {
    const issues = fieldIssues(error.details["issues"]);
    if (issues !== undefined) return { ...base, issues };
  }
  if (code === "UNAUTHENTICATED") {
    const reason = error.details["reason"];
    if (typeof reason === "string" && REASON.test(reason)) return { ...base, reason };
  }
  return base;
}

function fieldIssues(value: unknown): Problem["issues"] {
  if (!Array.isArray(value)) return undefined;
  const out: Array<{ path: string; message: string }> = [];
  for (const item of value.slice(0, 20)) {
    if (typeof item !== "object" || item === null) continue;
    const { path, message } = item as Record<string, unknown>;
    if (typeof path === "string" && typeof message === "string") {
      out.push({ path: clip(path), message: clip(message) });
    }
  }
  return out.length === 0 ? undefined : out;
}

/** A problem the gateway raises itself (HTTP-level: routing, body, media type, rate). */
export function gatewayProblem(
  kind: GatewayProblem,
  options: { readonly instance: string; readonly detail: string },
): Problem {
  return {
    type: `${PROBLEM_BASE}${kind}`,
    title: TITLES[kind],
    status: statusOf(kind),
    detail: options.detail,
    instance: options.instance,
    code: codeOf(kind),
  };
}

function statusOf(kind: GatewayProblem): number {
  switch (kind) {
    case "route-not-found":
      return 404;
    case "method-not-allowed":
      return 405;
    case "payload-too-large":
      return 413;
    case "unsupported-media-type":
      return 415;
    case "malformed-body":
    case "bad-request":
      return 400;
  }
}

/** The nearest Strata code, as gRPC would report the same failure. */
function codeOf(kind: GatewayProblem): ErrorCode {
  switch (kind) {
    case "route-not-found":
      return "NOT_FOUND";
    case "method-not-allowed":
      return "UNIMPLEMENTED";
    case "payload-too-large":
      return "RESOURCE_EXHAUSTED";
    case "unsupported-media-type":
    case "malformed-body":
    case "bad-request":
      return "INVALID_ARGUMENT";
  }
}

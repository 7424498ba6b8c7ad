/**
 * Strata's HTTP API gateway (fastify): versioned routes to service actions, an OpenAPI 3.1
 * document from the contracts' schemas, bearer-token authentication (JWT or introspection),
 * edge authorization, per-client rate limits, body limits, security headers, and every error as
 * an RFC 9457 problem carrying the Strata error code.
 */
export { createGateway } from "./gateway.js";
export type { Gateway, GatewayOptions, GatewayStats } from "./gateway.js";
export { route } from "./routes.js";
export type { GatewayRoute, HttpMethod, RouteAuth, RouteRequest, RouteSpec } from "./routes.js";
export type { Authenticator, UserPrincipal } from "./auth.js";
export { PROBLEM_BASE, PROBLEM_CONTENT_TYPE } from "./problem.js";
export type { GatewayProblem, Problem } from "./problem.js";
export type { OpenApiDocument } from "./openapi.js";
export { SECURITY_HEADERS } from "./headers.js";

/**
 * Strata's security block. This first part is end-user identity at the edge: JWT verification
 * (jose, JWKS with rotation, an algorithm allow-list, bounded clock skew) and OAuth 2.0 token
 * introspection (RFC 7662, cached, failing closed).
 */
export { DEFAULT_ALGORITHMS, createJwtVerifier } from "./jwt.js";
export type { JwtVerifier, JwtVerifierOptions } from "./jwt.js";
export { createIntrospector } from "./introspection.js";
export type { Introspector, IntrospectorOptions } from "./introspection.js";
export { checkEndpoint } from "./principal.js";
export type { UserPrincipal } from "./principal.js";
export { createCedarAuthorizer } from "./cedar.js";
export type { CedarAuthorizer, CedarAuthorizerOptions, CedarResource } from "./cedar.js";
export { runPolicyTests } from "./policy-test.js";
export type { PolicyTestCase, PolicyTestReport } from "./policy-test.js";
export {
  CA_FILES,
  initCa,
  issueWorkloadCertificate,
  parseSpiffeId,
  readCa,
  spiffeIdOf,
  verifyWorkloadCertificate,
  writeIssued,
} from "./ca.js";
export type { IssuedCertificate, WorkloadIdentity } from "./ca.js";
export {
  PQ_GROUP,
  postQuantumTlsSupported,
  preferredTlsGroups,
  probeNatsTls,
  tlsGroupReport,
} from "./pq.js";
export type { NegotiatedTls } from "./pq.js";
export { createWorkloadIdentity, startRenewal } from "./workload.js";
export type {
  Renewal,
  RenewalOptions,
  WorkloadIdentityOptions,
  WorkloadIdentitySigner,
  WorkloadIdentityStats,
} from "./workload.js";

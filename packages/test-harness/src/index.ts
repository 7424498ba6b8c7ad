/** Test harness: real engines started on free loopback ports in temporary folders, and broken on purpose. */
export * from "./engines.js";
export {
  checkRegisterHistory,
  describeLogConformance,
  describeStrongKvConformance,
} from "./conformance/index.js";
export type { LogFixture, StrongKvFixture } from "./conformance/index.js";

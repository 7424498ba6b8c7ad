export { checkRegisterHistory, describeStrongKvConformance } from "./strong-kv.js";
export type { StrongKvFixture } from "./strong-kv.js";
export { describeLogConformance } from "./log.js";
export type { LogFixture } from "./log.js";

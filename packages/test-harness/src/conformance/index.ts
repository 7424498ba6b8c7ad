export { describeStrongKvConformance } from "./strong-kv.js";
export type { StrongKvFixture } from "./strong-kv.js";

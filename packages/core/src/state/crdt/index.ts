export {
  awSet,
  ewFlag,
  gCounter,
  join,
  lwwRegister,
  mvRegister,
  orMap,
  pnCounter,
} from "./types.js";
export type {
  AWSet,
  EWFlag,
  GCounter,
  LWWRegister,
  MVRegister,
  ORMap,
  PNCounter,
} from "./types.js";
export {
  compact,
  contains,
  contextOf,
  dot,
  dotsOf,
  emptyContext,
  emptyFun,
  emptyMap,
  emptySet,
  mergeContexts,
  nextDot,
} from "./causal.js";
export type { Causal, CausalContext, Dot, DotFun, DotMap, DotSet, DotStore } from "./causal.js";
export { createCrdtSpace } from "./space.js";
export type { CrdtSpace, CrdtSpaceOptions, CrdtSpaceStats } from "./space.js";

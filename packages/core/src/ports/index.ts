export { manualClock, seededRandom, systemClock } from "./clock.js";
export type { Clock, ManualClock, Timer } from "./clock.js";
export { silentLogger } from "./logger.js";
export type { Logger } from "./logger.js";
export type {
  ActionAnnouncement,
  CallReply,
  CallSigner,
  CallRequest,
  CallTarget,
  ControlMessage,
  NodeAnnouncement,
  NodeStatus,
  OpenedFrame,
  ServiceAnnouncement,
  TraceContext,
  Transport,
  TransportHandlers,
} from "./transport.js";
export type { AuthorizationDecision, AuthorizationRequest, Authorizer } from "./authorizer.js";

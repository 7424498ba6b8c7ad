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
export {
  DEFAULT_MAX_OBJECT_BYTES,
  MAX_BLOB_KEY_BYTES,
  blobNotFound,
  blobTooLarge,
  checkBlobKey,
  checkBlobMetadata,
  checkBlobPrefix,
  checkContentType,
} from "./blob.js";
export type {
  BlobCallOptions,
  BlobChange,
  BlobData,
  BlobInfo,
  BlobJournalInfo,
  BlobObject,
  BlobPage,
  BlobPutOptions,
  BlobStore,
} from "./blob.js";

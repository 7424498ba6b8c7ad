export { createEvents, decodeDeadLetter, partitionOf } from "./events.js";
export type {
  DeadLetter,
  EventContext,
  EventHandler,
  EventHandlers,
  EventInput,
  EventName,
  EventOutput,
  Events,
  EventsOptions,
  OutboxEvent,
  Published,
  PublishOptions,
  ReceivedEvent,
  SubscribeOptions,
  Subscription,
} from "./events.js";
export type { Backoff, DeliveryInfo, StartFrom } from "./consumer.js";
export { ownerOf } from "./consumer.js";
export { decodeEvent, encodeEvent } from "./envelope.js";
export type { CloudEvent } from "./envelope.js";
export { startProjection } from "./projection.js";
export type { ModelWriter, Projection, ProjectionHandlers, ProjectionSpec } from "./projection.js";
export { createSagaRunner, defineSaga } from "./sagas.js";
export type {
  SagaContext,
  SagaDefinition,
  SagaError,
  SagaHandle,
  SagaJournal,
  SagaOutcome,
  SagaRunner,
  SagaRunnerOptions,
  StepContext,
  StepOptions,
} from "./sagas.js";

import { StrataError } from "../errors/index.js";
import type { AppendInput, StreamSpec } from "../ports/log.js";

/**
 * Input checks every Log adapter shares, so each refuses the same bad input with the same error.
 * Names are the intersection of what the engines accept (NATS stream names and subject tokens).
 */
const STREAM = /^[a-z][a-z0-9_-]{0,63}$/;
/** Ids and keys: printable ASCII without spaces, at most 256 characters. */
const TOKEN = /^[\x21-\x7e]{1,256}$/;
/** Header names: letters, digits and dashes (HTTP token characters NATS headers accept). */
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
/** The largest record payload every adapter accepts (NATS' default max_payload is 1 MiB). */
export const MAX_LOG_PAYLOAD = 900 * 1024;
const MAX_HEADERS_BYTES = 8 * 1024;

/** Throws INVALID_ARGUMENT unless `name` is a portable stream name. */
export function checkStreamName(name: unknown): string {
  if (typeof name !== "string" || !STREAM.test(name)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `invalid stream name ${JSON.stringify(name)}: use 1-64 of a-z 0-9 - _, starting with a letter`,
    );
  }
  return name;
}

/** Throws INVALID_ARGUMENT unless `spec` is a valid stream spec; returns it with defaults. */
export function checkStreamSpec(spec: StreamSpec): Required<Omit<StreamSpec, "replicas">> & {
  readonly replicas: number | undefined;
} {
  checkStreamName(spec.name);
  if (!Number.isInteger(spec.partitions) || spec.partitions < 1 || spec.partitions > 1024) {
    throw new StrataError("INVALID_ARGUMENT", "partitions must be an integer in 1..1024");
  }
  const positive = (value: number | undefined, what: string): number => {
    if (value === undefined) return 0;
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new StrataError("INVALID_ARGUMENT", `${what} must be a positive integer`);
    }
    return value;
  };
  if (spec.replicas !== undefined && ![1, 3, 5].includes(spec.replicas)) {
    throw new StrataError("INVALID_ARGUMENT", "replicas must be 1, 3 or 5");
  }
  return {
    name: spec.name,
    partitions: spec.partitions,
    replicas: spec.replicas,
    critical: spec.critical ?? false,
    maxAgeMs: positive(spec.maxAgeMs, "maxAgeMs"),
    maxBytes: positive(spec.maxBytes, "maxBytes"),
    duplicateWindowMs: positive(spec.duplicateWindowMs, "duplicateWindowMs") || 120_000,
  };
}

/** Throws INVALID_ARGUMENT unless `input` can be appended to a stream of `partitions`. */
export function checkAppend(input: AppendInput, partitions: number): void {
  if (
    input.expectedLastSeq !== undefined &&
    !(Number.isSafeInteger(input.expectedLastSeq) && input.expectedLastSeq >= 0)
  ) {
    throw new StrataError("INVALID_ARGUMENT", "expectedLastSeq must be an integer >= 0");
  }
  if (!Number.isInteger(input.partition) || input.partition < 0 || input.partition >= partitions) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `partition ${String(input.partition)} is out of range 0..${partitions - 1}`,
    );
  }
  if (typeof input.id !== "string" || !TOKEN.test(input.id)) {
    throw new StrataError("INVALID_ARGUMENT", "record id must be 1-256 printable ASCII characters");
  }
  if (typeof input.key !== "string" || !TOKEN.test(input.key)) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "record key must be 1-256 printable ASCII characters",
    );
  }
  if (!(input.payload instanceof Uint8Array)) {
    throw new StrataError("INVALID_ARGUMENT", "record payload must be a Uint8Array");
  }
  if (input.payload.length > MAX_LOG_PAYLOAD) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `record payload of ${input.payload.length} bytes is over the ${MAX_LOG_PAYLOAD}-byte limit`,
    );
  }
  let headerBytes = 0;
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (!HEADER_NAME.test(name) || typeof value !== "string" || /[\r\n]/.test(value)) {
      throw new StrataError("INVALID_ARGUMENT", `invalid record header ${JSON.stringify(name)}`);
    }
    headerBytes += name.length + value.length;
  }
  if (headerBytes > MAX_HEADERS_BYTES) {
    throw new StrataError("INVALID_ARGUMENT", `record headers are over ${MAX_HEADERS_BYTES} bytes`);
  }
}

/** A read's page size: default 256, at most 10 000. */
export function checkReadLimit(limit: unknown): number {
  const value = limit ?? 256;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 10_000) {
    throw new StrataError("INVALID_ARGUMENT", "limit must be an integer in 1..10000");
  }
  return value;
}

/** A read's start: default 1; INVALID_ARGUMENT unless a positive integer. */
export function checkFromSeq(fromSeq: unknown): number {
  const value = fromSeq ?? 1;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new StrataError("INVALID_ARGUMENT", "fromSeq must be a positive integer");
  }
  return value;
}

/** INVALID_ARGUMENT unless `partition` is undefined or within the stream's range. */
export function checkPartition(partition: unknown, partitions: number): number | undefined {
  if (partition === undefined) return undefined;
  if (
    typeof partition !== "number" ||
    !Number.isInteger(partition) ||
    partition < 0 ||
    partition >= partitions
  ) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `partition ${JSON.stringify(partition) ?? "undefined"} is out of range 0..${partitions - 1}`,
    );
  }
  return partition;
}

/** NOT_FOUND for a stream that does not exist. */
export function streamNotFound(stream: string): StrataError {
  return new StrataError("NOT_FOUND", `stream ${stream} does not exist`, { details: { stream } });
}

/** The error of an append whose expected last sequence was not the stream's. */
export function wrongLastSeq(stream: string, expected: number, actual?: number): StrataError {
  const found = actual === undefined ? "" : ` (it is ${actual})`;
  return new StrataError(
    "ABORTED",
    `append to ${stream}: the last sequence is not ${expected}${found}: another writer appended`,
    {
      details: { reason: "wrong-last-seq", expected, ...(actual === undefined ? {} : { actual }) },
    },
  );
}

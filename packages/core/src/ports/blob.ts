/**
 * The Blob port: an object store of named byte objects (documents, images, exports) with content
 * type and metadata, prefix listing and an ordered, resumable change feed. Adapters: embedded
 * (files on local disk and a change journal); a NATS JetStream Object Store adapter can implement
 * the same interface (its bucket's change stream gives the sequence numbers).
 *
 * Every change (a put or a delete) takes a sequence number: strictly increasing across the store,
 * from 1, in the order the changes were acknowledged. `watch` replays changes from a sequence and
 * then follows new ones, so a consumer that stores the last sequence it finished resumes after a
 * restart without missing a change.
 */
import { StrataError } from "../errors/index.js";

/** What is known about a stored object without reading it. */
export interface BlobInfo {
  readonly key: string;
  /** Bytes. */
  readonly size: number;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** SHA-256 of the bytes, lowercase hex. */
  readonly sha256: string;
  /** Sequence of the change that stored this version. */
  readonly seq: number;
  /** When it was stored (ms since the epoch, the store's clock). */
  readonly at: number;
}

/** An object with its bytes. */
export interface BlobObject extends BlobInfo {
  readonly bytes: Uint8Array;
}

/** A change seen by a watch, in sequence order. */
export type BlobChange =
  | {
      readonly type: "put";
      readonly key: string;
      /** Bytes of the version stored. */
      readonly size: number;
      readonly seq: number;
      readonly at: number;
      readonly contentType: string;
    }
  | {
      readonly type: "delete";
      readonly key: string;
      /** Bytes of the version removed. */
      readonly size: number;
      readonly seq: number;
      readonly at: number;
    };

/** Bytes to store: all at once, or as a stream of chunks (a Node Readable or a web ReadableStream). */
export type BlobData = Uint8Array | AsyncIterable<Uint8Array>;

/** Options common to every call. */
export interface BlobCallOptions {
  readonly signal?: AbortSignal;
}

/** How an object is stored. */
export interface BlobPutOptions extends BlobCallOptions {
  /** Default `application/octet-stream`. At most 255 printable characters. */
  readonly contentType?: string;
  /**
   * Small string attributes: at most 64 names of 1-64 of a-z 0-9 - _ (lower case, as HTTP headers
   * and NATS headers carry them), values of printable text, 8 KiB in all.
   */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** A page of a prefix listing. */
export interface BlobPage {
  readonly items: readonly BlobInfo[];
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: string;
}

/** The extent of the change feed. */
export interface BlobJournalInfo {
  /** Oldest sequence a watch can start from (lastSeq + 1 when no change is kept). */
  readonly firstSeq: number;
  /** Sequence of the newest change (0 when nothing was ever stored). */
  readonly lastSeq: number;
}

/** The port. */
export interface BlobStore extends AsyncDisposable {
  readonly name: string;
  /** Largest object accepted (bytes); a larger put fails with RESOURCE_EXHAUSTED. */
  readonly maxObjectBytes: number;
  /**
   * Stores (replacing) an object; resolves once it is durable, with its info. INVALID_ARGUMENT for
   * a bad key, content type or metadata; RESOURCE_EXHAUSTED past `maxObjectBytes` (a stream is
   * cut off there and nothing is stored).
   */
  put(key: string, data: BlobData, options?: BlobPutOptions): Promise<BlobInfo>;
  /** The object and its bytes; NOT_FOUND when there is none. */
  get(key: string, options?: BlobCallOptions): Promise<BlobObject>;
  /** The object's info, or undefined when there is none. */
  head(key: string, options?: BlobCallOptions): Promise<BlobInfo | undefined>;
  /** Deletes an object; false when there was none (and then no change is recorded). */
  delete(key: string, options?: BlobCallOptions): Promise<boolean>;
  /** Objects whose key starts with `prefix`, in key order, `limit` (default 1 000) after `after`. */
  list(
    prefix: string,
    options?: BlobCallOptions & { readonly after?: string; readonly limit?: number },
  ): Promise<BlobPage>;
  /**
   * Changes to keys under `prefix` in sequence order, from `fromSeq` (default: the next change)
   * on, then new ones as they are acknowledged. Ends when the signal aborts or the store closes.
   * A `fromSeq` older than the journal keeps fails with OUT_OF_RANGE.
   */
  watch(
    prefix: string,
    options?: BlobCallOptions & { readonly fromSeq?: number },
  ): AsyncIterable<BlobChange>;
  /** Which sequences the change feed holds. */
  journalInfo(options?: BlobCallOptions): Promise<BlobJournalInfo>;
}

/** Longest key, in UTF-8 bytes. */
export const MAX_BLOB_KEY_BYTES = 1024;
/** The default of `maxObjectBytes`: 64 MiB. */
export const DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024;

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const METADATA_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_METADATA_BYTES = 8 * 1024;

function refuseText(what: string, value: string, why: string): never {
  throw new StrataError(
    "INVALID_ARGUMENT",
    `invalid blob ${what} ${JSON.stringify(value.slice(0, 80))}: ${why}`,
  );
}

function checkText(what: string, value: unknown, allowEmpty: boolean): string {
  if (typeof value !== "string") {
    throw new StrataError("INVALID_ARGUMENT", `blob ${what} must be a string`);
  }
  if (value.length === 0 && !allowEmpty) refuseText(what, value, "it is empty");
  if (Buffer.byteLength(value, "utf8") > MAX_BLOB_KEY_BYTES) {
    refuseText(what, value, `it is longer than ${MAX_BLOB_KEY_BYTES} bytes`);
  }
  if (CONTROL.test(value)) refuseText(what, value, "it contains a NUL or control character");
  if (LONE_SURROGATE.test(value)) refuseText(what, value, "it is not well-formed Unicode");
  if (value.includes("\\")) refuseText(what, value, "use / to separate segments, not \\");
  if (value.startsWith("/")) refuseText(what, value, "it may not start with /");
  const segments = value.split("/");
  for (const [i, segment] of segments.entries()) {
    if (segment === "." || segment === "..") {
      refuseText(what, value, `"${segment}" segments are not allowed`);
    }
    // A prefix may end with "/" (an empty last segment); nothing else may be empty.
    if (segment === "" && !(allowEmpty && i === segments.length - 1)) {
      refuseText(what, value, "it has an empty segment (//) or ends with /");
    }
  }
  return value;
}

/**
 * Throws INVALID_ARGUMENT unless `key` is a portable blob key: 1-1024 bytes of UTF-8, segments
 * separated by `/`, none empty, `.` or `..`, no leading `/`, no `\`, no NUL or control character.
 * Adapters never use keys as file paths, but the rules keep keys safe for the tools that do.
 */
export function checkBlobKey(key: unknown): string {
  return checkText("key", key, false);
}

/** Throws INVALID_ARGUMENT unless `prefix` is empty or a key prefix (which may end with `/`). */
export function checkBlobPrefix(prefix: unknown): string {
  if (prefix === "") return "";
  return checkText("prefix", prefix, true);
}

/** Checks a content type (default `application/octet-stream`). */
export function checkContentType(contentType: unknown): string {
  if (contentType === undefined) return "application/octet-stream";
  if (
    typeof contentType !== "string" ||
    contentType.length === 0 ||
    contentType.length > 255 ||
    !/^[\x21-\x7e][\x20-\x7e]*$/.test(contentType)
  ) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      "contentType must be 1-255 printable ASCII characters, e.g. application/pdf",
    );
  }
  return contentType;
}

/** Checks metadata: names of a-z 0-9 - _, printable values, at most 64 entries and 8 KiB. */
export function checkBlobMetadata(metadata: unknown): Record<string, string> {
  if (metadata === undefined) return {};
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new StrataError("INVALID_ARGUMENT", "metadata must be an object of strings");
  }
  const entries = Object.entries(metadata as Record<string, unknown>);
  if (entries.length > 64) {
    throw new StrataError("INVALID_ARGUMENT", "metadata may have at most 64 entries");
  }
  let bytes = 0;
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!METADATA_NAME.test(name)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `metadata name ${JSON.stringify(name.slice(0, 80))} must be 1-64 of a-z 0-9 - _`,
      );
    }
    if (typeof value !== "string" || CONTROL.test(value) || LONE_SURROGATE.test(value)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `metadata ${name} must be a string of printable text`,
      );
    }
    bytes += name.length + Buffer.byteLength(value, "utf8");
    out[name] = value;
  }
  if (bytes > MAX_METADATA_BYTES) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `metadata is ${bytes} bytes; at most ${MAX_METADATA_BYTES}`,
    );
  }
  return out;
}

/** The error every adapter raises for an object over its size limit. */
export function blobTooLarge(key: string, size: number, limit: number): StrataError {
  return new StrataError(
    "RESOURCE_EXHAUSTED",
    `object ${JSON.stringify(key.slice(0, 80))} is over the ${limit}-byte limit (${size} bytes or more)`,
    { details: { key, limit }, retryable: false },
  );
}

/** The error every adapter raises for a missing object. */
export function blobNotFound(key: string): StrataError {
  return new StrataError("NOT_FOUND", `no object ${JSON.stringify(key.slice(0, 200))}`, {
    details: { key },
  });
}

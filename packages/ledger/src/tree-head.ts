import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
// The package's root module throws on import by design; each algorithm has its own entry.
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js";
import { StrataError } from "@strata/core";
import {
  HASH_SIZE,
  assertCount,
  assertHash,
  fromBase64,
  parseHash,
  toBase64,
  toHex,
} from "./encoding.js";

/** The domain-separation prefix of the signed bytes; a new encoding gets a new version. */
export const TREE_HEAD_DOMAIN = "strata-sth-v1";

const DOMAIN_BYTES = new TextEncoder().encode(TREE_HEAD_DOMAIN);
const ED25519_SIGNATURE = 64;
const MLDSA_SEED = 32;
const MLDSA_SECRET_KEY = ml_dsa65.lengths.secretKey ?? 4032;
const MLDSA_PUBLIC_KEY = ml_dsa65.lengths.publicKey ?? 1952;
const MLDSA_SIGNATURE = ml_dsa65.lengths.signature ?? 3309;
const PUBLIC_FORMAT = "strata-sth-public-keys-v1";
const PRIVATE_FORMAT = "strata-sth-private-keys-v1";

/** What a tree head states: the log had `size` entries with `root` at `timestamp` (ms since epoch). */
export interface TreeHead {
  readonly size: number;
  readonly root: Uint8Array;
  readonly timestamp: number;
}

/** A tree head with both signatures over {@link encodeTreeHead}'s bytes. */
export interface SignedTreeHead extends TreeHead {
  readonly signatures: {
    readonly ed25519: Uint8Array;
    readonly mldsa65: Uint8Array;
  };
}

/** The JSON form of a {@link SignedTreeHead}: root in hex, signatures in standard base64. */
export interface SignedTreeHeadJson {
  readonly size: number;
  readonly root: string;
  readonly timestamp: number;
  readonly signatures: { readonly ed25519: string; readonly mldsa65: string };
}

/** The two public keys a tree head is checked against. */
export interface SthPublicKeys {
  readonly ed25519: KeyObject;
  readonly mldsa65: Uint8Array;
}

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", message);
}

type KeyUser = <T>(
  keys: SthPrivateKeys,
  fn: (ed25519: KeyObject, mldsaSecretKey: Uint8Array, mldsaSeed: Uint8Array | undefined) => T,
) => T;

let withKeys: KeyUser;

/**
 * Private keys of a tree-head signer. The key material sits in private fields and stays out of
 * `JSON.stringify`, `console.log` and error messages; {@link exportSthPrivateKeys} is the one
 * deliberate way to get it out.
 */
export class SthPrivateKeys {
  readonly #ed25519: KeyObject;
  readonly #mldsaSecretKey: Uint8Array;
  // Kept when known: 32 bytes to store instead of 4,032, and the form FIPS 204 keys derive from.
  readonly #mldsaSeed: Uint8Array | undefined;
  /** The matching public keys. */
  readonly publicKeys: SthPublicKeys;

  /**
   * @param options.ed25519PrivateKey a private Ed25519 KeyObject or its PKCS#8 PEM
   * @param options.mldsaSecretKey the ML-DSA-65 32-byte seed or 4,032-byte expanded secret key
   */
  constructor(options: {
    readonly ed25519PrivateKey: KeyObject | string;
    readonly mldsaSecretKey: Uint8Array;
  }) {
    let ed25519: KeyObject;
    try {
      ed25519 =
        typeof options.ed25519PrivateKey === "string"
          ? createPrivateKey(options.ed25519PrivateKey)
          : options.ed25519PrivateKey;
    } catch {
      // No cause: parser messages may quote the input, and the input is a private key.
      throw invalid("the Ed25519 private key is not a readable PKCS#8 PEM key");
    }
    if (ed25519.type !== "private" || ed25519.asymmetricKeyType !== "ed25519") {
      throw invalid("the Ed25519 private key must be a private ed25519 key");
    }
    const secret = options.mldsaSecretKey;
    if (!(secret instanceof Uint8Array)) throw invalid("the ML-DSA-65 secret key must be bytes");
    let mldsaPublic: Uint8Array;
    if (secret.length === MLDSA_SEED) {
      const keys = ml_dsa65.keygen(secret);
      this.#mldsaSeed = new Uint8Array(secret);
      this.#mldsaSecretKey = keys.secretKey;
      mldsaPublic = keys.publicKey;
    } else if (secret.length === MLDSA_SECRET_KEY) {
      this.#mldsaSeed = undefined;
      this.#mldsaSecretKey = new Uint8Array(secret);
      try {
        mldsaPublic = ml_dsa65.getPublicKey(this.#mldsaSecretKey);
      } catch {
        throw invalid("the ML-DSA-65 secret key is malformed");
      }
    } else {
      throw invalid(
        `the ML-DSA-65 secret key must be a ${MLDSA_SEED}-byte seed or ${MLDSA_SECRET_KEY} bytes, not ${secret.length}`,
      );
    }
    this.#ed25519 = ed25519;
    this.publicKeys = { ed25519: createPublicKey(ed25519), mldsa65: mldsaPublic };
  }

  static {
    // The one reader of the private fields, reachable only from this module.
    withKeys = (keys, fn) => fn(keys.#ed25519, keys.#mldsaSecretKey, keys.#mldsaSeed);
  }

  toJSON(): { readonly type: "sth-private-keys"; readonly redacted: true } {
    return { type: "sth-private-keys", redacted: true };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return "SthPrivateKeys { [redacted] }";
  }
}

/** Signs tree heads; build one with {@link createSthSigner}. */
export interface SthSigner {
  readonly publicKeys: SthPublicKeys;
}

const SIGNERS = new WeakMap<SthSigner, SthPrivateKeys>();

/**
 * Generates a fresh Ed25519 key pair (node:crypto) and ML-DSA-65 key pair (from a random seed).
 *
 * @example
 * const { publicKeys, privateKeys } = generateSthKeys();
 * await writeFile("sth-public.json", exportSthPublicKeys(publicKeys));
 */
export function generateSthKeys(): { publicKeys: SthPublicKeys; privateKeys: SthPrivateKeys } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const privateKeys = new SthPrivateKeys({
    ed25519PrivateKey: privateKey,
    mldsaSecretKey: new Uint8Array(randomBytes(MLDSA_SEED)),
  });
  return { publicKeys: privateKeys.publicKeys, privateKeys };
}

/**
 * A signer for tree heads. Pass {@link SthPrivateKeys} or the raw material they are built from.
 * The signer carries only its public keys where anything can see them.
 */
export function createSthSigner(
  keys:
    | SthPrivateKeys
    | { readonly ed25519PrivateKey: KeyObject | string; readonly mldsaSecretKey: Uint8Array },
): SthSigner {
  const privateKeys = keys instanceof SthPrivateKeys ? keys : new SthPrivateKeys(keys);
  const signer: SthSigner = { publicKeys: privateKeys.publicKeys };
  SIGNERS.set(signer, privateKeys);
  return Object.freeze(signer);
}

function assertTimestamp(value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalid("timestamp must be a non-negative safe integer of milliseconds since the epoch");
  }
}

/**
 * The bytes both algorithms sign, 62 in all:
 * "strata-sth-v1" (13 ASCII bytes) | 0x00 | size (u64, big-endian) | root (32 bytes) |
 * timestamp (u64 ms since the Unix epoch, big-endian).
 * Fixed-width fields after a fixed prefix: one encoding per head, no parser needed to verify, and
 * the prefix keeps these signatures from being valid for any other message a key might sign.
 */
export function encodeTreeHead(head: TreeHead): Uint8Array {
  assertCount(head.size, "size");
  assertHash(head.root, "root");
  assertTimestamp(head.timestamp);
  const bytes = new Uint8Array(DOMAIN_BYTES.length + 1 + 8 + HASH_SIZE + 8);
  const view = new DataView(bytes.buffer);
  bytes.set(DOMAIN_BYTES, 0);
  let at = DOMAIN_BYTES.length + 1;
  view.setBigUint64(at, BigInt(head.size));
  at += 8;
  bytes.set(head.root, at);
  at += HASH_SIZE;
  view.setBigUint64(at, BigInt(head.timestamp));
  return bytes;
}

/**
 * Signs a tree head with both keys. ML-DSA-65 signs with fresh randomness (FIPS 204 hedged mode),
 * so two signatures of one head differ; both verify.
 *
 * @example
 * const sth = signTreeHead(signer, { size: frontier.size, root: frontier.root(), timestamp: Date.now() });
 */
export function signTreeHead(signer: SthSigner, head: TreeHead): SignedTreeHead {
  const keys = SIGNERS.get(signer);
  if (keys === undefined) throw invalid("not a signer made by createSthSigner");
  const message = encodeTreeHead(head);
  return withKeys(keys, (ed25519, mldsaSecretKey) => ({
    size: head.size,
    root: new Uint8Array(head.root),
    timestamp: head.timestamp,
    signatures: {
      ed25519: new Uint8Array(sign(null, message, ed25519)),
      mldsa65: ml_dsa65.sign(message, mldsaSecretKey),
    },
  }));
}

/**
 * Whether a signed tree head holds: true only when the Ed25519 signature AND the ML-DSA-65
 * signature both verify over its encoding. Either alone is not enough, so forging a head needs
 * breaking both schemes (see ADR 0013). Signatures of the wrong length are simply invalid;
 * a head whose size, root or timestamp is not well-formed throws INVALID_ARGUMENT.
 */
export function verifyTreeHead(sth: SignedTreeHead, publicKeys: SthPublicKeys): boolean {
  const message = encodeTreeHead(sth);
  const { ed25519, mldsa65 } = sth.signatures ?? {};
  if (!(ed25519 instanceof Uint8Array) || !(mldsa65 instanceof Uint8Array)) {
    throw invalid("a signed tree head needs ed25519 and mldsa65 signatures as bytes");
  }
  if (ed25519.length !== ED25519_SIGNATURE || mldsa65.length !== MLDSA_SIGNATURE) return false;
  try {
    // Both are always checked (no short cut), so timing does not tell which one failed.
    const classical = verify(null, message, publicKeys.ed25519, ed25519);
    const postQuantum = ml_dsa65.verify(mldsa65, message, publicKeys.mldsa65);
    return classical && postQuantum;
  } catch {
    // Keys of the wrong type or length: nothing verifies against them.
    return false;
  }
}

/** The JSON form of a signed tree head. */
export function treeHeadToJson(sth: SignedTreeHead): SignedTreeHeadJson {
  return {
    size: sth.size,
    root: toHex(sth.root),
    timestamp: sth.timestamp,
    signatures: {
      ed25519: toBase64(sth.signatures.ed25519),
      mldsa65: toBase64(sth.signatures.mldsa65),
    },
  };
}

/**
 * Reads a signed tree head from its JSON form (already parsed), checking every field; the root may
 * be hex or base64. Throws INVALID_ARGUMENT naming the first bad field.
 */
export function parseSignedTreeHead(value: unknown): SignedTreeHead {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("a signed tree head must be a JSON object");
  }
  const { size, root, timestamp, signatures } = value as Record<string, unknown>;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid("signed tree head: size must be a non-negative integer");
  }
  if (typeof root !== "string") throw invalid("signed tree head: root must be a string");
  assertTimestamp(timestamp);
  if (typeof signatures !== "object" || signatures === null) {
    throw invalid("signed tree head: signatures must be an object with ed25519 and mldsa65");
  }
  const { ed25519, mldsa65 } = signatures as Record<string, unknown>;
  if (typeof ed25519 !== "string" || typeof mldsa65 !== "string") {
    throw invalid(
      "signed tree head: signatures.ed25519 and signatures.mldsa65 must be base64 strings",
    );
  }
  const ed = fromBase64(ed25519, "signed tree head: signatures.ed25519");
  const pq = fromBase64(mldsa65, "signed tree head: signatures.mldsa65");
  if (ed.length !== ED25519_SIGNATURE) {
    throw invalid(`signed tree head: signatures.ed25519 must be ${ED25519_SIGNATURE} bytes`);
  }
  if (pq.length !== MLDSA_SIGNATURE) {
    throw invalid(`signed tree head: signatures.mldsa65 must be ${MLDSA_SIGNATURE} bytes`);
  }
  return {
    size,
    root: parseHash(root, "signed tree head: root"),
    timestamp,
    signatures: { ed25519: ed, mldsa65: pq },
  };
}

/**
 * The public keys as a JSON document: the Ed25519 key as SPKI PEM, the ML-DSA-65 key as standard
 * base64 of its 1,952 FIPS 204 bytes.
 */
export function exportSthPublicKeys(keys: SthPublicKeys): string {
  const document = {
    format: PUBLIC_FORMAT,
    ed25519: keys.ed25519.export({ type: "spki", format: "pem" }).toString(),
    mldsa65: toBase64(keys.mldsa65),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

function readDocument(text: string, format: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`${what} are not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(`${what} must be a JSON object`);
  }
  const document = value as Record<string, unknown>;
  if (document["format"] !== format) throw invalid(`${what} must have "format": "${format}"`);
  if (typeof document["ed25519"] !== "string" || typeof document["mldsa65"] !== "string") {
    throw invalid(`${what} need "ed25519" and "mldsa65" strings`);
  }
  return document;
}

/** Reads {@link exportSthPublicKeys}'s document back, checking both keys. */
export function importSthPublicKeys(text: string): SthPublicKeys {
  const document = readDocument(text, PUBLIC_FORMAT, "tree-head public keys");
  let ed25519: KeyObject;
  try {
    ed25519 = createPublicKey(document["ed25519"] as string);
  } catch {
    throw invalid("tree-head public keys: ed25519 is not an SPKI PEM public key");
  }
  if (ed25519.asymmetricKeyType !== "ed25519") {
    throw invalid("tree-head public keys: ed25519 is not an Ed25519 key");
  }
  const mldsa65 = fromBase64(document["mldsa65"] as string, "tree-head public keys: mldsa65");
  if (mldsa65.length !== MLDSA_PUBLIC_KEY) {
    throw invalid(`tree-head public keys: mldsa65 must be ${MLDSA_PUBLIC_KEY} bytes`);
  }
  return { ed25519, mldsa65 };
}

/**
 * The private keys as a JSON document (Ed25519 as PKCS#8 PEM, ML-DSA-65 as base64 of its seed or
 * secret key). Store it like any private key: readable by its owner only.
 */
export function exportSthPrivateKeys(keys: SthPrivateKeys): string {
  return withKeys(keys, (ed25519, mldsaSecretKey, mldsaSeed) => {
    const document = {
      format: PRIVATE_FORMAT,
      ed25519: ed25519.export({ type: "pkcs8", format: "pem" }).toString(),
      mldsa65: toBase64(mldsaSeed ?? mldsaSecretKey),
    };
    return `${JSON.stringify(document, null, 2)}\n`;
  });
}

/** Reads {@link exportSthPrivateKeys}'s document back. Errors never quote the key material. */
export function importSthPrivateKeys(text: string): SthPrivateKeys {
  const document = readDocument(text, PRIVATE_FORMAT, "tree-head private keys");
  let mldsaSecretKey: Uint8Array;
  try {
    mldsaSecretKey = fromBase64(document["mldsa65"] as string, "mldsa65");
  } catch {
    throw invalid("tree-head private keys: mldsa65 is not standard base64");
  }
  return new SthPrivateKeys({
    ed25519PrivateKey: document["ed25519"] as string,
    mldsaSecretKey,
  });
}

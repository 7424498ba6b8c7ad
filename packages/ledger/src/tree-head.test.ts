import { createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { inspect } from "node:util";
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js";
import { describe, expect, it } from "vitest";
import {
  SthPrivateKeys,
  TREE_HEAD_DOMAIN,
  createSthSigner,
  encodeTreeHead,
  exportSthPrivateKeys,
  exportSthPublicKeys,
  generateSthKeys,
  importSthPrivateKeys,
  importSthPublicKeys,
  parseSignedTreeHead,
  signTreeHead,
  toBase64,
  toHex,
  treeHeadToJson,
  verifyTreeHead,
  type SignedTreeHead,
} from "./index.js";

const ROOT = new Uint8Array(
  Buffer.from("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328", "hex"),
);
const HEAD = { size: 8, root: ROOT, timestamp: 1_765_000_000_123 };

// Key generation and ML-DSA signing take milliseconds; two key sets serve every test.
const alice = generateSthKeys();
const bob = generateSthKeys();
const signer = createSthSigner(alice.privateKeys);
const sth = signTreeHead(signer, HEAD);

const flip = (bytes: Uint8Array, at: number): Uint8Array => {
  const copy = new Uint8Array(bytes);
  copy[at]! ^= 0x01;
  return copy;
};

describe("signed tree heads", () => {
  it("encodes a head as the documented 62 domain-separated bytes", () => {
    const bytes = encodeTreeHead(HEAD);
    expect(bytes).toHaveLength(62);
    expect(Buffer.from(bytes.subarray(0, 13)).toString("ascii")).toBe(TREE_HEAD_DOMAIN);
    expect(toHex(bytes.subarray(13))).toBe(
      "00" +
        "0000000000000008" +
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328" +
        (1_765_000_000_123).toString(16).padStart(16, "0"),
    );
    expect(toHex(encodeTreeHead({ ...HEAD, size: Number.MAX_SAFE_INTEGER }).subarray(14, 22))).toBe(
      "001fffffffffffff",
    );
  });

  it("verifies a head only with both signatures under the signer's keys", () => {
    expect(verifyTreeHead(sth, alice.publicKeys)).toBe(true);
    expect(sth.signatures.ed25519).toHaveLength(64);
    expect(sth.signatures.mldsa65).toHaveLength(3309);
  });

  it("rejects a head with either signature damaged, missing or taken from another head", () => {
    const other = signTreeHead(signer, { ...HEAD, size: 9 });
    const variants: Array<[string, SignedTreeHead["signatures"]]> = [
      ["ed25519 flipped", { ...sth.signatures, ed25519: flip(sth.signatures.ed25519, 5) }],
      ["ml-dsa flipped", { ...sth.signatures, mldsa65: flip(sth.signatures.mldsa65, 100) }],
      ["ml-dsa last byte", { ...sth.signatures, mldsa65: flip(sth.signatures.mldsa65, 3308) }],
      [
        "both flipped",
        { ed25519: flip(sth.signatures.ed25519, 0), mldsa65: flip(sth.signatures.mldsa65, 0) },
      ],
      ["ed25519 from another head", { ...sth.signatures, ed25519: other.signatures.ed25519 }],
      ["ml-dsa from another head", { ...sth.signatures, mldsa65: other.signatures.mldsa65 }],
      ["ed25519 empty", { ...sth.signatures, ed25519: new Uint8Array() }],
      ["ml-dsa empty", { ...sth.signatures, mldsa65: new Uint8Array() }],
      ["ed25519 zeros", { ...sth.signatures, ed25519: new Uint8Array(64) }],
      ["ml-dsa zeros", { ...sth.signatures, mldsa65: new Uint8Array(3309) }],
      [
        "ml-dsa too long",
        { ...sth.signatures, mldsa65: new Uint8Array([...sth.signatures.mldsa65, 0]) },
      ],
    ];
    for (const [name, signatures] of variants) {
      expect(verifyTreeHead({ ...sth, signatures }, alice.publicKeys), name).toBe(false);
    }
  });

  it("rejects a head under someone else's keys, or a mix of two key sets", () => {
    expect(verifyTreeHead(sth, bob.publicKeys)).toBe(false);
    expect(
      verifyTreeHead(sth, { ed25519: alice.publicKeys.ed25519, mldsa65: bob.publicKeys.mldsa65 }),
    ).toBe(false);
    expect(
      verifyTreeHead(sth, { ed25519: bob.publicKeys.ed25519, mldsa65: alice.publicKeys.mldsa65 }),
    ).toBe(false);
    // Keys of the wrong kind or length verify nothing, and do not throw.
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
    expect(verifyTreeHead(sth, { ed25519: rsa, mldsa65: alice.publicKeys.mldsa65 })).toBe(false);
    expect(
      verifyTreeHead(sth, { ed25519: alice.publicKeys.ed25519, mldsa65: new Uint8Array(5) }),
    ).toBe(false);
  });

  it("rejects a head whose size, root or timestamp changed after signing", () => {
    const changed: SignedTreeHead[] = [
      { ...sth, size: 9 },
      { ...sth, size: 0 },
      { ...sth, size: 8 + 2 ** 40 },
      { ...sth, root: flip(ROOT, 0) },
      { ...sth, root: flip(ROOT, 31) },
      { ...sth, timestamp: HEAD.timestamp + 1 },
      { ...sth, timestamp: 0 },
    ];
    for (const head of changed) expect(verifyTreeHead(head, alice.publicKeys)).toBe(false);
  });

  it("rejects signatures by the right keys over the fields without the domain prefix", () => {
    // The prefix is what keeps a head signature from doubling as a signature of anything else.
    const document = JSON.parse(exportSthPrivateKeys(alice.privateKeys)) as Record<string, string>;
    const bare = encodeTreeHead(HEAD).subarray(TREE_HEAD_DOMAIN.length + 1);
    const mldsa = ml_dsa65.keygen(new Uint8Array(Buffer.from(document["mldsa65"]!, "base64")));
    const forged: SignedTreeHead = {
      ...sth,
      signatures: {
        ed25519: new Uint8Array(sign(null, bare, createPrivateKey(document["ed25519"]!))),
        mldsa65: ml_dsa65.sign(bare, mldsa.secretKey),
      },
    };
    expect(mldsa.publicKey).toEqual(alice.publicKeys.mldsa65);
    expect(verifyTreeHead(forged, alice.publicKeys)).toBe(false);
  });

  it("round-trips heads and keys through their JSON documents", () => {
    const json = JSON.parse(JSON.stringify(treeHeadToJson(sth))) as unknown;
    const back = parseSignedTreeHead(json);
    expect(back).toEqual(sth);
    expect(verifyTreeHead(back, importSthPublicKeys(exportSthPublicKeys(alice.publicKeys)))).toBe(
      true,
    );
    // Root may be written in base64 too.
    const base64Root = { ...(json as Record<string, unknown>), root: toBase64(ROOT) };
    expect(parseSignedTreeHead(base64Root).root).toEqual(ROOT);

    const restored = importSthPrivateKeys(exportSthPrivateKeys(alice.privateKeys));
    const again = signTreeHead(createSthSigner(restored), HEAD);
    expect(verifyTreeHead(again, alice.publicKeys)).toBe(true);
  });

  it("builds a signer from raw material: a PEM key and an ML-DSA seed or expanded secret key", () => {
    const ed = generateKeyPairSync("ed25519");
    const seed = new Uint8Array(32).fill(9);
    const expanded = ml_dsa65.keygen(seed);
    const pem = ed.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const fromSeed = createSthSigner({ ed25519PrivateKey: pem, mldsaSecretKey: seed });
    const fromSecret = createSthSigner({
      ed25519PrivateKey: ed.privateKey,
      mldsaSecretKey: expanded.secretKey,
    });
    expect(fromSeed.publicKeys.mldsa65).toEqual(expanded.publicKey);
    expect(fromSecret.publicKeys.mldsa65).toEqual(expanded.publicKey);
    expect(verifyTreeHead(signTreeHead(fromSecret, HEAD), fromSeed.publicKeys)).toBe(true);
    const exported = importSthPrivateKeys(
      exportSthPrivateKeys(
        new SthPrivateKeys({ ed25519PrivateKey: pem, mldsaSecretKey: expanded.secretKey }),
      ),
    );
    expect(exported.publicKeys.mldsa65).toEqual(expanded.publicKey);
  });

  it("never shows private key material in JSON, inspection or errors", () => {
    const secretText = exportSthPrivateKeys(alice.privateKeys);
    const document = JSON.parse(secretText) as { ed25519: string; mldsa65: string };
    const pemBody = document.ed25519.split("\n")[1] as string;
    const shown = [
      JSON.stringify(alice.privateKeys),
      JSON.stringify(signer),
      JSON.stringify({ keys: alice }),
      inspect(alice.privateKeys, { depth: 5 }),
      inspect(signer, { depth: 5 }),
      inspect(alice, { depth: 5 }),
    ];
    const errors: string[] = [];
    const capture = (fn: () => unknown): void => {
      try {
        fn();
      } catch (error) {
        errors.push(inspect(error));
      }
    };
    capture(() => importSthPrivateKeys(secretText.replace("-----END PRIVATE KEY-----", "")));
    capture(() =>
      importSthPrivateKeys(secretText.replace(document.mldsa65, `${document.mldsa65}!`)),
    );
    capture(() =>
      importSthPrivateKeys(secretText.replace(document.mldsa65, document.mldsa65.slice(4))),
    );
    capture(() =>
      createSthSigner({
        ed25519PrivateKey: `${document.ed25519}x`,
        mldsaSecretKey: new Uint8Array(7),
      }),
    );
    expect(errors).toHaveLength(4);
    for (const text of [...shown, ...errors]) {
      expect(text).not.toContain(pemBody.slice(0, 24));
      expect(text).not.toContain(document.mldsa65.slice(0, 24));
    }
    expect(JSON.stringify(alice.privateKeys)).toBe('{"type":"sth-private-keys","redacted":true}');
  });

  it("answers malformed heads, keys and signers with clear errors", () => {
    const json = treeHeadToJson(sth);
    const heads: Array<[unknown, RegExp]> = [
      [null, /must be a JSON object/],
      [[], /must be a JSON object/],
      [{ ...json, size: -1 }, /size must be a non-negative integer/],
      [{ ...json, size: "8" }, /size must be a non-negative integer/],
      [{ ...json, size: 2 ** 53 }, /size must be a non-negative integer/],
      [{ ...json, root: 5 }, /root must be a string/],
      [{ ...json, root: "abc" }, /root must be a 32-byte hash/],
      [{ ...json, timestamp: 1.5 }, /timestamp must be/],
      [{ ...json, timestamp: -1 }, /timestamp must be/],
      [{ ...json, signatures: null }, /signatures must be an object/],
      [{ ...json, signatures: { ed25519: json.signatures.ed25519 } }, /base64 strings/],
      [
        { ...json, signatures: { ...json.signatures, ed25519: "!!" } },
        /signatures.ed25519 is not standard base64/,
      ],
      [
        { ...json, signatures: { ...json.signatures, ed25519: "AAAA" } },
        /ed25519 must be 64 bytes/,
      ],
      [
        { ...json, signatures: { ...json.signatures, mldsa65: "AAAA" } },
        /mldsa65 must be 3309 bytes/,
      ],
    ];
    for (const [value, message] of heads) expect(() => parseSignedTreeHead(value)).toThrow(message);

    const publicText = exportSthPublicKeys(alice.publicKeys);
    const doc = JSON.parse(publicText) as Record<string, string>;
    const keys: Array<[string, RegExp]> = [
      ["", /not JSON/],
      ["[]", /must be a JSON object/],
      [JSON.stringify({ ...doc, format: "x" }), /"format": "strata-sth-public-keys-v1"/],
      [JSON.stringify({ ...doc, mldsa65: 1 }), /need "ed25519" and "mldsa65" strings/],
      [JSON.stringify({ ...doc, ed25519: "nope" }), /ed25519 is not an SPKI PEM public key/],
      [JSON.stringify({ ...doc, mldsa65: "AAAA" }), /mldsa65 must be 1952 bytes/],
      [
        JSON.stringify({
          ...doc,
          ed25519: generateKeyPairSync("ec", { namedCurve: "P-256" })
            .publicKey.export({ type: "spki", format: "pem" })
            .toString(),
        }),
        /not an Ed25519 key/,
      ],
    ];
    for (const [text, message] of keys) expect(() => importSthPublicKeys(text)).toThrow(message);
    expect(() => importSthPrivateKeys(publicText)).toThrow(
      /"format": "strata-sth-private-keys-v1"/,
    );

    const pem = generateKeyPairSync("ed25519").privateKey;
    expect(() =>
      createSthSigner({ ed25519PrivateKey: pem, mldsaSecretKey: new Uint8Array(31) }),
    ).toThrow(/32-byte seed or 4032 bytes, not 31/);
    expect(() =>
      createSthSigner({
        ed25519PrivateKey: alice.publicKeys.ed25519,
        mldsaSecretKey: new Uint8Array(32),
      }),
    ).toThrow(/must be a private ed25519 key/);
    expect(() => signTreeHead({ publicKeys: alice.publicKeys }, HEAD)).toThrow(/not a signer/);
    expect(() => signTreeHead(signer, { ...HEAD, root: new Uint8Array(31) })).toThrow(
      /root must be/,
    );
    expect(() => signTreeHead(signer, { ...HEAD, timestamp: Number.NaN })).toThrow(/timestamp/);
    expect(() => verifyTreeHead({ ...sth, size: -1 }, alice.publicKeys)).toThrow(/size must be/);
    expect(() =>
      verifyTreeHead(
        { ...sth, signatures: undefined } as unknown as SignedTreeHead,
        alice.publicKeys,
      ),
    ).toThrow(/needs ed25519 and mldsa65 signatures/);
  });
});

import { TextCapture } from "@strata/test-harness";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEmbeddedLog } from "@strata/core";
import {
  MemoryMerkleStore,
  consistencyProof,
  createSthSigner,
  exportSthPublicKeys,
  generateSthKeys,
  inclusionProof,
  leafHash,
  openLedger,
  rootAt,
  signTreeHead,
  toBase64,
  toHex,
  treeHeadToJson,
} from "@strata/ledger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "./index.js";

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io: Io & { out: TextCapture; err: TextCapture } = {
    out: new TextCapture(),
    err: new TextCapture(),
    env: {},
  };
  const code = await main(argv, io);
  return { code, out: io.out.text, err: io.err.text };
}

// The RFC 6962 test tree (published by google/certificate-transparency and transparency-dev/merkle).
const tree = new MemoryMerkleStore();
for (const data of [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
]) {
  tree.append(leafHash(new Uint8Array(Buffer.from(data, "hex"))));
}
const ROOT8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";
const proofText = (proof: Uint8Array[]): string => proof.map(toHex).join(",");

function inclusionArgs(index: number, size = 8): string[] {
  return [
    "ledger",
    "verify-inclusion",
    "--leaf-hash",
    toHex(tree.leafHash(index)),
    "--index",
    String(index),
    "--size",
    String(size),
    "--root",
    toHex(rootAt(tree, size)),
    "--proof",
    proofText(inclusionProof(tree, index, size)),
  ];
}

function consistencyArgs(size1: number, size2: number): string[] {
  return [
    "ledger",
    "verify-consistency",
    "--size1",
    String(size1),
    "--size2",
    String(size2),
    "--root1",
    toHex(rootAt(tree, size1)),
    "--root2",
    toHex(rootAt(tree, size2)),
    "--proof",
    proofText(consistencyProof(tree, size1, size2)),
  ];
}

/** Replaces the value that follows a flag. */
function withFlag(argv: string[], flag: string, value: string): string[] {
  const copy = [...argv];
  copy[copy.indexOf(flag) + 1] = value;
  return copy;
}

describe("strata ledger verify-inclusion", () => {
  it("exits 0 for every valid proof of the RFC 6962 test tree, 1 when anything is changed", async () => {
    for (let size = 1; size <= 8; size++) {
      for (let index = 0; index < size; index++) {
        const r = await run(inclusionArgs(index, size));
        expect(r.code, `${index}/${size}: ${r.err}`).toBe(0);
        expect(r.out).toContain("valid: leaf");
      }
    }
    const good = inclusionArgs(5);
    expect(good[good.indexOf("--root") + 1]).toBe(ROOT8);
    const wrongRoot = await run(withFlag(good, "--root", `${ROOT8.slice(0, 63)}9`));
    expect(wrongRoot).toMatchObject({ code: 1 });
    expect(wrongRoot.out).toMatch(/^invalid: the proof does not place leaf/);
    expect((await run(withFlag(good, "--index", "4"))).code).toBe(1);
    expect((await run(withFlag(good, "--index", "8"))).code).toBe(1);
    expect((await run(withFlag(good, "--size", "4"))).code).toBe(1);
    const proof = good[good.indexOf("--proof") + 1] as string;
    expect((await run(withFlag(good, "--proof", proof.split(",").slice(1).join(",")))).code).toBe(
      1,
    );
    expect((await run(withFlag(good, "--proof", `${proof},${ROOT8}`))).code).toBe(1);
  });

  it("accepts base64 hashes and an omitted proof, and prints JSON with --json", async () => {
    const args = inclusionArgs(0, 1).slice(0, -2); // a one-leaf tree has the empty proof
    expect((await run(args)).code).toBe(0);
    const good = inclusionArgs(3);
    const base64 = withFlag(good, "--root", toBase64(rootAt(tree, 8)));
    const r = await run([...base64, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      command: "verify-inclusion",
      valid: true,
      leafHash: toHex(tree.leafHash(3)),
      index: 3,
      size: 8,
      root: ROOT8,
      proofLength: 3,
    });
    const bad = await run([...withFlag(good, "--index", "2"), "--json"]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({ valid: false, index: 2 });
  });
});

describe("strata ledger verify-consistency", () => {
  it("exits 0 for every valid proof of the test tree and 1 for a changed one", async () => {
    for (let size2 = 1; size2 <= 8; size2++) {
      for (let size1 = 0; size1 <= size2; size1++) {
        const r = await run(consistencyArgs(size1, size2));
        expect(r.code, `${size1}->${size2}: ${r.err}`).toBe(0);
      }
    }
    const good = consistencyArgs(3, 7);
    expect((await run(withFlag(good, "--root2", ROOT8))).code).toBe(1);
    expect((await run(withFlag(good, "--size1", "2"))).code).toBe(1);
    expect((await run(withFlag(good, "--size2", "2"))).code).toBe(1);
    expect((await run(withFlag(good, "--proof", ""))).code).toBe(1);
    const r = await run([...good, "--json"]);
    expect(JSON.parse(r.out)).toMatchObject({
      command: "verify-consistency",
      valid: true,
      size1: 3,
      size2: 7,
    });
  });
});

describe("strata ledger verify-head", () => {
  let dir: string;
  let headPath: string;
  let keysPath: string;
  let otherKeysPath: string;
  let sth: ReturnType<typeof treeHeadToJson>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-ledger-cli-"));
    const keys = generateSthKeys();
    sth = treeHeadToJson(
      signTreeHead(createSthSigner(keys.privateKeys), {
        size: 8,
        root: rootAt(tree, 8),
        timestamp: Date.UTC(2025, 11, 1),
      }),
    );
    headPath = join(dir, "head.json");
    keysPath = join(dir, "keys.json");
    otherKeysPath = join(dir, "other.json");
    await writeFile(headPath, JSON.stringify(sth));
    await writeFile(keysPath, exportSthPublicKeys(keys.publicKeys));
    await writeFile(otherKeysPath, exportSthPublicKeys(generateSthKeys().publicKeys));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("exits 0 for a head signed by the keys, 1 for other keys or a changed head", async () => {
    const ok = await run(["ledger", "verify-head", "--head", headPath, "--public-keys", keysPath]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(
      `valid: tree head of size 8, root ${ROOT8}, at 2025-12-01T00:00:00.000Z`,
    );
    const other = await run([
      "ledger",
      "verify-head",
      "--head",
      headPath,
      "--public-keys",
      otherKeysPath,
    ]);
    expect(other.code).toBe(1);
    expect(other.out).toMatch(/^invalid: the signatures .* do not both verify/);
    for (const changed of [
      { ...sth, size: 9 },
      { ...sth, timestamp: sth.timestamp + 1 },
    ]) {
      const path = join(dir, "changed.json");
      await writeFile(path, JSON.stringify(changed));
      const r = await run([
        "ledger",
        "verify-head",
        "--head",
        path,
        "--public-keys",
        keysPath,
        "--json",
      ]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.out)).toMatchObject({ command: "verify-head", valid: false });
    }
  });

  it("exits 2 with a clear message for unreadable or malformed files", async () => {
    const write = async (name: string, text: string): Promise<string> => {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    };
    const cases: Array<[string[], RegExp]> = [
      [["--head", join(dir, "missing.json"), "--public-keys", keysPath], /--head: no such file/],
      [["--head", headPath, "--public-keys", join(dir, "nope")], /--public-keys: no such file/],
      [["--head", dir, "--public-keys", keysPath], /--head: cannot read/],
      [["--head", await write("bad.json", "{"), "--public-keys", keysPath], /is not JSON/],
      [
        ["--head", await write("arr.json", "[]"), "--public-keys", keysPath],
        /must be a JSON object/,
      ],
      [
        [
          "--head",
          await write("neg.json", JSON.stringify({ ...sth, size: -1 })),
          "--public-keys",
          keysPath,
        ],
        /size must be a non-negative integer/,
      ],
      [["--head", headPath, "--public-keys", headPath], /"format": "strata-sth-public-keys-v1"/],
      [["--head", headPath], /needs --public-keys/],
    ];
    for (const [flags, message] of cases) {
      const r = await run(["ledger", "verify-head", ...flags]);
      expect(r.code, flags.join(" ")).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err).toContain("usage: strata ledger");
    }
  });
});

describe("strata ledger: unusable command lines", () => {
  it("prints its help and is listed in the tool's help", async () => {
    const r = await run(["ledger", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("usage: strata ledger verify-inclusion");
    expect((await run(["--help"])).out).toContain(
      "ledger     verify Merkle proofs: strata ledger verify-inclusion | verify-consistency",
    );
  });

  it("answers every malformed input with exit code 2 and a message naming the problem", async () => {
    const inc = inclusionArgs(5);
    const con = consistencyArgs(3, 7);
    const cases: Array<[string[], RegExp]> = [
      [["ledger"], /missing ledger command/],
      [["ledger", "verify"], /unknown ledger command "verify"/],
      [[...inc, "extra"], /unexpected argument "extra"/],
      [[...inc, "--bogus"], /Unknown option '--bogus'/],
      [["ledger", "verify-inclusion", "--index", "1"], /needs --leaf-hash, --size, --root/],
      [["ledger", "verify-consistency"], /needs --size1, --size2, --root1, --root2/],
      [[...inc, "--size1", "3"], /verify-inclusion does not take --size1/],
      [[...con, "--root", ROOT8], /verify-consistency does not take --root/],
      [withFlag(inc, "--leaf-hash", "xyz"), /--leaf-hash must be a 32-byte hash .* got "xyz"/],
      [withFlag(inc, "--leaf-hash", ROOT8.slice(2)), /--leaf-hash must be a 32-byte hash/],
      [withFlag(inc, "--root", `${ROOT8}00`), /--root must be a 32-byte hash/],
      [withFlag(inc, "--root", "AAAA"), /--root must be a 32-byte hash/],
      [withFlag(inc, "--index", "-1"), /Option '--index' argument is ambiguous/],
      [
        [...inc.filter((a) => a !== "--index" && a !== "5"), "--index=-1"],
        /--index must be a non-negative integer/,
      ],
      [withFlag(inc, "--index", "1.5"), /--index must be a non-negative integer/],
      [withFlag(inc, "--index", "1e3"), /--index must be a non-negative integer/],
      [withFlag(inc, "--index", ""), /--index must be a non-negative integer/],
      [withFlag(inc, "--size", "9007199254740992"), /--size must be at most 9007199254740991/],
      [withFlag(inc, "--size", "abc"), /--size must be a non-negative integer/],
      [withFlag(inc, "--proof", `${ROOT8},,${ROOT8}`), /--proof has an empty entry at position 2/],
      [withFlag(inc, "--proof", `${ROOT8},nothex`), /--proof entry 2 must be a 32-byte hash/],
      [
        withFlag(inc, "--proof", Array(200).fill(ROOT8).join(",")),
        /no valid proof has more than 128/,
      ],
      [withFlag(con, "--size1", "x"), /--size1 must be a non-negative integer/],
      [withFlag(con, "--root2", "0x00"), /--root2 must be a 32-byte hash/],
      [[...inc.slice(0, -1)], /Option '--proof <value>' argument missing/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err, argv.join(" ")).toMatch(message);
      expect(r.out).toBe("");
    }
  });

  it("treats a size-1 index past the end or sizes out of order as invalid, not unusable", async () => {
    expect((await run(withFlag(inclusionArgs(5), "--index", "9007199254740991"))).code).toBe(1);
    const r = await run(withFlag(withFlag(consistencyArgs(3, 7), "--size1", "9"), "--proof", ""));
    expect(r.code).toBe(1);
  });
});

/** head, prove, audit and keygen against a ledger stored in an embedded log folder. */
describe("strata ledger on a stored ledger", () => {
  let dir: string;
  let data: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-ledger-cli-"));
    data = join(dir, "events");
    const log = await openEmbeddedLog({ dir: data });
    const ledger = await openLedger({ log, stream: "payments" });
    await ledger.openAccount({ id: "mint", currency: "EUR", lowerBound: null });
    await ledger.openAccount({ id: "alice", currency: "EUR" });
    for (let i = 0; i < 4; i++) {
      await ledger.transfer({
        key: `t${i}`,
        debit: "mint",
        credit: "alice",
        amount: 5n,
        currency: "EUR",
      });
    }
    await ledger.close();
    await log.close();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("signs a head with generated keys, proves an entry in the form verify-inclusion takes, and audits", async () => {
    const keys = join(dir, "keys");
    expect((await run(["ledger", "keygen", "--out", keys])).code).toBe(0);
    expect((await run(["ledger", "keygen", "--out", keys])).code).toBe(2); // never overwrites
    const head = await run([
      "ledger",
      "head",
      "--data",
      data,
      "--stream",
      "payments",
      "--keys",
      join(keys, "sth-private.json"),
    ]);
    expect(head.code).toBe(0);
    const sth = JSON.parse(head.out) as { size: number; root: string };
    expect(sth.size).toBe(6);
    await writeFile(join(dir, "head.json"), head.out);
    expect(
      (
        await run([
          "ledger",
          "verify-head",
          "--head",
          join(dir, "head.json"),
          "--public-keys",
          join(keys, "sth-public.json"),
        ])
      ).code,
    ).toBe(0);
    const prove = await run([
      "ledger",
      "prove",
      "3",
      "--data",
      data,
      "--stream",
      "payments",
      "--json",
    ]);
    expect(prove.code).toBe(0);
    const p = JSON.parse(prove.out) as {
      leafHash: string;
      index: number;
      size: number;
      root: string;
      proof: string[];
    };
    expect(p.root).toBe(sth.root);
    const verify = await run([
      "ledger",
      "verify-inclusion",
      "--leaf-hash",
      p.leafHash,
      "--index",
      String(p.index),
      "--size",
      String(p.size),
      "--root",
      p.root,
      "--proof",
      p.proof.join(","),
    ]);
    expect(verify.code).toBe(0);
    const audit = await run([
      "ledger",
      "audit",
      "--data",
      data,
      "--stream",
      "payments",
      "--public-keys",
      join(keys, "sth-public.json"),
    ]);
    expect(audit.code).toBe(0);
    expect(audit.out).toContain("ok: 6 entries re-derived");
    expect(audit.out).toContain("signed heads: 1 checked, 0 invalid");
  });

  it("refuses unusable input with exit code 2", async () => {
    expect((await run(["ledger", "head"])).code).toBe(2);
    expect((await run(["ledger", "head", "--data", join(dir, "missing")])).code).toBe(2);
    expect((await run(["ledger", "head", "--data", data, "--stream", "nope"])).code).toBe(2);
    expect((await run(["ledger", "prove", "--data", data, "--stream", "payments"])).code).toBe(2);
    expect(
      (await run(["ledger", "prove", "99", "--data", data, "--stream", "payments"])).code,
    ).toBe(2);
    expect(
      (await run(["ledger", "prove", "-1", "--data", data, "--stream", "payments"])).code,
    ).toBe(2);
    expect((await run(["ledger", "audit", "--data", data, "--keys", "x"])).code).toBe(2);
    expect((await run(["ledger", "keygen"])).code).toBe(2);
  });
});

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { StrataError, isStrataError, openEmbeddedLog, type EventLog } from "@strata/core";
import {
  STH_KEY_FILES,
  auditLedger,
  createSthSigner,
  importSthPrivateKeys,
  openLedger,
  treeHeadToJson,
  writeSthKeys,
  importSthPublicKeys,
  parseCount,
  parseHash,
  parseProof,
  parseSignedTreeHead,
  toHex,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHead,
} from "@strata/ledger";
import { openNatsLog } from "@strata/nats";
import { parse } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const LEDGER_HELP = `usage: strata ledger verify-inclusion --leaf-hash <H> --index <I> --size <N> --root <R> [--proof <P1,P2,...>]
       strata ledger verify-consistency --size1 <A> --size2 <B> --root1 <R1> --root2 <R2> [--proof <P1,P2,...>]
       strata ledger verify-head --head <sth.json> --public-keys <keys.json>
       strata ledger head  (--data <dir> | --nats <url>) [--stream <name>] [--keys <private-keys.json>]
       strata ledger prove <index> (--data <dir> | --nats <url>) [--stream <name>] [--size <N>]
       strata ledger audit (--data <dir> | --nats <url>) [--stream <name>] [--public-keys <keys.json>]
       strata ledger keygen --out <dir>

The verify commands check the ledger's tamper evidence offline; nothing is contacted. The others
read a ledger's log: an embedded log folder (--data, e.g. the demo's <data>/events while the demo
is not running) or a NATS cluster (--nats); --stream names the ledger (default "ledger").

  head                the tree head of every entry stored: size and root, signed (and stored
                      with the ledger's heads) when --keys gives the signing keys
  prove               the inclusion proof of entry <index> in the tree of --size entries (default
                      all), in the form verify-inclusion takes
  audit               re-derives every leaf and root from storage, replays every rule, checks that
                      money is conserved and (with --public-keys) every stored head; names the
                      first tampered entry; exit 1 when anything fails
  keygen              writes sth-public.json and sth-private.json (readable by you only)

  verify-inclusion    that the leaf with hash H is entry I (0-based) of the RFC 9162 Merkle tree
                      of N leaves whose root is R
  verify-consistency  that the tree of B leaves with root R2 extends the tree of A leaves with
                      root R1 (an append-only log)
  verify-head         that a signed tree head carries valid Ed25519 AND ML-DSA-65 signatures
                      under the public keys in the file

Hashes are 32 bytes as 64 hex digits or standard base64; a proof is a comma-separated list of
them, omitted or "" when empty. Sizes and indexes are decimal integers up to 2^53 - 1.

  --json       print the verdict as JSON
  -h, --help   this text

Exit code: 0 valid, 1 invalid, 2 the input is unusable.`;

type Verdict = { valid: boolean; summary: string; details: Record<string, unknown> };

function required(values: Record<string, string | boolean | undefined>, names: string[]): void {
  const missing = names.filter((name) => values[name] === undefined);
  if (missing.length > 0) {
    throw new UsageError(`needs ${missing.map((name) => `--${name}`).join(", ")}`);
  }
}

function flagsOf(sub: string): string[] {
  switch (sub) {
    case "verify-inclusion":
      return ["leaf-hash", "index", "size", "root", "proof"];
    case "verify-consistency":
      return ["size1", "size2", "root1", "root2", "proof"];
    case "head":
      return ["data", "nats", "stream", "keys"];
    case "prove":
      return ["data", "nats", "stream", "size"];
    case "audit":
      return ["data", "nats", "stream", "public-keys"];
    case "keygen":
      return ["out"];
    default:
      return ["head", "public-keys"];
  }
}

async function readInput(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = error instanceof Error && "code" in error ? String(error.code) : "";
    throw new UsageError(
      code === "ENOENT" ? `--${flag}: no such file: ${path}` : `--${flag}: cannot read ${path}`,
    );
  }
}

function inclusion(values: Record<string, string | undefined>): Verdict {
  required(values, ["leaf-hash", "index", "size", "root"]);
  const claim = {
    leafHash: parseHash(values["leaf-hash"] as string, "--leaf-hash"),
    index: parseCount(values["index"] as string, "--index"),
    size: parseCount(values["size"] as string, "--size"),
    root: parseHash(values["root"] as string, "--root"),
    proof: parseProof(values["proof"] ?? "", "--proof"),
  };
  const valid = verifyInclusion(claim);
  const what = `leaf ${toHex(claim.leafHash)} at index ${claim.index} of the tree of ${claim.size} with root ${toHex(claim.root)}`;
  return {
    valid,
    summary: valid ? `valid: ${what}` : `invalid: the proof does not place ${what}`,
    details: {
      leafHash: toHex(claim.leafHash),
      index: claim.index,
      size: claim.size,
      root: toHex(claim.root),
      proofLength: claim.proof.length,
    },
  };
}

function consistency(values: Record<string, string | undefined>): Verdict {
  required(values, ["size1", "size2", "root1", "root2"]);
  const claim = {
    size1: parseCount(values["size1"] as string, "--size1"),
    size2: parseCount(values["size2"] as string, "--size2"),
    root1: parseHash(values["root1"] as string, "--root1"),
    root2: parseHash(values["root2"] as string, "--root2"),
    proof: parseProof(values["proof"] ?? "", "--proof"),
  };
  const valid = verifyConsistency(claim);
  const what = `the tree of ${claim.size2} (root ${toHex(claim.root2)}) extends the tree of ${claim.size1} (root ${toHex(claim.root1)})`;
  return {
    valid,
    summary: valid ? `valid: ${what}` : `invalid: the proof does not show that ${what}`,
    details: {
      size1: claim.size1,
      size2: claim.size2,
      root1: toHex(claim.root1),
      root2: toHex(claim.root2),
      proofLength: claim.proof.length,
    },
  };
}

async function head(values: Record<string, string | undefined>): Promise<Verdict> {
  required(values, ["head", "public-keys"]);
  const headText = await readInput(values["head"] as string, "head");
  const keysText = await readInput(values["public-keys"] as string, "public-keys");
  let json: unknown;
  try {
    json = JSON.parse(headText);
  } catch {
    throw new UsageError(`--head: ${values["head"] as string} is not JSON`);
  }
  const sth = parseSignedTreeHead(json);
  const keys = importSthPublicKeys(keysText);
  const valid = verifyTreeHead(sth, keys);
  // Dates end at 8.64e15 ms; a later (valid u64, absurd) timestamp is shown as a number.
  const when =
    sth.timestamp <= 8.64e15 ? new Date(sth.timestamp).toISOString() : `${sth.timestamp} ms`;
  const what = `tree head of size ${sth.size}, root ${toHex(sth.root)}, at ${when}`;
  return {
    valid,
    summary: valid
      ? `valid: ${what}, signed with both Ed25519 and ML-DSA-65`
      : `invalid: the signatures on the ${what} do not both verify under these keys`,
    details: { size: sth.size, root: toHex(sth.root), timestamp: sth.timestamp },
  };
}

export async function ledgerCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    "leaf-hash": { type: "string" },
    index: { type: "string" },
    size: { type: "string" },
    root: { type: "string" },
    proof: { type: "string" },
    size1: { type: "string" },
    size2: { type: "string" },
    root1: { type: "string" },
    root2: { type: "string" },
    head: { type: "string" },
    "public-keys": { type: "string" },
    data: { type: "string" },
    nats: { type: "string" },
    stream: { type: "string" },
    keys: { type: "string" },
    out: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${LEDGER_HELP}\n`);
    return EXIT.ok;
  }
  const [sub, ...extra] = positionals;
  if (sub !== undefined && STORED.has(sub)) {
    const allowed = new Set([...flagsOf(sub), "json", "help"]);
    const stray = Object.keys(values).find((name) => !allowed.has(name));
    if (stray !== undefined) throw new UsageError(`${sub} does not take --${stray}`);
    return storedCommand(sub, extra, values as Record<string, string | undefined>, io);
  }
  if (sub !== "verify-inclusion" && sub !== "verify-consistency" && sub !== "verify-head") {
    throw new UsageError(
      sub === undefined
        ? "missing ledger command (verify-inclusion, verify-consistency, verify-head, head, prove, audit or keygen)"
        : `unknown ledger command "${sub}"`,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  // A flag of another subcommand is a slip worth naming (--size for verify-consistency, say)
  // rather than silently ignoring.
  const allowed = new Set([...flagsOf(sub), "json", "help"]);
  const stray = Object.keys(values).find((name) => !allowed.has(name));
  if (stray !== undefined) throw new UsageError(`${sub} does not take --${stray}`);
  const strings = values as Record<string, string | undefined>;
  let verdict: Verdict;
  try {
    verdict =
      sub === "verify-inclusion"
        ? inclusion(strings)
        : sub === "verify-consistency"
          ? consistency(strings)
          : await head(strings);
  } catch (error) {
    if (isStrataError(error, "INVALID_ARGUMENT")) throw new UsageError(error.message);
    throw error;
  }
  if (values.json === true) {
    io.out.write(`${JSON.stringify({ command: sub, valid: verdict.valid, ...verdict.details })}\n`);
  } else {
    io.out.write(`${verdict.summary}\n`);
  }
  return verdict.valid ? EXIT.ok : EXIT.failed;
}

const STORED = new Set(["head", "prove", "audit", "keygen"]);

/** Opens the log a ledger lives in: an embedded folder or a NATS cluster. */
async function openLog(
  values: Record<string, string | undefined>,
): Promise<{ log: EventLog; close(): Promise<void> }> {
  const data = values["data"];
  const nats = values["nats"] ?? process.env["STRATA_NATS_URL"];
  if ((data === undefined) === (nats === undefined)) {
    throw new UsageError("give the ledger's log: --data <dir> (embedded) or --nats <url>");
  }
  if (data !== undefined) {
    // Opening a folder that is not there would create an empty log: refuse instead.
    const folder = await stat(data).catch(() => undefined);
    if (folder?.isDirectory() !== true) throw new UsageError(`--data: no such folder: ${data}`);
    let log: EventLog;
    try {
      log = await openEmbeddedLog({ dir: data });
    } catch (error) {
      if (isStrataError(error)) throw new UsageError(`--data: ${error.message}`);
      throw error;
    }
    return { log, close: async () => await log[Symbol.asyncDispose]() };
  }
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: (nats as string).split(","),
      maxReconnectAttempts: 2,
      timeout: 3_000,
    });
  } catch (error) {
    throw new StrataError(
      "UNAVAILABLE",
      `cannot connect to NATS at ${nats as string}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const log = await openNatsLog({ connection: nc, serversSyncAlways: true });
  return { log, close: () => nc.close() };
}

async function storedCommand(
  sub: string,
  extra: readonly string[],
  values: Record<string, string | undefined>,
  io: Io,
): Promise<number> {
  const json = (values as { json?: unknown }).json === true;
  if (sub === "keygen") {
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
    const out = values["out"];
    if (out === undefined) throw new UsageError("keygen needs --out <dir>");
    try {
      await writeSthKeys(out);
    } catch (error) {
      if (isStrataError(error, "ALREADY_EXISTS")) throw new UsageError(error.message);
      throw error;
    }
    io.out.write(
      `wrote ${join(out, STH_KEY_FILES.public)} and ${join(out, STH_KEY_FILES.private)} (0600)\n`,
    );
    return EXIT.ok;
  }
  let index: number | undefined;
  if (sub === "prove") {
    const [text, ...rest] = extra;
    if (text === undefined) throw new UsageError("prove needs <index>");
    if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0] as string}"`);
    index = parseCount(text, "<index>");
  } else if (extra.length > 0) {
    throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  }
  const size = values["size"] === undefined ? undefined : parseCount(values["size"], "--size");
  const stream = values["stream"] ?? "ledger";
  const keysFile = values["keys"];
  const signer =
    keysFile === undefined
      ? undefined
      : createSthSigner(importSthPrivateKeys(await readInput(keysFile, "keys")));
  const publicKeysFile = values["public-keys"];
  const publicKeys =
    publicKeysFile === undefined
      ? undefined
      : importSthPublicKeys(await readInput(publicKeysFile, "public-keys"));
  const opened = await openLog(values);
  const log = opened.log;
  try {
    await log.streamInfo(stream).catch((error: unknown) => {
      if (isStrataError(error, "NOT_FOUND"))
        throw new UsageError(`no ledger "${stream}" in that log`);
      throw error;
    });
    if (sub === "audit") {
      const report = await auditLedger(log, {
        stream,
        ...(publicKeys === undefined ? {} : { publicKeys }),
      });
      if (json) {
        const fields = {
          stream: report.stream,
          entries: report.entries,
          ok: report.ok,
          root: report.root,
          firstTampered: report.firstTampered ?? null,
          totals: report.totals,
          conserved: report.conserved,
          heads: report.heads,
        };
        io.out.write(`${JSON.stringify(fields)}\n`);
      } else {
        io.out.write(
          `${report.ok ? "ok" : "FAILED"}: ${report.entries} entries re-derived, root ${report.root}\n`,
        );
        if (report.firstTampered !== undefined) {
          const t = report.firstTampered;
          io.out.write(`first tampered entry: ${t.index} (${t.reason}): ${t.detail}\n`);
        }
        io.out.write(
          `money ${report.conserved ? "conserved" : "NOT conserved"}: ${
            Object.entries(report.totals)
              .map(([c, t]) => `${c} ${t}`)
              .join(", ") || "no accounts"
          }\n`,
        );
        if (publicKeys !== undefined) {
          io.out.write(
            `signed heads: ${report.heads.checked} checked, ${report.heads.invalid.length} invalid\n`,
          );
          for (const h of report.heads.invalid)
            io.out.write(`  head of size ${h.size}: ${h.reason}\n`);
        }
      }
      return report.ok ? EXIT.ok : EXIT.failed;
    }
    const ledger = await openLedger({ log, stream });
    try {
      if (sub === "head") {
        if (signer !== undefined) {
          const sth = await ledger.signHead(signer);
          io.out.write(`${JSON.stringify(treeHeadToJson(sth))}\n`);
        } else {
          const out = { size: ledger.tree.size(), root: ledger.root() };
          io.out.write(json ? `${JSON.stringify(out)}\n` : `size ${out.size}, root ${out.root}\n`);
        }
        return EXIT.ok;
      }
      let proof;
      try {
        proof = ledger.proveInclusion(index as number, size);
      } catch (error) {
        if (isStrataError(error, "OUT_OF_RANGE")) throw new UsageError(error.message);
        throw error;
      }
      if (json) io.out.write(`${JSON.stringify(proof)}\n`);
      else {
        io.out.write(
          `strata ledger verify-inclusion --leaf-hash ${proof.leafHash} --index ${proof.index} --size ${proof.size} --root ${proof.root} --proof "${proof.proof.join(",")}"\n`,
        );
      }
      return EXIT.ok;
    } finally {
      await ledger.close();
    }
  } finally {
    await opened.close();
  }
}

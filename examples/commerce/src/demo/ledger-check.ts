import type { EventLog } from "@strata/core";
import {
  auditLedger,
  createSthSigner,
  toHex,
  verifyInclusion,
  verifyTreeHead,
  type Ledger,
  type SthKeyPair,
} from "@strata/ledger";

/** What the demo found when it checked the payments ledger at the end. */
export interface LedgerReport {
  readonly entries: number;
  readonly transfers: number;
  /** Postings refused because a customer's balance would have gone below zero. */
  readonly insufficientFunds: number;
  /** Heads signed during the run (every second while payments posted), all checked by the audit. */
  readonly headsSigned: number;
  /** The final signed tree head (Ed25519 + ML-DSA-65). */
  readonly head: { readonly size: number; readonly root: string; readonly signed: boolean };
  /** Inclusion proofs of sampled entries verified against the signed head's root. */
  readonly proofs: { readonly sampled: number; readonly verified: number };
  /** The audit re-derived every leaf, the root, every rule and every stored head. */
  readonly audited: boolean;
  readonly firstTampered: number | null;
  /** Sum of all balances per currency (0 when money is conserved). */
  readonly totals: Readonly<Record<string, string>>;
  readonly conserved: boolean;
}

/**
 * Signs the ledger's final tree head, audits the stored ledger against it, and verifies inclusion
 * proofs of a sample of entries with the verifier an outside auditor would use.
 */
export async function checkLedger(
  ledgers: readonly Ledger[],
  log: EventLog,
  keys: SthKeyPair,
  random: () => number,
): Promise<LedgerReport> {
  const ledger = ledgers[0] as Ledger;
  const { publicKeys, privateKeys } = keys;
  const head = await ledger.signHead(createSthSigner(privateKeys));
  const audit = await auditLedger(log, { stream: ledger.stream, publicKeys });
  const sampled = Math.min(20, head.size);
  let verified = 0;
  for (let i = 0; i < sampled; i++) {
    const index = Math.floor(random() * head.size);
    const p = ledger.proveInclusion(index, head.size);
    const ok = verifyInclusion({
      leafHash: Buffer.from(p.leafHash, "hex"),
      index,
      size: head.size,
      proof: p.proof.map((h) => Buffer.from(h, "hex")),
      root: head.root,
    });
    if (ok) verified++;
  }
  await ledger.sync();
  return {
    entries: audit.entries,
    headsSigned: audit.heads.checked,
    transfers: ledger.stats().transfers,
    insufficientFunds: ledgers.reduce(
      (n, l) => n + (l.stats().refused["insufficient-funds"] ?? 0),
      0,
    ),
    head: { size: head.size, root: toHex(head.root), signed: verifyTreeHead(head, publicKeys) },
    proofs: { sampled, verified },
    audited: audit.ok && audit.heads.checked > 0,
    firstTampered: audit.firstTampered?.index ?? null,
    totals: audit.totals,
    conserved: audit.conserved,
  };
}

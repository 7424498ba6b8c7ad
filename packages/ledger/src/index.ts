/**
 * Strata's ledger: accounts and double-entry transfers on a replicated log (conditional appends,
 * so it cannot fork), and its tamper evidence: RFC 9162 Merkle trees over the entries, inclusion
 * and consistency proofs and their verifiers, the compact frontier, signed tree heads that verify
 * only when both an Ed25519 and an ML-DSA-65 signature do, and an audit that re-derives it all.
 */
export { emptyRoot, leafHash, nodeHash, sameHash } from "./hash.js";
export {
  consistencyProof,
  consistencyProofAsync,
  inclusionProof,
  inclusionProofAsync,
  rootAt,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";
export type { ConsistencyClaim, InclusionClaim, LeafSource } from "./merkle.js";
export { MemoryMerkleStore } from "./store.js";
export type { AsyncMerkleStore, MerkleStore } from "./store.js";
export { Frontier } from "./frontier.js";
export type { FrontierJson } from "./frontier.js";
export {
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
  treeHeadToJson,
  verifyTreeHead,
} from "./tree-head.js";
export type {
  SignedTreeHead,
  SignedTreeHeadJson,
  SthPublicKeys,
  SthSigner,
  TreeHead,
} from "./tree-head.js";
export {
  HASH_SIZE,
  MAX_PROOF_HASHES,
  fromBase64,
  parseCount,
  parseHash,
  parseProof,
  toBase64,
  toHex,
} from "./encoding.js";
export { LEAF_HEADER, openLedger, readHeads } from "./ledger.js";
export type {
  Balance,
  ConsistencyProof,
  HistoryItem,
  HistoryPage,
  InclusionProof,
  Ledger,
  LedgerOptions,
  LedgerStats,
  PostingReceipt,
  ReadConsistency,
  Transfer,
} from "./ledger.js";
export { auditLedger } from "./audit.js";
export type { AuditReport, TamperReason } from "./audit.js";
export type { LedgerEntry, OpenAccountEntry, PostingEntry, TransferRecord } from "./entry.js";
export { STH_KEY_FILES, loadOrWriteSthKeys, writeSthKeys } from "./key-files.js";
export type { SthKeyPair } from "./key-files.js";

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StrataError } from "@strata/core";
import {
  exportSthPrivateKeys,
  exportSthPublicKeys,
  generateSthKeys,
  importSthPrivateKeys,
  type SthPrivateKeys,
  type SthPublicKeys,
} from "./tree-head.js";

/** The files a tree-head key pair lives in. */
export const STH_KEY_FILES = {
  private: "sth-private.json",
  public: "sth-public.json",
} as const;

/** A tree-head signing key pair. */
export interface SthKeyPair {
  readonly publicKeys: SthPublicKeys;
  readonly privateKeys: SthPrivateKeys;
}

/**
 * Writes a fresh key pair into `dir`: the private file first, readable by its owner only and
 * never over an existing one (`ALREADY_EXISTS`), so a failed write leaves an existing pair whole.
 */
export async function writeSthKeys(dir: string): Promise<SthKeyPair> {
  const keys = generateSthKeys();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateFile = join(dir, STH_KEY_FILES.private);
  await writeFile(privateFile, exportSthPrivateKeys(keys.privateKeys), {
    mode: 0o600,
    flag: "wx",
  }).catch((error: unknown) => {
    if (error instanceof Error && "code" in error && error.code === "EEXIST") {
      throw new StrataError("ALREADY_EXISTS", `${privateFile} exists; not overwriting keys`);
    }
    throw error;
  });
  await writeFile(join(dir, STH_KEY_FILES.public), exportSthPublicKeys(keys.publicKeys));
  return keys;
}

/** The key pair in `dir`, made there first when it has none. */
export async function loadOrWriteSthKeys(dir: string): Promise<SthKeyPair> {
  let text: string;
  try {
    text = await readFile(join(dir, STH_KEY_FILES.private), "utf8");
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") {
      return writeSthKeys(dir);
    }
    throw error;
  }
  const privateKeys = importSthPrivateKeys(text);
  return { privateKeys, publicKeys: privateKeys.publicKeys };
}

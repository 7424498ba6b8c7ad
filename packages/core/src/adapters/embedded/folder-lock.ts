import { open, readFile, rm } from "node:fs/promises";
import { StrataError } from "../../errors/index.js";

/** Lock files held by this process (the file itself guards against other processes). */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A held lock on an embedded store's folder. */
export interface FolderLock {
  release(): Promise<void>;
}

/**
 * Takes an embedded store's lock file (the owner's pid inside), so one process at a time opens
 * the folder: a live holder, here or in another process, is refused with FAILED_PRECONDITION;
 * a lock left by a process that died is taken over.
 *
 * @param what how errors name the store, e.g. "the log in /data/log"
 */
export async function lockFolder(lockPath: string, what: string): Promise<FolderLock> {
  if (heldHere.has(lockPath)) {
    throw new StrataError("FAILED_PRECONDITION", `${what} is already open in this process`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      heldHere.add(lockPath);
      return {
        async release() {
          await rm(lockPath, { force: true });
          heldHere.delete(lockPath);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(await readFile(lockPath, "utf8").catch(() => ""));
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new StrataError("FAILED_PRECONDITION", `${what} is open in process ${holder}`);
      }
      // The holder is gone (it crashed): take the lock over.
      await rm(lockPath, { force: true });
    }
  }
  throw new StrataError("FAILED_PRECONDITION", `cannot lock ${what}`);
}

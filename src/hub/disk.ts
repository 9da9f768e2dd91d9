import { mkdir, open, readFile, rm, rmdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import { OllmError } from "../errors.js";
import { formatBytes } from "./progress.js";

/** Bytes an unprivileged process may still write on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws INSUFFICIENT_DISK, with the numbers, when `needed` bytes do not fit in `dir`. */
export async function ensureFreeSpace(
  dir: string,
  needed: number,
  measure: (dir: string) => Promise<number> = freeBytes,
): Promise<void> {
  if (needed <= 0) return;
  let free: number;
  try {
    free = await measure(dir);
  } catch {
    return; // cannot measure (unusual file system): let the writes report the problem
  }
  if (free < needed)
    throw new OllmError(
      "INSUFFICIENT_DISK",
      `not enough disk space in ${dir}: the download needs ${formatBytes(needed)} (${needed} bytes), ` +
        `only ${formatBytes(free)} (${free} bytes) are free`,
      { hint: "free some space, or point modelsDir at a larger disk" },
    );
}

export const LOCK_NAME = ".ollm-download.lock";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes `<dir>/.ollm-download.lock` (pid inside) so two processes never write the same partial files.
 * A lock left by a dead process (kill -9) is taken over. Returns the release function.
 */
export async function lockDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, LOCK_NAME);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => {
        await rm(path, { force: true });
        await rmdir(dir).catch(() => {}); // only when nothing else was put there
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner))
      throw new OllmError("IO_ERROR", `another process (pid ${owner}) is downloading into ${dir}`, {
        hint: `wait for it to finish, or remove ${path} if that process is not an oLLM download`,
      });
    await rm(path, { force: true });
  }
  throw new OllmError("IO_ERROR", `cannot take the download lock ${path}`);
}

import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OllmError } from "../errors.js";

function ioError(action: string, path: string, cause: unknown): OllmError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new OllmError(
    "IO_ERROR",
    `Cannot ${action} ${path}: ${code ?? (cause as Error)?.message ?? String(cause)}`,
    {
      cause,
    },
  );
}

/**
 * Replaces `path` with `data` so that a crash at any moment (kill -9, power loss) leaves either the old
 * file or the new one, never a truncated or empty one: write a temporary file beside it, fsync it, rename
 * it over `path`, fsync the directory. The file is created with `mode` (default 0600: transcripts are private).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true });
  } catch (cause) {
    throw ioError("create the directory", dir, cause);
  }
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true }).catch(() => {});
    throw ioError("write", path, cause);
  }
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Directories cannot be opened for fsync on some platforms (Windows); the rename is still atomic.
  }
}

import { type FileHandle, open, stat } from "node:fs/promises";
import { OllmError } from "../../errors.js";

/** fs rejects single reads over 2 GiB, so big tensors are read in chunks. */
const MAX_READ_CHUNK = 1 << 30;

function errnoCode(cause: unknown): string | undefined {
  return typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined;
}

/** Maps a node:fs failure to a project error: missing paths are MODEL_NOT_FOUND, the rest IO_ERROR. */
function fsError(path: string, action: string, cause: unknown): OllmError {
  const code = errnoCode(cause);
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new OllmError("MODEL_NOT_FOUND", `Cannot ${action} ${path}: it does not exist`, { cause });
  }
  return new OllmError("IO_ERROR", `Cannot ${action} ${path}: ${code ?? String(cause)}`, { cause });
}

/** Awaits an fs call, turning its failure into an OllmError that names the path. */
export async function fsCall<T>(path: string, action: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (cause) {
    throw fsError(path, action, cause);
  }
}

export function openFile(path: string): Promise<FileHandle> {
  return fsCall(path, "open", open(path, "r"));
}

/** Whether `path` exists and is a regular file (following symlinks, as Hugging Face caches use them). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Fills `target` from `position` of the file with positioned reads; a short file is an IO_ERROR. */
export async function readAt(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, MAX_READ_CHUNK);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, length, position + done));
    } catch (cause) {
      throw fsError(path, "read", cause);
    }
    if (bytesRead === 0) {
      throw new OllmError("IO_ERROR", `Unexpected end of file in ${path} at byte ${position + done}`, {
        hint: "The file was truncated or changed after it was opened.",
      });
    }
    done += bytesRead;
  }
}

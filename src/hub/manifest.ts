import { open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { OllmError } from "../errors.js";
import { isSafeRelativePath } from "./select.js";

/** The manifest's file name inside a materialized model directory; present only when it is complete. */
export const MANIFEST_NAME = "ollm-manifest.json";

const ManifestFileSchema = z.object({
  path: z.string().refine(isSafeRelativePath, "unsafe path"),
  size: z.number().int().nonnegative(),
  /** sha256 of the content (for LFS files this is the hub's LFS oid); always set in manifests we write. */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** The git blob id the hub lists for the file (non-LFS files are verified against it). */
  oid: z.string().optional(),
  lfs: z.boolean(),
  /** mtime when verified: an unchanged size + mtime lets a later run skip rehashing. */
  mtimeMs: z.number().optional(),
});

const ManifestSchema = z.object({
  format: z.literal(1),
  repo: z.string(),
  /** The revision asked for (branch, tag, commit or refs/pr/N). */
  revision: z.string(),
  /** The commit it resolved to. */
  commit: z.string(),
  endpoint: z.string(),
  createdAt: z.string(),
  files: z.array(ManifestFileSchema),
});

export type ManifestFile = z.infer<typeof ManifestFileSchema>;
export type Manifest = z.infer<typeof ManifestSchema>;

/** The manifest of `dir`, or undefined when there is none (or it is unreadable, which counts as none). */
export async function readManifest(dir: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_NAME), "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = ManifestSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Flushes a directory entry change (rename) to disk; ignored where directories cannot be opened. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // Windows and some file systems cannot fsync a directory; the rename is still atomic.
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** Writes the manifest atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  const final = join(dir, MANIFEST_NAME);
  const tmp = `${final}.${process.pid}.tmp`;
  try {
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, final);
    await fsyncDir(dir);
  } catch (error) {
    await rm(tmp, { force: true });
    throw new OllmError("IO_ERROR", `cannot write ${final}: ${(error as Error).message}`, { cause: error });
  }
}

/** Removes the manifest first whenever a directory is about to change, so a crash never leaves a stale one. */
export async function removeManifest(dir: string): Promise<void> {
  await rm(join(dir, MANIFEST_NAME), { force: true });
  await fsyncDir(dir);
}

/** True when every file of the manifest exists in `dir` with its recorded size (no hashing). */
export async function manifestFilesPresent(dir: string, manifest: Manifest): Promise<boolean> {
  for (const file of manifest.files) {
    try {
      const s = await stat(join(dir, file.path));
      if (!s.isFile() || s.size !== file.size) return false;
    } catch {
      return false;
    }
  }
  return true;
}

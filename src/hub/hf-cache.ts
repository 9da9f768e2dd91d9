import { lstat, readdir, readFile, readlink, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { RemoteFile } from "./api.js";
import { hashFile } from "./download.js";
import type { Manifest, ManifestFile } from "./manifest.js";
import { isCommitHash } from "./reference.js";
import { SAFETENSORS_INDEX, selectFiles, shardsFromIndex } from "./select.js";

/**
 * Read-only access to the standard Hugging Face cache (`~/.cache/huggingface/hub`), as huggingface_hub
 * lays it out: `models--org--name/refs/<revision>` holds a commit, `snapshots/<commit>/<file>` are
 * symlinks to `blobs/<etag>` (the sha256 for LFS files, the git blob id for the others).
 */
export function hfCacheRepoDir(hfCacheDir: string, repoId: string): string {
  return join(hfCacheDir, `models--${repoId.split("/").join("--")}`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The snapshot directory of `repoId` at `revision` (default main), if the cache has one. */
export async function hfCacheSnapshot(
  hfCacheDir: string,
  repoId: string,
  revision?: string,
): Promise<{ dir: string; commit: string } | undefined> {
  const repoDir = hfCacheRepoDir(hfCacheDir, repoId);
  const rev = revision ?? "main";
  let commit: string | undefined;
  if (isCommitHash(rev)) commit = rev;
  else {
    try {
      commit = (await readFile(join(repoDir, "refs", ...rev.split("/")), "utf8")).trim();
    } catch {
      commit = undefined;
    }
  }
  if (!commit || !isCommitHash(commit)) return undefined;
  const dir = join(repoDir, "snapshots", commit);
  try {
    if (!(await stat(dir)).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  return { dir, commit };
}

/** The blob name a snapshot entry points to (its etag), when it is a symlink. */
async function blobName(path: string): Promise<string | undefined> {
  try {
    if (!(await lstat(path)).isSymbolicLink()) return undefined;
    return basename(await readlink(path));
  } catch {
    return undefined;
  }
}

/** True when every remote file is in the snapshot with its size, and its blob name matches its hash. */
export async function snapshotHasFiles(dir: string, files: RemoteFile[]): Promise<boolean> {
  for (const f of files) {
    const path = join(dir, f.path);
    try {
      const s = await stat(path);
      if (!s.isFile() || s.size !== f.size) return false;
    } catch {
      return false;
    }
    const blob = await blobName(path);
    const expected = f.sha256 ?? f.oid;
    if (blob !== undefined && expected !== undefined && blob !== expected) return false;
  }
  return true;
}

async function listSnapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir)) {
    if (await isFile(join(dir, name))) out.push(name);
  }
  try {
    for (const name of await readdir(join(dir, "additional_chat_templates")))
      out.push(`additional_chat_templates/${name}`);
  } catch {
    // none
  }
  return out;
}

/**
 * The files a local directory (HF snapshot or any model dir) offers for running, when it is complete
 * enough to run: config.json and every weight file (all shards of the index). Undefined otherwise.
 */
export async function runnableFiles(dir: string): Promise<string[] | undefined> {
  let selection: ReturnType<typeof selectFiles>;
  try {
    selection = selectFiles(await listSnapshot(dir));
  } catch {
    return undefined;
  }
  const files = [...selection.files];
  if (selection.index) {
    try {
      const shards = shardsFromIndex(JSON.parse(await readFile(join(dir, SAFETENSORS_INDEX), "utf8")));
      for (const shard of shards) {
        if (!(await isFile(join(dir, shard)))) return undefined;
        files.push(shard);
      }
    } catch {
      return undefined;
    }
  }
  return files;
}

/** A manifest describing a directory we did not write (an HF snapshot): sizes, and hashes where known. */
export async function describeDir(
  dir: string,
  files: string[],
  info: { repo: string; revision: string; commit: string; endpoint: string },
): Promise<Manifest> {
  const entries: ManifestFile[] = [];
  for (const path of files) {
    const full = join(dir, path);
    const s = await stat(full);
    const blob = await blobName(full);
    const entry: ManifestFile = { path, size: s.size, lfs: false };
    if (blob && /^[0-9a-f]{64}$/.test(blob)) {
      entry.sha256 = blob;
      entry.lfs = true;
    } else {
      if (blob && /^[0-9a-f]{40}$/.test(blob)) entry.oid = blob;
      // Copies without symlinks (Windows): hash small files; big ones keep only their size.
      else if (s.size <= 64 << 20) entry.sha256 = (await hashFile(full)).sha256;
    }
    entries.push(entry);
  }
  return { format: 1, ...info, createdAt: new Date().toISOString(), files: entries };
}

import { join } from "node:path";
import { describeDir, hfCacheSnapshot, runnableFiles } from "./hf-cache.js";
import { type Manifest, manifestFilesPresent, readManifest } from "./manifest.js";
import { localDirName, parseRepoReference } from "./reference.js";
import { DEFAULT_ENDPOINT } from "./settings.js";

export interface LocalLookupOptions {
  modelsDir: string;
  revision?: string;
  /** The standard HF cache to look in as well (read in place, never copied). */
  hfCacheDir?: string;
  /** The directory name under modelsDir, when the model was materialized under an alias. */
  localName?: string;
  endpoint?: string;
}

export interface LocalModel {
  dir: string;
  manifest: Manifest;
  source: "models-dir" | "hf-cache";
}

function revisionMatches(manifest: Manifest, revision: string | undefined): boolean {
  if (revision === undefined) return true;
  if (manifest.revision === revision || manifest.commit === revision) return true;
  return /^[0-9a-f]{7,40}$/.test(revision) && manifest.commit.startsWith(revision);
}

/** A complete materialization in `dir` for the repo and revision: manifest present, every file in place. */
export async function completeCopyIn(
  dir: string,
  repoId: string,
  revision?: string,
): Promise<Manifest | undefined> {
  const manifest = await readManifest(dir);
  if (!manifest || manifest.repo !== repoId || !revisionMatches(manifest, revision)) return undefined;
  return (await manifestFilesPresent(dir, manifest)) ? manifest : undefined;
}

/**
 * A local copy of `ref` (org/name[@rev]) that can run without the network: first our layout under
 * `modelsDir` (complete manifest, files present with their sizes), then the HF cache snapshot.
 */
export async function findLocalModel(ref: string, opts: LocalLookupOptions): Promise<LocalModel | undefined> {
  const { repoId, revision } = parseRepoReference(ref, opts.revision);
  const candidates = [join(opts.modelsDir, opts.localName ?? localDirName(repoId, revision))];
  // A commit hash may be what the default directory already holds.
  if (revision !== undefined && opts.localName === undefined)
    candidates.push(join(opts.modelsDir, localDirName(repoId)));
  for (const dir of candidates) {
    const manifest = await completeCopyIn(dir, repoId, revision);
    if (manifest) return { dir, manifest, source: "models-dir" };
  }
  if (opts.hfCacheDir) {
    const snapshot = await hfCacheSnapshot(opts.hfCacheDir, repoId, revision);
    if (snapshot) {
      const files = await runnableFiles(snapshot.dir);
      if (files) {
        const manifest = await describeDir(snapshot.dir, files, {
          repo: repoId,
          revision: revision ?? "main",
          commit: snapshot.commit,
          endpoint: opts.endpoint ?? DEFAULT_ENDPOINT,
        });
        return { dir: snapshot.dir, manifest, source: "hf-cache" };
      }
    }
  }
  return undefined;
}

/** The directory of a local copy of `ref` (our layout or the HF cache snapshot), or undefined. */
export async function findLocalCopy(ref: string, opts: LocalLookupOptions): Promise<string | undefined> {
  return (await findLocalModel(ref, opts))?.dir;
}

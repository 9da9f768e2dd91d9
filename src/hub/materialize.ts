import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { OllmError } from "../errors.js";
import { fetchRepoMetadata, HubError, type RemoteFile, type RepoMetadata, resolveUrl } from "./api.js";
import { ensureFreeSpace, lockDir } from "./disk.js";
import {
  type DownloadContext,
  type DownloadTarget,
  downloadVerified,
  hashFile,
  resumableBytes,
} from "./download.js";
import { hfCacheSnapshot, snapshotHasFiles } from "./hf-cache.js";
import { findLocalModel, type LocalModel } from "./local.js";
import { type Manifest, type ManifestFile, readManifest, removeManifest, writeManifest } from "./manifest.js";
import { type DownloadProgress, ProgressTracker } from "./progress.js";
import { localDirName, parseRepoReference } from "./reference.js";
import { isSafeRelativePath, selectFiles, shardsFromIndex } from "./select.js";
import { DEFAULT_ENDPOINT, normalizeEndpoint } from "./settings.js";

export interface MaterializeOptions {
  /** Where models live: `<modelsDir>/<localName or org--name[@rev]>/`. */
  modelsDir: string;
  /** Branch, tag, commit or refs/pr/N (default main); wins over an `@rev` suffix of the reference. */
  revision?: string;
  token?: string;
  /** Hub base URL (default https://huggingface.co). */
  endpoint?: string;
  /** Never touch the network: use a complete local copy or fail with OFFLINE. */
  offline?: boolean;
  /** The standard HF cache, read in place (never copied) when it already holds the model. */
  hfCacheDir?: string;
  /** Directory name under modelsDir instead of org--name (an alias). */
  localName?: string;
  /** Files downloaded at once (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (event: DownloadProgress) => void;
  /** "fast" (default) trusts files whose size and mtime match the manifest; "full" rehashes every file. */
  verify?: "fast" | "full";
  /** Retries per file after the first attempt (default 5). */
  retries?: number;
  /** Base delay between retries, multiplied by the attempt number (default 500 ms). */
  retryDelayMs?: number;
  /** Drop and resume a transfer that receives nothing for this long (default 60 s). */
  stallTimeoutMs?: number;
  /** Free bytes of the disk holding a directory (tests replace it). */
  freeBytes?: (dir: string) => Promise<number>;
}

export interface MaterializeResult {
  repoId: string;
  revision: string;
  commit: string;
  /** The directory to load: ours under modelsDir, or an HF cache snapshot. */
  dir: string;
  manifest: Manifest;
  /** Repository paths fetched by this call. */
  downloaded: string[];
  /** Repository paths already in place and verified. */
  reused: string[];
  source: "hub" | "models-dir" | "hf-cache";
  /** Set when the hub could not be reached and a local copy was used instead. */
  warning?: string;
}

/**
 * Present while a directory is being changed (and after a crash in the middle): the `.partial` suffix
 * tells anything that scans model directories that this one is not complete. Only the manifest says it is.
 */
export const INCOMPLETE_MARKER = ".ollm-incomplete.partial";

const DEFAULTS = { concurrency: 4, retries: 5, retryDelayMs: 500, stallTimeoutMs: 60_000 };

// Calls for the same directory in one process run one after the other (the second then reuses).
const inFlight = new Map<string, Promise<unknown>>();

async function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = inFlight.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => {});
  inFlight.set(key, tail);
  try {
    return await run;
  } finally {
    if (inFlight.get(key) === tail) inFlight.delete(key);
  }
}

function fromLocal(local: LocalModel, warning?: string): MaterializeResult {
  const result: MaterializeResult = {
    repoId: local.manifest.repo,
    revision: local.manifest.revision,
    commit: local.manifest.commit,
    dir: local.dir,
    manifest: local.manifest,
    downloaded: [],
    reused: local.manifest.files.map((f) => f.path),
    source: local.source,
  };
  if (warning) result.warning = warning;
  return result;
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure stops the rest and is thrown. */
async function pool<T>(
  items: T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  const combined = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++];
      try {
        await fn(item, combined);
      } catch (error) {
        if (failure === undefined) failure = { error };
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
}

function matchesRemote(file: RemoteFile, sha256: string, gitOid: string | undefined): boolean {
  if (file.sha256 !== undefined) return sha256 === file.sha256;
  if (file.oid !== undefined && gitOid !== undefined) return gitOid === file.oid;
  return true;
}

function manifestEntry(file: RemoteFile, sha256: string, mtimeMs: number): ManifestFile {
  const entry: ManifestFile = {
    path: file.path,
    size: file.size,
    sha256,
    lfs: file.sha256 !== undefined,
    mtimeMs,
  };
  if (file.oid !== undefined) entry.oid = file.oid;
  return entry;
}

/** A manifest for files the hub describes, without reading them (HF cache snapshots verified by blob name). */
function manifestFromRemote(meta: RepoMetadata, files: RemoteFile[], endpoint: string): Manifest {
  return {
    format: 1,
    repo: meta.repoId,
    revision: meta.revision,
    commit: meta.commit,
    endpoint,
    createdAt: new Date().toISOString(),
    files: files.map((f) => {
      const entry: ManifestFile = { path: f.path, size: f.size, lfs: f.sha256 !== undefined };
      if (f.sha256) entry.sha256 = f.sha256;
      if (f.oid) entry.oid = f.oid;
      return entry;
    }),
  };
}

/** Metadata, retried on the hub's transient answers (429, 5xx); an unreachable hub fails at once. */
async function fetchMetadataWithRetries(
  repoId: string,
  revision: string | undefined,
  endpoint: string,
  opts: MaterializeOptions,
): Promise<RepoMetadata> {
  const attempts = Math.min(opts.retries ?? DEFAULTS.retries, 2) + 1;
  for (let n = 1; ; n++) {
    try {
      return await fetchRepoMetadata(repoId, revision, { endpoint, token: opts.token, signal: opts.signal });
    } catch (error) {
      if (!(error instanceof HubError) || !error.retryable || error.unreachable || n >= attempts) throw error;
      await sleep((opts.retryDelayMs ?? DEFAULTS.retryDelayMs) * n, undefined, { signal: opts.signal }).catch(
        () => {},
      );
    }
  }
}

/**
 * Makes `ref` (org/name[@rev]) runnable from local disk: resolves the revision on the hub, fetches only
 * the files running needs (safetensors only), resumes partial downloads, verifies size and hash of
 * every file, and writes a manifest once everything is in place. Offline (or with the hub unreachable)
 * it uses a complete local copy: ours under modelsDir or the standard HF cache.
 */
export async function materialize(ref: string, opts: MaterializeOptions): Promise<MaterializeResult> {
  const { repoId, revision } = parseRepoReference(ref, opts.revision);
  const endpoint = normalizeEndpoint(opts.endpoint ?? DEFAULT_ENDPOINT);
  const tracker = new ProgressTracker(repoId, opts.onProgress);
  const display = revision ? `${repoId}@${revision}` : repoId;
  const dir = join(opts.modelsDir, opts.localName ?? localDirName(repoId, revision));
  const lookup = {
    modelsDir: opts.modelsDir,
    revision,
    hfCacheDir: opts.hfCacheDir,
    localName: opts.localName,
    endpoint,
  };

  if (opts.offline) {
    const local = await findLocalModel(repoId, lookup);
    if (!local)
      throw new OllmError("OFFLINE", `${display} is not available locally and offline mode is on`, {
        hint:
          `download it while online (ollm models download ${display}), or unset HF_HUB_OFFLINE / drop --offline; ` +
          `looked in ${dir}${opts.hfCacheDir ? ` and ${opts.hfCacheDir}` : ""}`,
      });
    tracker.event("done");
    return fromLocal(local);
  }

  tracker.event("resolve");
  let meta: RepoMetadata;
  try {
    meta = await fetchMetadataWithRetries(repoId, revision, endpoint, opts);
  } catch (error) {
    if (error instanceof HubError && error.unreachable) {
      const local = await findLocalModel(repoId, lookup);
      if (local) {
        tracker.event("done");
        return fromLocal(local, `${error.message}; using the local copy in ${local.dir}`);
      }
      throw new HubError("IO_ERROR", `${error.message}, and there is no local copy of ${display}`, {
        cause: error,
        unreachable: true,
        hint: error.hint,
      });
    }
    throw error;
  }
  return serialized(resolve(dir), () => materializeOnline(meta, dir, endpoint, tracker, opts));
}

async function materializeOnline(
  meta: RepoMetadata,
  dir: string,
  endpoint: string,
  tracker: ProgressTracker,
  opts: MaterializeOptions,
): Promise<MaterializeResult> {
  const { repoId } = meta;
  const byPath = new Map<string, RemoteFile>();
  for (const f of meta.files) if (isSafeRelativePath(f.path)) byPath.set(f.path, f);
  const selection = selectFiles(byPath.keys(), repoId);
  const remote = (path: string): RemoteFile => {
    const f = byPath.get(path);
    if (!f)
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `${repoId}@${meta.revision}: ${path} is named by the checkpoint index but is not in the repository`,
      );
    return f;
  };
  const ctx: DownloadContext = {
    repoId,
    revision: meta.commit,
    endpoint,
    token: opts.token,
    signal: opts.signal ?? new AbortController().signal,
    retries: opts.retries ?? DEFAULTS.retries,
    retryDelayMs: opts.retryDelayMs ?? DEFAULTS.retryDelayMs,
    stallTimeoutMs: opts.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs,
    onBytes: (path, bytes, delta) => tracker.update(path, bytes, delta),
  };
  const target = (f: RemoteFile): DownloadTarget => {
    const t: DownloadTarget = {
      path: f.path,
      url: resolveUrl(endpoint, repoId, meta.commit, f.path),
      dest: join(dir, f.path),
      size: f.size,
    };
    if (f.sha256) t.sha256 = f.sha256;
    else if (f.oid) t.gitOid = f.oid;
    return t;
  };

  const release = await lockDir(dir);
  try {
    const previous = await readManifest(dir);
    const snapshot = opts.hfCacheDir
      ? await hfCacheSnapshot(opts.hfCacheDir, repoId, meta.commit)
      : undefined;
    const verified = new Map<string, string>(); // path → sha256 of files in place in `dir`
    const downloaded: string[] = [];
    let manifestRemoved = false;
    const marker = join(dir, INCOMPLETE_MARKER);
    const beforeWriting = async () => {
      if (manifestRemoved) return;
      manifestRemoved = true;
      if (previous) await removeManifest(dir);
      await writeFile(marker, `${JSON.stringify({ repo: repoId, commit: meta.commit, pid: process.pid })}\n`);
    };

    /** Is `f` already in `dir` with the right content? Cheap when the manifest vouches for it. */
    const inPlace = async (f: RemoteFile): Promise<boolean> => {
      let s: Awaited<ReturnType<typeof stat>>;
      try {
        s = await stat(join(dir, f.path));
      } catch {
        return false;
      }
      if (!s.isFile() || s.size !== f.size) return false;
      const old = previous?.files.find((e) => e.path === f.path);
      if (
        opts.verify !== "full" &&
        old?.sha256 !== undefined &&
        old.size === f.size &&
        old.mtimeMs === s.mtimeMs &&
        (f.sha256 !== undefined ? old.sha256 === f.sha256 : old.oid === f.oid)
      ) {
        verified.set(f.path, old.sha256);
        return true;
      }
      tracker.event("check", f.path);
      const h = await hashFile(join(dir, f.path), ctx.signal);
      if (!matchesRemote(f, h.sha256, h.gitOid)) return false;
      verified.set(f.path, h.sha256);
      return true;
    };

    const fetchOne = async (f: RemoteFile, signal: AbortSignal) => {
      await beforeWriting();
      const result = await downloadVerified(target(f), { ...ctx, signal });
      verified.set(f.path, result.sha256);
      downloaded.push(f.path);
      tracker.fileFinished(f.path, f.size);
    };

    // The shard list comes from the index: read it from our copy, the HF cache, or fetch it first.
    const needed = selection.files.map(remote);
    if (selection.index) {
      const indexFile = remote(selection.index);
      let indexPath: string;
      if (await inPlace(indexFile)) indexPath = join(dir, indexFile.path);
      else if (snapshot && (await snapshotHasFiles(snapshot.dir, [indexFile])))
        indexPath = join(snapshot.dir, indexFile.path);
      else {
        tracker.setTotals(indexFile.size, 1);
        await fetchOne(indexFile, ctx.signal);
        indexPath = join(dir, indexFile.path);
      }
      let index: unknown;
      try {
        index = JSON.parse(await readFile(indexPath, "utf8"));
      } catch (error) {
        throw new OllmError("INVALID_CHECKPOINT", `${repoId}: ${selection.index} is not valid JSON`, {
          cause: error,
        });
      }
      needed.push(...shardsFromIndex(index, `${repoId}/${selection.index}`).map(remote));
    }

    // An HF cache snapshot with every needed file (checked by blob name = hash) is used in place.
    // (Our own copy of the same commit wins: it is verified and may be an alias the user chose.)
    if (
      downloaded.length === 0 &&
      previous?.commit !== meta.commit &&
      snapshot &&
      (await snapshotHasFiles(snapshot.dir, needed))
    ) {
      tracker.event("done");
      return {
        repoId,
        revision: meta.revision,
        commit: meta.commit,
        dir: snapshot.dir,
        manifest: manifestFromRemote(meta, needed, endpoint),
        downloaded: [],
        reused: needed.map((f) => f.path),
        source: "hf-cache",
      };
    }

    const toFetch: RemoteFile[] = [];
    for (const f of needed) {
      if (verified.has(f.path)) continue;
      if (!(await inPlace(f))) toFetch.push(f);
    }
    const reused = needed
      .filter((f) => !toFetch.includes(f) && !downloaded.includes(f.path))
      .map((f) => f.path);

    if (toFetch.length > 0) {
      let remaining = 0;
      for (const f of toFetch) remaining += f.size - (await resumableBytes(target(f)));
      await ensureFreeSpace(dir, remaining, opts.freeBytes);
      const alreadyDone = needed.filter((f) => downloaded.includes(f.path));
      tracker.setTotals(
        [...alreadyDone, ...toFetch].reduce((sum, f) => sum + f.size, 0),
        alreadyDone.length + toFetch.length,
      );
      tracker.event("download");
      // Small files first, then the weights in name order.
      const order = [...toFetch].sort(
        (a, b) => Number(a.path.endsWith(".safetensors")) - Number(b.path.endsWith(".safetensors")),
      );
      await pool(order, opts.concurrency ?? DEFAULTS.concurrency, opts.signal, fetchOne);
    }

    const files: ManifestFile[] = [];
    for (const f of needed) {
      const sha256 = verified.get(f.path);
      if (sha256 === undefined)
        throw new OllmError("INTERNAL", `${f.path} was neither reused nor downloaded`);
      files.push(manifestEntry(f, sha256, (await stat(join(dir, f.path))).mtimeMs));
    }
    const manifest: Manifest = {
      format: 1,
      repo: repoId,
      revision: meta.revision,
      commit: meta.commit,
      endpoint,
      createdAt: new Date().toISOString(),
      files,
    };
    const unchanged =
      previous !== undefined &&
      !manifestRemoved &&
      previous.commit === meta.commit &&
      previous.revision === meta.revision &&
      JSON.stringify(previous.files) === JSON.stringify(files);
    if (!unchanged) await writeManifest(dir, manifest);
    await rm(marker, { force: true });
    // Files an earlier revision needed and this one does not.
    const keep = new Set(files.map((f) => f.path));
    for (const old of previous?.files ?? [])
      if (!keep.has(old.path)) await rm(join(dir, old.path), { force: true });
    tracker.event("done");
    return {
      repoId,
      revision: meta.revision,
      commit: meta.commit,
      dir,
      manifest: unchanged && previous ? previous : manifest,
      downloaded,
      reused,
      source: downloaded.length > 0 ? "hub" : "models-dir",
    };
  } finally {
    await release();
  }
}

/** The materializer with fixed settings (from hubSettingsFromEnv and the runtime config), for injection. */
export interface HubMaterializer {
  materialize(ref: string, opts?: Partial<MaterializeOptions>): Promise<MaterializeResult>;
  findLocalCopy(ref: string, opts?: { revision?: string; localName?: string }): Promise<string | undefined>;
}

export function createMaterializer(defaults: MaterializeOptions): HubMaterializer {
  return {
    materialize: (ref, opts = {}) => materialize(ref, { ...defaults, ...opts }),
    findLocalCopy: async (ref, opts = {}) =>
      (
        await findLocalModel(ref, {
          modelsDir: defaults.modelsDir,
          hfCacheDir: defaults.hfCacheDir,
          endpoint: defaults.endpoint,
          ...opts,
        })
      )?.dir,
  };
}

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { OllmError } from "../errors.js";
import { cancelledError, HubError, hubHttpError, isAbort, originOf, unreachableError } from "./api.js";
import { fsyncDir } from "./manifest.js";

/** One file to fetch, with what its bytes must be. */
export interface DownloadTarget {
  /** Path inside the repository (for messages and progress). */
  path: string;
  url: string;
  /** Absolute final path; bytes go to `<dest>.partial` until verified. */
  dest: string;
  size: number;
  /** Expected sha256 (LFS oid); checked when set. */
  sha256?: string;
  /** Expected git blob id (non-LFS files); checked when set. */
  gitOid?: string;
}

export interface DownloadContext {
  repoId: string;
  revision: string;
  endpoint: string;
  token: string | undefined;
  signal: AbortSignal;
  /** Attempts per file after the first (network drops, stalls, 5xx, corrupt bytes). */
  retries: number;
  retryDelayMs: number;
  /** An attempt that receives nothing for this long is dropped and resumed. */
  stallTimeoutMs: number;
  /** Called as bytes land: the file's bytes in place, and how many of them just came over the network. */
  onBytes: (path: string, bytesInPlace: number, networkDelta: number) => void;
}

export interface DownloadResult {
  sha256: string;
  /** Offset the last attempt resumed from (0 when it started from scratch). */
  resumedFrom: number;
  attempts: number;
}

export const PARTIAL_SUFFIX = ".partial";
const META_SUFFIX = ".partial.json";
const MAX_REDIRECTS = 10;

/** The identity of the expected content: a partial file only resumes towards the same content. */
function contentKey(t: DownloadTarget): string {
  return `${t.sha256 ?? ""}:${t.gitOid ?? ""}:${t.size}`;
}

interface Hashers {
  sha256: Hash;
  git: Hash | undefined;
}

function newHashers(t: DownloadTarget): Hashers {
  return {
    sha256: createHash("sha256"),
    git: t.gitOid ? createHash("sha1").update(`blob ${t.size}\0`) : undefined,
  };
}

/** Hashes the first `length` bytes of a file into `h`. */
async function hashPrefix(path: string, length: number, h: Hashers, signal: AbortSignal): Promise<void> {
  if (length === 0) return;
  const stream = createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) {
    h.sha256.update(chunk as Buffer);
    h.git?.update(chunk as Buffer);
  }
}

/** sha256 (and git blob id) of a whole file. */
export async function hashFile(
  path: string,
  signal?: AbortSignal,
  onChunk?: (bytes: number) => void,
): Promise<{ sha256: string; gitOid: string; size: number }> {
  const { size } = await stat(path);
  const sha256 = createHash("sha256");
  const git = createHash("sha1").update(`blob ${size}\0`);
  let done = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) {
    sha256.update(chunk as Buffer);
    git.update(chunk as Buffer);
    done += (chunk as Buffer).byteLength;
    onChunk?.(done);
  }
  return { sha256: sha256.digest("hex"), gitOid: git.digest("hex"), size };
}

async function partialState(t: DownloadTarget): Promise<number> {
  const partial = t.dest + PARTIAL_SUFFIX;
  const meta = t.dest + META_SUFFIX;
  try {
    const [key, s] = await Promise.all([readFile(meta, "utf8"), stat(partial)]);
    if (key.trim() === contentKey(t) && s.isFile() && s.size <= t.size) return s.size;
  } catch {
    // no partial (or no meta): start over
  }
  return 0;
}

/** Bytes of `<dest>.partial` a download of `t` would resume from (0 when none or not for this content). */
export async function resumableBytes(t: DownloadTarget): Promise<number> {
  return partialState(t);
}

async function resetPartial(t: DownloadTarget): Promise<void> {
  await mkdir(dirname(t.dest), { recursive: true });
  await rm(t.dest + PARTIAL_SUFFIX, { force: true });
  await writeFile(t.dest + META_SUFFIX, contentKey(t));
}

export async function removePartial(dest: string): Promise<void> {
  await rm(dest + PARTIAL_SUFFIX, { force: true });
  await rm(dest + META_SUFFIX, { force: true });
}

/** GET with manual redirects: the token goes to the hub's origin only, never to a CDN it redirects to. */
async function httpGet(
  url: string,
  start: number,
  ctx: DownloadContext,
  signal: AbortSignal,
): Promise<Response> {
  const hubOrigin = originOf(ctx.endpoint);
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (start > 0) headers.range = `bytes=${start}-`;
    if (ctx.token && originOf(current) === hubOrigin) headers.authorization = `Bearer ${ctx.token}`;
    let res: Response;
    try {
      res = await fetch(current, { headers, redirect: "manual", signal });
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      throw unreachableError(ctx.endpoint, current, error);
    }
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel().catch(() => {});
      current = new URL(location, current).href;
      continue;
    }
    return res;
  }
  throw new HubError("IO_ERROR", `too many redirects fetching ${url}`, { retryable: true });
}

class RestartFromZero extends Error {}

/** One attempt: resume (or start) the partial file and stream the rest into it, hashing as it goes. */
async function attempt(t: DownloadTarget, ctx: DownloadContext, signal: AbortSignal, stall: () => void) {
  const partial = t.dest + PARTIAL_SUFFIX;
  let offset = await partialState(t);
  if (offset === 0) await resetPartial(t);
  let h = newHashers(t);
  await hashPrefix(partial, offset, h, signal);
  let resumedFrom = offset;
  ctx.onBytes(t.path, offset, 0);

  if (offset < t.size || t.size === 0) {
    stall();
    const res = await httpGet(t.url, offset, ctx, signal);
    if (res.status === 416) {
      // The server will not serve from this offset: start the file over.
      await res.body?.cancel().catch(() => {});
      await resetPartial(t);
      throw new RestartFromZero(`the server refused to resume ${t.path} at byte ${offset}`);
    }
    if (!res.ok)
      throw await hubHttpError(res, {
        endpoint: ctx.endpoint,
        repoId: ctx.repoId,
        revision: ctx.revision,
        hasToken: !!ctx.token,
        file: t.path,
      });
    if (res.status === 206) {
      const range = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
      if (!range || Number(range[1]) !== offset) {
        await res.body?.cancel().catch(() => {});
        await resetPartial(t);
        throw new RestartFromZero(`the server answered ${t.path} from the wrong offset`);
      }
    } else if (offset > 0) {
      // 200 to a Range request: the server ignored it; this body is the whole file.
      offset = 0;
      resumedFrom = 0;
      h = newHashers(t);
      ctx.onBytes(t.path, 0, 0);
    }
    const handle = await open(partial, offset > 0 ? "r+" : "w");
    try {
      let pos = offset;
      if (res.body) {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          stall();
          if (pos + chunk.byteLength > t.size)
            throw new HubError(
              "INTEGRITY_ERROR",
              `${t.path}: the server sent more than the ${t.size} bytes expected`,
              {
                retryable: true,
              },
            );
          h.sha256.update(chunk);
          h.git?.update(chunk);
          let written = 0;
          while (written < chunk.byteLength) {
            const { bytesWritten } = await handle.write(
              chunk,
              written,
              chunk.byteLength - written,
              pos + written,
            );
            written += bytesWritten;
          }
          pos += chunk.byteLength;
          ctx.onBytes(t.path, pos, chunk.byteLength);
        }
      }
      if (pos < t.size)
        throw new HubError("IO_ERROR", `${t.path}: the connection ended after ${pos} of ${t.size} bytes`, {
          retryable: true,
        });
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  const sha256 = h.sha256.digest("hex");
  const gitOid = h.git?.digest("hex");
  const bad =
    (t.sha256 !== undefined && sha256 !== t.sha256) || (t.gitOid !== undefined && gitOid !== t.gitOid)
      ? `sha256 ${sha256}${gitOid ? ` / git ${gitOid}` : ""}, expected ${t.sha256 ?? t.gitOid}`
      : undefined;
  if (bad) {
    await removePartial(t.dest);
    throw new HubError("INTEGRITY_ERROR", `${t.path} failed verification (${bad})`, { retryable: true });
  }
  await rename(partial, t.dest);
  await rm(t.dest + META_SUFFIX, { force: true });
  await fsyncDir(dirname(t.dest));
  return { sha256, resumedFrom };
}

/**
 * Downloads one file into `<dest>.partial`, resuming with HTTP Range from what is already there,
 * verifies size and hash, fsyncs, and only then renames it to `dest`. Network drops, stalls and
 * corrupt bytes are retried (`ctx.retries` times); auth and not-found errors are not.
 */
export async function downloadVerified(t: DownloadTarget, ctx: DownloadContext): Promise<DownloadResult> {
  let lastError: unknown;
  for (let n = 0; n <= ctx.retries; n++) {
    if (ctx.signal.aborted) throw cancelledError(ctx.signal.reason);
    const local = new AbortController();
    const signal = AbortSignal.any([ctx.signal, local.signal]);
    let timer: NodeJS.Timeout | undefined;
    let stalled = false;
    const stall = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        local.abort();
      }, ctx.stallTimeoutMs);
    };
    try {
      const { sha256, resumedFrom } = await attempt(t, ctx, signal, stall);
      return { sha256, resumedFrom, attempts: n + 1 };
    } catch (error) {
      if (ctx.signal.aborted) throw cancelledError(error);
      if (stalled)
        lastError = new HubError("IO_ERROR", `${t.path}: no data for ${ctx.stallTimeoutMs} ms`, {
          retryable: true,
        });
      else if (error instanceof RestartFromZero)
        lastError = new HubError("IO_ERROR", error.message, { retryable: true });
      else if (error instanceof HubError) {
        if (!error.retryable) throw error;
        lastError = error;
      } else if (error instanceof OllmError) throw error;
      else if ((error as NodeJS.ErrnoException).code && (error as NodeJS.ErrnoException).syscall)
        throw new OllmError("IO_ERROR", `cannot write ${t.dest}: ${(error as Error).message}`, {
          cause: error,
        });
      // Anything else (a socket reset surfacing as a stream error) is a network failure: retry.
      else
        lastError = new HubError("IO_ERROR", `${t.path}: ${(error as Error).message}`, {
          retryable: true,
          cause: error,
        });
    } finally {
      clearTimeout(timer);
    }
    if (n < ctx.retries)
      await sleep(ctx.retryDelayMs * (n + 1), undefined, { signal: ctx.signal }).catch(() => {});
  }
  throw lastError;
}

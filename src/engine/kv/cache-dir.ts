import { createHash, randomUUID } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Where disk-backed KV caches go when no cache dir is configured. */
export function defaultKvCacheRoot(): string {
  return join(tmpdir(), "ollm-kv-cache");
}

/** A short, file-name-safe key of a model (its resolved directory), part of every cache directory name. */
export function modelCacheKey(modelDir: string): string {
  return createHash("sha256").update(resolve(modelDir)).digest("hex").slice(0, 12);
}

const live = new Set<string>();
let exitHooked = false;

function removeLiveOnExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const dir of live) rmSync(dir, { recursive: true, force: true });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Writes a file so that readers see the old content or the new one, never a torn one (temp + rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${randomUUID().slice(0, 8)}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

const OWNER = "owner.json";
const PREFIX = "kv-";

/**
 * Removes cache directories under `root` left by processes that died without cleaning up (their
 * owner.json names a pid that no longer runs). Returns how many it removed.
 */
export function sweepStaleKvDirs(root: string): number {
  let removed = 0;
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return 0;
  }
  for (const name of entries) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(root, name);
    if (live.has(dir)) continue;
    let stale: boolean;
    try {
      const owner = JSON.parse(readFileSync(join(dir, OWNER), "utf8")) as { pid?: unknown };
      stale = typeof owner.pid !== "number" || (owner.pid !== process.pid && !processAlive(owner.pid));
    } catch {
      // No readable owner: a directory being created right now, or debris; only old debris goes.
      try {
        stale = Date.now() - statSync(dir).mtimeMs > 24 * 3600 * 1000;
      } catch {
        stale = false;
      }
    }
    if (stale) {
      rmSync(dir, { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

/**
 * The private directory of one KV store: `<root>/kv-<modelKey>-<random>/`, created on first use with an
 * owner.json (pid, model, creation time), removed by `remove()` or when the process exits. Nothing else
 * ever opens it, so caches are never mistaken across models or sequences.
 */
export class KvCacheDir {
  private dir: string | undefined;

  constructor(
    readonly root: string,
    readonly modelKey: string,
  ) {}

  /** The directory, created (after sweeping stale ones) the first time it is asked for. */
  get path(): string {
    if (this.dir) return this.dir;
    mkdirSync(this.root, { recursive: true });
    sweepStaleKvDirs(this.root);
    const key = this.modelKey.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
    const dir = mkdtempSync(join(this.root, `${PREFIX}${key}-`));
    live.add(dir);
    removeLiveOnExit();
    writeFileAtomic(
      join(dir, OWNER),
      `${JSON.stringify({ pid: process.pid, model: this.modelKey, created: new Date().toISOString() })}\n`,
    );
    this.dir = dir;
    return dir;
  }

  get created(): boolean {
    return this.dir !== undefined;
  }

  remove(): void {
    if (!this.dir) return;
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this.dir);
    this.dir = undefined;
  }
}

import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The fixture models (test/fixtures/models). */
export const FIXTURES = join(import.meta.dirname, "..", "fixtures", "models");

export function fixture(name: string): string {
  return join(FIXTURES, name);
}

/** A fresh temp directory; remove it with {@link removeDir}. */
export function tempDir(prefix = "ollm-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/** Copies a fixture model to `dest`, optionally patching config.json or dropping files. */
export async function copyModel(
  name: string,
  dest: string,
  options: { patchConfig?: (config: Record<string, unknown>) => void; drop?: string[] } = {},
): Promise<string> {
  await cp(fixture(name), dest, { recursive: true });
  for (const file of options.drop ?? []) await rm(join(dest, file), { force: true });
  if (options.patchConfig) {
    const path = join(dest, "config.json");
    const config = JSON.parse(await readFile(path, "utf8"));
    options.patchConfig(config);
    await writeFile(path, JSON.stringify(config));
  }
  return dest;
}

/**
 * A repository in the Hugging Face cache layout under `root`: `models--org--name/blobs/<sha256>`,
 * `snapshots/<commit>/<file>` symlinks to the blobs, and `refs/main` holding the commit.
 */
export async function hfCacheRepo(
  root: string,
  repoId: string,
  fixtureName: string,
  commit: string,
): Promise<string> {
  const repoDir = join(root, `models--${repoId.replace("/", "--")}`);
  const snapshot = join(repoDir, "snapshots", commit);
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  await mkdir(join(repoDir, "refs"), { recursive: true });
  await mkdir(snapshot, { recursive: true });
  for (const file of await readdir(fixture(fixtureName))) {
    const bytes = await readFile(join(fixture(fixtureName), file));
    const sha = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(repoDir, "blobs", sha), bytes);
    await symlink(join("..", "..", "blobs", sha), join(snapshot, file));
  }
  await writeFile(join(repoDir, "refs", "main"), commit);
  return snapshot;
}

/** A 40-hex commit id made from a seed. */
export function commitId(seed: string): string {
  return createHash("sha1").update(seed).digest("hex");
}

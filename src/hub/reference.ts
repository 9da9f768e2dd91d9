import { OllmError } from "../errors.js";

/** A hub repository reference: `org/name` or `org/name@revision` (branch, tag, commit or refs/pr/N). */
export interface RepoReference {
  repoId: string;
  revision: string | undefined;
}

// The hub's rule for names: letters, digits, '-', '_', '.', at most 96 characters, no '--' or '..',
// not starting or ending with '-' or '.'. Legacy ids have no namespace ("gpt2").
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}$/;
const REVISION = /^[A-Za-z0-9_.\-/]{1,255}$/;

function validName(part: string): boolean {
  return NAME.test(part) && !part.includes("--") && !part.includes("..") && !/[-.]$/.test(part);
}

export function isValidRepoId(repoId: string): boolean {
  const parts = repoId.split("/");
  return parts.length >= 1 && parts.length <= 2 && parts.every(validName);
}

export function isValidRevision(revision: string): boolean {
  return (
    REVISION.test(revision) &&
    !revision.split("/").some((p) => p === "" || p === "." || p === "..") &&
    !revision.includes("..")
  );
}

/** Parses `org/name[@revision]`; an explicit `revision` argument wins over the `@` suffix. */
export function parseRepoReference(ref: string, revision?: string): RepoReference {
  const at = ref.indexOf("@");
  const repoId = (at >= 0 ? ref.slice(0, at) : ref).trim();
  const suffix = at >= 0 ? ref.slice(at + 1).trim() : undefined;
  const rev = revision ?? (suffix === "" ? undefined : suffix);
  if (!isValidRepoId(repoId))
    throw new OllmError("INVALID_ARGUMENT", `"${ref}" is not a Hugging Face repository id`, {
      hint: "use org/name or org/name@revision, e.g. Qwen/Qwen3-0.6B or Qwen/Qwen3-0.6B@main",
    });
  if (rev !== undefined && !isValidRevision(rev))
    throw new OllmError("INVALID_ARGUMENT", `"${rev}" is not a valid revision for ${repoId}`, {
      hint: "a revision is a branch, a tag, a commit hash or refs/pr/N",
    });
  return { repoId, revision: rev };
}

export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/**
 * The directory name of a repository under `modelsDir`: `org--name` for the default revision,
 * `org--name@rev` for an explicit other one (slashes in the revision become `--`).
 */
export function localDirName(repoId: string, revision?: string): string {
  const base = repoId.split("/").join("--");
  if (revision === undefined || revision === "main") return base;
  return `${base}@${revision.split("/").join("--")}`;
}

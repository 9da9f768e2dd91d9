import { homedir } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { OllmError } from "../errors.js";
import type { Catalog } from "./catalog.js";

/**
 * What a reference names: a built-in `alias`, a Hugging Face `hub` repository, a `local` path, or a bare
 * `name` that is looked up as a directory under the models dir.
 */
export type ReferenceKind = "alias" | "hub" | "local" | "name";

const WINDOWS_PATH = /^[A-Za-z]:[\\/]/;
const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** True when `id` is a valid Hugging Face repository id (`org/name`). */
export function isRepoId(id: string): boolean {
  const parts = id.split("/");
  return (
    parts.length === 2 &&
    parts.every((p) => REPO_PART.test(p) && !p.includes("--") && !p.includes("..") && p.length <= 96)
  );
}

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? homedir() + path.slice(1) : path;
}

function invalid(raw: string, why: string): OllmError {
  return new OllmError("INVALID_ARGUMENT", `Invalid model reference "${raw}": ${why}`, {
    hint: 'Use a built-in alias (ollm models list), a Hugging Face repo id such as "org/name" or "org/name@revision", or a path such as "./models/my-model".',
  });
}

/**
 * A parsed model reference. Forms:
 * - built-in alias: `llama3-8B-chat` (optionally `@revision`);
 * - Hugging Face repository: `org/name`, `org/name@revision`, `hf:org/name`, `hf://org/name`;
 * - local path: anything starting with `/`, `./`, `../`, `~`, a drive letter, `path:` or `file://`;
 * - bare name: looked up as `<modelsDir>/<name>` (never relative to the working directory).
 */
export class ModelReference {
  private constructor(
    /** The reference as written (trimmed). */
    readonly raw: string,
    readonly kind: ReferenceKind,
    /** The alias, the repo id, the absolute path or the name. */
    readonly identifier: string,
    /** The requested revision (branch, tag or commit), if any. */
    readonly revision: string | null,
  ) {}

  /** Parses a reference; `catalog` decides which bare names are aliases. Throws INVALID_ARGUMENT when malformed. */
  static parse(raw: string, catalog?: Catalog): ModelReference {
    const text = raw.trim();
    if (!text) throw invalid(raw, "it is empty");

    const scheme = /^([a-z][a-z0-9+.-]*):(\/\/)?(.*)$/i.exec(text);
    if (scheme && !WINDOWS_PATH.test(text)) {
      const [, name, slashes, rest] = scheme;
      const lower = name.toLowerCase();
      if (lower === "file") return ModelReference.local(text, fileURLToPath(text));
      if (lower === "path") return ModelReference.local(text, rest || (slashes ?? ""));
      if (lower === "hf") return ModelReference.hub(text, rest);
      throw invalid(raw, `unknown scheme "${name}:" (known: hf:, path:, file://)`);
    }
    if (/^(\/|\.\.?([\\/]|$)|~([\\/]|$))/.test(text) || WINDOWS_PATH.test(text) || isAbsolute(text))
      return ModelReference.local(text, text);

    const [identifier, revision] = splitRevision(text, raw);
    if (catalog?.find(identifier)) return new ModelReference(text, "alias", identifier, revision);
    if (identifier.includes("/")) return ModelReference.hub(text, text);
    if (!NAME.test(identifier)) throw invalid(raw, "it is not an alias, a repo id or a path");
    if (revision !== null)
      throw invalid(raw, `"${identifier}" is not a built-in alias or a repo id, so it cannot take @revision`);
    return new ModelReference(text, "name", identifier, null);
  }

  private static local(raw: string, path: string): ModelReference {
    if (!path) throw invalid(raw, "the path is empty");
    return new ModelReference(raw, "local", resolve(expandHome(path)), null);
  }

  private static hub(raw: string, value: string): ModelReference {
    const [identifier, revision] = splitRevision(value, raw);
    if (!isRepoId(identifier)) throw invalid(raw, `"${identifier}" is not a Hugging Face repo id (org/name)`);
    return new ModelReference(raw, "hub", identifier, revision);
  }

  /**
   * The directory name a managed download of this reference uses under the models dir: `org--name`, or
   * `org--name@revision` for a revision other than main (slashes in the revision become `--`), the layout
   * the hub downloader writes.
   */
  materializationName(): string {
    const base = this.identifier.split("/").join("--");
    if (this.revision === null || this.revision === "main") return base;
    return `${base}@${this.revision.split("/").join("--")}`;
  }

  /** JSON form: the raw text. */
  toJSON(): string {
    return this.raw;
  }

  toString(): string {
    return this.raw;
  }
}

function splitRevision(value: string, raw: string): [string, string | null] {
  const at = value.indexOf("@");
  if (at < 0) return [value, null];
  const identifier = value.slice(0, at);
  const revision = value.slice(at + 1);
  if (!identifier || !revision || revision.includes("@"))
    throw invalid(raw, "a revision is written <reference>@<revision>");
  return [identifier, revision];
}

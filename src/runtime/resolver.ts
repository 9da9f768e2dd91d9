import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { OllmError } from "../errors.js";
import { FAMILIES } from "../engine/models/registry.js";
import { Catalog, type CatalogEntry } from "./catalog.js";
import { ENGINE_BACKENDS, inspectModelDir, isModelDir } from "./inspect.js";
import { ModelReference } from "./reference.js";
import type { ModelIssue, ResolvedModel } from "./resolved-model.js";

type Source = ResolvedModel["source"];

interface Candidate {
  path: string;
  source: Source;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** The directory name of a repository in the Hugging Face cache layout: `models--org--name`. */
function hfCacheDirName(repoId: string): string {
  return `models--${repoId.replaceAll("/", "--")}`;
}

/**
 * The snapshot of a Hugging Face cache repository dir (`models--org--name`) that a revision names:
 * `refs/<revision>` (default `main`) → `snapshots/<commit>`, or `snapshots/<revision>` for a commit;
 * without a revision and without refs/main, the newest snapshot.
 */
async function hfCacheSnapshot(repoDir: string, revision: string | null): Promise<string | undefined> {
  const snapshots = join(repoDir, "snapshots");
  if (!(await isDir(snapshots))) return undefined;
  const ref = revision ?? "main";
  try {
    const commit = (await readFile(join(repoDir, "refs", ref), "utf8")).trim();
    if (commit && (await isDir(join(snapshots, commit)))) return join(snapshots, commit);
  } catch {
    // No such ref: a commit hash, or a cache without refs.
  }
  if (revision !== null)
    return (await isDir(join(snapshots, revision))) ? join(snapshots, revision) : undefined;
  const all = await snapshotDirs(repoDir);
  let newest: { path: string; mtime: number } | undefined;
  for (const path of all) {
    const mtime = (await stat(path)).mtimeMs;
    if (!newest || mtime > newest.mtime) newest = { path, mtime };
  }
  return newest?.path;
}

async function snapshotDirs(repoDir: string): Promise<string[]> {
  const snapshots = join(repoDir, "snapshots");
  try {
    const names = (await readdir(snapshots)).filter((n) => !n.startsWith(".")).sort();
    const dirs: string[] = [];
    for (const n of names) if (await isDir(join(snapshots, n))) dirs.push(join(snapshots, n));
    return dirs;
  } catch {
    return [];
  }
}

/** Entries of a directory; none when it cannot be read (unreadable subdirectories are skipped, not fatal). */
async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

function familyRuns(family: string): boolean {
  return FAMILIES.some((f) => f.name === family);
}

/**
 * Turns model references into {@link ResolvedModel}s without loading weights, and finds the models
 * materialized under a models directory. Looks in the package (bundled models), under `modelsDir`
 * (`<alias>`, `<org>--<name>[--<revision>]`, any directory by name) and in a Hugging Face cache layout
 * under `modelsDir` (`models--org--name/snapshots/<commit>`). Never touches the network.
 */
export class ModelResolver {
  constructor(readonly catalog: Catalog = Catalog.builtin()) {}

  /** Parses a reference with this resolver's catalog (aliases). */
  parse(reference: string): ModelReference {
    return ModelReference.parse(reference, this.catalog);
  }

  /**
   * Resolves a reference. A hub model or alias that is not on disk resolves with `materialized: false`;
   * a path or bare name that points at nothing throws MODEL_NOT_FOUND; a malformed reference INVALID_ARGUMENT.
   */
  async resolve(reference: string, modelsDir: string): Promise<ResolvedModel> {
    const ref = this.parse(reference);
    const root = resolve(modelsDir);
    switch (ref.kind) {
      case "local":
        return this.resolveDir(ref, ref.identifier, "path");
      case "name": {
        const dir = join(root, ref.identifier);
        if (!(await isDir(dir)))
          throw new OllmError(
            "MODEL_NOT_FOUND",
            `"${ref.raw}" is not a built-in alias, a Hugging Face repo id (org/name) or a directory in ${root}`,
            {
              hint: `Built-in aliases: ${this.catalog.aliases().join(", ")}. For a local path write ./${ref.raw}.`,
            },
          );
        return this.resolveDir(ref, dir, "models-dir");
      }
      case "alias": {
        const entry = this.catalog.find(ref.identifier)!;
        return this.resolveCatalog(ref, entry, root);
      }
      case "hub": {
        const entry = this.catalog.findByRepo(ref.identifier);
        if (entry) return this.resolveCatalog(ref, entry, root);
        const candidates: Candidate[] = [
          { path: join(root, ref.materializationName()), source: "models-dir" },
          ...(await this.hfCacheCandidates(root, ref.identifier, ref.revision)),
        ];
        return this.resolveCandidates(ref, candidates, {
          alias: null,
          repoId: ref.identifier,
          downloadPath: join(root, ref.materializationName()),
          entry: undefined,
        });
      }
    }
  }

  /**
   * Every materialized model under `modelsDir`: model directories directly in it or one level down
   * (`org/name`), snapshots of a Hugging Face cache layout (`models--org--name/snapshots/<rev>`, or
   * modelsDir itself being such a directory), and modelsDir itself when it is a model. Sorted by path.
   */
  async discover(modelsDir: string): Promise<ResolvedModel[]> {
    const root = resolve(modelsDir);
    if (!(await isDir(root))) return [];
    const found: ResolvedModel[] = [];
    const seen = new Set<string>();
    const add = async (model: Promise<ResolvedModel>) => {
      const m = await model;
      if (m.path && !seen.has(m.path)) {
        seen.add(m.path);
        found.push(m);
      }
    };
    const addCacheRepo = async (repoDir: string) => {
      const repoId = basename(repoDir).slice("models--".length).replace("--", "/");
      for (const snapshot of await snapshotDirs(repoDir)) {
        if (!(await isModelDir(snapshot))) continue;
        const ref = this.parse(`${repoId}@${basename(snapshot)}`);
        await add(this.describeDir(ref, snapshot, "hf-cache", this.catalog.findByRepo(repoId), repoId));
      }
    };

    if (await isModelDir(root)) await add(this.resolveDir(this.parse(root), root, "path"));
    if (basename(root).startsWith("models--")) await addCacheRepo(root);
    let names: string[];
    try {
      names = (await readdir(root)).sort();
    } catch (cause) {
      throw new OllmError(
        "IO_ERROR",
        `Cannot list ${root}: ${(cause as NodeJS.ErrnoException).code ?? cause}`,
        {
          cause,
        },
      );
    }
    for (const name of names) {
      if (name.startsWith(".")) continue;
      const child = join(root, name);
      if (!(await isDir(child))) continue;
      if (name.startsWith("models--")) await addCacheRepo(child);
      else if (await isModelDir(child)) await add(this.resolveDir(this.parse(child), child, "models-dir"));
      else {
        for (const inner of await entries(child)) {
          const grandchild = join(child, inner);
          if (!inner.startsWith(".") && (await isModelDir(grandchild)))
            await add(this.resolveDir(this.parse(grandchild), grandchild, "models-dir"));
        }
      }
    }
    return found.sort((a, b) => (a.path ?? "").localeCompare(b.path ?? ""));
  }

  /**
   * The description of a model after a materializer put it in `dir`: the reference's identity (alias,
   * repo, revision) with what the directory holds.
   */
  async describeMaterialized(model: ResolvedModel, dir: string): Promise<ResolvedModel> {
    const ref = this.parse(model.reference);
    const root = resolve(dir);
    const source: Source = root.includes(`${hfCacheDirName(model.repoId ?? "")}`) ? "hf-cache" : "models-dir";
    const entry = model.alias ? this.catalog.find(model.alias) : undefined;
    return this.describeDir(ref, root, source, entry, model.repoId);
  }

  private async hfCacheCandidates(
    root: string,
    repoId: string,
    revision: string | null,
  ): Promise<Candidate[]> {
    const roots = [join(root, hfCacheDirName(repoId))];
    if (basename(root) === hfCacheDirName(repoId)) roots.unshift(root);
    const out: Candidate[] = [];
    for (const repoDir of roots) {
      const snapshot = await hfCacheSnapshot(repoDir, revision);
      if (snapshot) out.push({ path: snapshot, source: "hf-cache" });
    }
    return out;
  }

  private async resolveCatalog(
    ref: ModelReference,
    entry: CatalogEntry,
    root: string,
  ): Promise<ResolvedModel> {
    const candidates: Candidate[] = [];
    if (entry.bundledPath && ref.revision === null)
      candidates.push({ path: entry.bundledPath, source: "bundled" });
    if (ref.revision === null) candidates.push({ path: join(root, entry.alias), source: "models-dir" });
    if (entry.repoId) {
      const repoRef = ModelReference.parse(ref.revision ? `${entry.repoId}@${ref.revision}` : entry.repoId);
      candidates.push({ path: join(root, repoRef.materializationName()), source: "models-dir" });
      candidates.push(...(await this.hfCacheCandidates(root, entry.repoId, ref.revision)));
    }
    const downloadPath = entry.repoId
      ? ref.revision === null
        ? join(root, entry.alias)
        : join(root, ModelReference.parse(`${entry.repoId}@${ref.revision}`).materializationName())
      : null;
    return this.resolveCandidates(ref, candidates, {
      alias: entry.alias,
      repoId: entry.repoId,
      downloadPath,
      entry,
    });
  }

  private async resolveCandidates(
    ref: ModelReference,
    candidates: Candidate[],
    known: {
      alias: string | null;
      repoId: string | null;
      downloadPath: string | null;
      entry: CatalogEntry | undefined;
    },
  ): Promise<ResolvedModel> {
    for (const c of candidates) {
      if (await isModelDir(c.path)) return this.describeDir(ref, c.path, c.source, known.entry, known.repoId);
    }
    const entry = known.entry;
    const what = entry ? `built-in alias "${entry.alias}"` : `Hugging Face repository "${ref.identifier}"`;
    const issue: ModelIssue = {
      code: "MODEL_NOT_FOUND",
      message:
        known.repoId === null
          ? `the bundled model "${entry?.alias}" is missing from this installation`
          : `${what} is not downloaded (looked in ${candidates.map((c) => c.path).join(", ")})`,
    };
    return {
      reference: ref.raw,
      referenceKind: ref.kind,
      name: entry?.alias ?? ref.identifier,
      alias: known.alias,
      repoId: known.repoId,
      revision: ref.revision,
      source: known.repoId === null ? "bundled" : "hub",
      materialized: false,
      path: null,
      downloadPath: known.downloadPath,
      architecture: null,
      modelType: null,
      family: entry?.family ?? null,
      dtype: null,
      dtypeBytes: {},
      parameterCount: null,
      weightBytes: null,
      layerBytes: null,
      globalBytes: null,
      files: [],
      modalities: entry ? [...entry.modalities] : [],
      supportedBackends: entry && familyRuns(entry.family) ? [...ENGINE_BACKENDS] : [],
      hasTokenizer: false,
      hasChatTemplate: false,
      geometry: null,
      issues: [issue],
      message: `${what[0].toUpperCase()}${what.slice(1)}, not materialized locally${
        entry ? "" : "; its capabilities are known once it is downloaded"
      }.`,
    };
  }

  private async resolveDir(ref: ModelReference, dir: string, source: Source): Promise<ResolvedModel> {
    if (!(await isDir(dir))) {
      throw new OllmError("MODEL_NOT_FOUND", `Model directory ${dir} does not exist`, {
        hint: "Check the path, or use a built-in alias or a Hugging Face repo id.",
      });
    }
    if (basename(dir).startsWith("models--") && !(await isModelDir(dir))) {
      const snapshot = await hfCacheSnapshot(dir, null);
      if (snapshot) {
        const repoId = basename(dir).slice("models--".length).replace("--", "/");
        return this.describeDir(ref, snapshot, "hf-cache", this.catalog.findByRepo(repoId), repoId);
      }
    }
    return this.describeDir(ref, dir, source, this.catalog.find(basename(dir)), null);
  }

  private async describeDir(
    ref: ModelReference,
    dir: string,
    source: Source,
    entry: CatalogEntry | undefined,
    repoId: string | null,
  ): Promise<ResolvedModel> {
    const materialized = await isModelDir(dir);
    const inspection = materialized
      ? await inspectModelDir(dir)
      : {
          architecture: null,
          modelType: null,
          family: null,
          dtype: null,
          dtypeBytes: {},
          parameterCount: null,
          weightBytes: null,
          layerBytes: null,
          globalBytes: null,
          files: [],
          modalities: [],
          supportedBackends: [],
          hasTokenizer: false,
          hasChatTemplate: false,
          geometry: null,
          issues: [
            {
              code: "MODEL_NOT_FOUND" as const,
              message: `${dir} is not a model directory: it needs config.json and *.safetensors weights`,
            },
          ],
        };
    const name = entry?.alias ?? (ref.kind === "hub" ? ref.identifier : basename(dir));
    const where = {
      bundled: "bundled with the package",
      "models-dir": "in the models dir",
      "hf-cache": "in a Hugging Face cache",
      path: "at a local path",
      hub: "on the Hub",
    }[source];
    return {
      reference: ref.raw,
      referenceKind: ref.kind,
      name,
      alias: entry?.alias ?? null,
      repoId: repoId ?? entry?.repoId ?? null,
      revision: ref.revision,
      source,
      materialized,
      path: materialized ? dir : null,
      downloadPath: null,
      ...inspection,
      message: materialized
        ? `${name}: ${inspection.architecture ?? "unknown architecture"} ${where} (${dir}).`
        : `${dir} is not a materialized model.`,
    };
  }
}

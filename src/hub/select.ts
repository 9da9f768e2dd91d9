import { OllmError } from "../errors.js";

/** One file of a repository as the hub lists it (a tree entry; siblings of model info carry `rfilename`). */
export interface RepoFileEntry {
  path?: string;
  rfilename?: string;
  size?: number;
}

/** What running a model needs from its repository. */
export interface FileSelection {
  /** Files to fetch now (config, tokenizer, templates, processor configs, the index or the weights). */
  files: string[];
  /** `model.safetensors.index.json` when the weights are sharded: the shards come from its weight_map. */
  index: string | undefined;
  /** Weight files known without reading the index (empty when `index` is set). */
  weights: string[];
}

export const SAFETENSORS_INDEX = "model.safetensors.index.json";
export const SINGLE_SAFETENSORS = "model.safetensors";

const ALWAYS = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
  "chat_template.json",
  "preprocessor_config.json",
  "processor_config.json",
  "video_preprocessor_config.json",
];
/** Slow-tokenizer sources: only fetched when the repo has no tokenizer.json. */
const TOKENIZER_SOURCES = ["tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "spiece.model"];
const PICKLE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;
const TEMPLATE_DIR = /^additional_chat_templates\/[^/]+\.jinja$/;

function entryPath(entry: RepoFileEntry | string): string {
  if (typeof entry === "string") return entry;
  return entry.path ?? entry.rfilename ?? "";
}

/** Weight files at the repository root that transformers would load (no Mistral-native or adapter files). */
function rootSafetensors(paths: Set<string>): string[] {
  return [...paths]
    .filter((p) => !p.includes("/") && p.endsWith(".safetensors"))
    .filter((p) => !p.startsWith("consolidated") && !p.startsWith("adapter_model"))
    .sort();
}

/**
 * Chooses the files running needs from a repository listing. Never selects pickle weights; a repo
 * whose only weights are pickles (or GGUF, or Mistral-native consolidated files) is refused with a
 * message saying so.
 */
export function selectFiles(
  entries: Iterable<RepoFileEntry | string>,
  repoId = "this repository",
): FileSelection {
  const paths = new Set<string>();
  for (const e of entries) {
    const p = entryPath(e);
    if (p) paths.add(p);
  }
  const files = ALWAYS.filter((f) => paths.has(f));
  if (!paths.has("tokenizer.json")) files.push(...TOKENIZER_SOURCES.filter((f) => paths.has(f)));
  files.push(...[...paths].filter((p) => TEMPLATE_DIR.test(p)).sort());

  let index: string | undefined;
  let weights: string[] = [];
  if (paths.has(SAFETENSORS_INDEX)) index = SAFETENSORS_INDEX;
  else if (paths.has(SINGLE_SAFETENSORS)) weights = [SINGLE_SAFETENSORS];
  else weights = rootSafetensors(paths);

  if (index === undefined && weights.length === 0) {
    const pickles = [...paths].filter((p) => PICKLE.test(p)).sort();
    const all = [...paths];
    if (pickles.length > 0)
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `${repoId} only has PyTorch pickle weights (${pickles.slice(0, 3).join(", ")}${pickles.length > 3 ? ", …" : ""}); ` +
          "oLLM never downloads or loads pickle files (loading them can run arbitrary code) and needs safetensors",
        {
          hint:
            "look for a safetensors version of this model: another repository, or the hub bot's pull request " +
            '"Adding `safetensors` variant" (use it as org/name@refs/pr/N), or convert the checkpoint yourself',
        },
      );
    if (all.some((p) => p.endsWith(".gguf")))
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `${repoId} only has GGUF weights; oLLM loads safetensors checkpoints`,
        {
          hint: "use the original (non-GGUF) repository of this model",
        },
      );
    if (all.some((p) => p.startsWith("consolidated") && p.endsWith(".safetensors")))
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `${repoId} only has Mistral-native consolidated.safetensors weights; oLLM needs the transformers layout (model*.safetensors + config.json)`,
      );
    throw new OllmError("INVALID_CHECKPOINT", `${repoId} has no safetensors weights`);
  }
  if (!paths.has("config.json"))
    throw new OllmError(
      "INVALID_CHECKPOINT",
      `${repoId} has no config.json; it is not a transformers model repository`,
    );
  files.push(...(index ? [index] : weights));
  return { files, index, weights };
}

/** The shard files named by a safetensors index (its weight_map values), sorted and deduplicated. */
export function shardsFromIndex(index: unknown, source = SAFETENSORS_INDEX): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map))
    throw new OllmError("INVALID_CHECKPOINT", `${source} has no weight_map object`);
  const shards = new Set<string>();
  for (const value of Object.values(map)) {
    if (typeof value !== "string" || !isSafeRelativePath(value) || !value.endsWith(".safetensors"))
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `${source} names an invalid shard file: ${JSON.stringify(value)}`,
      );
    shards.add(value);
  }
  if (shards.size === 0) throw new OllmError("INVALID_CHECKPOINT", `${source} has an empty weight_map`);
  return [...shards].sort();
}

/** A repository path that stays inside the model directory (no absolute paths, `..`, backslashes). */
export function isSafeRelativePath(path: string): boolean {
  if (path === "" || path.startsWith("/") || path.includes("\\") || path.includes("\0")) return false;
  return path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

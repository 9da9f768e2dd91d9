import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { isOllmError } from "../errors.js";
import { readJsonObject } from "../engine/json-file.js";
import type { RawConfig } from "../engine/models/family.js";
import { familyFor } from "../engine/models/registry.js";
import { Checkpoint } from "../engine/weights/safetensors.js";
import type { Modality } from "./catalog.js";
import type { ModelGeometry, ModelIssue, ResolvedModel } from "./resolved-model.js";

/** Backends of this engine; every family the engine has runs on each of them. */
export const ENGINE_BACKENDS = ["cpu", "webgpu"] as const;

/**
 * Input modalities the engine can feed to a model today. The engine has no vision or audio encoder yet,
 * so image and audio inputs are refused at plan time even for models whose checkpoints have them.
 */
export const ENGINE_MODALITIES: readonly Modality[] = ["text"];

/** What a model directory tells without loading weights. */
export type ModelInspection = Pick<
  ResolvedModel,
  | "architecture"
  | "modelType"
  | "family"
  | "dtype"
  | "dtypeBytes"
  | "parameterCount"
  | "weightBytes"
  | "layerBytes"
  | "globalBytes"
  | "files"
  | "modalities"
  | "supportedBackends"
  | "hasTokenizer"
  | "hasChatTemplate"
  | "geometry"
  | "issues"
>;

const DECODER_LAYER =
  /^(?:model\.|language_model\.model\.|model\.language_model\.|model\.text_model\.)?layers\.(\d+)\./;
const WEIGHT_FILES = /\.safetensors$/;

async function exists(path: string, kind: "file" | "dir" = "file"): Promise<boolean> {
  try {
    const s = await stat(path);
    return kind === "file" ? s.isFile() : s.isDirectory();
  } catch {
    return false;
  }
}

/**
 * A directory is a materialized model when it has config.json and at least one .safetensors file, and
 * no download into it is in progress (no `*.partial` files).
 */
export async function isModelDir(dir: string): Promise<boolean> {
  if (!(await exists(join(dir, "config.json")))) return false;
  try {
    const names = await readdir(dir);
    return names.some((name) => WEIGHT_FILES.test(name)) && !names.some((name) => name.endsWith(".partial"));
  } catch {
    return false;
  }
}

function int(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) ? value : null;
}

/** The text decoder's config: `text_config` of multimodal checkpoints, else the config itself. */
function textConfig(config: RawConfig): RawConfig {
  const inner = config.text_config;
  return typeof inner === "object" && inner !== null && !Array.isArray(inner) ? (inner as RawConfig) : config;
}

function geometryOf(config: RawConfig): ModelGeometry | null {
  const c = textConfig(config);
  const numLayers = int(c.num_hidden_layers);
  if (numLayers === null) return null;
  const hidden = int(c.hidden_size);
  const heads = int(c.num_attention_heads);
  const kvHeads = int(c.num_key_value_heads) ?? heads ?? 0;
  const headDim = int(c.head_dim) ?? (hidden !== null && heads ? Math.floor(hidden / heads) : 0);
  const layerTypes = Array.isArray(c.layer_types) ? (c.layer_types as unknown[]) : [];
  const kvLayers = Array.from({ length: numLayers }, (_, i) => layerTypes[i] !== "linear_attention").filter(
    Boolean,
  ).length;
  return {
    numLayers,
    hiddenSize: hidden,
    intermediateSize: int(c.intermediate_size),
    numAttentionHeads: heads,
    vocabSize: int(c.vocab_size),
    maxPositions: int(c.max_position_embeddings),
    kvBytesPerToken: kvLayers * 2 * kvHeads * headDim * 4,
  };
}

function modalitiesOf(config: RawConfig): Modality[] {
  const out: Modality[] = ["text"];
  if (config.vision_config) out.push("image");
  if (config.audio_config) out.push("audio");
  return out;
}

async function listFiles(dir: string): Promise<{ name: string; bytes: number }[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith(".")).sort();
  } catch {
    return [];
  }
  const files: { name: string; bytes: number }[] = [];
  for (const name of names) {
    try {
      const s = await stat(join(dir, name));
      if (s.isFile()) files.push({ name, bytes: s.size });
    } catch {
      // A dangling symlink (half-downloaded cache entry): not a file of the model.
    }
  }
  return files;
}

async function chatTemplatePresent(dir: string): Promise<boolean> {
  if ((await exists(join(dir, "chat_template.jinja"))) || (await exists(join(dir, "chat_template.json"))))
    return true;
  try {
    const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
    return typeof config?.chat_template === "string" || Array.isArray(config?.chat_template);
  } catch {
    return false;
  }
}

function issueOf(error: unknown, code: ModelIssue["code"]): ModelIssue {
  if (isOllmError(error)) return { code: error.code, message: error.message };
  return { code, message: error instanceof Error ? error.message : String(error) };
}

/**
 * Reads a model directory's config.json, safetensors headers and file list: architecture, family,
 * dtype, parameter count, sizes per layer, modalities, and every reason it could not run here.
 */
export async function inspectModelDir(dir: string): Promise<ModelInspection> {
  const issues: ModelIssue[] = [];
  let config: RawConfig = {};
  try {
    config = (await readJsonObject(join(dir, "config.json"), "INVALID_CONFIG")) ?? {};
  } catch (error) {
    issues.push(issueOf(error, "INVALID_CONFIG"));
  }
  const architectures = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
  const architecture = typeof architectures[0] === "string" ? architectures[0] : null;
  const modelType = typeof config.model_type === "string" ? config.model_type : null;
  let family: string | null = null;
  if (Object.keys(config).length > 0) {
    try {
      family = familyFor(config).name;
    } catch (error) {
      issues.push(issueOf(error, "UNSUPPORTED_ARCHITECTURE"));
    }
  }
  const geometry = geometryOf(config);

  const dtypeBytes: Record<string, number> = {};
  let parameterCount: number | null = null;
  let weightBytes: number | null = null;
  let layerBytes: number[] | null = null;
  let globalBytes: number | null = null;
  try {
    const checkpoint = await Checkpoint.open(dir);
    try {
      parameterCount = 0;
      weightBytes = 0;
      globalBytes = 0;
      layerBytes = Array.from({ length: geometry?.numLayers ?? 0 }, () => 0);
      for (const name of checkpoint.names()) {
        const info = checkpoint.info(name);
        let count = info.shape.reduce((n, d) => n * d, 1);
        if (info.dtype === "U8" && name.endsWith("_blocks")) count *= 2; // MXFP4: two 4-bit values per byte
        parameterCount += count;
        weightBytes += info.byteLength;
        dtypeBytes[info.dtype] = (dtypeBytes[info.dtype] ?? 0) + info.byteLength;
        const layer = DECODER_LAYER.exec(name);
        const index = layer ? Number(layer[1]) : -1;
        if (index >= 0 && index < layerBytes.length) layerBytes[index] += info.byteLength;
        else globalBytes += info.byteLength;
      }
    } finally {
      await checkpoint.close();
    }
  } catch (error) {
    issues.push(issueOf(error, "INVALID_CHECKPOINT"));
  }
  const dtype = Object.entries(dtypeBytes).sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
  const hasTokenizer = await exists(join(dir, "tokenizer.json"));
  if (!hasTokenizer)
    issues.push({
      code: "INVALID_TOKENIZER",
      message: `${dir} has no tokenizer.json: prompts cannot be tokenized`,
    });
  const hasChatTemplate = await chatTemplatePresent(dir);
  if (hasTokenizer && !hasChatTemplate)
    issues.push({
      code: "INVALID_TOKENIZER",
      message: `${dir} has no chat template (tokenizer_config.json chat_template or chat_template.jinja): it is not a chat model`,
    });

  return {
    architecture,
    modelType,
    family,
    dtype,
    dtypeBytes,
    parameterCount,
    weightBytes,
    layerBytes,
    globalBytes,
    files: await listFiles(dir),
    modalities: modalitiesOf(config),
    supportedBackends: family ? [...ENGINE_BACKENDS] : [],
    hasTokenizer,
    hasChatTemplate,
    geometry,
    issues,
  };
}

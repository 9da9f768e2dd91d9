import { z } from "zod";
import { ERROR_CODES } from "../errors.js";
import { MODALITIES } from "./catalog.js";

/** Where a resolved model's files are (or would be). */
export const MODEL_SOURCES = ["bundled", "models-dir", "hf-cache", "path", "hub"] as const;

/** A reason a model cannot run here, with the error code it would fail with. */
export const ModelIssueSchema = z.object({ code: z.enum(ERROR_CODES), message: z.string() });
/** A reason a model cannot run here. */
export type ModelIssue = z.infer<typeof ModelIssueSchema>;

/** One file of a model directory. */
export const ModelFileSchema = z.object({ name: z.string(), bytes: z.number().int().min(0) });

/** Shape numbers the planner needs, read from config.json (no weights loaded). */
export const ModelGeometrySchema = z.object({
  numLayers: z.number().int(),
  hiddenSize: z.number().int().nullable(),
  intermediateSize: z.number().int().nullable(),
  numAttentionHeads: z.number().int().nullable(),
  vocabSize: z.number().int().nullable(),
  maxPositions: z.number().int().nullable(),
  /** Bytes one token of context takes in the KV cache (f32 keys and values, every attention layer). */
  kvBytesPerToken: z.number().int(),
});

/**
 * A model reference resolved to what it is and where it is, without loading weights: the description
 * planning, listings (`ollm models`) and the server's /v1/models are made of.
 */
export const ResolvedModelSchema = z.object({
  /** The reference as written. */
  reference: z.string(),
  /** What the reference named. */
  referenceKind: z.enum(["alias", "hub", "local", "name"]),
  /** Display name: the alias, the repo id, or the directory name. */
  name: z.string(),
  /** Built-in alias this model is, if any. */
  alias: z.string().nullable(),
  /** Hugging Face repository, when known. */
  repoId: z.string().nullable(),
  /** Requested revision (branch, tag, commit), if any. */
  revision: z.string().nullable(),
  /** Where the files are: bundled with the package, under modelsDir, in a Hugging Face cache layout, an explicit path, or only on the Hub. */
  source: z.enum(MODEL_SOURCES),
  /** True when a complete local copy (config.json + safetensors) exists. */
  materialized: z.boolean(),
  /** The local directory, when materialized. */
  path: z.string().nullable(),
  /** Where a download of this model would be placed, for hub models and aliases. */
  downloadPath: z.string().nullable(),
  /** `architectures[0]` of config.json. */
  architecture: z.string().nullable(),
  /** `model_type` of config.json. */
  modelType: z.string().nullable(),
  /** Engine family that runs it (llama, qwen3, …); null when the engine has none for it. */
  family: z.string().nullable(),
  /** The weights' main dtype (largest share of bytes), e.g. BF16. */
  dtype: z.string().nullable(),
  /** Bytes of weights per safetensors dtype. */
  dtypeBytes: z.record(z.string(), z.number()),
  /** Parameters in the checkpoint (packed 4-bit blocks count 2 per byte). */
  parameterCount: z.number().int().nullable(),
  /** Bytes of all tensors. */
  weightBytes: z.number().int().nullable(),
  /** Bytes of each decoder layer's tensors (index = layer). */
  layerBytes: z.array(z.number().int()).nullable(),
  /** Bytes of tensors outside the layers (embeddings, final norm, head, vision tower…). */
  globalBytes: z.number().int().nullable(),
  /** Files of the model directory and their sizes. */
  files: z.array(ModelFileSchema),
  /** Input modalities of the model (what its checkpoint declares). */
  modalities: z.array(z.enum(MODALITIES)),
  /** Backends of this engine that can run it. */
  supportedBackends: z.array(z.string()),
  /** Whether tokenizer.json is present. */
  hasTokenizer: z.boolean(),
  /** Whether a chat template is present (tokenizer_config.json or chat_template.jinja/json). */
  hasChatTemplate: z.boolean(),
  geometry: ModelGeometrySchema.nullable(),
  /** Why the model cannot run here (empty when it can). */
  issues: z.array(ModelIssueSchema),
  /** One sentence on how the reference was resolved. */
  message: z.string(),
});

/** A resolved model (see {@link ResolvedModelSchema}). */
export type ResolvedModel = z.infer<typeof ResolvedModelSchema>;
/** Shape numbers of a model. */
export type ModelGeometry = z.infer<typeof ModelGeometrySchema>;

/**
 * oLLM for TypeScript: the library entry. Engine entry points (`loadModel`, `loadTokenizer`) and the
 * building blocks under them.
 */
export { ERROR_CODES, isOllmError, OllmError, type OllmErrorCode } from "./errors.js";
export type { AttentionOptions, Backend, RopeOptions, RopeSpec } from "./engine/backend.js";
export { CpuBackend } from "./engine/backends/cpu/cpu-backend.js";
export {
  type Detokenizer,
  type FinishReason,
  type GenerateOptions,
  type GenerationChunk,
  type GenerationSummary,
  generate,
} from "./engine/generate.js";
export type { KvLayer, KvStore, KvView } from "./engine/kv/kv-store.js";
export { type BackendName, type LoadModelOptions, loadModel, Model } from "./engine/model.js";
export type { CausalLM, ModelFamily } from "./engine/models/family.js";
export { FAMILIES, supportedArchitectures } from "./engine/models/registry.js";
export {
  Rng,
  type SampledToken,
  type SamplingParams,
  sampleToken,
  type TokenLogprob,
} from "./engine/sampling.js";
export type { ForwardOptions, Sequence } from "./engine/sequence.js";
export type { DType, Tensor } from "./engine/tensor.js";
export { Checkpoint, SafetensorsFile, type TensorInfo } from "./engine/weights/safetensors.js";
export * from "./text/index.js";
export * from "./client.js";
export * from "./config/index.js";
export * from "./messages.js";
export * from "./runtime/index.js";
export * from "./session.js";
export { formatBenchTable, runBench } from "./bench/index.js";
export {
  planResidency,
  selectKvStrategy,
  specializationPasses,
} from "./engine/residency/index.js";
export { buildServer, type RunningServer, ServerConfigSchema, startServer } from "./server/index.js";

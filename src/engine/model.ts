import { join } from "node:path";
import { OllmError } from "../errors.js";
import type { Backend } from "./backend.js";
import { CpuBackend } from "./backends/cpu/cpu-backend.js";
import { selectBackend } from "./backends/webgpu/select.js";
import { readJsonObject } from "./json-file.js";
import { modelCacheKey } from "./kv/cache-dir.js";
import { createKvStore, type KvCacheOptions } from "./kv/strategies.js";
import type { CausalLM, ModelFamily, RawConfig } from "./models/family.js";
import { familyFor } from "./models/registry.js";
import { type ForwardOptions, Sequence } from "./sequence.js";
import type { Residency } from "./residency/policy.js";
import { LayeredWeightStore, type StreamingStats } from "./residency/streaming-store.js";
import { ResidentWeightStore, type WeightStore } from "./weight-store.js";
import { Checkpoint } from "./weights/safetensors.js";

export type BackendName = "cpu" | "webgpu" | "auto";

export interface LoadModelOptions {
  /** Compute backend; "auto" picks WebGPU on a hardware GPU adapter, else the CPU (see backends/webgpu/select.ts). */
  backend?: BackendName;
  /** WebGPU adapter: "auto", "gpu", "gpu:N", an index or an adapter name. */
  device?: string | number;
  /** GPU timestamp queries per submission (--stats). */
  stats?: boolean;
  /**
   * WebGPU: submit the recorded work every this many dispatches (0: once per step; default
   * OLLM_WEBGPU_SUBMIT_EVERY, else 64 on a hardware adapter and 0 on a software one).
   */
  submitEvery?: number;
  /** Where auto's fallback notice goes (default: console.warn). */
  onNotice?: (message: string) => void;
  /**
   * Where each decoder layer's weights live (default: all "device", loaded once). "host": host RAM (on the
   * CPU backend the same as "device"; on a GPU uploaded per use). "disk": read from the checkpoint each
   * time the layer runs, double-buffered. The planner chooses it with planResidency (engine/residency).
   */
  residency?: readonly Residency[];
  /** Bytes of routed MoE experts of streamed layers kept in an LRU across tokens (default 0). */
  expertCacheBytes?: number;
  /** Read the next streamed layer while the current one computes (default true). */
  prefetchWeights?: boolean;
  /** KV cache strategy (and its block size, window, cache dir) of new sequences (default resident). */
  kvCache?: KvCacheOptions;
  /**
   * Threads of the CPU backend's kernels, the calling thread included (default: OLLM_CPU_THREADS, else
   * every core). Applies when the CPU backend is named (backend "cpu", or device "cpu").
   */
  threads?: number;
}

/** generation_config.json fields the engine uses as defaults. */
export interface GenerationDefaults {
  eosTokenIds: number[];
  bosTokenId?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  doSample?: boolean;
}

function createBackend(options: LoadModelOptions): Promise<Backend> {
  const { device, stats, onNotice, threads, submitEvery } = options;
  const cpu = options.backend === "cpu" || (device === "cpu" && options.backend !== "webgpu");
  if (cpu && threads !== undefined) return Promise.resolve(new CpuBackend({ threads }));
  if (device === "cpu" && options.backend !== "webgpu") return selectBackend("cpu");
  return selectBackend(options.backend ?? "auto", { device, stats, onNotice, submitEvery });
}

function ids(value: unknown): number[] {
  if (typeof value === "number") return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number");
  return [];
}

function num(value: unknown): number | undefined {
  return typeof value === "number" ? value : undefined;
}

export function generationDefaults(config: RawConfig, gen: RawConfig | undefined): GenerationDefaults {
  const g = gen ?? {};
  const eos = ids(g.eos_token_id ?? config.eos_token_id);
  return {
    eosTokenIds: eos,
    bosTokenId: num(g.bos_token_id ?? config.bos_token_id),
    temperature: num(g.temperature),
    topK: num(g.top_k),
    topP: num(g.top_p),
    minP: num(g.min_p),
    repetitionPenalty: num(g.repetition_penalty),
    doSample: typeof g.do_sample === "boolean" ? g.do_sample : undefined,
  };
}

/** A loaded checkpoint: its architecture, weights in backend memory, and sequences to run. */
export class Model {
  private closed = false;

  constructor(
    readonly dir: string,
    readonly config: RawConfig,
    readonly family: ModelFamily,
    readonly lm: CausalLM,
    readonly backend: Backend,
    readonly generation: GenerationDefaults,
    private readonly weights: WeightStore,
    private readonly checkpoint: Checkpoint,
    private readonly kvCache: KvCacheOptions = {},
  ) {}

  get vocabSize(): number {
    return this.lm.vocabSize;
  }

  /** A fresh sequence with its own KV cache (the model's KV strategy unless `kvCache` names another). */
  newSequence(kvCache: KvCacheOptions = this.kvCache): Sequence {
    this.assertOpen();
    const specs = Array.from({ length: this.lm.numLayers }, (_, i) => this.lm.kvSpec(i));
    const kv = createKvStore(this.backend, specs, kvCache, modelCacheKey(this.dir));
    return new Sequence(this.backend, this.lm, this.weights, kv);
  }

  /** Streaming numbers (bytes read, read/wait time, overlap, expert LRU) when layers stream; else undefined. */
  streamingStats(): StreamingStats | undefined {
    return this.weights instanceof LayeredWeightStore ? this.weights.stats() : undefined;
  }

  /** Logits at every position of `ids` ([ids.length × vocabSize], row-major), from an empty cache. */
  async logits(ids: number[], options: Partial<ForwardOptions> = {}): Promise<Float32Array> {
    if (ids.length === 0) throw new OllmError("INVALID_ARGUMENT", "logits() needs at least one token id");
    const seq = this.newSequence();
    try {
      const out = await seq.forward(ids, { ...options, logits: "all" });
      return await out.read();
    } finally {
      seq.dispose();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.weights.close) await this.weights.close();
    else this.weights.dispose();
    await this.checkpoint.close();
    await (this.backend as { close?: () => Promise<void> }).close?.();
  }

  private assertOpen(): void {
    if (this.closed) throw new OllmError("INVALID_ARGUMENT", "the model was closed");
  }
}

/** Loads a local model directory (config.json + safetensors) onto a backend. */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<Model> {
  const config = (await readJsonObject(join(dir, "config.json"), "INVALID_CONFIG")) as RawConfig;
  const generation = await readJsonObject(join(dir, "generation_config.json"), "INVALID_CONFIG", true);
  const family = familyFor(config);
  const backend = await createBackend(options);
  const checkpoint = await Checkpoint.open(dir);
  try {
    const lm = family.create(config, checkpoint.names());
    const weights = options.residency
      ? await LayeredWeightStore.load(checkpoint, backend, lm, {
          residency: options.residency,
          expertCacheBytes: options.expertCacheBytes,
          prefetch: options.prefetchWeights,
        })
      : await ResidentWeightStore.load(checkpoint, backend, lm);
    return new Model(
      dir,
      config,
      family,
      lm,
      backend,
      generationDefaults(config, generation),
      weights,
      checkpoint,
      options.kvCache,
    );
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
}

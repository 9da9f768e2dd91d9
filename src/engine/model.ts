import { join } from "node:path";
import { OllmError } from "../errors.js";
import type { Backend } from "./backend.js";
import { CpuBackend } from "./backends/cpu/cpu-backend.js";
import { readJsonObject } from "./json-file.js";
import { ResidentKvStore } from "./kv/kv-store.js";
import type { CausalLM, ModelFamily, RawConfig } from "./models/family.js";
import { familyFor } from "./models/registry.js";
import { type ForwardOptions, Sequence } from "./sequence.js";
import { ResidentWeightStore, type WeightStore } from "./weight-store.js";
import { Checkpoint } from "./weights/safetensors.js";

export type BackendName = "cpu" | "auto";

export interface LoadModelOptions {
  /** Compute backend; "auto" picks the best available (CPU until the GPU backend lands). */
  backend?: BackendName;
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

function createBackend(name: BackendName): Backend {
  if (name === "cpu" || name === "auto") return new CpuBackend();
  throw new OllmError("INVALID_ARGUMENT", `unknown backend "${String(name)}"`, { hint: "use cpu or auto" });
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
  ) {}

  get vocabSize(): number {
    return this.lm.vocabSize;
  }

  /** A fresh sequence with its own KV cache. */
  newSequence(): Sequence {
    this.assertOpen();
    const specs = Array.from({ length: this.lm.numLayers }, (_, i) => this.lm.kvSpec(i));
    return new Sequence(this.backend, this.lm, this.weights, new ResidentKvStore(this.backend, specs));
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
    this.weights.dispose();
    await this.checkpoint.close();
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
  const backend = createBackend(options.backend ?? "auto");
  const checkpoint = await Checkpoint.open(dir);
  try {
    const lm = family.create(config, checkpoint.names());
    const weights = await ResidentWeightStore.load(checkpoint, backend, lm);
    return new Model(
      dir,
      config,
      family,
      lm,
      backend,
      generationDefaults(config, generation),
      weights,
      checkpoint,
    );
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
}

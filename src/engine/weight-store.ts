import { OllmError } from "../errors.js";
import type { Backend } from "./backend.js";
import type { CausalLM, Weights } from "./models/family.js";
import type { DType, Tensor } from "./tensor.js";
import type { Checkpoint, SafetensorsDType } from "./weights/safetensors.js";

/** Where the runner gets each layer's weights from. Streaming stores load on demand; resident ones up front. */
export interface WeightStore {
  global(): Weights;
  /** Layer i's weights (names relative to its prefix), ready for compute. */
  layer(index: number): Promise<Weights>;
  /** The runner is done with layer i for now: a streaming store drops its device copy (and may reuse buffers). */
  release?(index: number): void;
  /** True when some layer is read from disk per use: the runner then runs long prompts layer-major. */
  readonly streaming?: boolean;
  dispose(): void;
  /**
   * Waits for reads still in flight into backend memory (a prefetched layer), then disposes: mapped GPU
   * memory must not be freed under a read.
   */
  close?(): Promise<void>;
}

export const ENGINE_DTYPES: Partial<Record<SafetensorsDType, DType>> = {
  BF16: "bf16",
  F16: "f16",
  F32: "f32",
  I8: "i8",
  U8: "u8",
  I32: "i32",
};

/** Reads one tensor from the checkpoint and hands it to the backend in its stored type. */
export async function loadTensor(checkpoint: Checkpoint, backend: Backend, name: string): Promise<Tensor> {
  const info = checkpoint.info(name);
  const dtype = ENGINE_DTYPES[info.dtype];
  if (!dtype)
    throw new OllmError(
      "INVALID_CHECKPOINT",
      `tensor ${name} has dtype ${info.dtype}, which the engine cannot load`,
      {
        hint: `loadable dtypes: ${Object.keys(ENGINE_DTYPES).join(", ")}`,
      },
    );
  const bytes = await checkpoint.read(name);
  return backend.upload(bytes, dtype, info.shape.length === 0 ? [1] : info.shape);
}

/**
 * `lookup` with its answers kept per name (misses too), for weights that do not change while the lookup
 * lives: a model asks for the same few names every step.
 */
export function cachedLookup(
  lookup: (name: string) => Tensor | undefined,
): (name: string) => Tensor | undefined {
  const found = new Map<string, Tensor | undefined>();
  return (name) => {
    let t = found.get(name);
    if (t === undefined && !found.has(name)) {
      t = lookup(name);
      found.set(name, t);
    }
    return t;
  };
}

/** Weights backed by a map of loaded tensors (names under `prefix`); experts are views of stacked tensors. */
export class MapWeights implements Weights {
  constructor(
    private readonly tensors: Map<string, Tensor>,
    private readonly prefix: string,
    private readonly source: string,
    private readonly backend: Backend,
  ) {}

  get(name: string): Tensor {
    const t = this.find(name);
    if (!t) throw new OllmError("INVALID_CHECKPOINT", `${this.source} lacks tensor ${this.prefix + name}`);
    return t;
  }

  // Found by the short name the model asks for (a literal, its hash cached), not prefix + name per call.
  readonly find = cachedLookup((name) => this.tensors.get(this.prefix + name));

  async fetch(name: string, index?: number): Promise<Tensor> {
    const t = this.get(name);
    return index === undefined ? t : this.backend.subTensor(t, index);
  }
}

/** Every weight the model uses, loaded once into backend memory. */
export class ResidentWeightStore implements WeightStore {
  private constructor(
    private readonly tensors: Map<string, Tensor>,
    private readonly model: CausalLM,
    private readonly source: string,
    private readonly backend: Backend,
  ) {}

  static async load(checkpoint: Checkpoint, backend: Backend, model: CausalLM): Promise<ResidentWeightStore> {
    const tensors = new Map<string, Tensor>();
    for (const name of neededTensorNames(checkpoint.names(), model)) {
      tensors.set(name, await loadTensor(checkpoint, backend, name));
    }
    for (const name of model.globalTensorNames) {
      if (!tensors.has(name))
        throw new OllmError("INVALID_CHECKPOINT", `checkpoint in ${checkpoint.dir} lacks tensor ${name}`);
    }
    return new ResidentWeightStore(tensors, model, `checkpoint in ${checkpoint.dir}`, backend);
  }

  global(): Weights {
    this.globals ??= new MapWeights(this.tensors, "", this.source, this.backend);
    return this.globals;
  }

  async layer(index: number): Promise<Weights> {
    this.layers[index] ??= new MapWeights(
      this.tensors,
      this.model.layerPrefix(index),
      this.source,
      this.backend,
    );
    return this.layers[index];
  }

  // One view per layer for the store's life (the tensors never change), so their lookups stay cached.
  private globals: MapWeights | undefined;
  private readonly layers: MapWeights[] = [];

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}

/** The checkpoint tensors the model reads: its global tensors and everything under a layer prefix. */
export function neededTensorNames(names: string[], model: CausalLM): string[] {
  const prefixes = Array.from({ length: model.numLayers }, (_, i) => model.layerPrefix(i));
  const globals = new Set(model.globalTensorNames);
  return names.filter((n) => globals.has(n) || prefixes.some((p) => n.startsWith(p)));
}

import { resolve } from "node:path";
import { type RuntimeConfig, validateRuntimeConfig } from "../config/runtime-config.js";
import { isOllmError, OllmError } from "../errors.js";
import { type LoadModelOptions, loadModel, type Model } from "../engine/model.js";
import { Catalog, type Modality } from "./catalog.js";
import type { RuntimeEvent, RuntimeEventListener } from "./events.js";
import { probeWebGpuOnce } from "./gpu-probe.js";
import { type MachineInfo, type MachineProbe, probeMachine, type WebGpuProbe } from "./machine.js";
import { LocalOnlyMaterializer, type Materializer } from "./materializer.js";
import { type PlanDescription, planModalities, planRuntime, type RuntimePlan } from "./plan.js";
import type { ResolvedModel } from "./resolved-model.js";
import { ModelResolver } from "./resolver.js";
import { type ChatTokenizer, defaultTokenizerLoader, type TokenizerLoader } from "./tokenizer.js";

/** Per-call options of planning and loading. */
export interface PlanCallOptions {
  /** Input modalities the request needs (the client derives them from the content parts). */
  modalities?: readonly Modality[];
  onEvent?: RuntimeEventListener;
  signal?: AbortSignal;
}

/** A config resolved and planned. */
export interface PlannedRuntime {
  config: RuntimeConfig;
  model: ResolvedModel;
  plan: RuntimePlan;
}

/**
 * A loaded model ready to execute prompts: its weights on the backend, its tokenizer and the plan it was
 * loaded with. Shared by every prompt and session with the same config; {@link close} frees it once the
 * turns using it have finished.
 */
export class LoadedRuntime {
  #users = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  #idle: Promise<void> | undefined;
  #signalIdle: (() => void) | undefined;

  /** @internal */
  constructor(
    /** Cache key: the normalized config. */
    readonly key: string,
    readonly config: RuntimeConfig,
    readonly model: ResolvedModel,
    readonly plan: RuntimePlan,
    /** The engine model (weights, sequences). */
    readonly engine: Model,
    readonly tokenizer: ChatTokenizer,
    /** Ids that end generation: the model's and the tokenizer's eos ids. */
    readonly stopTokenIds: readonly number[],
    /** Milliseconds the load took. */
    readonly loadMs: number,
  ) {}

  /** True once close() was called; a closing runtime takes no new turns. */
  get closed(): boolean {
    return this.#closing;
  }

  /** Marks one turn as using the runtime; call the returned function when it ends. @internal */
  acquire(): () => void {
    if (this.#closing)
      throw new OllmError("INVALID_ARGUMENT", `The runtime of ${this.model.name} was unloaded`, {
        hint: "Load it again (client.load) or send the prompt again.",
      });
    this.#users++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#users--;
      if (this.#closing && this.#users === 0) this.#signalIdle?.();
    };
  }

  /** Frees the weights once the turns running on it have finished. Idempotent. */
  close(): Promise<void> {
    this.#closing = true;
    if (this.#users === 0) return this.#finish();
    this.#idle ??= new Promise((resolve) => {
      this.#signalIdle = resolve;
    });
    return this.#idle.then(() => this.#finish());
  }

  #finish(): Promise<void> {
    this.#closed ??= this.engine.close();
    return this.#closed;
  }
}

/** How a {@link RuntimeLoader} finds, materializes, measures and loads. Every part is replaceable. */
export interface RuntimeLoaderOptions {
  /** Built-in aliases (default: the package's catalog). */
  catalog?: Catalog;
  /** Downloads models that are not on disk (default: none; such models fail with MODEL_NOT_FOUND). */
  materializer?: Materializer;
  /** Measures the machine for planning (default: this machine). */
  machine?: MachineProbe;
  /**
   * Finds the WebGPU adapters and their memory for `backend: "auto"` (default: this machine's, probed once
   * per process: gpu-probe.ts). Called at most once per loader, and only for a config whose backend is auto
   * (and device not cpu) when the machine probe did not fill `webgpu` itself.
   */
  gpuProbe?: () => Promise<WebGpuProbe>;
  /** Loads tokenizers (default: src/text). */
  tokenizerLoader?: TokenizerLoader;
  /** Loads the engine model (default: the engine's loadModel). */
  modelLoader?: (dir: string, options: LoadModelOptions) => Promise<Model>;
  /** Receives every runtime event. */
  onEvent?: RuntimeEventListener;
}

/**
 * Resolve → materialize → plan → load, with a cache of loaded runtimes keyed by the normalized config,
 * so repeated prompts with the same config do not reload.
 */
export class RuntimeLoader {
  readonly resolver: ModelResolver;
  readonly #materializer: Materializer;
  readonly #machine: MachineProbe;
  readonly #gpuProbe: () => Promise<WebGpuProbe>;
  #webgpu: Promise<WebGpuProbe> | undefined;
  readonly #tokenizerLoader: TokenizerLoader;
  readonly #modelLoader: (dir: string, options: LoadModelOptions) => Promise<Model>;
  readonly #onEvent: RuntimeEventListener | undefined;
  readonly #cache = new Map<string, Promise<LoadedRuntime>>();

  constructor(options: RuntimeLoaderOptions = {}) {
    this.resolver = new ModelResolver(options.catalog ?? Catalog.builtin());
    this.#materializer = options.materializer ?? new LocalOnlyMaterializer();
    this.#machine = options.machine ?? probeMachine;
    this.#gpuProbe = options.gpuProbe ?? probeWebGpuOnce;
    this.#tokenizerLoader = options.tokenizerLoader ?? defaultTokenizerLoader;
    this.#modelLoader = options.modelLoader ?? loadModel;
    this.#onEvent = options.onEvent;
  }

  /** Resolves a reference (see {@link ModelResolver.resolve}). */
  resolve(reference: string, modelsDir: string): Promise<ResolvedModel> {
    return this.resolver.resolve(reference, modelsDir);
  }

  /** Materialized models under a models dir (see {@link ModelResolver.discover}). */
  discover(modelsDir: string): Promise<ResolvedModel[]> {
    return this.resolver.discover(modelsDir);
  }

  /** Validates the config, resolves its model and plans it. Nothing is downloaded or loaded. */
  async plan(input: unknown, options: PlanCallOptions = {}): Promise<PlannedRuntime> {
    const config = normalize(validateRuntimeConfig(input));
    const model = await this.resolver.resolve(config.modelReference, config.modelsDir);
    const machine = await this.measure(config);
    return { config, model, plan: planRuntime(config, model, machine, { modalities: options.modalities }) };
  }

  /**
   * What the planner knows about the machine for `config`: the machine probe's answer, plus the WebGPU
   * probe when the backend is auto (run once per loader; never for backend cpu or webgpu, or device cpu).
   */
  async measure(config: Pick<RuntimeConfig, "backend" | "device">): Promise<MachineInfo> {
    const machine = await this.#machine();
    if (machine.webgpu !== undefined || config.backend !== "auto" || config.device === "cpu") return machine;
    this.#webgpu ??= this.#gpuProbe().catch(
      (error: unknown): WebGpuProbe => ({
        adapters: [],
        error: `the WebGPU probe failed: ${error instanceof Error ? error.message : String(error)}`,
      }),
    );
    return { ...machine, webgpu: await this.#webgpu };
  }

  /** The `describePlan` payload: normalized config, resolved model, plan. */
  async describePlan(input: unknown, options: PlanCallOptions = {}): Promise<PlanDescription> {
    const { config, model, plan } = await this.plan(input, options);
    return { schemaVersion: 1, runtimeConfig: config, resolvedModel: model, plan };
  }

  /**
   * The loaded runtime for a config: from the cache when the same (normalized) config was loaded before,
   * else resolved, materialized (through the materializer), planned and loaded. Concurrent calls with one
   * config share one load; a failed load is not cached.
   */
  async load(input: unknown, options: PlanCallOptions = {}): Promise<LoadedRuntime> {
    const config = normalize(validateRuntimeConfig(input));
    const key = cacheKey(config);
    const emit = this.emitter(options.onEvent);
    const cached = this.#cache.get(key);
    if (cached) {
      const runtime = await cached;
      if (!runtime.closed) {
        // The runtime was planned for other inputs, maybe: this request's modalities must fit too.
        if (options.modalities) planModalities(config, runtime.model, options.modalities);
        emit({
          type: "load-done",
          model: runtime.model.name,
          path: runtime.plan.model.path,
          ms: 0,
          cached: true,
        });
        return runtime;
      }
    }
    const pending = this.#load(key, config, options, emit);
    this.#cache.set(key, pending);
    pending.catch(() => {
      if (this.#cache.get(key) === pending) this.#cache.delete(key);
    });
    return pending;
  }

  /** Unloads the runtime of a config, if loaded. Resolves true when one was unloaded. */
  async unload(input: unknown): Promise<boolean> {
    const key = cacheKey(normalize(validateRuntimeConfig(input)));
    const pending = this.#cache.get(key);
    if (!pending) return false;
    this.#cache.delete(key);
    await this.#closeQuietly(pending);
    return true;
  }

  /** The runtimes loaded now. */
  async loaded(): Promise<LoadedRuntime[]> {
    const all = await Promise.allSettled([...this.#cache.values()]);
    return all.flatMap((r) => (r.status === "fulfilled" && !r.value.closed ? [r.value] : []));
  }

  /** Unloads every runtime. */
  async close(): Promise<void> {
    const all = [...this.#cache.values()];
    this.#cache.clear();
    await Promise.all(all.map((p) => this.#closeQuietly(p)));
  }

  async #closeQuietly(pending: Promise<LoadedRuntime>): Promise<void> {
    let runtime: LoadedRuntime;
    try {
      runtime = await pending;
    } catch {
      return;
    }
    await runtime.close();
    this.emitter()({ type: "unload", model: runtime.model.name });
  }

  /** A listener that reports to the loader's listener and to `extra`. */
  emitter(extra?: RuntimeEventListener): (event: RuntimeEvent) => void {
    return (event) => {
      this.#onEvent?.(event);
      extra?.(event);
    };
  }

  async #load(
    key: string,
    config: RuntimeConfig,
    options: PlanCallOptions,
    emit: (event: RuntimeEvent) => void,
  ): Promise<LoadedRuntime> {
    let model = await this.resolver.resolve(config.modelReference, config.modelsDir);
    emit({
      type: "resolve",
      reference: config.modelReference,
      materialized: model.materialized,
      path: model.path,
    });
    if (!model.materialized && !model.issues.some((i) => i.code !== "MODEL_NOT_FOUND")) {
      const dir = await this.#materializer.materialize(model, {
        modelsDir: config.modelsDir,
        onEvent: emit,
        signal: options.signal,
      });
      model = await this.resolver.describeMaterialized(model, dir);
    }
    const machine = await this.measure(config);
    const notice = (message: string) => emit({ type: "notice", message });
    let plan = planRuntime(config, model, machine, { modalities: options.modalities, onNotice: notice });
    if (config.verbose)
      for (const r of plan.reasons)
        emit({ type: "status", message: `plan: ${r.subject} = ${r.decision} (${r.reason})` });
    emit({ type: "load-start", model: model.name, path: plan.model.path });
    emit({
      type: "status",
      message: `Loading ${model.name} (${plan.model.architecture}) on ${plan.backend}…`,
    });
    const start = performance.now();
    const tokenizerLoad = settle(this.#tokenizerLoader(plan.model.path));
    let engineResult = await settle(this.#modelLoader(plan.model.path, engineOptions(plan)));
    // auto chose WebGPU, and it did not open: the CPU instead (an explicit webgpu keeps the error).
    if (
      engineResult.status === "rejected" &&
      config.backend === "auto" &&
      config.device === "auto" &&
      plan.backend === "webgpu" &&
      isOllmError(engineResult.reason) &&
      engineResult.reason.code === "BACKEND_UNAVAILABLE"
    ) {
      const failed = `the WebGPU backend failed to open: ${engineResult.reason.message}`;
      plan = planRuntime(
        config,
        model,
        { ...machine, webgpu: { adapters: [], error: failed } },
        { modalities: options.modalities },
      );
      notice(`${failed}; running on the CPU`);
      if (config.verbose)
        for (const r of plan.reasons.filter((r) => r.subject === "backend" || r.subject === "device"))
          emit({ type: "status", message: `plan: ${r.subject} = ${r.decision} (${r.reason})` });
      emit({ type: "status", message: `Loading ${model.name} (${plan.model.architecture}) on cpu…` });
      engineResult = await settle(this.#modelLoader(plan.model.path, engineOptions(plan)));
    }
    const tokenizerResult = await tokenizerLoad;
    if (engineResult.status === "rejected" || tokenizerResult.status === "rejected") {
      if (engineResult.status === "fulfilled") await engineResult.value.close();
      throw engineResult.status === "rejected"
        ? engineResult.reason
        : (tokenizerResult as PromiseRejectedResult).reason;
    }
    const engine = engineResult.value;
    const tokenizer = tokenizerResult.value;
    const stopTokenIds = [...new Set([...engine.generation.eosTokenIds, ...tokenizer.eosTokenIds])];
    const ms = performance.now() - start;
    emit({ type: "load-done", model: model.name, path: plan.model.path, ms, cached: false });
    return new LoadedRuntime(key, config, model, plan, engine, tokenizer, stopTokenIds, ms);
  }
}

/** What the engine loads: backend, per-layer residency (when a layer streams), the expert LRU and the KV strategy. */
export function engineOptions(plan: RuntimePlan): LoadModelOptions {
  // Layers live where the backend computes unless the plan streams some ("gpu" on webgpu, "host" on the cpu).
  const resident = plan.backend === "webgpu" ? "gpu" : "host";
  const streams = plan.layers.some((l) => l.residency !== resident);
  const kv = plan.kvCache;
  return {
    backend: plan.backend,
    // The plan's "gpu" is the engine's first-adapter choice; "gpu:N" names an adapter.
    device: plan.backend === "webgpu" ? plan.device : undefined,
    // Timestamp queries are set up on a GPU and turned on per reply with --stats (setTiming).
    stats: plan.backend === "webgpu",
    // The engine's "device" is GPU memory on a GPU backend and host memory on the cpu.
    residency: streams
      ? plan.layers.map((l) => (l.residency === "disk" ? "disk" : l.residency === "gpu" ? "device" : "host"))
      : undefined,
    expertCacheBytes: plan.memory.expertCacheBytes,
    kvCache: {
      strategy: kv.applied,
      blockTokens: kv.blockTokens,
      hotBlocks: kv.hotBlocks,
      windowTokens: kv.windowTokens ?? undefined,
      cacheDir: kv.cacheDir ?? undefined,
    },
  };
}

/** A promise's outcome, never rejecting. */
function settle<T>(promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  return promise.then(
    (value): PromiseFulfilledResult<T> => ({ status: "fulfilled", value }),
    (reason: unknown): PromiseRejectedResult => ({ status: "rejected", reason }),
  );
}

/** The config with modelsDir absolute, so equal configs written differently share a cache entry. */
function normalize(config: RuntimeConfig): RuntimeConfig {
  return { ...config, modelsDir: resolve(config.modelsDir) };
}

/** Options that change nothing about the loaded runtime (they affect responses only). */
const NOT_IN_KEY = new Set(["stats", "verbose"]);

function cacheKey(config: RuntimeConfig): string {
  const sorted = Object.fromEntries(
    Object.entries(config)
      .filter(([k]) => !NOT_IN_KEY.has(k))
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  return JSON.stringify(sorted);
}

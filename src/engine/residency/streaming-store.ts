import type { FileHandle } from "node:fs/promises";
import { OllmError } from "../../errors.js";
import type { Backend, HostBuffer } from "../backend.js";
import type { CausalLM, Weights } from "../models/family.js";
import { DTYPE_BYTES, type DType, type Tensor } from "../tensor.js";
import {
  ENGINE_DTYPES,
  loadTensor,
  MapWeights,
  neededTensorNames,
  type WeightStore,
} from "../weight-store.js";
import { openFile, readAt } from "../weights/io.js";
import type { Checkpoint, TensorInfo } from "../weights/safetensors.js";
import { ExpertCache, type ExpertCacheStats } from "./expert-cache.js";
import type { Residency } from "./policy.js";

export interface LayeredWeightOptions {
  /** Where each layer lives (missing entries: "device"). */
  residency?: readonly Residency[];
  /** Bytes of streamed experts kept in an LRU across tokens (default 0: read each time they are routed to). */
  expertCacheBytes?: number;
  /**
   * Whether the backend computes from host memory (default: backend.name === "cpu"): then "host" layers are
   * resident like "device" ones; otherwise they stay in host RAM and are uploaded per use.
   */
  hostIsDevice?: boolean;
  /** Read the next streamed layer while the current one computes (default true). */
  prefetch?: boolean;
  /**
   * Read streamed tensors straight into backend memory where the backend exposes it (default true); false
   * always goes through the staging buffer and an upload (what a GPU backend does).
   */
  readInPlace?: boolean;
}

/** What streaming did so far. */
export interface StreamingStats {
  /** Streamed layer loads (each one read from disk). */
  layerLoads: number;
  /** Bytes read from disk for layer weights (after load) and for experts. */
  layerBytesRead: number;
  expertBytesRead: number;
  bytesRead: number;
  /**
   * Wall time disk reads were in flight. A prefetched read that finishes while the main thread computes is
   * only noticed at the next turn of the event loop, so this over-states the I/O time of overlapped reads;
   * use {@link readOverlap} with a measured read throughput for the overlap.
   */
  readMs: number;
  /** Time the runner was blocked on reads (layer reads not finished in time, plus expert reads). */
  waitMs: number;
  /** Time copying staged bytes into backend memory. */
  uploadMs: number;
  experts: ExpertCacheStats;
  /** Bytes of the staging buffer. */
  stagingBytes: number;
}

interface Slot {
  name: string;
  info: TensorInfo;
  dtype: DType;
  shape: number[];
  /** Byte offset in the staging buffer (or the host copy). */
  offset: number;
  /** Read straight into a pooled backend tensor's bytes (no staging copy). */
  direct?: boolean;
}

interface LayerPlan {
  index: number;
  prefix: string;
  residency: Residency;
  /** What is read and uploaded together when the layer runs. */
  unit: Slot[];
  unitBytes: number;
  /** Stacked or per-expert tensors fetched on demand (streamed layers). */
  experts: Map<string, Slot>;
  /**
   * The layer's bytes in host RAM ("host" layers on a GPU backend): the unit in mapped memory the device
   * copies from where the backend offers it (then `host` holds the experts only), else all in `host`.
   */
  host?: Uint8Array;
  hostBuffer?: HostBuffer;
}

/** A streamed layer being read: its pooled in-place tensors, and the host buffer the rest lands in. */
interface StagedRead {
  layer: number;
  tensors: Map<string, Tensor>;
  stage: HostBuffer | undefined;
  done: Promise<void>;
}

interface LiveLayer {
  tensors: Map<string, Tensor>;
  /** Expert tensors fetched for this use that the LRU did not take. */
  transient: Tensor[];
  refs: number;
}

/**
 * Share of the streaming I/O hidden behind compute: 1 − waitMs / (the time the same bytes take to read
 * serially at `bytesPerSecond`, measured on the same files). 1 when nothing was read.
 */
export function readOverlap(
  stats: Pick<StreamingStats, "bytesRead" | "waitMs">,
  bytesPerSecond: number,
): number {
  const serialMs = (stats.bytesRead / bytesPerSecond) * 1000;
  if (serialMs <= 0) return 1;
  return Math.min(1, Math.max(0, 1 - stats.waitMs / serialMs));
}

/** Tensor names (relative to the layer prefix) of MoE experts: what a streamed layer fetches per expert. */
export const EXPERT_TENSOR = /(^|\.)experts\./;

const ALIGN = 64;

/** Waits for every promise (no read may still write into a buffer once this returns), then fails with the first error. */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

function engineDType(info: TensorInfo): DType {
  const dtype = ENGINE_DTYPES[info.dtype];
  if (!dtype)
    throw new OllmError(
      "INVALID_CHECKPOINT",
      `tensor ${info.name} has dtype ${info.dtype}, which the engine cannot load`,
    );
  return dtype;
}

/** Whether a backend tensor's data is a view of `buffer` (CPU tensors built from bytes without a copy). */
function aliases(t: Tensor, buffer: ArrayBufferLike): boolean {
  const data = (t as { data?: unknown }).data;
  return ArrayBuffer.isView(data) && data.buffer === buffer;
}

/**
 * The host-visible bytes of a backend tensor, where the backend keeps them in a typed array (the CPU
 * backend: a view into the kernels' shared arena, or a plain array), so a streamed layer can be read
 * straight into the memory the kernels compute from. Undefined elsewhere (GPU buffers). f16 is excluded:
 * the CPU kernels inspect f16 weights when they are placed.
 * TODO(backend): replace with an explicit Backend.hostView(tensor) once the backends offer one.
 */
function hostBytesOf(t: Tensor, byteLength: number): Uint8Array | undefined {
  if (t.dtype === "f16") return undefined;
  const data = (t as { data?: unknown }).data;
  if (!ArrayBuffer.isView(data) || data.byteLength !== byteLength) return undefined;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Backend tensors reused across streamed layers, by dtype and shape (two layers' worth at a time). */
class TensorPool {
  private readonly free = new Map<string, Tensor[]>();
  private readonly owned = new Set<Tensor>();

  constructor(private readonly backend: Backend) {}

  acquire(dtype: DType, shape: number[], bytes: number): Tensor {
    const t = this.free.get(`${dtype}:${shape.join("x")}`)?.pop();
    if (t) return t;
    const fresh = this.backend.upload(new Uint8Array(bytes), dtype, shape);
    this.owned.add(fresh);
    return fresh;
  }

  owns(t: Tensor): boolean {
    return this.owned.has(t);
  }

  release(t: Tensor): void {
    const key = `${t.dtype}:${t.shape.join("x")}`;
    let list = this.free.get(key);
    if (!list) {
      list = [];
      this.free.set(key, list);
    }
    list.push(t);
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.clear();
    this.free.clear();
  }
}

/** A stand-in for an expert tensor of a streamed layer: `find` sees it, computing with it is a bug. */
class OnDemandTensor implements Tensor {
  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  async read(): Promise<Float32Array> {
    throw new OllmError("INTERNAL", `${this.name} is streamed per expert: use Weights.fetch(name, expert)`);
  }

  dispose(): void {}
}

/**
 * Weights placed per layer: "device" layers (and "host" ones on the CPU backend) are loaded once; "host"
 * layers on a GPU backend stay in host RAM and are copied to the device per use; "disk" layers are read per
 * use with positioned reads (Checkpoint.readInto) and dropped when the runner releases them. Where the
 * backend exposes a tensor's memory (CPU) the bytes are read straight into pooled backend tensors. A GPU
 * backend with host buffers (mapped memory) gets them read straight into one of two host buffers, then
 * copied into pooled device tensors in order with its ops (no staging copy, no buffer created per use);
 * "host" layers live in such buffers. (Recording a host layer's copy one layer ahead, so the device might
 * run it beside the layer before, measured no faster on the H200 and cost a second device copy.) Otherwise
 * they go through one reused staging buffer and an upload. When a layer is handed out, the read of the
 * next streamed layer starts (into the pooled tensors the previous layer gave back, or the other host
 * buffer) and runs while this one computes: double buffering, two layers of streamed weights at most.
 *
 * MoE expert tensors of streamed layers are not read with the layer: `Weights.fetch(name, expert)` reads
 * that expert's byte range only, through a small LRU of hot experts.
 */
export class LayeredWeightStore implements WeightStore {
  readonly streaming: boolean;
  private readonly source: string;
  private staged: StagedRead | undefined;
  /** The two host buffers streamed layers are read into (backends with host buffers), and the next one. */
  private stages: HostBuffer[];
  private nextStage = 0;
  private readonly pool: TensorPool;
  private readonly live = new Map<number, LiveLayer>();
  private readonly experts: ExpertCache;
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private readonly counters = {
    layerLoads: 0,
    layerBytesRead: 0,
    expertBytesRead: 0,
    readMs: 0,
    waitMs: 0,
    uploadMs: 0,
  };

  private constructor(
    private readonly checkpoint: Checkpoint,
    private readonly backend: Backend,
    private readonly plans: LayerPlan[],
    private readonly resident: Map<string, Tensor>,
    private staging: Uint8Array | undefined,
    stages: HostBuffer[],
    private readonly prefetch: boolean,
    expertCacheBytes: number,
  ) {
    this.stages = stages;
    this.source = `checkpoint in ${checkpoint.dir}`;
    this.streaming = plans.some((p) => p.residency === "disk");
    this.experts = new ExpertCache(expertCacheBytes);
    this.pool = new TensorPool(backend);
  }

  static async load(
    checkpoint: Checkpoint,
    backend: Backend,
    model: CausalLM,
    options: LayeredWeightOptions = {},
  ): Promise<LayeredWeightStore> {
    const hostIsDevice = options.hostIsDevice ?? backend.name === "cpu";
    // The device copies from mapped host memory itself: no staging copy, no upload per use.
    const copies = !hostIsDevice && backend.hostBuffer !== undefined && backend.copyFromHost !== undefined;
    if (options.residency && options.residency.length !== model.numLayers)
      throw new OllmError(
        "INVALID_ARGUMENT",
        `residency names ${options.residency.length} layers, but the model has ${model.numLayers}`,
      );
    const names = neededTensorNames(checkpoint.names(), model);
    const resident = new Map<string, Tensor>();
    const hostBuffers: HostBuffer[] = [];
    const globals = new Set(model.globalTensorNames);
    for (const name of model.globalTensorNames) {
      if (!checkpoint.has(name))
        throw new OllmError("INVALID_CHECKPOINT", `checkpoint in ${checkpoint.dir} lacks tensor ${name}`);
    }
    const plans: LayerPlan[] = [];
    let stagingBytes = 0;
    const direct = new Map<DType, boolean>();
    const canReadInto = (dtype: DType): boolean => {
      let ok = direct.get(dtype);
      if (options.readInPlace === false) return false;
      if (ok === undefined) {
        const probe = backend.upload(new Uint8Array(64), dtype, [64 / DTYPE_BYTES[dtype]]);
        ok = hostBytesOf(probe, 64) !== undefined;
        probe.dispose();
        direct.set(dtype, ok);
      }
      return ok;
    };
    try {
      for (const name of names)
        if (globals.has(name)) resident.set(name, await loadTensor(checkpoint, backend, name));
      for (let i = 0; i < model.numLayers; i++) {
        const prefix = model.layerPrefix(i);
        let residency = options.residency?.[i] ?? "device";
        if (residency === "host" && hostIsDevice) residency = "device";
        const mine = names.filter((n) => n.startsWith(prefix) && !globals.has(n));
        const plan: LayerPlan = { index: i, prefix, residency, unit: [], unitBytes: 0, experts: new Map() };
        plans.push(plan);
        if (residency === "device") {
          for (const name of mine) resident.set(name, await loadTensor(checkpoint, backend, name));
          continue;
        }
        let offset = 0;
        const slot = (name: string): Slot => {
          const info = checkpoint.info(name);
          const s = {
            name,
            info,
            dtype: engineDType(info),
            shape: info.shape.length ? [...info.shape] : [1],
            offset,
          };
          offset += Math.ceil(info.byteLength / ALIGN) * ALIGN;
          return s;
        };
        const unit = mine.filter((name) => !EXPERT_TENSOR.test(name.slice(prefix.length)));
        const experts = mine.filter((name) => EXPERT_TENSOR.test(name.slice(prefix.length)));
        if (residency === "host") {
          for (const name of unit) plan.unit.push(slot(name));
          plan.unitBytes = offset;
          let inHost = plan.unit;
          if (copies && offset > 0) {
            // The unit lives in mapped memory the device copies from; the experts stay in `host`.
            const buffer = backend.hostBuffer!(offset);
            hostBuffers.push(buffer);
            plan.hostBuffer = buffer;
            for (const s of plan.unit)
              await readViews(checkpoint, s, buffer.views(s.offset, s.info.byteLength));
            buffer.seal();
            inHost = [];
            offset = 0;
          }
          for (const name of experts) plan.experts.set(name, slot(name));
          plan.host = new Uint8Array(offset);
          for (const s of [...inHost, ...plan.experts.values()])
            await checkpoint.readInto(s.name, plan.host.subarray(s.offset, s.offset + s.info.byteLength));
        } else {
          // Streamed: tensors the backend exposes are read in place; the others go through staging.
          for (const name of unit) {
            const info = checkpoint.info(name);
            if (canReadInto(engineDType(info)))
              plan.unit.push({
                name,
                info,
                dtype: engineDType(info),
                shape: info.shape.length ? [...info.shape] : [1],
                offset: 0,
                direct: true,
              });
            else plan.unit.push(slot(name));
          }
          plan.unitBytes = plan.unit.reduce((n, s) => n + s.info.byteLength, 0);
          stagingBytes = Math.max(stagingBytes, offset);
          for (const name of experts) plan.experts.set(name, slot(name));
        }
      }
      if (copies && stagingBytes > 0)
        for (let i = 0; i < 2; i++) hostBuffers.push(backend.hostBuffer!(stagingBytes));
    } catch (error) {
      for (const t of resident.values()) t.dispose();
      for (const b of hostBuffers) b.dispose();
      throw error;
    }
    const stages = copies && stagingBytes > 0 ? hostBuffers.slice(-2) : [];
    const staging = stagingBytes > 0 && !copies ? new Uint8Array(stagingBytes) : undefined;
    return new LayeredWeightStore(
      checkpoint,
      backend,
      plans,
      resident,
      staging,
      stages,
      options.prefetch ?? true,
      Math.max(0, options.expertCacheBytes ?? 0),
    );
  }

  /** Where each layer lives ("host" layers on the CPU backend report "device": the same memory). */
  get residency(): Residency[] {
    return this.plans.map((p) => p.residency);
  }

  global(): Weights {
    return new MapWeights(this.resident, "", this.source, this.backend);
  }

  async layer(index: number): Promise<Weights> {
    const plan = this.plans[index];
    if (!plan) throw new OllmError("INTERNAL", `no layer ${index}`);
    if (plan.residency === "device")
      return new MapWeights(this.resident, plan.prefix, this.source, this.backend);
    let live = this.live.get(index);
    if (live) live.refs++;
    else {
      live = { tensors: await this.bring(plan), transient: [], refs: 1 };
      this.live.set(index, live);
    }
    return new StreamedWeights(this, plan, live);
  }

  release(index: number): void {
    const live = this.live.get(index);
    if (!live || --live.refs > 0) return;
    this.live.delete(index);
    this.drop(live.tensors);
    for (const t of live.transient) t.dispose();
    this.experts.unpin(index);
  }

  private drop(tensors: Map<string, Tensor>): void {
    for (const t of tensors.values()) {
      if (this.pool.owns(t)) this.pool.release(t);
      else t.dispose();
    }
  }

  stats(): StreamingStats {
    const c = this.counters;
    return {
      ...c,
      bytesRead: c.layerBytesRead + c.expertBytesRead,
      experts: { ...this.experts.stats },
      stagingBytes: this.bufferBytes.staging,
    };
  }

  resetStats(): void {
    for (const k of Object.keys(this.counters) as (keyof typeof this.counters)[]) this.counters[k] = 0;
    Object.assign(this.experts.stats, { hits: 0, misses: 0, evictions: 0 });
  }

  async close(): Promise<void> {
    await this.staged?.done.catch(() => undefined);
    this.dispose();
  }

  dispose(): void {
    // A read still in flight writes into a host buffer: it is destroyed once the read settles (close()
    // waits for it; a backend closed before that may still unmap it under the read).
    const reading = this.staged?.done;
    this.staged = undefined;
    for (const i of [...this.live.keys()]) {
      const live = this.live.get(i)!;
      live.refs = 1;
      this.release(i);
    }
    for (const t of this.resident.values()) t.dispose();
    this.resident.clear();
    this.experts.clear();
    this.pool.dispose();
    for (const p of this.plans) p.hostBuffer?.dispose();
    const stages = this.stages;
    this.stages = [];
    const free = () => {
      for (const b of stages) b.dispose();
    };
    if (reading) void reading.catch(() => undefined).then(free);
    else free();
    for (const h of this.handles.values()) h.then((f) => f.close()).catch(() => undefined);
    this.handles.clear();
    this.staging = undefined;
  }

  /** Backend tensors of a layer that is not resident: copied or uploaded from host RAM, or read from disk. */
  private async bring(plan: LayerPlan): Promise<Map<string, Tensor>> {
    if (plan.hostBuffer) return this.copyIn(plan, plan.hostBuffer, new Map());
    if (plan.host) return this.upload(plan, plan.host, undefined, new Map());
    let staged = this.staged;
    this.staged = undefined;
    if (staged && staged.layer !== plan.index) {
      await staged.done.catch(() => undefined);
      this.drop(staged.tensors);
      staged = undefined;
    }
    staged ??= this.startRead(plan.index);
    const t0 = performance.now();
    try {
      await staged.done;
    } catch (error) {
      this.drop(staged.tensors);
      throw error;
    }
    this.counters.waitMs += performance.now() - t0;
    const tensors = staged.stage
      ? this.copyIn(plan, staged.stage, staged.tensors)
      : this.upload(plan, this.staging, this.staging, staged.tensors);
    // The staging buffer (and the pooled tensors of the layer before) are free again: start reading the
    // next streamed layer while this one computes.
    if (this.prefetch) this.staged = this.startRead(this.nextStreamed(plan.index));
    return tensors;
  }

  /**
   * Reads a streamed layer: in-place tensors get their bytes directly, the rest land in the next host
   * buffer (once the copies of the layer read into it before have run) or in staging.
   */
  private startRead(index: number): StagedRead {
    const plan = this.plans[index];
    const tensors = new Map<string, Tensor>();
    const stage = this.stages.length ? this.stages[this.nextStage++ % this.stages.length] : undefined;
    const read = async (): Promise<void> => {
      if (stage) await stage.map();
      const t0 = performance.now();
      const reads: Promise<void>[] = [];
      for (const s of plan.unit) {
        const bytes = s.info.byteLength;
        if (s.direct) {
          const t = this.pool.acquire(s.dtype, s.shape, bytes);
          tensors.set(s.name, t);
          reads.push(this.checkpoint.readInto(s.name, hostBytesOf(t, bytes)!));
        } else if (stage) reads.push(readViews(this.checkpoint, s, stage.views(s.offset, bytes)));
        else reads.push(this.checkpoint.readInto(s.name, this.staging!.subarray(s.offset, s.offset + bytes)));
      }
      await settleAll(reads);
      this.counters.readMs += performance.now() - t0;
      this.counters.layerBytesRead += plan.unitBytes;
      this.counters.layerLoads++;
    };
    const done = read();
    done.catch(() => undefined);
    return { layer: index, tensors, stage, done };
  }

  /** Records copies of the slots not read in place from a host buffer into pooled device tensors. */
  private copyIn(plan: LayerPlan, src: HostBuffer, tensors: Map<string, Tensor>): Map<string, Tensor> {
    const t0 = performance.now();
    src.seal();
    for (const s of plan.unit) {
      if (s.direct) continue;
      const t = this.pool.acquire(s.dtype, s.shape, s.info.byteLength);
      this.backend.copyFromHost!(t, src, s.offset);
      tensors.set(s.name, t);
    }
    this.counters.uploadMs += performance.now() - t0;
    return tensors;
  }

  /** Uploads the slots that are not read in place (all of them for "host" layers) into `tensors`. */
  private upload(
    plan: LayerPlan,
    src: Uint8Array | undefined,
    staging: Uint8Array | undefined,
    tensors: Map<string, Tensor>,
  ): Map<string, Tensor> {
    const t0 = performance.now();
    for (const s of plan.unit) {
      if (s.direct || !src) continue;
      const bytes = src.subarray(s.offset, s.offset + s.info.byteLength);
      let t = this.backend.upload(bytes, s.dtype, s.shape);
      // The staging buffer is refilled while this layer computes: its tensors must own their bytes.
      if (staging && aliases(t, staging.buffer)) {
        t.dispose();
        t = this.backend.upload(bytes.slice(), s.dtype, s.shape);
      }
      tensors.set(s.name, t);
    }
    this.counters.uploadMs += performance.now() - t0;
    return tensors;
  }

  /** Bytes of the staging buffer or the two host buffers streamed layers are read into. */
  get bufferBytes(): { staging: number } {
    return { staging: this.staging?.byteLength ?? this.stages.reduce((n, b) => n + b.byteLength, 0) };
  }

  /** The next layer after `index` (wrapping around) streamed from disk. */
  private nextStreamed(index: number): number {
    const n = this.plans.length;
    for (let step = 1; step <= n; step++) {
      const j = (index + step) % n;
      if (this.plans[j].residency === "disk") return j;
    }
    return index;
  }

  /** One expert's slice of a stacked tensor (or a whole per-expert tensor), through the LRU. */
  async fetchExpert(
    plan: LayerPlan,
    live: LiveLayer,
    name: string,
    index: number | undefined,
  ): Promise<Tensor> {
    const key = index === undefined ? name : `${name}[${index}]`;
    const hit = this.experts.get(key, plan.index);
    if (hit) return hit;
    const s = plan.experts.get(name)!;
    let start = 0;
    let length = s.info.byteLength;
    let shape = s.shape;
    if (index !== undefined) {
      const n = s.info.shape[0] ?? 1;
      if (!Number.isInteger(index) || index < 0 || index >= n)
        throw new OllmError("INTERNAL", `expert ${index} of ${name} is outside [0, ${n})`);
      length = s.info.byteLength / n;
      start = index * length;
      shape = s.info.shape.length > 1 ? s.info.shape.slice(1) : [1];
    }
    let bytes: Uint8Array;
    if (plan.host) bytes = plan.host.subarray(s.offset + start, s.offset + start + length);
    else {
      bytes = new Uint8Array(length);
      const t0 = performance.now();
      await readAt(await this.handle(s.info.file), bytes, s.info.byteOffset + start, s.info.file);
      const ms = performance.now() - t0;
      this.counters.readMs += ms;
      this.counters.waitMs += ms;
      this.counters.expertBytesRead += length;
    }
    const tensor = this.backend.upload(bytes, s.dtype, shape);
    if (!this.experts.put(key, tensor, length, plan.index)) live.transient.push(tensor);
    return tensor;
  }

  private handle(file: string): Promise<FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = openFile(file);
      this.handles.set(file, h);
      h.catch(() => this.handles.delete(file));
    }
    return h;
  }

  /** @internal */
  sourceName(): string {
    return this.source;
  }

  /** @internal */
  backendOf(): Backend {
    return this.backend;
  }
}

/** Reads a tensor's bytes into consecutive views (a host buffer's chunks). */
async function readViews(checkpoint: Checkpoint, s: Slot, views: Uint8Array[]): Promise<void> {
  let at = 0;
  const reads = views.map((v) => {
    const from = at;
    at += v.byteLength;
    return checkpoint.readRangeInto(s.name, from, v);
  });
  await settleAll(reads);
}

class StreamedWeights implements Weights {
  constructor(
    private readonly store: LayeredWeightStore,
    private readonly plan: LayerPlan,
    private readonly live: LiveLayer,
  ) {}

  get(name: string): Tensor {
    const t = this.find(name);
    if (!t)
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `${this.store.sourceName()} lacks tensor ${this.plan.prefix + name}`,
      );
    return t;
  }

  find(name: string): Tensor | undefined {
    const full = this.plan.prefix + name;
    const t = this.live.tensors.get(full);
    if (t) return t;
    const s = this.plan.experts.get(full);
    return s ? new OnDemandTensor(full, s.shape, s.dtype) : undefined;
  }

  async fetch(name: string, index?: number): Promise<Tensor> {
    const full = this.plan.prefix + name;
    const t = this.live.tensors.get(full);
    if (t) return index === undefined ? t : this.store.backendOf().subTensor(t, index);
    if (this.plan.experts.has(full)) return this.store.fetchExpert(this.plan, this.live, full, index);
    throw new OllmError("INVALID_CHECKPOINT", `${this.store.sourceName()} lacks tensor ${full}`);
  }
}

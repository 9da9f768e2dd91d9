/// <reference types="@webgpu/types" />
import { OllmError } from "../../../errors.js";
import type {
  AttentionOptions,
  Backend,
  DeltaRuleOptions,
  DeviceStats,
  GatedActivation,
  HostBuffer,
  InputFusion,
  LinearFusion,
  LinearPart,
  RopeOptions,
  RopeSpec,
  TokenIds,
} from "../../backend.js";
import { checkAttentionOptions } from "../../attention-options.js";
import { normedInput, unfusedLinear } from "../../linear-fusion.js";
import { checkTopK } from "../../topk.js";
import { DTYPE_BYTES, type DType, numel, rowsOf, type Tensor } from "../../tensor.js";
import { typedView, widenAll } from "../cpu/widen.js";
import { type GpuContext, type GpuDeviceOptions, openGpu } from "./gpu.js";
import { gemmGrid, gemmVariant, tiledGemmKernel } from "./gemm.js";
import {
  type BlockGemvVariant,
  GEMV_BLOCK_ROWS,
  GEMV_MAX_PARTS,
  gemvBindings,
  gemvBlockKernel,
} from "./gemv.js";
import { type DispatchProfile, DispatchProfiler } from "./profiler.js";
import {
  type AttentionTuning,
  attentionCombineKernel,
  attentionDecodeKernel,
  attentionPlan,
} from "./attention-kernels.js";
import { prefillAttentionKernel, prefillAttentionParams, prefillAttentionPlan } from "./attention-prefill.js";
import * as K from "./kernels.js";
import {
  ActivationHeap,
  type ArenaSlice,
  BufferPool,
  bucketSize,
  MappedHostBuffer,
  WEBGPU_BUFFER_DEFAULTS,
  type HeapBlock,
  ParamArena,
  StagingRing,
  USAGE,
} from "./memory.js";

/** One GPU buffer holding `units` consecutive slices of a tensor's leading dimension. */
interface Segment {
  buffer: GPUBuffer;
  /** Element offset of the first value inside the buffer. */
  offset: number;
  /** Leading-dimension index of the first unit held here. */
  unitStart: number;
  units: number;
}

type Ownership = "heap" | "pooled" | "owned" | "view";

/** A tensor in GPU memory: one segment, or several for weights larger than one binding. */
export class WebGpuTensor implements Tensor {
  disposed = false;
  /** Key of its resources in the backend's table of live tensors (0: views, which own nothing). */
  id = 0;
  /**
   * Written in place by an op (writeRows, scatterAddRows) or made by zeros(): a container (a KV buffer, an
   * accumulator) that a scope never frees, whoever keeps it.
   */
  pinned = false;

  constructor(
    private readonly backend: WebGpuBackend,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly segments: Segment[],
    readonly ownership: Ownership,
    /** Keeps the tensor a view was taken from alive. */
    readonly base?: WebGpuTensor,
    readonly block?: HeapBlock,
  ) {}

  read(): Promise<Float32Array> {
    return this.backend.readTensor(this);
  }

  dispose(): void {
    this.backend.disposeTensor(this);
  }

  /** The single segment (activations and views); weights split over buffers are handled by their ops. */
  get one(): Segment {
    if (this.segments.length !== 1)
      throw new OllmError("INTERNAL", `tensor [${this.shape}] spans ${this.segments.length} buffers here`);
    return this.segments[0];
  }
}

export interface WebGpuBackendOptions extends GpuDeviceOptions {
  /** Free activation buffers kept for reuse (bytes; default 1 GiB). */
  poolBytes?: number;
  /** Largest single weight buffer (default min(binding limit, 128 MiB): bigger tensors are split). */
  maxSegmentBytes?: number;
  /** Staging ring for uploads: chunk size and count (default 16 MiB × 8: the largest 8B-shape tensor, 117 MB, fits). */
  stagingChunkBytes?: number;
  stagingChunks?: number;
  /** Chunk size of host buffers (default 64 MiB; tests use small ones to cross chunk boundaries). */
  hostChunkBytes?: number;
  /** Collect timestamp-query GPU times per submission (--stats). */
  stats?: boolean;
  /** Use subgroup operations when the adapter has them (default true; env OLLM_WEBGPU_SUBGROUPS=0 turns them off). */
  subgroups?: boolean;
  /**
   * Submit the recorded work every this many dispatches, so a hardware GPU starts on a step while the rest
   * is recorded (see setSubmitEvery); 0 submits only when a result is read. Default: env
   * OLLM_WEBGPU_SUBMIT_EVERY, else DEFAULT_SUBMIT_EVERY on a hardware adapter and 0 on a software one
   * (llvmpipe runs a submit on the CPU before returning, so early submits only add their cost there).
   */
  submitEvery?: number;
}

/**
 * Dispatches per submission on hardware adapters. With greedy generation recording a step ahead (a read in
 * flight, no ramp), the H200 run -28j- gave 1B 738 tok/s at 128 against 645 at 64, 8B 195 at both; the
 * step-by-step loop (ramping from 1 after each read) 548 against 569 at 64 (docs/benchmarks-gpu.md).
 */
export const DEFAULT_SUBMIT_EVERY = 128;

/** Dispatches before the first submit after a read (then the interval doubles up to submitEvery). */
const FIRST_SUBMIT = 1;

/** The submission interval of `options` on this adapter (see WebGpuBackendOptions.submitEvery). */
export function submitInterval(options: WebGpuBackendOptions, software: boolean): number {
  const env = process.env.OLLM_WEBGPU_SUBMIT_EVERY;
  const fromEnv = env !== undefined && env.trim() !== "" ? Number(env) : undefined;
  const n = options.submitEvery ?? (Number.isFinite(fromEnv) ? fromEnv : undefined);
  return n !== undefined && n >= 0 ? Math.floor(n) : software ? 0 : DEFAULT_SUBMIT_EVERY;
}

export interface WebGpuStats {
  submits: number;
  dispatches: number;
  /** Bind groups created (cache misses of `dispatch`). */
  bindGroupsCreated: number;
  /** GPU execution time of the submissions (timestamp queries; undefined without them). */
  gpuMs: number | undefined;
  uploadBytes: number;
  uploadMs: number;
  peakActivationBytes: number;
  pipelines: number;
}

const GEMV_MAX_ROWS = 16;
/** Readback staging buffers up to this size are kept for reuse (logits rows, top-k results). */
const READBACK_KEEP_BYTES = 4 << 20;

type Binding = GPUBuffer | ArenaSlice;

/** What a tensor owns, kept apart from it so it can be released after the tensor is collected. */
interface Held {
  ownership: Ownership;
  segments: readonly Segment[];
  /** The heap block of a "heap" tensor. */
  block?: HeapBlock;
}

/** One weight of a block GEMV dispatch: rows [no, no + n) of an output with row stride ldy. */
interface GemvPart {
  seg: Segment;
  dtype: DType;
  n: number;
  no: number;
  ldy: number;
  bias: WebGpuTensor | undefined;
  out: WebGpuTensor;
}

/** How a decode GEMV is laid out: threads per workgroup, weight loads in flight, output rows per workgroup. */
interface GemvShape {
  wg: number;
  unroll: number;
  out: number;
}

/**
 * Output rows per workgroup of the decode GEMV by default (env OLLM_WEBGPU_GEMV_OUT for measurements: 1, 2
 * or 4).
 */
const GEMV_OUT_ROWS = [1, 2, 4].includes(Number(process.env.OLLM_WEBGPU_GEMV_OUT))
  ? Number(process.env.OLLM_WEBGPU_GEMV_OUT)
  : 2;

/**
 * Threads, output rows and loads in flight per workgroup of GEMVs with N and K both ≥ 4096 (the 8B shape's
 * q/k/v, o, gate/up, down), for measurements: env OLLM_WEBGPU_GEMV_WIDE "wg:out[:unroll]", e.g. "512:2:2";
 * unset, the defaults of gemvShape.
 */
const GEMV_WIDE = (() => {
  const m = /^(64|128|256|512|1024):(1|2|4)(?::(1|2|4))?$/.exec(process.env.OLLM_WEBGPU_GEMV_WIDE ?? "");
  return m ? { wg: Number(m[1]), out: Number(m[2]), unroll: m[3] ? Number(m[3]) : undefined } : undefined;
})();

/** What a block GEMV folds in: an RMS norm of x (weight, eps, weight offset) and a residual added to y. */
interface GemvExtras {
  norm?: { weight: WebGpuTensor; eps: number; offset: number };
  residual?: WebGpuTensor;
}

/** Bytes [start, end) of a buffer an op reads or writes. */
interface Span {
  buffer: GPUBuffer;
  start: number;
  end: number;
}

/** One readback copy of `readTensor`: a chunk of a segment's bytes in a MAP_READ buffer. */
interface ReadJob {
  seg: Segment;
  start: number;
  bytes: number;
  skip: number;
  staging: GPUBuffer;
}

/** Parameter slots of the rope + KV append kernel (K.ropeKvKernel). */
const ROPE_KV = { yo1: 7, ko: 13, n2: 14, vso: 15, vo: 16 } as const;

/**
 * The rope pair of `a` (q) and `b` (k), held as a rope + KV append dispatch with nothing appended yet
 * (n2 = 0, the k cache copy into an unused spare buffer) until the append's copies arrive.
 */
function ropePair(a: Deferred, b: Deferred, spare: GPUBuffer): Deferred {
  // [n, width, headDim, half, rot, xo, yo, to, so] each; the table and head layout are shared.
  const [n0, w0, headDim, half, rot, xo0, yo0, to, so] = a.params;
  const [n1, w1, , , , xo1, yo1] = b.params;
  return {
    kind: "ropePair",
    key: "",
    dtype: a.dtype,
    dtype1: b.dtype,
    src: K.ropeKvKernel(a.dtype, b.dtype, false, "f32"),
    bindings: [
      a.bindings[0],
      b.bindings[0],
      a.bindings[1],
      a.bindings[2],
      b.bindings[2],
      spare,
      spare,
      spare,
    ],
    params: [n0, w0, xo0, yo0, n1, w1, xo1, yo1, headDim, half, rot, to, so, 0, 0, 0, 0],
    n: a.n + b.n,
    reads: [...a.reads, ...b.reads],
    writes: [...a.writes, ...b.writes],
  };
}

/** A contiguous copy (rows of one width, source and destination rows adjacent). */
function contiguous(copy: Deferred): boolean {
  const [, cols, , ss, , ys] = copy.params;
  return ss === cols && ys === cols && copy.dtype === "f32";
}

/** Whether `copy` copies all of the pair's k output (and writes nothing the pair touches). */
function copiesSecondOutput(pair: Deferred, copy: Deferred): boolean {
  const [n, , so] = copy.params;
  return (
    contiguous(copy) &&
    copy.bindings[0] === pair.bindings[4] &&
    so === pair.params[ROPE_KV.yo1] &&
    n === pair.params[4] &&
    !overlaps(pair.reads, copy.writes) &&
    !overlaps(pair.writes, copy.writes)
  );
}

function isVCopy(copy: Deferred): boolean {
  return copy.kind === "copy" && contiguous(copy);
}

/** The pair also stores k where `copy` would have copied it. */
function withKCopy(pair: Deferred, copy: Deferred): Deferred {
  const bindings = [...pair.bindings];
  bindings[5] = copy.bindings[1];
  const params = [...pair.params];
  params[ROPE_KV.ko] = copy.params[4];
  return {
    ...pair,
    kind: "ropeKv",
    src: K.ropeKvKernel(pair.dtype, pair.dtype1 ?? pair.dtype, true, "f32"),
    bindings,
    params,
    writes: [...pair.writes, ...copy.writes],
  };
}

/** The held rope + k append also copies v (`copy`). */
function withVCopy(held: Deferred, copy: Deferred): void {
  const [n, , so, , yo] = copy.params;
  held.bindings[6] = copy.bindings[0];
  held.bindings[7] = copy.bindings[1];
  held.params[ROPE_KV.n2] = n;
  held.params[ROPE_KV.vso] = so;
  held.params[ROPE_KV.vo] = yo;
  held.n += n;
  held.src = K.ropeKvKernel(held.dtype, held.dtype1 ?? held.dtype, true, copy.dtype);
}

/**
 * A decode q/k/v GEMV held back, and what folded into it: per part the output the rope of that part writes
 * (RO) and the KV cache rows its (rotated) output is copied to (C).
 */
interface HeldGemv {
  readonly variant: BlockGemvVariant;
  bindings: Binding[];
  params: number[];
  grid: [number, number, number];
  x: WebGpuTensor;
  /** Each part's output: buffer, element offset, elements. */
  outs: { buffer: GPUBuffer; offset: number; n: number }[];
  rope?: { table: ArenaSlice; headDim: number; half: number; sin: number; outs: (Span | undefined)[] };
  copies: (Span | undefined)[];
}

function heldGemv(
  variant: BlockGemvVariant,
  bindings: Binding[],
  params: number[],
  grid: [number, number, number],
  parts: GemvPart[],
  x: WebGpuTensor,
): Deferred {
  const outs = parts.map((p) => ({
    buffer: p.out.one.buffer,
    offset: p.out.one.offset,
    n: p.n * variant.rows,
  }));
  return {
    kind: "gemv",
    key: "",
    dtype: variant.dtype,
    src: gemvBlockKernel(variant),
    bindings,
    params,
    n: 0,
    // What a folded op could clobber: x (weights, norm and biases are never written by ops).
    reads: [{ buffer: x.one.buffer, start: x.one.offset * 4, end: (x.one.offset + numel(x.shape)) * 4 }],
    writes: outs.map((o) => ({ buffer: o.buffer, start: o.offset * 4, end: (o.offset + o.n) * 4 })),
    gemv: { variant, bindings, params, grid, x, outs, copies: parts.map(() => undefined) },
  };
}

/**
 * Folds `op` into the held GEMV when it is the full-width rope of one of its outputs (q or k, one table for
 * both) or a contiguous copy of a whole (rotated) output into other rows (the KV append), and touches
 * nothing else the GEMV reads or writes. Returns whether it did.
 */
function foldIntoGemv(held: Deferred, op: Deferred): boolean {
  const g = held.gemv as HeldGemv;
  // x bound as vec4 cannot share its buffer with a written binding: such an op records apart.
  const touches =
    overlaps(held.reads, op.writes) ||
    overlaps(held.writes, op.writes) ||
    (g.variant.xVec && op.writes.some((w) => w.buffer === g.x.one.buffer));
  if (op.kind === "rope" && op.table && op.dtype === "f32" && !touches) {
    // [n, width, headDim, half, rot, xo, yo, to, so]; the table's cos start at 0.
    const [n, , headDim, half, rot, xo, , to, sin] = op.params;
    const j = g.outs.findIndex((o) => o.buffer === op.bindings[0] && o.offset === xo && o.n === n);
    if (j < 0 || rot !== headDim || to !== 0 || g.rope?.outs[j] || g.copies[j]) return false;
    if (g.rope && (g.rope.table !== op.table || g.rope.headDim !== headDim)) return false;
    g.rope ??= { table: op.table, headDim, half, sin, outs: g.outs.map(() => undefined) };
    g.rope.outs[j] = op.writes[0];
    held.writes.push(op.writes[0]);
    return true;
  }
  if (op.kind === "copy" && contiguous(op) && !touches) {
    const [n, , so, , yo] = op.params;
    const src = op.bindings[0];
    // A rotated part is copied from its rope's output, another from its own.
    const j = g.outs.findIndex((o, i) => {
      const from = g.rope?.outs[i];
      return from
        ? from.buffer === src && from.start === so * 4 && from.end === (so + n) * 4
        : o.buffer === src && o.offset === so && o.n === n;
    });
    if (j < 0 || g.copies[j]) return false;
    g.copies[j] = { buffer: op.bindings[1] as GPUBuffer, start: yo * 4, end: (yo + n) * 4 };
    held.writes.push(g.copies[j] as Span);
    return true;
  }
  return false;
}

/** The held GEMV's kernel, bindings and parameters with its folds (see gemvParams for the order). */
function gemvCall(g: HeldGemv): { variant: BlockGemvVariant; bindings: Binding[]; params: number[] } {
  const rope = g.outs.map((_, j) => g.rope?.outs[j] !== undefined);
  const copy = g.copies.map((c) => c !== undefined);
  const variant = { ...g.variant, rope, copy };
  const bindings = [...g.bindings];
  const params = [...g.params];
  // The f32 parameters (the norm's eps and weight offset) stay last.
  const floats = g.variant.norm ? params.splice(params.length - 2) : [];
  if (g.rope) {
    bindings.push(g.rope.table);
    params.push(g.rope.headDim, g.rope.half, 0, g.rope.sin);
  }
  g.rope?.outs.forEach((z) => {
    if (z) {
      bindings.push(z.buffer);
      params.push(z.start / 4);
    }
  });
  for (const c of g.copies) {
    if (c) {
      bindings.push(c.buffer);
      params.push(c.start / 4);
    }
  }
  params.push(...floats);
  return { variant, bindings, params };
}

function overlaps(a: readonly Span[], b: readonly Span[]): boolean {
  for (const x of a)
    for (const y of b) if (x.buffer === y.buffer && x.start < y.end && y.start < x.end) return true;
  return false;
}

/**
 * An op held back one step so that the next one, when it is of the same kind and independent of it, runs
 * in the same dispatch (the k and v copies of a KV append; the ropes of q and k).
 */
interface Deferred {
  /**
   * "ropePair" and "ropeKv" are rope pairs held for a KV append to join; "gemv" is a decode q/k/v GEMV held
   * for the ropes and the KV append to fold into (see `defer`).
   */
  kind: "copy" | "rope" | "ropePair" | "ropeKv" | "gemv";
  /** A rope's cos/sin table. */
  table?: ArenaSlice;
  gemv?: HeldGemv;
  /** Ops with different keys never pair (the rope's table and head layout). */
  key: string;
  /** Input dtype (the paired kernels take one per op), and the second op's of a held rope pair. */
  dtype: DType;
  dtype1?: DType;
  /** The op alone: kernel, bindings, parameters, threads. */
  src: K.KernelSource;
  bindings: Binding[];
  params: number[];
  n: number;
  reads: Span[];
  writes: Span[];
}

/** A cached bind group: the ids it was made for (kernel, arena chunk, buffers, host slice sizes). */
interface BindGroupEntry {
  ids: number[];
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
}

/** One step of the bind-group key hash (32-bit FNV-style). */
function mix(h: number, v: number): number {
  return Math.imul(h ^ v, 0x01000193);
}

/** Whether `a` equals the first `count` ids of `b`. */
function sameIds(a: readonly number[], b: readonly number[], count: number): boolean {
  if (a.length !== count) return false;
  for (let i = 0; i < count; i++) if (a[i] !== b[i]) return false;
  return true;
}

const BUFFER_ID = Symbol("ollm.bufferId");
let nextBufferId = 1;

function paddedBytes(elements: number, dtype: DType): number {
  return Math.max(16, Math.ceil((elements * DTYPE_BYTES[dtype]) / 16) * 16);
}

/**
 * WGSL kernels on Dawn. Tensors are GPU buffers; every op records one or two dispatches into a single
 * compute pass; `read()` (or `sync()`) ends the pass, submits the one command buffer and maps a staging
 * buffer. Weights stay in their stored dtype (bf16/f16 as u32 pairs, i8/u8 four to a word) and are widened
 * in the kernels; activations are f32.
 */
export class WebGpuBackend implements Backend {
  readonly queued = true;
  readonly name = "webgpu";
  private readonly device: GPUDevice;
  private readonly pool: BufferPool;
  private readonly arena: ParamArena;
  private readonly staging: StagingRing;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly heap: ActivationHeap;
  /** Pages of GEMV outputs whose input sits in a page of `heap` (see allocApart). */
  private readonly apartHeap: ActivationHeap;
  /** Bind groups by a hash of what they bind; each entry keeps the exact ids (see `dispatch`). */
  private readonly bindGroups = new Map<number, BindGroupEntry[]>();
  private bindGroupCount = 0;
  /** Scratch of `dispatch`: the ids naming the bind group being looked up. */
  private readonly keyIds: number[] = new Array(64).fill(0);
  /**
   * Tensors dropped without dispose() are released when collected. The registry holds only a number (a
   * held object per tensor and unregister tokens cost ~1 µs per op in V8); `live` maps it to the resources.
   */
  private readonly registry: FinalizationRegistry<number>;
  private readonly live = new Map<number, Held>();
  private nextTensorId = 1;
  /** Activations allocated since beginScope (see there), or undefined outside a scope. */
  private scope: WebGpuTensor[] | undefined;
  private scopeDepth = 0;
  private readonly maxSegmentBytes: number;
  private readonly hostChunkBytes: number | undefined;
  private readonly useSubgroups: boolean;
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private deferred: GPUBuffer[] = [];
  /** The last cos/sin table per rope variant, and its arena slice in the current submission. */
  private ropeCache = new Map<
    RopeSpec,
    { positions: Int32Array; rot: number; table: Float32Array; slice: ArenaSlice; epoch: number }
  >();
  private error: string | undefined;
  private dummy: GPUBuffer | undefined;
  private readonly counters = { submits: 0, dispatches: 0, bindGroups: 0, gpuNs: 0, gpuSamples: 0 };
  private readonly timestamps: { set: GPUQuerySet; resolve: GPUBuffer } | undefined;
  private closed = false;

  private constructor(
    readonly gpu: GpuContext,
    options: WebGpuBackendOptions,
  ) {
    this.device = gpu.device;
    const align = Math.max(
      gpu.limits.minUniformBufferOffsetAlignment,
      gpu.limits.minStorageBufferOffsetAlignment,
    );
    const defaults = WEBGPU_BUFFER_DEFAULTS;
    this.pool = new BufferPool(this.device, options.poolBytes ?? defaults.poolBytes);
    const pageBytes = Math.min(gpu.limits.maxStorageBufferBindingSize, defaults.heapPageBytes);
    this.heap = new ActivationHeap(this.device, pageBytes);
    this.apartHeap = new ActivationHeap(this.device, pageBytes);
    this.arena = new ParamArena(this.device, align);
    this.staging = new StagingRing(
      this.device,
      options.stagingChunkBytes ?? defaults.stagingChunkBytes,
      options.stagingChunks ?? defaults.stagingChunks,
    );
    this.hostChunkBytes = options.hostChunkBytes;
    this.useSubgroups = (options.subgroups ?? process.env.OLLM_WEBGPU_SUBGROUPS !== "0") && gpu.subgroups;
    this.setSubmitEvery(submitInterval(options, gpu.software));
    this.maxSegmentBytes = Math.min(
      gpu.limits.maxStorageBufferBindingSize,
      options.maxSegmentBytes ?? 128 << 20,
    );
    this.registry = new FinalizationRegistry((id) => this.reclaim(id));
    this.device.addEventListener?.("uncapturederror", (e) => {
      this.error ??= (e as GPUUncapturedErrorEvent).error.message;
    });
    if (options.stats && gpu.timestamps) {
      this.timestamps = {
        set: this.device.createQuerySet({ type: "timestamp", count: 2 }),
        resolve: this.device.createBuffer({ size: 16, usage: 0x200 | USAGE.COPY_SRC }), // QUERY_RESOLVE
      };
    }
  }

  /** Opens the adapter selected by `options.device` (see gpu.ts); BACKEND_UNAVAILABLE when there is none. */
  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const gpu = await openGpu({ ...options, timestamps: options.stats });
    return new WebGpuBackend(gpu, options);
  }

  /** What this backend runs on, for logs and describePlan. */
  describe(): string {
    const g = this.gpu;
    const features = [
      g.subgroups ? `subgroups${g.subgroupSize ? `(${g.subgroupSize})` : ""}` : "",
      g.shaderF16 ? "shader-f16" : "",
      g.timestamps ? "timestamps" : "",
    ]
      .filter(Boolean)
      .join(", ");
    return `${g.adapterName} (Dawn ${g.dawnBackend}${g.software ? ", software" : ""}${features ? `; ${features}` : ""})`;
  }

  /**
   * Starts timing every dispatch on its own (see profiler.ts); needs `stats` at creation and an adapter with
   * timestamp queries. Slows recording: for measurement only.
   */
  startProfile(): void {
    if (!this.timestamps)
      throw new OllmError(
        "BACKEND_UNAVAILABLE",
        "dispatch profiling needs stats: true and timestamp queries",
      );
    this.flush();
    this.profiler?.destroy();
    this.profiler = new DispatchProfiler(this.device);
  }

  /** Stops profiling and returns the per-kernel GPU times since startProfile. */
  async stopProfile(): Promise<DispatchProfile> {
    const profiler = this.profiler;
    if (!profiler) throw new OllmError("INTERNAL", "stopProfile without startProfile");
    this.flush();
    this.profiler = undefined;
    const report = await profiler.report();
    profiler.destroy();
    return report;
  }

  private profiler: DispatchProfiler | undefined;

  /** Turns the per-submission timestamp queries on or off (they need `stats` at creation). */
  setTiming(enabled: boolean): void {
    this.timing = enabled;
  }

  private timing = true;
  private passTimed = false;

  stats(): WebGpuStats {
    return {
      submits: this.counters.submits,
      dispatches: this.counters.dispatches,
      bindGroupsCreated: this.counters.bindGroups,
      gpuMs: this.counters.gpuSamples > 0 ? this.counters.gpuNs / 1e6 : undefined,
      uploadBytes: this.staging.uploadedBytes,
      uploadMs: this.staging.uploadMs,
      peakActivationBytes: this.pool.peakBytes + this.heap.peakBytes + this.apartHeap.peakBytes,
      pipelines: this.pipelines.size,
    };
  }

  deviceStats(): DeviceStats {
    const s = this.stats();
    return { adapter: this.describe(), dispatches: s.dispatches, submits: s.submits, gpuMs: s.gpuMs };
  }

  // ---------------------------------------------------------------- tensors and memory

  upload(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor {
    const total = numel(shape);
    if (bytes.byteLength !== total * DTYPE_BYTES[dtype])
      throw new OllmError("INTERNAL", `upload: ${bytes.byteLength} bytes do not fit [${shape}] ${dtype}`);
    const lead = shape.length > 0 ? shape[0] : 1;
    const unit = lead > 0 ? total / lead : 0;
    const unitBytes = unit * DTYPE_BYTES[dtype];
    // Split along the leading dimension so each buffer stays within one binding (and ≤ 128 MiB).
    let perSegment = lead;
    if (total * DTYPE_BYTES[dtype] > this.maxSegmentBytes) {
      perSegment = Math.floor(this.maxSegmentBytes / Math.max(1, unitBytes));
      perSegment -= perSegment % 4; // keeps every segment start 4-byte aligned for packed dtypes
      if (perSegment < 1)
        throw new OllmError(
          "OUT_OF_MEMORY_BUDGET",
          `tensor [${shape}] ${dtype}: one slice exceeds the GPU binding limit`,
        );
    }
    const segments: Segment[] = [];
    for (let start = 0; start < Math.max(1, lead); start += perSegment) {
      const units = Math.min(perSegment, lead - start);
      const from = start * unitBytes;
      const part = bytes.subarray(from, from + units * unitBytes);
      const size = paddedBytes(units * unit, dtype);
      const buffer = this.staging.upload(part, size, USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST);
      segments.push({ buffer, offset: 0, unitStart: start, units });
    }
    return this.track(new WebGpuTensor(this, shape, dtype, segments, "owned"));
  }

  hostBuffer(byteLength: number): HostBuffer {
    return new MappedHostBuffer(this.device, byteLength, this, this.hostChunkBytes);
  }

  copyFromHost(dst: Tensor, src: HostBuffer, offset: number): void {
    const t = this.gpuTensor(dst);
    if (!(src instanceof MappedHostBuffer))
      throw new OllmError("INTERNAL", "copyFromHost: not a WebGPU host buffer");
    const bpe = DTYPE_BYTES[t.dtype];
    const unitBytes = (numel(t.shape) / Math.max(1, t.shape[0] ?? 1)) * bpe;
    this.endPass();
    for (const seg of t.segments) {
      // Segment starts are 4-byte aligned (see upload); the last one's padding absorbs the rounding.
      const bytes = Math.ceil((seg.units * unitBytes) / 4) * 4;
      src.copyTo(this.commands(), offset + seg.unitStart * unitBytes, bytes, seg.buffer, seg.offset * bpe);
    }
  }

  /** Submits what is recorded (a host buffer about to be mapped again is still used by it). */
  submitPending(): void {
    this.flush();
  }

  fromFloat32(data: Float32Array, shape: number[]): Tensor {
    return this.upload(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), "f32", shape);
  }

  zeros(shape: number[]): Tensor {
    // A container (KV cache, rows gathered later): a buffer of its own, not a block of an activation page,
    // so the ops that write into it never share a buffer with their inputs (a GEMV's x bound as vec4).
    const out = this.alloc(shape, null);
    out.pinned = true;
    const n = numel(shape);
    if (n > 0) this.run1d(K.fillKernel(), [out.one.buffer], [n, out.one.offset], n);
    return out;
  }

  disposeTensor(t: WebGpuTensor): void {
    if (t.disposed) return;
    t.disposed = true;
    if (t.ownership === "view") return;
    // A tracked tensor's registry entry stays: when it is collected, its id is no longer in `live`.
    if (t.id !== 0) this.live.delete(t.id);
    this.releaseHeld(t);
  }

  /**
   * Starts collecting the activations the backend allocates, until `endScope`. Scopes let a caller that knows
   * which results escape (the sequence runner around one layer: its output and recurrent state) free every
   * other intermediate at once instead of waiting for garbage collection, which does not run inside a
   * forward pass (a 2048-token 8B prefill peaked at 28 GB of activations). Scopes must not span an await:
   * other work on the backend would be collected too. Nested scopes belong to the outermost one.
   */
  beginScope(): void {
    if (this.scopeDepth++ === 0) this.scope = [];
  }

  /**
   * Ends the scope: frees what it allocated except `keep`, containers (zeros() and destinations of
   * writeRows / scatterAddRows: KV buffers, accumulators) and what was already freed. `keep` undefined
   * abandons the scope (frees nothing; the garbage collector still reclaims the rest).
   */
  endScope(keep: readonly Tensor[] | undefined): void {
    if (this.scopeDepth === 0) throw new OllmError("INTERNAL", "endScope without beginScope");
    if (--this.scopeDepth > 0) return;
    const made = this.scope ?? [];
    this.scope = undefined;
    // Activations of a scope are tracked for the garbage collector only if they outlive it.
    for (const t of made) {
      if (t.disposed) continue;
      if (!keep || t.pinned || keep.includes(t)) this.track(t);
      else this.disposeTensor(t);
    }
  }

  async readTensor(t: WebGpuTensor): Promise<Float32Array> {
    if (t.disposed) throw new OllmError("INTERNAL", "read of a disposed tensor");
    const bpe = DTYPE_BYTES[t.dtype];
    const unit = numel(t.shape) / Math.max(1, t.shape[0] ?? 1);
    const out = new Float32Array(numel(t.shape));
    const jobs: ReadJob[] = [];
    for (const seg of t.segments) {
      const elements = seg.units * unit;
      if (elements === 0) continue;
      const from = seg.offset * bpe;
      const start = Math.floor(from / 4) * 4;
      const end = Math.ceil((from + elements * bpe) / 4) * 4;
      // Chunks of ≤ 64 MiB (large single mappings were seen to abort Dawn).
      for (let at = start; at < end; at += 64 << 20) {
        const bytes = Math.min(64 << 20, end - at);
        const staging = this.readbackBuffer(bytes);
        this.endPass();
        this.commands().copyBufferToBuffer(seg.buffer, at, staging, 0, bytes);
        jobs.push({ seg, start: at, bytes, skip: at === start ? from - start : 0, staging });
      }
    }
    this.flush();
    this.readsInFlight++;
    try {
      return await this.gather(t, jobs, out, unit, bpe);
    } finally {
      this.readsInFlight--;
    }
  }

  /** The mapped readback copies of `readTensor`, widened into `out`. */
  private async gather(
    t: WebGpuTensor,
    jobs: ReadJob[],
    out: Float32Array<ArrayBuffer>,
    unit: number,
    bpe: number,
  ): Promise<Float32Array> {
    // Gather each segment's raw bytes, then widen.
    let written = 0;
    let current: Segment | undefined;
    let raw = new Uint8Array(0);
    let rawAt = 0;
    // f32 bytes go straight into the result; narrower types are gathered, then widened.
    const direct = t.dtype === "f32";
    const finishSegment = () => {
      if (!current) return;
      if (direct) {
        written += raw.byteLength / 4;
        return;
      }
      const values = widenAll(t.dtype, typedView(raw, t.dtype));
      out.set(values, written);
      written += values.length;
    };
    for (const job of jobs) {
      if (job.seg !== current) {
        finishSegment();
        current = job.seg;
        const size = current.units * unit * bpe;
        raw = direct ? new Uint8Array(out.buffer, written * 4, size) : new Uint8Array(size);
        rawAt = 0;
      }
      await job.staging.mapAsync(USAGE.MAP_READ, 0, job.bytes);
      const mapped = new Uint8Array(job.staging.getMappedRange(0, job.bytes));
      const take = Math.min(raw.byteLength - rawAt, mapped.byteLength - job.skip);
      raw.set(mapped.subarray(job.skip, job.skip + take), rawAt);
      rawAt += take;
      job.staging.unmap();
      this.releaseReadback(job.staging);
    }
    finishSegment();
    this.throwIfFailed();
    return out;
  }

  /** A MAP_READ staging buffer of at least `bytes` (small ones are reused: a buffer per read costs ~10 µs). */
  private readbackBuffer(bytes: number): GPUBuffer {
    const size = bucketSize(bytes);
    if (size <= READBACK_KEEP_BYTES) {
      const reused = this.readbacks.get(size)?.pop();
      if (reused) return reused;
    }
    return this.device.createBuffer({
      size: size <= READBACK_KEEP_BYTES ? size : bytes,
      usage: USAGE.MAP_READ | USAGE.COPY_DST,
    });
  }

  private releaseReadback(b: GPUBuffer): void {
    const list = this.readbacks.get(b.size) ?? [];
    if (b.size > READBACK_KEEP_BYTES || list.length >= 4 || this.closed) {
      b.destroy();
      return;
    }
    list.push(b);
    this.readbacks.set(b.size, list);
  }

  private readonly readbacks = new Map<number, GPUBuffer[]>();

  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwIfFailed();
  }

  /** Releases the device (tensors become unusable). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sync().catch(() => undefined);
    this.pool.clear();
    for (const list of this.readbacks.values()) for (const b of list) b.destroy();
    this.readbacks.clear();
    this.profiler?.destroy();
    this.heap.destroy();
    this.apartHeap.destroy();
    this.bindGroups.clear();
    this.staging.destroy();
    this.device.destroy();
  }

  // ---------------------------------------------------------------- ops

  embedding(table: Tensor, ids: TokenIds, scale = 1): Tensor {
    const t = this.gpuTensor(table);
    const [vocab, dim] = rowsOf(t);
    let list: Binding;
    let count: number;
    let io = 0;
    let stride = 1;
    if (ids instanceof Int32Array) {
      for (const id of ids)
        if (!(id >= 0 && id < vocab))
          throw new OllmError(
            "INVALID_ARGUMENT",
            `token id ${id} is outside the vocabulary (0..${vocab - 1})`,
          );
      list = this.hostInt32(ids);
      count = ids.length;
    } else {
      const it = this.gpuTensor(ids);
      if (it.dtype !== "f32") throw new OllmError("INTERNAL", `embedding: ids tensor of ${it.dtype}`);
      [count, stride] = rowsOf(it);
      list = it.one.buffer;
      io = it.one.offset;
    }
    const out = this.alloc([count, dim]);
    const n = count * dim;
    if (n === 0) return out;
    for (const seg of t.segments) {
      this.run1d(
        K.embeddingKernel(t.dtype, !(ids instanceof Int32Array)),
        [seg.buffer, list, out.one.buffer],
        [n, dim, seg.offset, seg.unitStart, seg.units, io, out.one.offset, stride, scale],
        n,
      );
    }
    return out;
  }

  linear(x: Tensor, w: Tensor, bias?: Tensor, fusion?: LinearFusion): Tensor {
    if (fusion?.norm || fusion?.residual) {
      const fused = this.fusedGemv(x, [{ weight: w, bias }], fusion);
      return fused ? fused[0] : unfusedLinear(this, x, fusion, (input) => this.linear(input, w, bias));
    }
    const xs = this.f32(x);
    const wt = this.gpuTensor(w);
    const [rows, inDim] = rowsOf(xs);
    const wIn = wt.shape[wt.shape.length - 1];
    const outDim = numel(wt.shape) / wIn;
    if (wIn !== inDim)
      throw new OllmError("INTERNAL", `linear: input width ${inDim} vs weight [${wt.shape}]`);
    const out = rows <= GEMV_MAX_ROWS ? this.allocApart([rows, outDim], xs) : this.alloc([rows, outDim]);
    if (rows === 0 || outDim === 0) return out;
    const b = bias ? this.gpuTensor(bias) : undefined;
    const unitRows = wt.shape.length > 2 ? outDim / wt.shape[0] : 1;
    for (const seg of wt.segments) {
      this.matmulSegment(
        xs,
        wt.dtype,
        seg,
        seg.unitStart * unitRows,
        seg.units * unitRows,
        inDim,
        outDim,
        out,
        b,
        false,
      );
    }
    this.dropCopy(xs, x);
    return out;
  }

  matmul(x: Tensor, w: Tensor, bias?: Tensor): Tensor {
    const xs = this.f32(x);
    const wt = this.gpuTensor(w);
    const [rows, inDim] = rowsOf(xs);
    const outDim = wt.shape[wt.shape.length - 1];
    if (numel(wt.shape) !== inDim * outDim)
      throw new OllmError("INTERNAL", `matmul: input width ${inDim} vs weight [${wt.shape}]`);
    const out = this.alloc([rows, outDim]);
    if (rows === 0 || outDim === 0) return out;
    const b = bias ? this.gpuTensor(bias) : undefined;
    this.matmulSegment(xs, wt.dtype, wt.one, 0, outDim, inDim, outDim, out, b, true);
    this.dropCopy(xs, x);
    return out;
  }

  linearMxfp4(x: Tensor, blocks: Tensor, scales: Tensor, bias?: Tensor): Tensor {
    const xs = this.f32(x);
    const bl = this.gpuTensor(blocks);
    const sc = this.gpuTensor(scales);
    if (bl.dtype !== "u8" || sc.dtype !== "u8")
      throw new OllmError(
        "INTERNAL",
        `linearMxfp4: blocks and scales must be u8 (got ${bl.dtype}, ${sc.dtype})`,
      );
    const [rows, inDim] = rowsOf(xs);
    const [outDim, groups] = rowsOf(sc);
    if (
      bl.shape[bl.shape.length - 1] !== 16 ||
      numel(bl.shape) !== outDim * groups * 16 ||
      groups * 32 !== inDim
    )
      throw new OllmError(
        "INTERNAL",
        `linearMxfp4: input width ${inDim} vs blocks [${bl.shape}] and scales [${sc.shape}]`,
      );
    const out = this.alloc([rows, outDim]);
    if (rows === 0) return out;
    const b = bias ? this.gpuTensor(bias) : undefined;
    const bSeg = bl.one;
    const sSeg = sc.one;
    if (bSeg.offset % 16 !== 0) throw new OllmError("INTERNAL", "linearMxfp4: blocks not 16-byte aligned");
    const bindings: Binding[] = [xs.one.buffer, bSeg.buffer, sSeg.buffer, out.one.buffer];
    if (b) bindings.push(b.one.buffer);
    this.dispatch(
      K.mxfp4Kernel(b?.dtype),
      bindings,
      [
        outDim,
        groups,
        xs.one.offset,
        bSeg.offset,
        sSeg.offset,
        out.one.offset,
        0,
        b?.one.offset ?? 0,
        outDim,
      ],
      [Math.ceil(outDim / 8), rows, 1],
    );
    return out;
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number, weightOffset = 0): Tensor {
    const xt = this.gpuTensor(x);
    const wt = this.gpuTensor(weight);
    const dim = numel(wt.shape);
    const n = numel(xt.shape);
    if (n % dim !== 0) throw new OllmError("INTERNAL", `rmsNorm: [${xt.shape}] is not a multiple of ${dim}`);
    const out = this.alloc(xt.shape);
    const groups = n / dim;
    if (groups === 0) return out;
    const wg = dim > 256 ? 256 : 64;
    this.dispatch(
      K.rmsNormKernel(xt.dtype, wt.dtype, wg),
      [xt.one.buffer, wt.one.buffer, out.one.buffer],
      [groups, dim, xt.one.offset, wt.one.offset, out.one.offset, eps, weightOffset],
      this.grid(groups),
    );
    return out;
  }

  add(a: Tensor, b: Tensor): Tensor {
    return this.binary("add", a, b);
  }

  mul(a: Tensor, b: Tensor): Tensor {
    return this.binary("mul", a, b);
  }

  linearGated(
    x: Tensor,
    gate: Tensor,
    up: Tensor,
    activation: GatedActivation,
    gateBias?: Tensor,
    upBias?: Tensor,
    fusion: InputFusion = {},
  ): Tensor {
    const pair = [
      { weight: gate, bias: gateBias },
      { weight: up, bias: upBias },
    ];
    const fused = this.fusedGemv(x, pair, fusion, activation);
    if (fused) return fused[0];
    // The norm apart (its weight may be the binding too many), then the same op on the normed input.
    if (fusion.norm)
      return this.linearGated(normedInput(this, x, fusion.norm), gate, up, activation, gateBias, upBias);
    // Many rows (prefill GEMM): the two projections, then the product; both projections are freed at once.
    const xs = this.f32(x);
    const g = this.linear(xs, gate, gateBias);
    const u = this.linear(xs, up, upBias);
    this.dropCopy(xs, x);
    const out = activation === "silu" ? this.swiglu(g, u) : this.gegluTanh(g, u);
    this.disposeTensor(g as WebGpuTensor);
    this.disposeTensor(u as WebGpuTensor);
    return out;
  }

  linearMany(x: Tensor, parts: readonly LinearPart[], fusion: InputFusion = {}): Tensor[] {
    const fused = parts.length <= GEMV_MAX_PARTS ? this.fusedGemv(x, parts, fusion) : undefined;
    if (fused) return fused;
    if (fusion.norm) return this.linearMany(normedInput(this, x, fusion.norm), parts);
    const xs = this.f32(x);
    const outs = parts.map((p) => this.linear(xs, p.weight, p.bias));
    this.dropCopy(xs, x);
    return outs;
  }

  /**
   * The block GEMV over every part (see gemv.ts), with the norm of x and the residual of `fusion` folded in:
   * one output per part, or act(gate)·up when `gated`; undefined when it does not apply (many rows, split
   * weights, too many bindings…), and the caller runs the ops apart.
   */
  private fusedGemv(
    x: Tensor,
    parts: readonly LinearPart[],
    fusion: LinearFusion,
    gated?: GatedActivation,
  ): WebGpuTensor[] | undefined {
    const xs = this.f32(x);
    const fused = this.gemvParts(xs, parts);
    const [rows, k] = rowsOf(xs);
    const norm = fusion.norm && {
      weight: this.gpuTensor(fusion.norm.weight),
      eps: fusion.norm.eps,
      offset: fusion.norm.weightOffset ?? 0,
    };
    const residual = fusion.residual && this.gpuTensor(fusion.residual);
    const applies =
      fused !== undefined &&
      (!gated || fused[0].n === fused[1].n) &&
      (!norm || (norm.weight.segments.length === 1 && numel(norm.weight.shape) === k)) &&
      (!residual ||
        (fused.length === 1 &&
          !gated &&
          residual.dtype === "f32" &&
          residual.segments.length === 1 &&
          numel(residual.shape) === rows * fused[0].n)) &&
      this.gemvFits(fused, gated !== undefined, (norm ? 1 : 0) + (residual ? 1 : 0));
    if (!applies) {
      this.dropCopy(xs, x);
      return undefined;
    }
    const outs = gated
      ? [this.allocApart([rows, fused[0].n], xs)]
      : fused.map((part) => this.allocApart([rows, part.n], xs));
    fused.forEach((part, i) => {
      part.out = outs[gated ? 0 : i];
    });
    this.gemvBlock(xs, fused, gated, { norm, residual });
    this.dropCopy(xs, x);
    return outs;
  }

  /**
   * The parts of a fused GEMV (few rows; every weight 2-D [n, K] in one buffer, one dtype), or undefined when
   * the fused kernel does not apply. Outputs are filled in by the caller.
   */
  private gemvParts(x: WebGpuTensor, parts: readonly LinearPart[]): GemvPart[] | undefined {
    const [rows, k] = rowsOf(x);
    if (rows === 0 || rows > GEMV_MAX_ROWS || parts.length === 0) return undefined;
    const dtype = parts[0].weight.dtype;
    const out: GemvPart[] = [];
    for (const p of parts) {
      const w = this.gpuTensor(p.weight);
      const b = p.bias ? this.gpuTensor(p.bias) : undefined;
      if (w.dtype !== dtype || w.shape.length !== 2 || w.shape[1] !== k || w.segments.length !== 1)
        return undefined;
      if (b && (b.segments.length !== 1 || numel(b.shape) !== w.shape[0])) return undefined;
      out.push({
        seg: w.one,
        dtype,
        n: w.shape[0],
        no: 0,
        ldy: w.shape[0],
        bias: b,
        out: undefined as unknown as WebGpuTensor,
      });
    }
    return out;
  }

  /** Whether a fused GEMV's storage bindings (with `extras` norm/residual ones) fit the adapter's limit. */
  private gemvFits(parts: GemvPart[], gated: boolean, extras = 0): boolean {
    const biases = parts.filter((p) => p.bias).length;
    return (
      gemvBindings(parts.length, gated, biases, extras) <= this.gpu.limits.maxStorageBuffersPerShaderStage
    );
  }

  /**
   * Records the block GEMV (see gemv.ts) for every part over x's rows, GEMV_BLOCK_ROWS rows per dispatch:
   * one output per part, or act(gate)·up into parts[0].out when `gated`.
   */
  private gemvBlock(
    x: WebGpuTensor,
    parts: GemvPart[],
    gated?: GatedActivation,
    extras: GemvExtras = {},
  ): void {
    const [rows, k] = rowsOf(x);
    const dtype = parts[0].dtype;
    const epu = K.elementsPerVec4(dtype);
    const wVec = k % epu === 0 && parts.every((p) => p.seg.offset % epu === 0);
    const outs = gated ? [parts[0].out] : parts.map((p) => p.out);
    const apart = outs.every((o) => o.one.buffer !== x.one.buffer);
    const shape = this.gemvShape(dtype, parts[0].n, k);
    const { wg, unroll } = shape;
    // Several output rows per workgroup for one activation row, where they divide every part's rows; two
    // for the q/k/v of a decode step (the rope pair a workgroup rotates when the rope folds in).
    const foldable = rows === 1 && parts.length > 1 && !gated && !extras.residual;
    let perGroup = foldable ? 2 : rows === 1 ? shape.out : 1;
    while (perGroup > 1 && parts.some((p) => p.n % perGroup !== 0)) perGroup /= 2;
    const sg = this.gpu.subgroupSize;
    const subgroup = this.useSubgroups && sg >= 4 && sg <= wg && wg % sg === 0 ? sg : 0;
    const total = gated ? parts[0].n : parts.reduce((t, p) => t + p.n, 0);
    const { norm, residual } = extras;
    for (let r0 = 0; r0 < rows; r0 += GEMV_BLOCK_ROWS) {
      const mr = Math.min(GEMV_BLOCK_ROWS, rows - r0);
      const xo = x.one.offset + r0 * k;
      const xVec = apart && wVec && k % 4 === 0 && xo % 4 === 0;
      const params = [k, xo];
      for (const p of parts)
        params.push(p.n, p.seg.offset, p.out.one.offset + r0 * p.ldy, p.no, p.ldy, p.bias?.one.offset ?? 0);
      const bindings: Binding[] = [
        x.one.buffer,
        ...parts.map((p) => p.seg.buffer),
        ...outs.map((o) => o.one.buffer),
      ];
      for (const p of parts) if (p.bias) bindings.push(p.bias.one.buffer);
      // Parameter order of gemvParams: the norm's offset, the residual's, then the norm's eps and offset.
      if (norm) {
        bindings.push(norm.weight.one.buffer);
        params.push(norm.weight.one.offset);
      }
      if (residual) {
        bindings.push(residual.one.buffer);
        params.push(residual.one.offset + r0 * parts[0].ldy);
      }
      if (norm) params.push(norm.eps, norm.offset);
      const variant: BlockGemvVariant = {
        dtype,
        rows: mr,
        wg,
        unroll,
        wVec,
        xVec,
        subgroup,
        out: perGroup,
        parts: parts.length,
        gated,
        bias: parts.map((p) => p.bias?.dtype),
        norm: norm?.weight.dtype,
        residual: residual !== undefined,
      };
      const grid = this.grid(total / perGroup);
      // q/k/v of one decode step: held, so the rope of q and k and the KV append can fold into it.
      if (foldable && perGroup === 2) {
        this.recordHeld();
        this.held = heldGemv(variant, bindings, params, grid, parts, x);
        continue;
      }
      this.dispatch(gemvBlockKernel(variant), bindings, params, grid);
    }
  }

  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number, weightOffset = 0) {
    const at = this.gpuTensor(a);
    const bt = this.gpuTensor(b);
    const wt = this.gpuTensor(weight);
    const n = numel(at.shape);
    const dim = numel(wt.shape);
    if (n !== numel(bt.shape))
      throw new OllmError("INTERNAL", `addRmsNorm: shapes [${at.shape}] and [${bt.shape}] differ`);
    if (n % dim !== 0)
      throw new OllmError("INTERNAL", `addRmsNorm: [${at.shape}] is not a multiple of ${dim}`);
    const sum = this.alloc(at.shape);
    const normed = this.alloc(at.shape);
    const groups = n / dim;
    if (groups === 0) return { sum, normed };
    const wg = dim > 256 ? 256 : 64;
    this.dispatch(
      K.addRmsNormKernel(at.dtype, bt.dtype, wt.dtype, wg),
      [at.one.buffer, bt.one.buffer, wt.one.buffer, sum.one.buffer, normed.one.buffer],
      [
        groups,
        dim,
        at.one.offset,
        bt.one.offset,
        wt.one.offset,
        sum.one.offset,
        normed.one.offset,
        eps,
        weightOffset,
      ],
      this.grid(groups),
    );
    return { sum, normed };
  }

  topKRows(x: Tensor, k: number): Tensor {
    const xt = this.gpuTensor(x);
    const [rows, cols] = rowsOf(xt);
    checkTopK(k, cols);
    const out = this.alloc([rows, 2 * k + 1]);
    if (rows === 0) return out;
    // Each thread keeps its best `cap` columns: a power of two ≥ k (few pipelines, whatever k is asked).
    let cap = 1;
    while (cap < k) cap *= 2;
    const wg =
      cols >= 16384 && cap <= 8 && this.gpu.limits.maxComputeInvocationsPerWorkgroup >= 1024 ? 1024 : 256;
    this.dispatch(
      K.topKKernel(xt.dtype, cap, wg),
      [xt.one.buffer, out.one.buffer],
      [rows, cols, k, xt.one.offset, out.one.offset],
      this.grid(rows),
    );
    return out;
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    return this.binary("swiglu", gate, up);
  }

  gegluTanh(gate: Tensor, up: Tensor): Tensor {
    return this.binary("geglu", gate, up);
  }

  sigmoidGate(x: Tensor, gate: Tensor): Tensor {
    const [rows, cols] = rowsOf(x);
    const gateCols = numel(gate.shape) / Math.max(1, rows);
    if (gateCols !== cols && gateCols !== 1)
      throw new OllmError("INTERNAL", `sigmoidGate: gate [${gate.shape}] does not fit [${x.shape}]`);
    return this.binary("sigmoidGate", x, gate, gateCols === 1 ? cols : 1);
  }

  scale(a: Tensor, factor: number): Tensor {
    return this.unary("scale", a, factor);
  }

  softcap(x: Tensor, cap: number): Tensor {
    return this.unary("softcap", x, cap);
  }

  rope(x: Tensor, positions: Int32Array, spec: RopeSpec, options: RopeOptions): Tensor {
    const xt = this.gpuTensor(x);
    const [rows, width] = rowsOf(xt);
    if (rows !== positions.length)
      throw new OllmError("INTERNAL", `rope: ${rows} rows, ${positions.length} positions`);
    const headDim = options.headDim;
    const rot = options.rotaryDim ?? headDim;
    const half = rot / 2;
    // Apart from a held GEMV's x (bound as vec4 there), so the rope can fold into it (see foldIntoGemv).
    const gemvX = this.held?.gemv?.x;
    const out = gemvX ? this.allocApart(xt.shape, gemvX) : this.alloc(xt.shape);
    const n = rows * width;
    if (n === 0) return out;
    const table = this.ropeTable(spec, positions, half);
    const bpe = DTYPE_BYTES[xt.dtype];
    const xo = xt.one.offset;
    const yo = out.one.offset;
    // Held back: rope(k) right after rope(q) with the same table runs in the same dispatch.
    this.defer({
      kind: "rope",
      table,
      key: `${this.bufferId(table.buffer)}:${table.offset}:${table.size}:${headDim}:${half}:${rot}`,
      dtype: xt.dtype,
      src: K.ropeKernel(xt.dtype),
      bindings: [xt.one.buffer, table, out.one.buffer],
      params: [n, width, headDim, half, rot, xo, yo, 0, rows * half],
      n,
      reads: [{ buffer: xt.one.buffer, start: xo * bpe, end: (xo + n) * bpe }],
      writes: [{ buffer: out.one.buffer, start: yo * 4, end: (yo + n) * 4 }],
    });
    return out;
  }

  attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
    const qt = this.f32(q);
    const kt = this.f32(k);
    const vt = this.f32(v);
    const { numHeads, numKvHeads, headDim, kvLength } = o;
    const rows = o.queryPositions.length;
    checkAttentionOptions(o);
    if (headDim > K.ATTENTION_MAX_DIM)
      throw new OllmError(
        "BACKEND_UNAVAILABLE",
        `attention: head width ${headDim} > ${K.ATTENTION_MAX_DIM} is not supported on webgpu`,
      );
    const offset = o.kvPositionOffset ?? 0;
    if (!(Number.isInteger(offset) && offset >= 0))
      throw new OllmError("INTERNAL", `attention: kvPositionOffset ${offset} must be an integer ≥ 0`);
    // The output apart from the KV buffer, so one split can read K/V as vec4 (a written buffer cannot be bound
    // as a second type).
    const out = this.allocApart([rows, numHeads * headDim], kt);
    if (rows === 0) return out;
    const flash = prefillAttentionPlan(rows, numHeads, numKvHeads, headDim, this.gpu.limits);
    if (flash) {
      const sinks = o.sinks ? this.gpuTensor(o.sinks) : undefined;
      const written = out.one.buffer;
      const kvVec =
        kt.one.offset % 4 === 0 &&
        vt.one.offset % 4 === 0 &&
        kt.one.buffer !== written &&
        vt.one.buffer !== written;
      const bindings: Binding[] = [
        qt.one.buffer,
        kt.one.buffer,
        vt.one.buffer,
        this.positionsArray(o.queryPositions),
      ];
      if (sinks) bindings.push(sinks.one.buffer);
      bindings.push(written);
      const params = prefillAttentionParams(flash, o, rows, {
        q: qt.one.offset,
        k: kt.one.offset,
        v: vt.one.offset,
        out: out.one.offset,
        koff: offset,
        sinks: sinks?.one.offset ?? 0,
      });
      const src = prefillAttentionKernel(headDim, flash.bc, kvVec, sinks?.dtype);
      this.dispatch(src, bindings, params, flash.grid);
      this.dropCopy(qt, q);
      this.dropCopy(kt, k);
      this.dropCopy(vt, v);
      return out;
    }
    const { qBlock, qBlocks, chunk, splits } = attentionPlan(
      rows,
      numHeads,
      numKvHeads,
      headDim,
      kvLength,
      this.attentionTuning,
    );
    const positions = this.positionsArray(o.queryPositions);
    const sinks = o.sinks ? this.gpuTensor(o.sinks) : undefined;
    // One split: the first pass normalises and writes the output itself (no partials, no second pass).
    const direct = splits === 1;
    const partial = direct ? out : this.allocApart([rows * numHeads * splits * (headDim + 2)], kt);
    // K and V as vec4 where aligned; a buffer the kernel writes cannot also be bound as another type.
    const written = partial.one.buffer;
    const kvVec =
      headDim % 4 === 0 &&
      kt.one.offset % 4 === 0 &&
      vt.one.offset % 4 === 0 &&
      kt.one.buffer !== written &&
      vt.one.buffer !== written;
    const bindings: Binding[] = [qt.one.buffer, kt.one.buffer, vt.one.buffer, positions];
    if (direct && sinks) bindings.push(sinks.one.buffer);
    bindings.push(written);
    this.dispatch(
      attentionDecodeKernel(headDim, qBlock, kvVec, direct, direct ? sinks?.dtype : undefined),
      bindings,
      [
        numHeads,
        numHeads / numKvHeads,
        qBlocks,
        kvLength,
        chunk,
        splits,
        o.window ?? 0,
        qt.one.offset,
        kt.one.offset,
        vt.one.offset,
        numHeads * headDim,
        numKvHeads * headDim,
        0,
        partial.one.offset,
        offset,
        sinks?.one.offset ?? 0,
        o.scale,
        o.softcap ?? 0,
      ],
      [splits, numKvHeads * qBlocks, rows],
    );
    this.dropCopy(qt, q);
    this.dropCopy(kt, k);
    this.dropCopy(vt, v);
    if (direct) return out;
    const combine: Binding[] = [partial.one.buffer, out.one.buffer];
    if (sinks) combine.splice(1, 0, sinks.one.buffer);
    this.dispatch(
      attentionCombineKernel(headDim, sinks?.dtype),
      combine,
      [numHeads, splits, out.one.offset, sinks?.one.offset ?? 0, partial.one.offset],
      [numHeads, rows, 1],
    );
    this.disposeTensor(partial);
    return out;
  }

  sliceRows(x: Tensor, start: number, count: number): Tensor {
    const xt = this.gpuTensor(x);
    const [rows, cols] = rowsOf(xt);
    if (start < 0 || start + count > rows)
      throw new OllmError("INTERNAL", `sliceRows: [${start}, ${start + count}) of ${rows}`);
    const out = this.alloc([count, cols]);
    this.copy(xt, xt.one.offset + start * cols, cols, out.one.buffer, out.one.offset, cols, count, cols);
    return out;
  }

  writeRows(dst: Tensor, dstRow: number, src: Tensor): void {
    const d = this.gpuTensor(dst);
    if (d.dtype !== "f32") throw new OllmError("INTERNAL", "writeRows: destination must be f32");
    const s = this.gpuTensor(src);
    const [rows, cols] = rowsOf(d);
    const n = numel(s.shape);
    if (dstRow + n / cols > rows) throw new OllmError("INTERNAL", "writeRows: destination too small");
    d.pinned = true;
    this.copy(s, s.one.offset, cols, d.one.buffer, d.one.offset + dstRow * cols, cols, n / cols, cols);
  }

  subTensor(t: Tensor, index: number): Tensor {
    const g = this.gpuTensor(t);
    const [lead, ...rest] = g.shape;
    if (!(Number.isInteger(index) && index >= 0 && index < lead))
      throw new OllmError("INTERNAL", `subTensor: index ${index} outside [${g.shape}]`);
    const size = numel(rest);
    const seg = g.segments.find((s) => index >= s.unitStart && index < s.unitStart + s.units);
    if (!seg) throw new OllmError("INTERNAL", `subTensor: index ${index} in no segment`);
    const shape = rest.length > 0 ? rest : [1];
    const view: Segment = {
      buffer: seg.buffer,
      offset: seg.offset + (index - seg.unitStart) * size,
      unitStart: 0,
      units: shape[0],
    };
    return new WebGpuTensor(this, shape, g.dtype, [view], "view", g);
  }

  gatherRows(x: Tensor, rows: Int32Array): Tensor {
    const xt = this.gpuTensor(x);
    const [count, cols] = rowsOf(xt);
    for (const r of rows)
      if (!(r >= 0 && r < count))
        throw new OllmError("INTERNAL", `gatherRows: row ${r} outside ${count} rows`);
    const out = this.alloc([rows.length, cols]);
    const n = rows.length * cols;
    if (n === 0) return out;
    const list = this.hostInt32(rows);
    this.run1d(
      K.gatherKernel(xt.dtype),
      [xt.one.buffer, list, out.one.buffer],
      [n, cols, xt.one.offset, out.one.offset, 0],
      n,
    );
    return out;
  }

  scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void {
    const d = this.gpuTensor(dst);
    if (d.dtype !== "f32") throw new OllmError("INTERNAL", "scatterAddRows: destination must be f32");
    const s = this.gpuTensor(src);
    const [count, cols] = rowsOf(d);
    const [srcRows, srcCols] = rowsOf(s);
    if (srcCols !== cols || srcRows !== rows.length || weights.length !== rows.length)
      throw new OllmError(
        "INTERNAL",
        `scatterAddRows: [${s.shape}] into [${d.shape}] with ${rows.length} rows`,
      );
    for (const r of rows)
      if (!(r >= 0 && r < count))
        throw new OllmError("INTERNAL", `scatterAddRows: row ${r} outside ${count} rows`);
    d.pinned = true;
    if (rows.length === 0) return;
    const list = new Uint32Array(rows.length * 2);
    list.set(rows);
    list.set(new Uint32Array(weights.buffer, weights.byteOffset, weights.length), rows.length);
    const slice = this.hostArray(list);
    this.run1d(
      K.scatterAddKernel(s.dtype),
      [s.one.buffer, slice, d.one.buffer],
      [cols, rows.length, s.one.offset, d.one.offset, 0],
      cols,
    );
  }

  clampedSwiglu(gateUp: Tensor, alpha: number, limit: number): Tensor {
    const x = this.gpuTensor(gateUp);
    const [rows, cols] = rowsOf(x);
    if (cols % 2 !== 0) throw new OllmError("INTERNAL", `clampedSwiglu: odd width ${cols}`);
    const out = this.alloc([rows, cols / 2]);
    const n = (rows * cols) / 2;
    if (n > 0)
      this.run1d(
        K.clampedSwigluKernel(x.dtype),
        [x.one.buffer, out.one.buffer],
        [n, x.one.offset, out.one.offset, alpha, limit],
        n,
      );
    return out;
  }

  sliceColumns(x: Tensor, start: number, width: number, group?: number): Tensor {
    const xt = this.gpuTensor(x);
    const [rows, cols] = rowsOf(xt);
    const g = group ?? cols;
    if (cols % g !== 0 || start < 0 || width < 0 || start + width > g)
      throw new OllmError(
        "INTERNAL",
        `sliceColumns: [${start}, ${start + width}) of groups of ${g} in width ${cols}`,
      );
    const groups = cols / g;
    const out = this.alloc([rows, groups * width]);
    this.copy(xt, xt.one.offset + start, g, out.one.buffer, out.one.offset, width, rows * groups, width);
    return out;
  }

  concatColumns(parts: Tensor[]): Tensor {
    if (parts.length === 0) throw new OllmError("INTERNAL", "concatColumns: no parts");
    const ts = parts.map((p) => this.gpuTensor(p));
    const rows = rowsOf(ts[0])[0];
    const widths = ts.map((t) => {
      const [r, c] = rowsOf(t);
      if (r !== rows) throw new OllmError("INTERNAL", `concatColumns: ${r} rows vs ${rows}`);
      return c;
    });
    const total = widths.reduce((a, b) => a + b, 0);
    const out = this.alloc([rows, total]);
    let at = 0;
    ts.forEach((t, i) => {
      this.copy(t, t.one.offset, widths[i], out.one.buffer, out.one.offset + at, total, rows, widths[i]);
      at += widths[i];
    });
    return out;
  }

  causalConv1d(x: Tensor, weight: Tensor, state: Tensor | undefined): { y: Tensor; state: Tensor } {
    const xt = this.gpuTensor(x);
    const wt = this.gpuTensor(weight);
    const [rows, channels] = rowsOf(xt);
    const kernel = numel(wt.shape) / channels;
    if (wt.shape[0] !== channels || !Number.isInteger(kernel) || kernel < 1)
      throw new OllmError("INTERNAL", `causalConv1d: weight [${wt.shape}] for ${channels} channels`);
    const history = kernel - 1;
    const st = state ? this.gpuTensor(state) : undefined;
    if (st && numel(st.shape) !== history * channels)
      throw new OllmError(
        "INTERNAL",
        `causalConv1d: state [${st.shape}] should hold ${history * channels} values`,
      );
    const y = this.alloc([rows, channels]);
    const next = this.alloc([history, channels]);
    const n = Math.max(rows, history) * channels;
    const bindings: Binding[] = [xt.one.buffer, wt.one.buffer];
    if (st) bindings.push(st.one.buffer);
    bindings.push(y.one.buffer, next.one.buffer);
    if (n > 0)
      this.run1d(
        K.causalConvKernel(xt.dtype, wt.dtype, st !== undefined),
        bindings,
        [
          rows,
          channels,
          kernel,
          xt.one.offset,
          wt.one.offset,
          st?.one.offset ?? 0,
          y.one.offset,
          next.one.offset,
        ],
        n,
      );
    return { y, state: next };
  }

  deltaRuleGates(a: Tensor, b: Tensor, aLog: Tensor, dtBias: Tensor): { g: Tensor; beta: Tensor } {
    const [at, bt, lt, dt] = [a, b, aLog, dtBias].map((t) => this.gpuTensor(t));
    const heads = numel(lt.shape);
    const n = numel(at.shape);
    if (numel(dt.shape) !== heads || n !== numel(bt.shape) || n % heads !== 0)
      throw new OllmError("INTERNAL", `deltaRuleGates: a [${at.shape}], b [${bt.shape}], ${heads} heads`);
    const g = this.alloc(at.shape);
    const beta = this.alloc(bt.shape);
    if (n > 0)
      this.run1d(
        K.deltaGatesKernel(at.dtype, bt.dtype, lt.dtype, dt.dtype),
        [at.one.buffer, bt.one.buffer, lt.one.buffer, dt.one.buffer, g.one.buffer, beta.one.buffer],
        [n, heads, at.one.offset, bt.one.offset, lt.one.offset, dt.one.offset, g.one.offset, beta.one.offset],
        n,
      );
    return { g, beta };
  }

  gatedDeltaRule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    beta: Tensor,
    state: Tensor | undefined,
    o: DeltaRuleOptions,
  ): { out: Tensor; state: Tensor } {
    const { numKeyHeads: nk, numValueHeads: nv, keyHeadDim: dk, valueHeadDim: dv } = o;
    if (nv % nk !== 0)
      throw new OllmError("INTERNAL", `gatedDeltaRule: ${nv} value heads vs ${nk} key heads`);
    if (dk > K.ATTENTION_MAX_DIM)
      throw new OllmError(
        "BACKEND_UNAVAILABLE",
        `gatedDeltaRule: key head width ${dk} is not supported on webgpu`,
      );
    const rows = rowsOf(q)[0];
    const expect = (t: Tensor, size: number, what: string) => {
      if (numel(t.shape) !== size)
        throw new OllmError("INTERNAL", `gatedDeltaRule: ${what} [${t.shape}] should hold ${size} values`);
    };
    expect(q, rows * nk * dk, "q");
    expect(k, rows * nk * dk, "k");
    expect(v, rows * nv * dv, "v");
    expect(g, rows * nv, "g");
    expect(beta, rows * nv, "beta");
    if (state) expect(state, nv * dk * dv, "state");
    const [qt, kt, vt, gt, bt] = [q, k, v, g, beta].map((t) => this.f32(t));
    const s0 = state ? this.f32(state) : undefined;
    const out = this.alloc([rows, nv * dv]);
    const next = this.alloc([nv, dk, dv]);
    const wg = dv >= 128 ? 128 : 64;
    this.dispatch(
      K.deltaRuleKernel(wg),
      [
        qt.one.buffer,
        kt.one.buffer,
        vt.one.buffer,
        gt.one.buffer,
        bt.one.buffer,
        s0 ? s0.one.buffer : this.dummyBuffer(),
        out.one.buffer,
        next.one.buffer,
      ],
      [
        rows,
        nk,
        nv,
        dk,
        dv,
        s0 ? 1 : 0,
        qt.one.offset,
        kt.one.offset,
        vt.one.offset,
        gt.one.offset,
        bt.one.offset,
        s0?.one.offset ?? 0,
        out.one.offset,
        next.one.offset,
      ],
      [nv, 1, 1],
    );
    return { out, state: next };
  }

  // ---------------------------------------------------------------- helpers

  private binary(op: K.BinaryOp, a: Tensor, b: Tensor, bdiv = 1): Tensor {
    const at = this.gpuTensor(a);
    const bt = this.gpuTensor(b);
    const n = numel(at.shape);
    if (bdiv === 1 && n !== numel(bt.shape))
      throw new OllmError("INTERNAL", `${op}: shapes [${at.shape}] and [${bt.shape}] differ`);
    const out = this.alloc(at.shape);
    if (n > 0)
      this.run1d(
        K.binaryKernel(op, at.dtype, bt.dtype),
        [at.one.buffer, bt.one.buffer, out.one.buffer],
        [n, at.one.offset, bt.one.offset, out.one.offset, bdiv],
        n,
      );
    return out;
  }

  private unary(op: K.UnaryOp, a: Tensor, f: number): Tensor {
    const at = this.gpuTensor(a);
    const n = numel(at.shape);
    const out = this.alloc(at.shape);
    if (n > 0)
      this.run1d(
        K.unaryKernel(op, at.dtype),
        [at.one.buffer, out.one.buffer],
        [n, at.one.offset, out.one.offset, f],
        n,
      );
    return out;
  }

  /** Strided copy of `rows` × `cols` values with widening to f32. */
  private copy(
    src: WebGpuTensor,
    so: number,
    ss: number,
    dst: GPUBuffer,
    yo: number,
    ys: number,
    rows: number,
    cols: number,
  ): void {
    const n = rows * cols;
    if (n === 0) return;
    const bpe = DTYPE_BYTES[src.dtype];
    this.defer({
      kind: "copy",
      key: "",
      dtype: src.dtype,
      src: K.copyKernel(src.dtype),
      bindings: [src.one.buffer, dst],
      params: [n, cols, so, ss, yo, ys],
      n,
      reads: [{ buffer: src.one.buffer, start: so * bpe, end: (so + (rows - 1) * ss + cols) * bpe }],
      writes: [{ buffer: dst, start: yo * 4, end: (yo + (rows - 1) * ys + cols) * 4 }],
    });
  }

  /**
   * Records `op`, or holds it back so the next ops can join its dispatch: a held copy (rope) and a following
   * independent copy (rope) of the same key become one dispatch. A rope pair (q and k of a layer) is held
   * too: a following contiguous copy of its k output (the KV append) is done by the rope threads as they
   * store k, and the next independent contiguous copy (v) joins them, so rope and KV append are one
   * dispatch. Anything else records the held op first (see `dispatch`), so order is kept.
   */
  private defer(op: Deferred): void {
    if (this.held?.gemv && foldIntoGemv(this.held, op)) return;
    const held = this.held;
    const independent =
      held !== undefined &&
      !overlaps(held.writes, op.reads) &&
      !overlaps(held.writes, op.writes) &&
      !overlaps(held.reads, op.writes);
    if (held && independent && held.kind === op.kind && held.key === op.key) {
      this.held = undefined;
      if (op.kind === "copy") {
        this.run1d(
          K.copyPairKernel(held.dtype, op.dtype),
          [held.bindings[0], held.bindings[1], op.bindings[0], op.bindings[1]],
          [...held.params, ...op.params],
          held.n + op.n,
        );
        return;
      }
      this.held = ropePair(held, op, this.dummyBuffer());
      return;
    }
    if (held?.kind === "ropePair" && op.kind === "copy" && copiesSecondOutput(held, op)) {
      this.held = withKCopy(held, op);
      return;
    }
    if (held?.kind === "ropeKv" && held.params[ROPE_KV.n2] === 0 && independent && isVCopy(op)) {
      this.held = undefined;
      withVCopy(held, op);
      this.run1d(held.src, held.bindings, held.params, held.n);
      return;
    }
    if (held) this.recordHeld();
    this.held = op;
  }

  /** Records the held op alone. */
  private recordHeld(): void {
    const op = this.held;
    if (!op) return;
    this.held = undefined;
    if (op.gemv) {
      const call = gemvCall(op.gemv);
      this.dispatch(gemvBlockKernel(call.variant), call.bindings, call.params, op.gemv.grid);
    } else this.run1d(op.src, op.bindings, op.params, op.n);
  }

  private held: Deferred | undefined;

  /** Frees `copy` when `f32()` made it for `t` (the op that needed it has recorded its dispatches). */
  private dropCopy(copy: WebGpuTensor, t: Tensor): void {
    if (copy !== t) this.disposeTensor(copy);
  }

  /** An f32 tensor in one buffer (a widened copy when `t` is stored narrower or split). */
  private f32(t: Tensor): WebGpuTensor {
    const g = this.gpuTensor(t);
    if (g.dtype === "f32" && g.segments.length === 1) return g;
    const out = this.alloc(g.shape);
    const n = numel(g.shape);
    const unit = n / Math.max(1, g.shape[0] ?? 1);
    for (const seg of g.segments) {
      const count = seg.units * unit;
      this.copySegment(g.dtype, seg, count, out.one.buffer, out.one.offset + seg.unitStart * unit);
    }
    return out;
  }

  private copySegment(dtype: DType, seg: Segment, count: number, dst: GPUBuffer, yo: number): void {
    if (count > 0)
      this.run1d(K.copyKernel(dtype), [seg.buffer, dst], [count, count, seg.offset, count, yo, count], count);
  }

  private matmulSegment(
    x: WebGpuTensor,
    dtype: DType,
    seg: Segment,
    no: number,
    n: number,
    k: number,
    ldy: number,
    out: WebGpuTensor,
    bias: WebGpuTensor | undefined,
    transposed: boolean,
  ): void {
    const rows = rowsOf(x)[0];
    const bindings = (xb: GPUBuffer): Binding[] => {
      const list: Binding[] = [xb, seg.buffer, out.one.buffer];
      if (bias) list.push(bias.one.buffer);
      return list;
    };
    const bo = bias?.one.offset ?? 0;
    if (transposed) {
      if (rows <= GEMV_MAX_ROWS) {
        this.run1d(
          K.gemvTransposedKernel(dtype, bias?.dtype),
          bindings(x.one.buffer),
          [rows, n, k, x.one.offset, seg.offset, out.one.offset, bo],
          rows * n,
        );
        return;
      }
    } else if (rows <= GEMV_MAX_ROWS) {
      this.gemvBlock(x, [{ seg, dtype, n, no, ldy, bias, out }]);
      return;
    }
    const shared = this.gpu.limits.maxComputeWorkgroupStorageSize;
    const v = gemmVariant(dtype, transposed, bias?.dtype, rows, n, k, seg.offset, shared);
    this.dispatch(
      tiledGemmKernel(v),
      bindings(x.one.buffer),
      [rows, n, k, x.one.offset, seg.offset, out.one.offset, no, bo, ldy, transposed ? ldy : k],
      gemmGrid(v, rows, n),
    );
  }

  /**
   * Threads per workgroup, loads in flight and output rows per workgroup for a GEMV shape: tuned (see
   * `tuneGemv`) or a default.
   */
  private gemvShape(dtype: DType, n: number, k: number): GemvShape {
    const tuned = this.gemvTuned.get(`${dtype}:${n}:${k}`);
    if (tuned) return tuned;
    // 128 threads with 2 loads in flight was the best or within ~10% of it on every decode shape measured
    // on the H200 (tools/bench-gpu/probe.ts); narrow rows get fewer threads. Rows of ≥ 4096 values get 256:
    // the 8B shape's GEMVs took 4.66 instead of 4.91 ms per step (results/h200-2026-11-29b-*), and the
    // isolated probe had 256 best for the 1B down projection (K = 8192) too.
    const units = k / K.elementsPerVec4(dtype);
    let wg = k >= 4096 ? 256 : 128;
    let out = GEMV_OUT_ROWS;
    let unroll: number | undefined;
    if (GEMV_WIDE && n >= 4096 && k >= 4096) ({ wg, out, unroll } = GEMV_WIDE);
    wg = Math.min(wg, this.gpu.limits.maxComputeInvocationsPerWorkgroup);
    while (wg > 32 && wg / 2 >= units) wg /= 2;
    return { wg, unroll: unroll ?? (units >= wg * 4 ? 2 : 1), out };
  }

  private readonly gemvTuned = new Map<string, GemvShape>();

  /**
   * Times GEMV variants (threads per output row × loads in flight) for one weight shape on this adapter and
   * keeps the fastest for decode. Weights are rotated over ≥ 256 MiB so the timing is of memory, not L2.
   */
  async tuneGemv(
    dtype: DType,
    n: number,
    k: number,
    options: { maxReps?: number } = {},
  ): Promise<GemvShape & { gbps: number; tried: (GemvShape & { gbps: number })[] }> {
    const bytes = n * k * DTYPE_BYTES[dtype];
    const copies = Math.max(1, Math.min(16, Math.ceil((256 << 20) / bytes)));
    const size = paddedBytes(n * k, dtype);
    const weights = Array.from({ length: copies }, () => {
      const buffer = this.device.createBuffer({ size, usage: USAGE.STORAGE | USAGE.COPY_DST });
      return this.track(
        new WebGpuTensor(this, [n, k], dtype, [{ buffer, offset: 0, unitStart: 0, units: n }], "owned"),
      );
    });
    const x = this.zeros([1, k]) as WebGpuTensor;
    const out = this.allocApart([1, n], x);
    const reps = Math.max(copies, Math.min(options.maxReps ?? 400, Math.ceil(4e9 / bytes)));
    const candidates: GemvShape[] = [];
    for (const wg of [64, 128, 256])
      for (const unroll of [1, 2]) for (const out of [1, 2, 4]) candidates.push({ wg, unroll, out });
    let best = { ...candidates[0], seconds: Number.POSITIVE_INFINITY };
    const tried: (GemvShape & { gbps: number })[] = [];
    const key = `${dtype}:${n}:${k}`;
    for (const c of candidates) {
      this.gemvTuned.set(key, c);
      let fastest = Number.POSITIVE_INFINITY;
      for (let trial = 0; trial < 2; trial++) {
        await this.sync();
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) {
          const w = weights[i % copies];
          this.gemvBlock(x, [{ seg: w.one, dtype, n, no: 0, ldy: n, bias: undefined, out }]);
        }
        await this.sync();
        const seconds = (performance.now() - t0) / 1000 / reps;
        fastest = Math.min(fastest, seconds);
        if (seconds < best.seconds) best = { ...c, seconds };
      }
      tried.push({ ...c, gbps: bytes / fastest / 1e9 });
    }
    const shape = { wg: best.wg, unroll: best.unroll, out: best.out };
    this.gemvTuned.set(key, shape);
    for (const w of weights) w.dispose();
    x.dispose();
    out.dispose();
    return { ...shape, gbps: bytes / best.seconds / 1e9, tried };
  }

  /**
   * The cos/sin table of `positions` (the same array for q and k and every layer of a step): computed once,
   * written into the arena once per submission.
   */
  private ropeTable(spec: RopeSpec, positions: Int32Array, half: number): ArenaSlice {
    const cached = this.ropeCache.get(spec);
    if (cached && cached.positions === positions && cached.rot === half) {
      if (cached.epoch !== this.epoch) {
        cached.slice = this.hostArray(new Uint32Array(cached.table.buffer));
        cached.epoch = this.epoch;
      }
      return cached.slice;
    }
    const rows = positions.length;
    const table = new Float32Array(2 * rows * half);
    for (let r = 0; r < rows; r++) {
      const pos = positions[r];
      for (let i = 0; i < half; i++) {
        // transformers computes the angle in f32; round the same way as the CPU backend.
        const angle = Math.fround(spec.invFreq[i] * pos);
        table[r * half + i] = Math.fround(Math.cos(angle)) * spec.attentionScaling;
        table[rows * half + r * half + i] = Math.fround(Math.sin(angle)) * spec.attentionScaling;
      }
    }
    const slice = this.hostArray(new Uint32Array(table.buffer));
    this.ropeCache.set(spec, { positions, rot: half, table, slice, epoch: this.epoch });
    return slice;
  }

  /** Host integers for the next submission, bound as a storage array (u32 or i32 in the kernel). */
  private hostInt32(data: Int32Array): ArenaSlice {
    const slice = this.arena.alloc(Math.max(4, data.byteLength));
    this.arena.i32.set(data, slice.offset / 4);
    return slice;
  }

  /**
   * Query positions in the arena, written once per submission for every layer's attention: the runner
   * passes the same array to each layer of a step (a positions array is not changed once handed to an op).
   */
  private positionsArray(positions: Int32Array): ArenaSlice {
    const cached = this.positionsCache;
    if (cached && cached.positions === positions && cached.epoch === this.epoch) return cached.slice;
    const slice = this.hostInt32(positions);
    this.positionsCache = { positions, slice, epoch: this.epoch };
    return slice;
  }

  private positionsCache: { positions: Int32Array; slice: ArenaSlice; epoch: number } | undefined;
  /**
   * Submissions so far: bumped at every submit (the arena is reset then, so host slices of earlier
   * submissions are gone); per-submission caches and host buffers compare it.
   */
  epoch = 0;

  /** Host data for the next submission, bound as a storage array. */
  private hostArray(data: Uint32Array): ArenaSlice {
    const slice = this.arena.alloc(Math.max(4, data.byteLength));
    this.arena.u32.set(data, slice.offset / 4);
    return slice;
  }

  private dummyBuffer(): GPUBuffer {
    this.dummy ??= this.device.createBuffer({ size: 16, usage: USAGE.STORAGE });
    return this.dummy;
  }

  private gpuTensor(t: Tensor): WebGpuTensor {
    if (!(t instanceof WebGpuTensor))
      throw new OllmError("INTERNAL", "WebGPU backend was given a tensor of another backend");
    if (t.disposed) throw new OllmError("INTERNAL", `tensor [${t.shape}] was disposed`);
    return t;
  }

  /** A fresh f32 tensor: a block of `heap` when it fits one, else (or with no heap) a pooled buffer. */
  private alloc(shape: readonly number[], heap: ActivationHeap | null = this.heap): WebGpuTensor {
    const bytes = paddedBytes(numel(shape), "f32");
    if (bytes > this.gpu.limits.maxStorageBufferBindingSize)
      throw new OllmError(
        "OUT_OF_MEMORY_BUDGET",
        `an activation of ${(bytes / 2 ** 20).toFixed(0)} MiB ([${shape}]) exceeds the GPU binding limit of ${(this.gpu.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`,
        { hint: "use smaller prefill chunks (prefillChunkTokens) or logits: last" },
      );
    const lead = shape.length > 0 ? shape[0] : 1;
    const block = heap?.acquire(bytes);
    let t: WebGpuTensor;
    if (block) {
      const seg = { buffer: block.buffer, offset: block.offset / 4, unitStart: 0, units: lead };
      t = new WebGpuTensor(this, shape.slice(), "f32", [seg], "heap", undefined, block);
    } else {
      const buffer = this.pool.acquire(bytes);
      t = new WebGpuTensor(
        this,
        shape.slice(),
        "f32",
        [{ buffer, offset: 0, unitStart: 0, units: lead }],
        "pooled",
      );
    }
    // In a scope, tracking waits for the scope's end (most activations are freed there, never tracked).
    if (this.scope) {
      this.scope.push(t);
      return t;
    }
    return this.track(t);
  }

  /**
   * A fresh f32 activation in a different buffer from `x`, so a GEMV can bind x as vec4<f32> read-only
   * beside its output (one buffer cannot be bound read-only and writable in one dispatch): a block of the
   * other heap when x lies in a page of the main one.
   */
  private allocApart(shape: readonly number[], x: WebGpuTensor): WebGpuTensor {
    return this.alloc(shape, x.block?.heap === this.heap ? this.apartHeap : this.heap);
  }

  private track(t: WebGpuTensor): WebGpuTensor {
    t.id = this.nextTensorId++;
    this.live.set(t.id, { ownership: t.ownership, segments: t.segments, block: t.block });
    this.registry.register(t, t.id);
    return t;
  }

  /** A tracked tensor was collected without dispose(). */
  private reclaim(id: number): void {
    const held = this.live.get(id);
    if (!held) return;
    this.live.delete(id);
    this.releaseHeld(held);
  }

  private releaseHeld(held: Held): void {
    if (held.ownership === "view" || this.closed) return;
    if (held.block) {
      // Reuse is safe at once: later dispatches are recorded after every use of the block.
      held.block.heap.release(held.block);
      return;
    }
    for (const seg of held.segments) {
      if (held.ownership === "pooled") {
        // Reuse is safe at once: later dispatches are recorded after every use of the buffer.
        this.pool.release(seg.buffer, (dead) => this.destroyLater(dead));
      } else this.destroyLater(seg.buffer);
    }
  }

  private destroyLater(b: GPUBuffer): void {
    if (this.encoder || this.held) this.deferred.push(b);
    else b.destroy();
  }

  private grid(groups: number): [number, number, number] {
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= max) return [groups, 1, 1];
    const y = Math.ceil(groups / max);
    return [Math.ceil(groups / y), y, 1];
  }

  private run1d(src: K.KernelSource, bindings: Binding[], params: number[], n: number): void {
    this.dispatch(src, bindings, params, this.grid(Math.ceil(n / 256)));
  }

  /** A number naming the buffer in bind-group cache keys, kept on the buffer object (a WeakMap costs more). */
  private bufferId(b: GPUBuffer): number {
    const tagged = b as GPUBuffer & { [BUFFER_ID]?: number };
    let id = tagged[BUFFER_ID];
    if (id === undefined) {
      id = nextBufferId++;
      tagged[BUFFER_ID] = id;
    }
    return id;
  }

  /**
   * Records one dispatch. Logical arrays that live in one buffer (activations of one heap page) share a
   * physical binding; the kernel is specialised for that mapping, and its bind group is cached by the
   * buffers it binds (parameters and host arrays use dynamic offsets). The cache key is the kernel and
   * the buffer ids, so the common case is a string build and one map lookup.
   */
  private dispatch(
    src: K.KernelSource,
    bindings: Binding[],
    params: number[],
    grid: [number, number, number],
  ): void {
    if (this.closed) throw new OllmError("INTERNAL", "the WebGPU backend was closed");
    if (this.held) this.recordHeld();
    const slice = this.arena.alloc(src.params.length * 4);
    const u32 = this.arena.u32;
    const f32 = this.arena.f32;
    const base = slice.offset / 4;
    const types = src.params;
    for (let i = 0; i < types.length; i++) {
      const v = params[i] ?? 0;
      if (types[i] === "f32") f32[base + i] = v;
      else u32[base + i] = types[i] === "i32" ? v | 0 : v >>> 0;
    }
    // The bind group is named by the kernel, the arena chunk and each binding's buffer (and a host slice's
    // size): hashed to a number for the map, compared exactly within the bucket.
    const offsets = [slice.offset];
    const ids = this.keyIds;
    const arenaId = this.bufferId(slice.buffer);
    ids[0] = src.id;
    ids[1] = arenaId;
    let count = 2;
    let h = mix(mix(0x811c9dc5, src.id), arenaId);
    for (const b of bindings) {
      if ("offset" in b) {
        offsets.push(b.offset);
        const id = this.bufferId(b.buffer);
        ids[count++] = id;
        ids[count++] = -b.size;
        h = mix(mix(h, id), b.size);
      } else {
        const id = this.bufferId(b);
        ids[count++] = id;
        h = mix(h, id);
      }
    }
    let entry: BindGroupEntry | undefined;
    const bucket = this.bindGroups.get(h);
    if (bucket) for (const e of bucket) if (sameIds(e.ids, ids, count)) entry = e;
    if (!entry) {
      entry = this.prepare(h, ids.slice(0, count), src, bindings, slice);
      this.counters.bindGroups++;
    }
    if (this.profiler) {
      // A pass of its own, timed (see profiler.ts).
      this.endPass();
      if (this.profiler.full) this.flush();
      this.pass = this.commands().beginComputePass({
        timestampWrites: this.profiler.next(`${src.key} [${grid}]`),
      });
      this.passTimed = false;
    }
    const pass = this.computePass();
    if (this.currentPipeline !== entry.pipeline) {
      pass.setPipeline(entry.pipeline);
      this.currentPipeline = entry.pipeline;
    }
    pass.setBindGroup(0, entry.group, offsets);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    this.counters.dispatches++;
    if (this.profiler) this.endPass();
    // Behind a read in flight the GPU still has queued work: no ramp then, a submit every submitEvery.
    if (
      this.submitEvery > 0 &&
      !this.submitDue &&
      ++this.sinceSubmit >= (this.readsInFlight > 0 ? this.submitEvery : this.submitAt)
    ) {
      // Not inside the op: an op's later dispatches may read arena slices (positions, tables) written for
      // this submission. The submit runs once the recording code yields (models await between layers).
      this.submitDue = true;
      queueMicrotask(() => this.submitDueWork());
    }
  }

  /** A submit the dispatch count asked for (see dispatch), at the next await of the recording code. */
  private submitDueWork(): void {
    if (!this.submitDue) return;
    this.submitDue = false;
    const next = Math.min(this.submitEvery, this.submitAt * 2);
    if (this.closed) return;
    this.flush();
    this.submitAt = next;
  }

  private submitDue = false;

  /**
   * Submit after every `n` dispatches (0: only when a result is read, i.e. one command buffer per decode
   * step), at the next point the recording code yields (never inside an op). Lets the GPU start on a long
   * step while the rest is still being recorded. After a read (the GPU
   * then idles until the next submit) the first submit comes after `first` dispatches and the interval
   * doubles up to `n`: the GPU starts a decode step as soon as its first few dispatches are recorded. While
   * a read is in flight the GPU has queued work up to it (generation records the next step while the
   * current one runs), so there is no ramp: a submit costs the host ~0.1 ms.
   */
  setSubmitEvery(n: number, first = FIRST_SUBMIT): void {
    this.submitEvery = Math.max(0, Math.floor(n));
    this.submitFirst = Math.max(1, Math.floor(first));
    this.submitAt = Math.min(this.submitEvery, this.submitFirst);
  }

  /**
   * How attention calls are cut into workgroups (benchmarks: tools/bench-gpu/attention-probe.ts); undefined:
   * the default for the head width (defaultAttentionTuning).
   */
  tuneAttention(tuning: AttentionTuning | undefined): void {
    this.attentionTuning = tuning;
  }

  private attentionTuning: AttentionTuning | undefined;

  /** The current submission interval (see setSubmitEvery). */
  get submitEveryDispatches(): number {
    return this.submitEvery;
  }

  private submitEvery = 0;
  private submitFirst = FIRST_SUBMIT;
  /** Reads submitted whose results have not come back yet. */
  private readsInFlight = 0;
  /** Dispatches since the last submit that trigger the next one (ramps from submitFirst to submitEvery). */
  private submitAt = 0;
  private sinceSubmit = 0;

  private currentPipeline: GPUComputePipeline | undefined;

  /** Cache miss of `dispatch`: the physical binding layout, the specialised pipeline and the bind group. */
  private prepare(
    hash: number,
    ids: number[],
    src: K.KernelSource,
    bindings: Binding[],
    slice: ArenaSlice,
  ): BindGroupEntry {
    const physical: K.PhysicalBinding[] = [];
    const resources: Binding[] = [];
    let signature = "";
    bindings.forEach((b, i) => {
      const decl = src.bindings[i];
      let at = -1;
      if (!decl.host && !("offset" in b)) {
        at = resources.findIndex((r, j) => r === b && !physical[j].host);
        if (at >= 0) {
          const ph = physical[at];
          if (ph.type !== decl.type) {
            if (ph.access === "read" && decl.access === "read") at = -1;
            else
              throw new OllmError("INTERNAL", `${src.key}: one buffer bound as ${ph.type} and ${decl.type}`);
          }
        }
      }
      if (at >= 0) {
        physical[at].names.push(decl.name);
        if (decl.access === "rw") physical[at].access = "rw";
      } else {
        at = physical.length;
        physical.push({ names: [decl.name], access: decl.access, type: decl.type, host: decl.host === true });
        resources.push(b);
      }
      signature += `${at},`;
    });
    for (const ph of physical) signature += ph.access === "rw" ? "w" : "r";
    resources.forEach((r, i) => {
      if (physical[i].access === "rw" && resources.some((q, j) => j !== i && q === r))
        throw new OllmError(
          "INTERNAL",
          `${src.key}: a buffer written here is also bound as ${physical[i].type}`,
        );
    });
    const pipeline = this.pipeline(`${src.key}|${signature}`, src, physical);
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: slice.buffer, offset: 0, size: slice.size } },
    ];
    resources.forEach((r, i) => {
      entries.push({
        binding: i + 1,
        resource: "offset" in r ? { buffer: r.buffer, offset: 0, size: r.size } : { buffer: r },
      });
    });
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (this.bindGroupCount > 20000) {
      this.bindGroups.clear();
      this.bindGroupCount = 0;
    }
    const entry = { ids, pipeline, group };
    const bucket = this.bindGroups.get(hash);
    if (bucket) bucket.push(entry);
    else this.bindGroups.set(hash, [entry]);
    this.bindGroupCount++;
    return entry;
  }

  private pipeline(key: string, src: K.KernelSource, physical: K.PhysicalBinding[]): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const COMPUTE = 4; // GPUShaderStage.COMPUTE
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: COMPUTE, buffer: { type: "uniform", hasDynamicOffset: true } },
        ...physical.map(
          (ph, i): GPUBindGroupLayoutEntry => ({
            binding: i + 1,
            visibility: COMPUTE,
            buffer: { type: ph.access === "rw" ? "storage" : "read-only-storage", hasDynamicOffset: ph.host },
          }),
        ),
      ];
      const layout = this.device.createBindGroupLayout({ entries });
      const module = this.device.createShaderModule({ code: K.specialize(src, physical), label: key });
      p = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: "main" },
        label: key,
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  private commands(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      const ts = this.timing ? this.timestamps : undefined;
      this.passTimed = ts !== undefined;
      this.pass = this.commands().beginComputePass(
        ts
          ? { timestampWrites: { querySet: ts.set, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
          : {},
      );
    }
    return this.pass;
  }

  private endPass(): void {
    if (this.held) this.recordHeld();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
      this.currentPipeline = undefined;
      const ts = this.passTimed ? this.timestamps : undefined;
      if (ts) {
        // One pass per submission in practice; resolve its begin/end and read them back later.
        const readback = this.device.createBuffer({ size: 16, usage: USAGE.MAP_READ | USAGE.COPY_DST });
        this.commands().resolveQuerySet(ts.set, 0, 2, ts.resolve, 0);
        this.commands().copyBufferToBuffer(ts.resolve, 0, readback, 0, 16);
        this.pendingTimestamps.push(readback);
      }
    }
  }

  private pendingTimestamps: GPUBuffer[] = [];

  /** Ends the pass and submits everything recorded as one command buffer. */
  private flush(): void {
    this.submitDue = false;
    if (this.held) this.recordHeld();
    if (!this.encoder && !this.arena.pending) return;
    this.endPass();
    this.profiler?.resolve(this.commands());
    const commandBuffer = this.commands().finish();
    this.encoder = undefined;
    this.arena.upload(this.device.queue);
    this.device.queue.submit([commandBuffer]);
    this.profiler?.submitted();
    this.counters.submits++;
    this.sinceSubmit = 0;
    this.submitAt = Math.min(this.submitEvery, this.submitFirst);
    this.arena.reset();
    this.epoch++;
    for (const b of this.deferred) b.destroy();
    this.deferred = [];
    for (const rb of this.pendingTimestamps) {
      rb.mapAsync(USAGE.MAP_READ).then(
        () => {
          const t = new BigUint64Array(rb.getMappedRange());
          if (t[1] > t[0]) {
            this.counters.gpuNs += Number(t[1] - t[0]);
            this.counters.gpuSamples++;
          }
          rb.unmap();
          rb.destroy();
        },
        () => rb.destroy(),
      );
    }
    this.pendingTimestamps = [];
  }

  private throwIfFailed(): void {
    if (this.error) {
      const message = this.error;
      this.error = undefined;
      throw new OllmError("INTERNAL", `WebGPU error: ${message}`);
    }
  }
}

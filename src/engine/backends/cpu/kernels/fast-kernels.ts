import { availableParallelism } from "node:os";
import { OllmError } from "../../../../errors.js";
import type { DType } from "../../../tensor.js";
import { KERNELS_WASM_BASE64 } from "../wasm/kernels-wasm.js";
import type { WeightData } from "../widen.js";
import { Arena, arenaOf, MAX_ARENA_BYTES } from "./arena.js";
import { type KernelExports, ThreadPool } from "./thread-pool.js";
import { TILE_ROWS, type TiledLayout, tileable, untiledCopy } from "./tiled.js";
import { type WasmModule, wasm } from "./wasm-api.js";

/** Which implementation runs the CPU backend's heavy ops. */
export type CpuKernelChoice = "wasm" | "reference";

/**
 * How 2-D weights are stored: "tiled" (4 rows interleaved, one read stream per GEMV tile), "row-major"
 * (as on disk), or "auto": measured once per process and thread count when the first large weight is
 * placed. Which is faster depends on the CPU: on a Zen 4 EPYC one thread streams the tiled layout at ~96 %
 * of the read bandwidth against ~55 % row-major, while a Sapphire Rapids Xeon reads row-major at ~100 %
 * and tiled at 61–74 % for 1–16 threads (tools/bench-gpu/gemv-layout.ts).
 */
export type CpuWeightLayout = "tiled" | "row-major" | "auto";

export interface CpuKernelOptions {
  /**
   * "wasm" (WebAssembly SIMD over worker threads) or "reference" (the TypeScript loops).
   * Default: OLLM_CPU_KERNELS, else "wasm" where the runtime supports it.
   */
  kernels?: CpuKernelChoice;
  /** Threads for the WASM kernels, the calling thread included. Default: OLLM_CPU_THREADS, else every core. */
  threads?: number;
  /** Storage of 2-D weights (see CpuWeightLayout). Default: OLLM_CPU_LAYOUT, else "auto". */
  layout?: CpuWeightLayout;
}

/** Weights from this size on settle an "auto" layout (smaller ones are tiled until then). */
const LAYOUT_PROBE_MIN_BYTES = 16 << 20;
/** The "auto" layout measurement: bf16 matrices [8192 × 2048], 128 MiB together (past last-level caches). */
const LAYOUT_PROBE = { n: 8192, k: 2048, matrices: 4, passes: 3 };
/** The layout "auto" settled on in this process, per thread count. */
const measuredLayouts = new Map<number, "tiled" | "row-major">();

/** Bytes of each arena kept free of weights for a call's activations (x, its permuted copy, out). */
const SCRATCH_RESERVE = 256 * 1024 * 1024;
/** An emptied arena up to this size stays (with its threads' instances) for the next uploads. */
const KEEP_EMPTY_ARENA_BYTES = 64 * 1024 * 1024;
/** Below this many multiply-adds a call runs on the calling thread alone. */
const MIN_PARALLEL_WORK = 1 << 17;
/** Weight bytes per chunk that a thread claims: long enough for the prefetchers, short enough to balance. */
const CHUNK_BYTES = 256 * 1024;
/**
 * From this many activation rows on, a call runs the panel GEMM (kernels.c: x packed once, weights widened
 * into a per-thread f32 panel per 8 outputs and k block, a 4 × 8 register-blocked micro-kernel); below,
 * the row kernels, which widen in registers and read each weight once per 2 rows. Measured crossovers on
 * one thread (the panel costs a widening pass over the weights per call; f16 widening in registers is
 * dear, f32 needs none): a job uses the panel when its rows reach the largest of its parts' dtypes.
 */
export const PANEL_MIN_ROWS = { bf16: 10, f16: 4, f32: 12 } as const;
/** Floats per 4 KiB page. */
const PAGE_FLOATS = 1024;
/** Panel GEMM: activation rows per packed tile (MR in kernels.c). */
const PANEL_TILE_ROWS = 4;
/** Panel GEMM: from this many floats of x on, every thread packs a share of it. */
const PARALLEL_PACK_FLOATS = 1 << 16;
/**
 * Panel GEMM chunks: output columns per chunk at most and at least (each chunk re-reads the packed x), and
 * chunks per thread wanted (a thread the OS delays, or a busy calling thread, then holds up a small part).
 */
const PANEL_CHUNK_COLUMNS = 64;
const PANEL_CHUNK_MIN_COLUMNS = 16;
const PANEL_CHUNKS_PER_THREAD = 8;

const ELEMENT_BYTES = { bf16: 2, f16: 2, f32: 4 } as const;
type MatmulDType = keyof typeof ELEMENT_BYTES;

/** Output columns per chunk when each column reads `bytesPerColumn` weight bytes: whole 4-row tiles. */
function chunkColumns(bytesPerColumn: number): number {
  return Math.max(4, Math.round(CHUNK_BYTES / bytesPerColumn / 4) * 4);
}

/** Panel GEMM chunks: multiples of 16 columns (whole panels, whole 64-byte lines of each output row). */
function panelChunkColumns(units: number, threads: number): number {
  const even = Math.floor(units / (threads * PANEL_CHUNKS_PER_THREAD) / 16) * 16;
  return Math.min(PANEL_CHUNK_COLUMNS, Math.max(PANEL_CHUNK_MIN_COLUMNS, even));
}

/** Job descriptor layout shared with kernels.c (Job: 16 u32 words, Part: 8). */
const JOB_WORDS = 16;
const PART_WORDS = 8;
const DTYPE_CODE = { bf16: 0, f16: 1, f32: 2 } as const;
const ACTIVATION_CODE = { silu: 1, gelu_tanh: 2 } as const;

/** One projection of a fused call: a weight [n, k] placed by this instance (or a view into one). */
export interface Projection {
  w: WeightData;
  dtype: DType;
  n: number;
  /** [n] added to the projection. */
  bias?: Float32Array;
}

/** Activation of `FastKernels.linearGated`. */
export type GateActivation = keyof typeof ACTIVATION_CODE;

function align64(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

function isMatmulDType(dtype: DType): dtype is MatmulDType {
  return dtype === "bf16" || dtype === "f16" || dtype === "f32";
}

let compiled: WasmModule | null | undefined;

/** The kernels module, compiled once per thread; undefined where WebAssembly SIMD/threads are missing. */
export function kernelsModule(): WasmModule | undefined {
  if (compiled === undefined) {
    try {
      compiled = new wasm.Module(Buffer.from(KERNELS_WASM_BASE64, "base64"));
    } catch {
      compiled = null;
    }
  }
  return compiled ?? undefined;
}

const pools = new Map<number, ThreadPool>();

/** Whether this process has run the panel GEMM (see FastKernels.warmPanel). */
let panelWarm = false;

/** The process's kernel thread pool of a given size (threads are an OS resource, shared by backends). */
function poolOf(module: WasmModule, size: number): ThreadPool {
  let pool = pools.get(size);
  if (!pool) {
    pool = new ThreadPool(module, size);
    pools.set(size, pool);
  }
  return pool;
}

/** Kernels when the caller names none: OLLM_CPU_KERNELS ("wasm" | "reference"), else automatic. */
export function defaultKernelChoice(): CpuKernelChoice | undefined {
  const env = process.env.OLLM_CPU_KERNELS;
  if (env === undefined || env === "" || env === "auto") return undefined;
  if (env === "wasm" || env === "reference") return env;
  throw new OllmError("INVALID_CONFIG", `OLLM_CPU_KERNELS=${env} is not one of wasm, reference, auto`);
}

/** Weight layout when the caller names none: OLLM_CPU_LAYOUT ("tiled" | "row-major" | "auto"), else auto. */
export function defaultCpuLayout(): CpuWeightLayout {
  const env = process.env.OLLM_CPU_LAYOUT;
  if (env === undefined || env === "" || env === "auto") return "auto";
  if (env === "tiled" || env === "row-major") return env;
  throw new OllmError("INVALID_CONFIG", `OLLM_CPU_LAYOUT=${env} is not one of tiled, row-major, auto`);
}

/** Threads when the caller names none: OLLM_CPU_THREADS, else the machine's available parallelism. */
export function defaultCpuThreads(): number {
  const env = Number.parseInt(process.env.OLLM_CPU_THREADS ?? "", 10);
  return Number.isFinite(env) && env > 0 ? env : availableParallelism();
}

/** The arena block behind each placed tensor. */
interface Placement {
  arena: Arena;
  offset: number;
  owner: FastKernels;
  /** Set while the data is in the tiled layout (kernels/tiled.ts). */
  tiled?: TiledLayout;
}
const placements = new WeakMap<WeightData, Placement>();

/** The tiled layout of placed data, or undefined when it is row-major (as all other data is). */
export function tiledLayout(data: WeightData): TiledLayout | undefined {
  return placements.get(data)?.tiled;
}

/**
 * `data` in row-major order: placed data held tiled is rewritten in place, for good (its later linears
 * read it row-major). Every reader other than the kernels' own goes through this (CpuTensor.data), so an
 * op that was not written for tiles, or a writer filling the bytes in place, sees the plain layout.
 */
export function rowMajor(data: WeightData): WeightData {
  const p = placements.get(data);
  if (p?.tiled) p.owner.untile(data);
  return data;
}

/** A row-major copy of tiled placed data, else the data itself (read-only uses). */
export function rowMajorCopy(data: WeightData): WeightData {
  const layout = tiledLayout(data);
  return layout ? untiledCopy(data as Uint16Array | Float32Array, layout) : data;
}

/** Frees the arena block behind `data` if a FastKernels placed it there (CpuTensor.dispose calls this). */
export function releaseKernelData(data: WeightData): void {
  const p = placements.get(data);
  if (!p) return;
  placements.delete(data);
  p.owner.release(p.arena, p.offset);
}

/** When a backend is collected without its tensors being disposed, its arenas leave the threads. */
const orphaned = new FinalizationRegistry<{ pool: ThreadPool; arenas: Arena[] }>(({ pool, arenas }) => {
  for (const a of arenas) pool.drop(a);
});

/**
 * WASM SIMD kernels over worker threads for the CPU backend. Weights it places live in shared
 * WebAssembly memories (arenas) that every kernel thread reads directly, so a GEMV streams each weight
 * byte once from RAM; activations are copied into the weight's arena per call.
 */
export class FastKernels {
  private readonly arenas: Arena[] = [];
  /** Byte ranges of placed f16 tensors holding infinities or NaNs: those stay on the reference path. */
  private readonly nonFinite: { arena: Arena; start: number; end: number }[] = [];

  private constructor(
    private readonly pool: ThreadPool,
    /** Threads per call, the calling thread included. */
    readonly threads: number,
    private layout: CpuWeightLayout,
  ) {
    orphaned.register(this, { pool, arenas: this.arenas });
  }

  /** The fast kernels, or undefined when `kernels: "reference"` or WebAssembly SIMD is unavailable. */
  static create(options: CpuKernelOptions = {}): FastKernels | undefined {
    const choice = options.kernels ?? defaultKernelChoice();
    if (choice === "reference") return undefined;
    const module = kernelsModule();
    if (!module) {
      if (choice === "wasm")
        throw new OllmError(
          "BACKEND_UNAVAILABLE",
          "this JavaScript runtime cannot run the WebAssembly SIMD kernels",
          {
            hint: 'use kernels: "reference"',
          },
        );
      return undefined;
    }
    if (options.threads !== undefined && !(Number.isFinite(options.threads) && options.threads >= 1))
      throw new OllmError("INVALID_ARGUMENT", `threads must be a positive number, got ${options.threads}`);
    const threads = Math.floor(options.threads ?? defaultCpuThreads());
    const layout = options.layout ?? defaultCpuLayout();
    if (layout !== "tiled" && layout !== "row-major" && layout !== "auto")
      throw new OllmError("INVALID_ARGUMENT", `layout must be tiled, row-major or auto, got ${layout}`);
    const pool = poolOf(module, threads);
    pool.warm();
    return new FastKernels(pool, threads, layout);
  }

  /**
   * Copies a weight into an arena and returns a typed view of it there, or undefined for dtypes the
   * kernels do not read (those stay ordinary typed arrays). A 2-D `shape` [n, k] (n ≥ 4, k ≥ 8) is stored
   * in the tiled layout (kernels/tiled.ts): `tiledLayout` tells, `rowMajor` turns it back.
   */
  place(bytes: Uint8Array, dtype: DType, shape?: readonly number[]): WeightData | undefined {
    if (!isMatmulDType(dtype) || bytes.byteLength === 0) return undefined;
    const spot = this.allocate(bytes.byteLength);
    if (!spot) return undefined;
    const { arena, offset } = spot;
    new Uint8Array(arena.buffer, offset, bytes.byteLength).set(bytes);
    const view =
      dtype === "f32"
        ? new Float32Array(arena.buffer, offset, bytes.byteLength / 4)
        : new Uint16Array(arena.buffer, offset, bytes.byteLength / 2);
    const placement: Placement = { arena, offset, owner: this };
    placements.set(view, placement);
    if (dtype === "f16" && hasNonFiniteF16(view as Uint16Array))
      this.nonFinite.push({ arena, start: offset, end: offset + bytes.byteLength });
    else if (
      shape &&
      tileable(shape) &&
      shape[0] * shape[1] === view.length &&
      this.layoutFor(bytes.byteLength) === "tiled"
    )
      this.tile(placement, { n: shape[0], k: shape[1] }, ELEMENT_BYTES[dtype]);
    if (!panelWarm) this.warmPanel();
    return view;
  }

  /**
   * Runs a small panel GEMM a few times (once per process, while the first weights load). V8 runs new
   * WebAssembly code in a baseline tier until a function has run a while, then compiles it optimized in
   * the background and switches at the function's next call: without this, that happens during the
   * first prompt of many tokens (seconds longer on 2 threads), as the warm-up prompts of decode-sized
   * calls run only the row kernels.
   */
  /** The weight layout in use: "auto" settles (by measurement) at the first weight of `bytes` ≥ 16 MiB. */
  weightLayout(): CpuWeightLayout {
    return this.layout;
  }

  private layoutFor(bytes: number): "tiled" | "row-major" {
    if (this.layout !== "auto") return this.layout;
    if (bytes < LAYOUT_PROBE_MIN_BYTES) return "tiled";
    this.layout = measuredLayouts.get(this.threads) ?? this.measureLayout();
    return this.layout as "tiled" | "row-major";
  }

  /**
   * GEMV over 128 MiB of bf16 matrices, row-major then tiled in place, best of 3 passes each; the faster
   * layout wins (tiled when there is no room to measure). Takes ~0.1–0.3 s once per process.
   */
  private measureLayout(): "tiled" | "row-major" {
    const { n, k, matrices, passes } = LAYOUT_PROBE;
    const bytes = n * k * ELEMENT_BYTES.bf16;
    const placed: { view: Uint16Array; placement: Placement }[] = [];
    let choice: "tiled" | "row-major" = "tiled";
    try {
      for (let i = 0; i < matrices; i++) {
        const spot = this.allocate(bytes);
        if (!spot) return choice;
        const view = new Uint16Array(spot.arena.buffer, spot.offset, bytes / 2);
        view.fill(0x3c00); // small finite bf16 values
        const placement: Placement = { ...spot, owner: this };
        placements.set(view, placement);
        placed.push({ view, placement });
      }
      const x = new Float32Array(k).fill(0.5);
      const time = () => {
        let best = Number.POSITIVE_INFINITY;
        for (let p = 0; p < passes; p++) {
          const t0 = performance.now();
          for (const { view } of placed) this.linear(x, 1, k, view, "bf16", n);
          best = Math.min(best, performance.now() - t0);
        }
        return best;
      };
      const rowMajor = time();
      for (const { placement } of placed) this.tile(placement, { n, k }, ELEMENT_BYTES.bf16);
      const tiled = time();
      choice = tiled <= rowMajor ? "tiled" : "row-major";
      return choice;
    } finally {
      measuredLayouts.set(this.threads, choice);
      for (const { view } of placed) releaseKernelData(view);
    }
  }

  private warmPanel(): void {
    panelWarm = true;
    const [n, k, rows] = [64, 512, 16];
    const w = this.place(new Uint8Array(n * k * ELEMENT_BYTES.bf16), "bf16", [n, k]);
    if (!w) return;
    try {
      const x = new Float32Array(rows * k);
      for (let i = 0; i < 4; i++) this.linear(x, rows, k, w, "bf16", n);
    } finally {
      releaseKernelData(w);
    }
  }

  /**
   * out [rows, n] = x [rows, k] · wᵀ (+ bias) for a weight [n, k] in one of this instance's arenas (a
   * placed tensor or a view into one); undefined when the call is not one for the kernels (other dtype,
   * weight elsewhere, no scratch room): the caller then runs the reference loop.
   */
  linear(
    x: Float32Array,
    rows: number,
    k: number,
    w: WeightData,
    dtype: DType,
    n: number,
    bias?: Float32Array,
  ): Float32Array | undefined {
    return this.run(x, rows, k, [{ w, dtype, n, bias }], undefined)?.[0];
  }

  /**
   * Several projections of one x [rows, k] in one job (x copied once, one barrier): out_i [rows, n_i] =
   * x · w_iᵀ (+ bias_i). Undefined when the parts are not all placed in one arena of this instance.
   */
  linearMany(
    x: Float32Array,
    rows: number,
    k: number,
    parts: readonly Projection[],
  ): Float32Array[] | undefined {
    return parts.length === 0 ? [] : this.run(x, rows, k, parts, undefined);
  }

  /**
   * act(x · gateᵀ + gate.bias) · (x · upᵀ + up.bias) [rows, n] in one job, the two projections combined
   * per output in the kernel. Undefined when it is not one for the kernels (as linearMany).
   */
  linearGated(
    x: Float32Array,
    rows: number,
    k: number,
    gate: Projection,
    up: Projection,
    activation: GateActivation,
  ): Float32Array | undefined {
    if (gate.n !== up.n) return undefined;
    return this.run(x, rows, k, [gate, up], activation)?.[0];
  }

  /**
   * Streaming-read bandwidth of this machine in bytes/s: the median of `repeats` passes over a buffer of
   * `bytes` (make it much larger than the last-level cache), read by `threads` threads.
   */
  readBandwidth(bytes = 1 << 30, threads = this.threads, repeats = 5): number {
    const arena = new Arena(Math.min(bytes + (1 << 20), MAX_ARENA_BYTES));
    try {
      const size = Math.floor(Math.min(bytes, arena.capacity - (1 << 20)) / 64) * 64;
      const at = arena.alloc(size);
      if (at === undefined)
        throw new OllmError("OUT_OF_MEMORY_BUDGET", `cannot allocate ${size} bytes to measure bandwidth`);
      new Uint8Array(arena.buffer, at, size).fill(1);
      const rates: number[] = [];
      for (let i = 0; i <= repeats; i++) {
        const t0 = performance.now();
        this.pool.run(arena, "stream_read", at, size / 64, threads, CHUNK_BYTES / 64);
        // The first pass starts the threads and compiles the kernel's optimized tier.
        if (i > 0) rates.push(size / ((performance.now() - t0) / 1000));
      }
      rates.sort((a, b) => a - b);
      return rates[rates.length >> 1];
    } finally {
      this.pool.drop(arena);
    }
  }

  /** The kernels instantiated on the calling thread for an arena (tests, benchmarks). */
  kernelsFor(data: WeightData): KernelExports | undefined {
    const arena = arenaOf(data.buffer);
    return arena ? this.pool.kernels(arena) : undefined;
  }

  /**
   * Returns a placed block. An arena left empty is dropped so its memory goes back to the system, unless
   * it is small (a probe upload then costs no restart of the kernel threads).
   */
  release(arena: Arena, offset: number): void {
    arena.release(offset);
    // The block's bytes may next hold a finite tensor.
    for (let j = this.nonFinite.length - 1; j >= 0; j--) {
      const r = this.nonFinite[j];
      if (r.arena === arena && r.start === offset) this.nonFinite.splice(j, 1);
    }
    if (arena.allocated > 0 || arena.buffer.byteLength <= KEEP_EMPTY_ARENA_BYTES) return;
    const i = this.arenas.indexOf(arena);
    if (i >= 0) this.arenas.splice(i, 1);
    for (let j = this.nonFinite.length - 1; j >= 0; j--)
      if (this.nonFinite[j].arena === arena) this.nonFinite.splice(j, 1);
    this.pool.drop(arena);
  }

  /** One job over `parts` (gated when `activation` is set): the outputs, or undefined (see linear). */
  private run(
    x: Float32Array,
    rows: number,
    k: number,
    parts: readonly Projection[],
    activation: GateActivation | undefined,
  ): Float32Array[] | undefined {
    if (rows === 0 || k === 0) return undefined;
    let arena: Arena | undefined;
    let anyBf16 = false;
    let panelRows = 0;
    let columnBytes = 0;
    let totalColumns = 0;
    for (const p of parts) {
      if (!isMatmulDType(p.dtype) || p.n === 0 || p.w.length !== p.n * k) return undefined;
      if (p.bias && p.bias.length < p.n) return undefined;
      const a = arenaOf(p.w.buffer);
      if (!a || (arena && a !== arena)) return undefined;
      arena = a;
      if (this.touchesNonFinite(a, p.w)) return undefined;
      const layout = tiledLayout(p.w);
      if (layout && (layout.n !== p.n || layout.k !== k)) return undefined;
      anyBf16 ||= p.dtype === "bf16";
      panelRows = Math.max(panelRows, PANEL_MIN_ROWS[p.dtype]);
      const bytes = k * ELEMENT_BYTES[p.dtype];
      columnBytes = activation ? columnBytes + bytes : Math.max(columnBytes, bytes);
      totalColumns += p.n;
    }
    if (!arena || !this.arenas.includes(arena)) return undefined;
    const kernels = this.pool.kernels(arena);
    const panel = rows >= panelRows;
    const xBytes = align64(rows * k * 4);
    // The panel GEMM reads x packed; the row kernels read x, and bf16 weights x permuted.
    const xpBytes = panel ? align64(kernels.packed_rows_bytes(k, rows)) : anyBf16 ? xBytes : 0;
    const scratchStride = panel ? align64(kernels.panel_scratch_bytes()) : 0;
    const outCount = activation ? 1 : parts.length;
    const descBytes = align64((JOB_WORDS + PART_WORDS * parts.length) * 4);
    let size = descBytes + xBytes + xpBytes + scratchStride * this.threads;
    for (let i = 0; i < parts.length; i++) {
      if (parts[i].bias) size += align64(parts[i].n * 4);
      if (i < outCount) size += align64(rows * parts[i].n * 4);
    }
    const at = arena.alloc(size);
    if (at === undefined) return undefined;
    try {
      const buffer = arena.buffer;
      const xAt = at + descBytes;
      const xpAt = xpBytes > 0 ? xAt + xBytes : xAt;
      const scratchAt = xAt + xBytes + xpBytes;
      new Float32Array(buffer, xAt, rows * k).set(x.subarray(0, rows * k));
      if (!panel && anyBf16) kernels.permute_even_odd(xAt, xpAt, k, rows);
      let next = scratchAt + scratchStride * this.threads;
      const desc = new Uint32Array(buffer, at, JOB_WORDS + PART_WORDS * parts.length);
      desc.fill(0);
      desc.set([
        activation ? 1 : 0,
        activation ? ACTIVATION_CODE[activation] : 0,
        parts.length,
        k,
        rows,
        panel ? 0 : xpAt,
        xAt,
        panel ? xpAt : 0,
        panel ? scratchAt : 0,
        scratchStride,
      ]);
      const outs: number[] = [];
      let units = 0;
      parts.forEach((p, i) => {
        let biasAt = 0;
        if (p.bias) {
          biasAt = next;
          new Float32Array(buffer, biasAt, p.n).set(p.bias.subarray(0, p.n));
          next += align64(p.n * 4);
        }
        let outAt = 0;
        if (i < outCount) {
          outAt = next;
          outs.push(outAt);
          next += align64(rows * p.n * 4);
        }
        const tiled = tiledLayout(p.w) ? 1 : 0;
        desc.set(
          [DTYPE_CODE[p.dtype as MatmulDType], tiled, p.w.byteOffset, p.n, outAt, biasAt, units, 0],
          JOB_WORDS + PART_WORDS * i,
        );
        if (!activation) units += Math.ceil(p.n / TILE_ROWS) * TILE_ROWS;
      });
      if (activation) units = parts[0].n;
      const work = rows * k * (activation ? 2 * parts[0].n : totalColumns);
      const threads = work < MIN_PARALLEL_WORK ? 1 : this.threads;
      if (panel) {
        // Packing x is a pass over rows · k floats: on every thread once it is worth a barrier.
        const tiles = Math.ceil(rows / PANEL_TILE_ROWS);
        const packThreads = rows * k >= PARALLEL_PACK_FLOATS ? threads : 1;
        this.pool.run(arena, "pack_job", at, tiles, packThreads, Math.ceil(tiles / (packThreads * 2)));
      }
      const chunk = panel ? panelChunkColumns(units, threads) : chunkColumns(columnBytes);
      // The results' fresh pages fault in (the kernel zeroes them: ~2 ms for 4 MiB) while the workers run.
      const results = outs.map((_, i) => new Float32Array(rows * parts[i].n));
      this.pool.run(arena, "run_job", at, units, threads, chunk, () => {
        for (const r of results) for (let i = 0; i < r.length; i += PAGE_FLOATS) r[i] = 0;
      });
      outs.forEach((o, i) => {
        results[i].set(new Float32Array(buffer, o, results[i].length));
      });
      return results;
    } finally {
      arena.release(at);
    }
  }

  /** Rewrites placed row-major data into the tiled layout (it stays row-major without scratch room). */
  private tile(p: Placement, layout: TiledLayout, esize: number): void {
    const scratch = p.arena.alloc(TILE_ROWS * layout.k * esize);
    if (scratch === undefined) return;
    try {
      this.pool
        .kernels(p.arena)
        .tile_rows(p.offset, scratch, Math.floor(layout.n / TILE_ROWS), layout.k, esize);
      p.tiled = layout;
    } finally {
      p.arena.release(scratch);
    }
  }

  /** Rewrites tiled data this instance placed back into row-major order (see rowMajor). */
  untile(data: WeightData): void {
    const p = placements.get(data);
    const layout = p?.tiled;
    if (!p || p.owner !== this || !layout) return;
    const esize = data.BYTES_PER_ELEMENT;
    const scratch = p.arena.alloc(TILE_ROWS * layout.k * esize);
    if (scratch === undefined) {
      (data as Uint16Array).set(untiledCopy(data as Uint16Array, layout));
    } else {
      try {
        this.pool
          .kernels(p.arena)
          .untile_rows(p.offset, scratch, Math.floor(layout.n / TILE_ROWS), layout.k, esize);
      } finally {
        p.arena.release(scratch);
      }
    }
    p.tiled = undefined;
  }

  private touchesNonFinite(arena: Arena, w: WeightData): boolean {
    for (const r of this.nonFinite)
      if (r.arena === arena && w.byteOffset < r.end && w.byteOffset + w.byteLength > r.start) return true;
    return false;
  }

  private allocate(bytes: number): { arena: Arena; offset: number } | undefined {
    if (bytes > MAX_ARENA_BYTES - SCRATCH_RESERVE - (1 << 20)) return undefined;
    for (let i = this.arenas.length - 1; i >= 0; i--) {
      const arena = this.arenas[i];
      if (arena.allocated + bytes > arena.capacity - SCRATCH_RESERVE) continue;
      const offset = arena.alloc(bytes);
      if (offset !== undefined) return { arena, offset };
    }
    const arena = new Arena();
    const offset = arena.alloc(bytes);
    if (offset === undefined) return undefined;
    this.arenas.push(arena);
    this.pool.register(arena);
    return { arena, offset };
  }
}

function hasNonFiniteF16(h: Uint16Array): boolean {
  for (let i = 0; i < h.length; i++) if ((h[i] & 0x7c00) === 0x7c00) return true;
  return false;
}

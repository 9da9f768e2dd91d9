import { availableParallelism } from "node:os";
import { OllmError } from "../../../../errors.js";
import type { DType } from "../../../tensor.js";
import { KERNELS_WASM_BASE64 } from "../wasm/kernels-wasm.js";
import type { WeightData } from "../widen.js";
import { Arena, arenaOf, MAX_ARENA_BYTES } from "./arena.js";
import { type KernelExports, ThreadPool } from "./thread-pool.js";
import { type WasmModule, wasm } from "./wasm-api.js";

/** Which implementation runs the CPU backend's heavy ops. */
export type CpuKernelChoice = "wasm" | "reference";

export interface CpuKernelOptions {
  /**
   * "wasm" (WebAssembly SIMD over worker threads) or "reference" (the TypeScript loops).
   * Default: OLLM_CPU_KERNELS, else "wasm" where the runtime supports it.
   */
  kernels?: CpuKernelChoice;
  /** Threads for the WASM kernels, the calling thread included. Default: OLLM_CPU_THREADS, else every core. */
  threads?: number;
}

/** Bytes of each arena kept free of weights for a call's activations (x, its permuted copy, out). */
const SCRATCH_RESERVE = 256 * 1024 * 1024;
/** An emptied arena up to this size stays (with its threads' instances) for the next uploads. */
const KEEP_EMPTY_ARENA_BYTES = 64 * 1024 * 1024;
/** Below this many multiply-adds a call runs on the calling thread alone. */
const MIN_PARALLEL_WORK = 1 << 17;
/** Weight bytes per chunk that a thread claims: long enough for the prefetchers, short enough to balance. */
const CHUNK_BYTES = 256 * 1024;

const ELEMENT_BYTES = { bf16: 2, f16: 2, f32: 4 } as const;

/** Output columns per chunk for a [n, k] weight: whole 4-row tiles of about CHUNK_BYTES. */
function chunkRows(k: number, dtype: MatmulDType): number {
  return Math.max(4, Math.round(CHUNK_BYTES / (k * ELEMENT_BYTES[dtype]) / 4) * 4);
}

const MATMUL = { bf16: "matmul_bf16", f16: "matmul_f16", f32: "matmul_f32" } as const;
type MatmulDType = keyof typeof MATMUL;

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
}
const placements = new WeakMap<WeightData, Placement>();

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
    const threads = Math.max(1, Math.floor(options.threads ?? defaultCpuThreads()));
    const pool = poolOf(module, threads);
    pool.warm();
    return new FastKernels(pool, threads);
  }

  /**
   * Copies a weight into an arena and returns a typed view of it there, or undefined for dtypes the
   * kernels do not read (those stay ordinary typed arrays).
   */
  place(bytes: Uint8Array, dtype: DType): WeightData | undefined {
    if (!isMatmulDType(dtype) || bytes.byteLength === 0) return undefined;
    const spot = this.allocate(bytes.byteLength);
    if (!spot) return undefined;
    const { arena, offset } = spot;
    new Uint8Array(arena.buffer, offset, bytes.byteLength).set(bytes);
    const view =
      dtype === "f32"
        ? new Float32Array(arena.buffer, offset, bytes.byteLength / 4)
        : new Uint16Array(arena.buffer, offset, bytes.byteLength / 2);
    placements.set(view, { arena, offset, owner: this });
    if (dtype === "f16" && hasNonFiniteF16(view as Uint16Array))
      this.nonFinite.push({ arena, start: offset, end: offset + bytes.byteLength });
    return view;
  }

  /**
   * out [rows, n] = x [rows, k] · wᵀ for a weight [n, k] in one of this instance's arenas (a placed
   * tensor or a view into one); undefined when the call is not one for the kernels (other dtype, weight
   * elsewhere, no scratch room): the caller then runs the reference loop.
   */
  linear(
    x: Float32Array,
    rows: number,
    k: number,
    w: WeightData,
    dtype: DType,
    n: number,
  ): Float32Array | undefined {
    if (!isMatmulDType(dtype) || rows === 0 || w.length !== n * k) return undefined;
    const arena = arenaOf(w.buffer);
    if (!arena || !this.arenas.includes(arena) || this.touchesNonFinite(arena, w)) return undefined;
    const xBytes = rows * k * 4;
    const xAt = arena.alloc(xBytes);
    const outAt = arena.alloc(rows * n * 4);
    const permAt = dtype === "bf16" ? arena.alloc(xBytes) : xAt;
    try {
      if (xAt === undefined || outAt === undefined || permAt === undefined) return undefined;
      new Float32Array(arena.buffer, xAt, rows * k).set(x.subarray(0, rows * k));
      const kernels = this.pool.kernels(arena);
      if (dtype === "bf16") kernels.permute_even_odd(xAt, permAt, k, rows);
      const threads = rows * n * k < MIN_PARALLEL_WORK ? 1 : this.threads;
      this.pool.run(
        arena,
        MATMUL[dtype],
        [w.byteOffset, permAt, outAt, k, n, rows],
        n,
        threads,
        chunkRows(k, dtype),
      );
      return new Float32Array(arena.buffer, outAt, rows * n).slice();
    } finally {
      if (xAt !== undefined) arena.release(xAt);
      if (outAt !== undefined) arena.release(outAt);
      if (permAt !== undefined && permAt !== xAt) arena.release(permAt);
    }
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
        this.pool.run(arena, "stream_read", [at], size / 64, threads, CHUNK_BYTES / 64);
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
    if (arena.allocated > 0 || arena.buffer.byteLength <= KEEP_EMPTY_ARENA_BYTES) return;
    const i = this.arenas.indexOf(arena);
    if (i >= 0) this.arenas.splice(i, 1);
    for (let j = this.nonFinite.length - 1; j >= 0; j--)
      if (this.nonFinite[j].arena === arena) this.nonFinite.splice(j, 1);
    this.pool.drop(arena);
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

import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import { OllmError } from "../../../../errors.js";
import type { Arena } from "./arena.js";
import { type WasmModule, wasm } from "./wasm-api.js";
import { CTL, claimChunk, KERNEL_FNS, type KernelFn, OP, WORKER_SOURCE } from "./worker-source.js";

export interface KernelExports {
  /**
   * Units [start, end) of the job described at `job` (the layout fast-kernels.ts writes), run by thread
   * `thread` (0: the calling thread; it picks the thread's scratch).
   */
  run_job(job: number, start: number, end: number, thread: number): void;
  permute_even_odd(x: number, xp: number, k: number, rows: number): void;
  /**
   * Packs row tiles [start, end) of the x of the job described at `job` into its packed buffer (the panel
   * GEMM's layout: tiles of 4 rows side by side; kernels.c).
   */
  pack_job(job: number, start: number, end: number, thread?: number): void;
  /** Bytes of x [rows, k] packed. */
  packed_rows_bytes(k: number, rows: number): number;
  /** Scratch bytes each thread needs in a panel GEMM job. */
  panel_scratch_bytes(): number;
  /** Rewrites `tiles` tiles of 4 row-major rows of k elements of `esize` bytes into the tiled layout. */
  tile_rows(w: number, scratch: number, tiles: number, k: number, esize: number): void;
  untile_rows(w: number, scratch: number, tiles: number, k: number, esize: number): void;
  stream_read(p: number, lineStart: number, lineEnd: number, thread?: number): number;
}

interface WorkerHandle {
  worker: Worker;
  port: MessagePort;
}

/** How long a waiting thread spins before it sleeps (µs): a decode step's gaps between GEMVs are shorter. */
const DEFAULT_SPIN_MICROS = 2000;
/** A job that takes longer than this has lost a worker. */
const JOB_TIMEOUT_MS = 2 * 60 * 1000;

/**
 * Kernel threads for synchronous, data-parallel calls. The calling JavaScript thread posts a job in a
 * shared control block, runs share 0 itself, and waits (spin, then Atomics.wait) for the workers' shares.
 * Workers spin briefly after a job, then sleep in Atomics.wait, so an idle pool costs nothing.
 *
 * Each arena's memory is instantiated once per thread. Workers hold those memories; when an arena is
 * dropped the workers are recycled so its memory is really freed (an idle worker never collects garbage).
 */
export class ThreadPool {
  /** The control block of the current workers (a new one for every set of workers). */
  private control = newControl();
  private workers: WorkerHandle[] = [];
  private readonly arenas = new Map<number, Arena>();
  private readonly local = new Map<number, KernelExports>();
  private readonly spinMicros: number;
  /** Tag of the current run job (see claimChunk). */
  private tag = 0;
  /** Whether the current workers have all booted. */
  private booted = false;

  constructor(
    private readonly module: WasmModule,
    /** Threads per job at most, the calling thread included. */
    readonly size: number,
    options: { spinMicros?: number } = {},
  ) {
    this.spinMicros = options.spinMicros ?? DEFAULT_SPIN_MICROS;
  }

  /** The kernels of `arena` on the calling thread. */
  kernels(arena: Arena): KernelExports {
    let k = this.local.get(arena.id);
    if (!k) {
      this.register(arena);
      k = this.local.get(arena.id)!;
    }
    return k;
  }

  /** Makes `arena` known to every thread (idempotent). */
  register(arena: Arena): void {
    if (this.arenas.has(arena.id)) return;
    this.arenas.set(arena.id, arena);
    const instance = new wasm.Instance(this.module, { env: { memory: arena.memory } });
    this.local.set(arena.id, instance.exports as unknown as KernelExports);
    if (this.workers.length === 0) return;
    for (const w of this.workers)
      w.port.postMessage({ type: "add", id: arena.id, module: this.module, memory: arena.memory });
    this.sync();
  }

  /** Forgets `arena` on every thread; the workers restart on the next job so its memory can be freed. */
  drop(arena: Arena): void {
    if (!this.arenas.delete(arena.id)) return;
    this.local.delete(arena.id);
    this.stopWorkers();
  }

  /** Starts the worker threads now (they boot while the caller goes on, e.g. loading weights). */
  warm(): void {
    if (this.size > 1 && this.workers.length === 0) this.startWorkers();
  }

  /**
   * Runs `fn(arg, start, end, thread)` over `total` units in chunks of `chunk` units that up to `threads`
   * threads (this one included) claim one at a time, so a thread the OS does not schedule holds up at most
   * one chunk. Chunk boundaries are multiples of 4 units when `chunk` is (the tiles of the matmul jobs).
   * `meanwhile` runs on this thread once the workers have the job, before it claims chunks itself (work
   * that needs no kernel, overlapped with theirs).
   */
  run(
    arena: Arena,
    fn: KernelFn,
    arg: number,
    total: number,
    threads: number,
    chunk: number,
    meanwhile?: () => void,
  ): void {
    const k = this.kernels(arena);
    const t = Math.max(1, Math.min(threads, this.size));
    if (t === 1 || total <= chunk) {
      meanwhile?.();
      if (total > 0) k[fn](arg, 0, total, 0);
      return;
    }
    if (this.workers.length === 0) this.startWorkers();
    this.waitForBoot();
    const size = Math.max(chunk, Math.ceil(total / 0xffff / 4) * 4);
    const chunks = Math.ceil(total / size);
    const c = this.control;
    // A new tag with no chunk to claim first: a late thread of the previous job stops claiming before
    // this job's count replaces that job's (see claimChunk).
    this.tag = (this.tag + 1) & 0xffff;
    Atomics.store(c, CTL.next, (this.tag << 16) | 0xffff);
    c[CTL.arena] = arena.id;
    c[CTL.fn] = KERNEL_FNS.indexOf(fn);
    c[CTL.total] = total;
    c[CTL.chunk] = size;
    Atomics.store(c, CTL.chunks, chunks);
    c[CTL.threads] = t;
    c[CTL.args] = arg;
    Atomics.store(c, CTL.failed, 0);
    Atomics.store(c, CTL.done, 0);
    Atomics.store(c, CTL.next, this.tag << 16);
    this.post(OP.run);
    let ownError: unknown;
    try {
      meanwhile?.();
    } catch (error) {
      ownError = error;
    }
    let done = 0;
    for (
      let i = claimChunk(c, this.tag, CTL.next, CTL.chunks);
      i >= 0;
      i = claimChunk(c, this.tag, CTL.next, CTL.chunks)
    ) {
      try {
        k[fn](arg, i * size, Math.min(total, (i + 1) * size), 0);
      } catch (error) {
        ownError ??= error;
      }
      done = Atomics.add(c, CTL.done, 1) + 1;
    }
    if (done !== chunks) this.waitFor(CTL.done, chunks);
    if (ownError !== undefined) throw ownError;
    this.throwIfFailed();
  }

  /** Stops the workers (a later job starts new ones). */
  close(): void {
    this.stopWorkers();
  }

  /** Publishes a job: the op rides in the generation word with the job counter. */
  private post(op: number): void {
    const c = this.control;
    const generation = Atomics.load(c, CTL.generation);
    Atomics.store(c, CTL.generation, (((generation >>> 2) + 1) << 2) | op);
    if (Atomics.load(c, CTL.sleepers) > 0) Atomics.notify(c, CTL.generation);
  }

  /** A job every worker takes part in (arena messages): returns when all have done it. */
  private sync(): void {
    this.waitForBoot();
    const c = this.control;
    Atomics.store(c, CTL.failed, 0);
    Atomics.store(c, CTL.pending, this.workers.length);
    this.post(OP.sync);
    this.waitFor(CTL.pending, 0);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (Atomics.load(this.control, CTL.failed) === 0) return;
    const messages: string[] = [];
    for (const w of this.workers) {
      for (let m = receiveMessageOnPort(w.port); m; m = receiveMessageOnPort(w.port)) {
        const msg = m.message as { type: string; message?: string };
        if (msg.type === "error") messages.push(msg.message ?? "");
      }
    }
    throw new OllmError("INTERNAL", `a CPU kernel thread failed: ${messages.join("; ")}`);
  }

  /**
   * Waits until every worker has booted (once per set of workers): otherwise the first jobs would run on
   * this thread alone while the workers start, without an error, only slower.
   */
  private waitForBoot(): void {
    if (this.booted) return;
    this.waitFor(CTL.ready, this.workers.length);
    this.booted = true;
  }

  /** Spins, then sleeps, until control slot `slot` holds `value`. */
  private waitFor(slot: number, value: number): void {
    const c = this.control;
    const until = performance.now() + this.spinMicros / 1000;
    let n = 0;
    while (Atomics.load(c, slot) !== value) {
      if ((++n & 1023) !== 0 || performance.now() < until) continue;
      const deadline = performance.now() + JOB_TIMEOUT_MS;
      Atomics.store(c, CTL.mainAsleep, 1);
      for (let v = Atomics.load(c, slot); v !== value; v = Atomics.load(c, slot)) {
        if (performance.now() > deadline) {
          Atomics.store(c, CTL.mainAsleep, 0);
          this.stopWorkers();
          throw new OllmError("INTERNAL", "CPU kernel threads did not finish a job in time");
        }
        Atomics.wait(c, slot, v, 1000);
      }
      Atomics.store(c, CTL.mainAsleep, 0);
    }
  }

  private startWorkers(): void {
    const arenas = [...this.arenas.values()].map((a) => ({ id: a.id, memory: a.memory }));
    const generation = Atomics.load(this.control, CTL.generation);
    for (let index = 1; index < this.size; index++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          control: this.control.buffer,
          port: port2,
          index,
          spinMicros: this.spinMicros,
          generation,
          module: this.module,
          arenas,
        },
        transferList: [port2],
        // Kernel threads need little JavaScript heap; the weights live in the arenas.
        resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 },
      });
      worker.unref();
      this.workers.push({ worker, port: port1 });
    }
    this.booted = false;
  }

  private stopWorkers(): void {
    if (this.workers.length === 0) return;
    this.post(OP.exit);
    Atomics.notify(this.control, CTL.generation);
    for (const w of this.workers) {
      w.port.close();
      void w.worker.terminate();
    }
    this.workers = [];
    // Old workers may still read the old block; the next ones get their own.
    this.control = newControl();
  }
}

function newControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CTL.size * 4));
}

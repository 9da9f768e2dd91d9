import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import { OllmError } from "../../../../errors.js";
import type { Arena } from "./arena.js";
import { type WasmModule, wasm } from "./wasm-api.js";
import { CTL, KERNEL_FNS, type KernelFn, OP, shareOf, WORKER_SOURCE } from "./worker-source.js";

export interface KernelExports {
  matmul_bf16(
    w: number,
    x: number,
    out: number,
    k: number,
    n: number,
    rows: number,
    o0: number,
    o1: number,
  ): void;
  matmul_f16(
    w: number,
    x: number,
    out: number,
    k: number,
    n: number,
    rows: number,
    o0: number,
    o1: number,
  ): void;
  matmul_f32(
    w: number,
    x: number,
    out: number,
    k: number,
    n: number,
    rows: number,
    o0: number,
    o1: number,
  ): void;
  permute_even_odd(x: number, xp: number, k: number, rows: number): void;
  stream_read(p: number, lineStart: number, lineEnd: number): number;
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
    this.dispatch(OP.sync, this.workers.length + 1);
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
   * Runs `fn` over `total` units split between `threads` threads (shares are multiples of `align`).
   * Arguments a0..a5 precede each thread's [start, end) share.
   */
  run(
    arena: Arena,
    fn: KernelFn,
    args: readonly number[],
    total: number,
    threads: number,
    align: number,
  ): void {
    const k = this.kernels(arena);
    const t = Math.max(1, Math.min(threads, this.size));
    if (t === 1) {
      this.call(k, fn, args, 0, total);
      return;
    }
    if (this.workers.length === 0) this.startWorkers();
    const c = this.control;
    c[CTL.arena] = arena.id;
    c[CTL.fn] = KERNEL_FNS.indexOf(fn);
    c[CTL.total] = total;
    c[CTL.align] = align;
    for (let i = 0; i < 6; i++) c[CTL.args + i] = args[i] ?? 0;
    this.dispatch(OP.run, t, () => {
      const [start, end] = shareOf(total, t, 0, align);
      if (start < end) this.call(k, fn, args, start, end);
    });
  }

  /** Stops the workers (a later job starts new ones). */
  close(): void {
    this.stopWorkers();
  }

  private call(k: KernelExports, fn: KernelFn, a: readonly number[], start: number, end: number): void {
    if (fn === "stream_read") k.stream_read(a[0], start, end);
    else k[fn](a[0], a[1], a[2], a[3], a[4], a[5], start, end);
  }

  private dispatch(op: number, threads: number, own?: () => void): void {
    const c = this.control;
    c[CTL.op] = op;
    c[CTL.threads] = threads;
    Atomics.store(c, CTL.failed, 0);
    Atomics.store(c, CTL.pending, this.workers.length);
    Atomics.add(c, CTL.generation, 1);
    if (Atomics.load(c, CTL.sleepers) > 0) Atomics.notify(c, CTL.generation);
    let ownError: unknown;
    try {
      own?.();
    } catch (error) {
      ownError = error;
    }
    this.waitForWorkers();
    if (ownError !== undefined) throw ownError;
    if (Atomics.load(c, CTL.failed) !== 0) {
      const messages: string[] = [];
      for (const w of this.workers) {
        for (let m = receiveMessageOnPort(w.port); m; m = receiveMessageOnPort(w.port)) {
          const msg = m.message as { type: string; message?: string };
          if (msg.type === "error") messages.push(msg.message ?? "");
        }
      }
      throw new OllmError("INTERNAL", `a CPU kernel thread failed: ${messages.join("; ")}`);
    }
  }

  private waitForWorkers(): void {
    const c = this.control;
    const until = performance.now() + this.spinMicros / 1000;
    let n = 0;
    while (Atomics.load(c, CTL.pending) !== 0) {
      if ((++n & 1023) !== 0 || performance.now() < until) continue;
      const deadline = performance.now() + JOB_TIMEOUT_MS;
      Atomics.store(c, CTL.mainAsleep, 1);
      for (let p = Atomics.load(c, CTL.pending); p !== 0; p = Atomics.load(c, CTL.pending)) {
        if (performance.now() > deadline) {
          Atomics.store(c, CTL.mainAsleep, 0);
          this.stopWorkers();
          throw new OllmError("INTERNAL", "CPU kernel threads did not finish a job in time");
        }
        Atomics.wait(c, CTL.pending, p, 1000);
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
  }

  private stopWorkers(): void {
    if (this.workers.length === 0) return;
    const c = this.control;
    c[CTL.op] = OP.exit;
    Atomics.store(c, CTL.pending, this.workers.length);
    Atomics.add(c, CTL.generation, 1);
    Atomics.notify(c, CTL.generation);
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

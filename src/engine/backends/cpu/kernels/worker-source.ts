/**
 * Layout of the control block the JavaScript thread and the kernel workers share, and the workers' code.
 * The code is plain JavaScript in a string (run with `eval: true`), so it works the same from src/ under
 * vitest and from dist/ without a second build output or a file lookup.
 */

/** Int32 slots of the control block. */
export const CTL = {
  /** (job counter << 2) | op, in one word so that a thread never pairs a job with another's op. */
  generation: 0,
  /** Workers that have not finished the current sync/exit job (run jobs count chunks instead). */
  pending: 1,
  /** Threads that take part in the job (the JavaScript thread is index 0). */
  threads: 3,
  arena: 4,
  fn: 5,
  /** Units of work (e.g. output columns) and units per chunk; threads claim chunks one by one. */
  total: 6,
  chunk: 7,
  /** Workers asleep in Atomics.wait on `generation`. */
  sleepers: 8,
  /** 1 while the JavaScript thread sleeps on `pending`. */
  mainAsleep: 9,
  /** 1 when a worker failed the current job; its message goes through its port. */
  failed: 10,
  /** Chunks in the current job. */
  chunks: 11,
  /** (job tag << 16) | next unclaimed chunk. The tag makes a late thread's claim fail after its job ended. */
  next: 12,
  /** Chunks of the current job finished. */
  done: 13,
  /** Workers that have booted (instantiated their arenas) since this control block was made. */
  ready: 14,
  /** The kernel's argument (a job descriptor or buffer address, u32 stored as i32). */
  args: 16,
  size: 32,
} as const;

export const OP = { run: 1, sync: 2, exit: 3 } as const;

/** Kernel functions by index (the `fn` slot). */
export const KERNEL_FNS = ["run_job", "pack_job", "stream_read"] as const;
export type KernelFn = (typeof KERNEL_FNS)[number];

/**
 * Claims the next chunk of the job tagged `tag` (CAS on the `next` slot): its index, or -1 when the job
 * has no chunk left or has ended. Whoever claims a chunk must finish it before the job can end, so the
 * job's arguments stay valid while it runs. The chunk count (slot `chunks`) is read after the tag is
 * seen current: ThreadPool.run retags `next` before it writes a new job's count, so a late thread of
 * the previous job never checks the old job's index against the new job's count (it would claim a chunk
 * past the old job's end, run it with the new job's arguments and count it done twice).
 */
export function claimChunk(ctl: Int32Array, tag: number, next: number, chunks: number): number {
  for (;;) {
    const v = Atomics.load(ctl, next);
    if (v >>> 16 !== tag || (v & 0xffff) >= Atomics.load(ctl, chunks)) return -1;
    if (Atomics.compareExchange(ctl, next, v, v + 1) === v) return v & 0xffff;
  }
}

export const WORKER_SOURCE = `
"use strict";
const { workerData, receiveMessageOnPort } = require("node:worker_threads");
const CTL = ${JSON.stringify(CTL)};
const OP = ${JSON.stringify(OP)};
const FNS = ${JSON.stringify(KERNEL_FNS)};
const claimChunk = ${claimChunk.toString()};
const { control, port, index, spinMicros } = workerData;
const ctl = new Int32Array(control);
const arenas = new Map();

function add(id, module, memory) {
  arenas.set(id, new WebAssembly.Instance(module, { env: { memory } }).exports);
}
for (const a of workerData.arenas) add(a.id, workerData.module, a.memory);
Atomics.add(ctl, CTL.ready, 1);
Atomics.notify(ctl, CTL.ready);

function drain() {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const msg = m.message;
    if (msg.type === "add") add(msg.id, msg.module, msg.memory);
    else if (msg.type === "drop") arenas.delete(msg.id);
  }
}

// Claims chunks of the current job until none is left. Arguments are read after each claim: a claimed
// chunk keeps its job alive, so they are that job's.
function run(tag) {
  if (index >= ctl[CTL.threads]) return;
  for (;;) {
    const c = claimChunk(ctl, tag, CTL.next, CTL.chunks);
    if (c < 0) return;
    try {
      const chunk = ctl[CTL.chunk];
      const start = c * chunk;
      const end = Math.min(ctl[CTL.total], start + chunk);
      const k = arenas.get(ctl[CTL.arena]);
      if (!k) throw new Error("kernel worker " + index + " has no arena " + ctl[CTL.arena]);
      k[FNS[ctl[CTL.fn]]](ctl[CTL.args] >>> 0, start, end, index);
    } catch (error) {
      port.postMessage({ type: "error", index, message: String((error && error.stack) || error) });
      Atomics.store(ctl, CTL.failed, 1);
    }
    if (Atomics.add(ctl, CTL.done, 1) + 1 === ctl[CTL.chunks] && Atomics.load(ctl, CTL.mainAsleep) === 1) {
      Atomics.notify(ctl, CTL.done);
    }
  }
}

function waitForJob(seen) {
  if (Atomics.load(ctl, CTL.generation) !== seen) return;
  const until = performance.now() + spinMicros / 1000;
  let n = 0;
  while (Atomics.load(ctl, CTL.generation) === seen) {
    if ((++n & 1023) === 0 && performance.now() > until) {
      Atomics.add(ctl, CTL.sleepers, 1);
      while (Atomics.load(ctl, CTL.generation) === seen) Atomics.wait(ctl, CTL.generation, seen);
      Atomics.sub(ctl, CTL.sleepers, 1);
    }
  }
}

let seen = workerData.generation;
for (;;) {
  waitForJob(seen);
  seen = Atomics.load(ctl, CTL.generation);
  const op = seen & 3;
  if (op === OP.exit) break;
  if (op === OP.run) {
    // The job's tag is in \`next\` (set before the generation moved); a job that already ended has another.
    run(Atomics.load(ctl, CTL.next) >>> 16);
    continue;
  }
  try {
    if (op === OP.sync) drain();
  } catch (error) {
    port.postMessage({ type: "error", index, message: String((error && error.stack) || error) });
    Atomics.store(ctl, CTL.failed, 1);
  }
  if (Atomics.sub(ctl, CTL.pending, 1) === 1 && Atomics.load(ctl, CTL.mainAsleep) === 1) {
    Atomics.notify(ctl, CTL.pending);
  }
}
`;

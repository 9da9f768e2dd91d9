/**
 * Layout of the control block the JavaScript thread and the kernel workers share, and the workers' code.
 * The code is plain JavaScript in a string (run with `eval: true`), so it works the same from src/ under
 * vitest and from dist/ without a second build output or a file lookup.
 */

/** Int32 slots of the control block. */
export const CTL = {
  /** Job counter: a worker runs one job per increment. */
  generation: 0,
  /** Workers that have not finished the current job. */
  pending: 1,
  op: 2,
  /** Threads that take part in the job (the JavaScript thread is index 0). */
  threads: 3,
  arena: 4,
  fn: 5,
  /** Units to split between the threads, and the multiple each share is rounded to. */
  total: 6,
  align: 7,
  /** Workers asleep in Atomics.wait on `generation`. */
  sleepers: 8,
  /** 1 while the JavaScript thread sleeps on `pending`. */
  mainAsleep: 9,
  /** 1 when a worker failed the current job; its message goes through its port. */
  failed: 10,
  /** Kernel arguments a0..a5 (u32 stored as i32). */
  args: 16,
  size: 32,
} as const;

export const OP = { run: 1, sync: 2, exit: 3 } as const;

/** Kernel functions by index (the `fn` slot). */
export const KERNEL_FNS = ["matmul_bf16", "matmul_f16", "matmul_f32", "stream_read"] as const;
export type KernelFn = (typeof KERNEL_FNS)[number];

/** The share [start, end) of `total` units for thread `index` of `threads`, in multiples of `align`. */
export function shareOf(total: number, threads: number, index: number, align: number): [number, number] {
  const blocks = Math.ceil(total / align);
  const per = Math.floor(blocks / threads);
  const extra = blocks % threads;
  const first = index * per + Math.min(index, extra);
  const count = per + (index < extra ? 1 : 0);
  return [Math.min(total, first * align), Math.min(total, (first + count) * align)];
}

export const WORKER_SOURCE = `
"use strict";
const { workerData, receiveMessageOnPort } = require("node:worker_threads");
const CTL = ${JSON.stringify(CTL)};
const OP = ${JSON.stringify(OP)};
const FNS = ${JSON.stringify(KERNEL_FNS)};
const shareOf = ${shareOf.toString()};
const { control, port, index, spinMicros } = workerData;
const ctl = new Int32Array(control);
const arenas = new Map();

function add(id, module, memory) {
  arenas.set(id, new WebAssembly.Instance(module, { env: { memory } }).exports);
}
for (const a of workerData.arenas) add(a.id, workerData.module, a.memory);

function drain() {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const msg = m.message;
    if (msg.type === "add") add(msg.id, msg.module, msg.memory);
    else if (msg.type === "drop") arenas.delete(msg.id);
  }
}

function run() {
  const threads = ctl[CTL.threads];
  if (index >= threads) return;
  const [start, end] = shareOf(ctl[CTL.total], threads, index, ctl[CTL.align]);
  if (start >= end) return;
  const k = arenas.get(ctl[CTL.arena]);
  if (!k) throw new Error("kernel worker " + index + " has no arena " + ctl[CTL.arena]);
  const a = CTL.args;
  const fn = FNS[ctl[CTL.fn]];
  if (fn === "stream_read") k.stream_read(ctl[a] >>> 0, start, end);
  else k[fn](ctl[a] >>> 0, ctl[a + 1] >>> 0, ctl[a + 2] >>> 0, ctl[a + 3], ctl[a + 4], ctl[a + 5], start, end);
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
  const op = ctl[CTL.op];
  if (op === OP.exit) break;
  try {
    if (op === OP.sync) drain();
    else if (op === OP.run) run();
  } catch (error) {
    port.postMessage({ type: "error", index, message: String(error && error.stack || error) });
    Atomics.store(ctl, CTL.failed, 1);
  }
  if (Atomics.sub(ctl, CTL.pending, 1) === 1 && Atomics.load(ctl, CTL.mainAsleep) === 1) {
    Atomics.notify(ctl, CTL.pending);
  }
}
`;

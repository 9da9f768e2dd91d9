/**
 * Reusable scratch arrays for the CPU ops (scores, widened norm weights, rotary tables), so a decode step does
 * not allocate them per call. The ops run synchronously on the calling thread and never call each other while
 * holding a slot, so one array per slot is enough.
 */
import type { HostTensor } from "./host.js";
import { widenInto } from "./widen.js";

const f64Slots = new Map<string, Float64Array>();
const f32Slots = new Map<string, Float32Array>();

function capacity(size: number): number {
  return Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(1, size))));
}

/** A Float64Array of at least `size` elements (contents unspecified), kept for the next call with `slot`. */
export function f64Scratch(slot: string, size: number): Float64Array {
  let a = f64Slots.get(slot);
  if (!a || a.length < size) {
    a = new Float64Array(capacity(size));
    f64Slots.set(slot, a);
  }
  return a;
}

/** A Float32Array of at least `size` elements (contents unspecified), kept for the next call with `slot`. */
export function f32Scratch(slot: string, size: number): Float32Array {
  let a = f32Slots.get(slot);
  if (!a || a.length < size) {
    a = new Float32Array(capacity(size));
    f32Slots.set(slot, a);
  }
  return a;
}

/** t's values as f32: the data itself when f32, else widened into the scratch `slot` (valid until its next use). */
export function f32View(t: HostTensor, slot: string): Float32Array {
  if (t.dtype === "f32") return t.data as Float32Array;
  const n = t.data.length;
  const out = f32Scratch(slot, n);
  widenInto(t.dtype, t.data, 0, n, out, new Uint32Array(out.buffer, 0, n));
  return out.subarray(0, n);
}

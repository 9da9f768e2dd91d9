/**
 * Element-wise CPU ops as plain loops over typed arrays (no closure per element): add, mul, scale, the gated
 * activations, the sigmoid gate and soft-capping. Each result is the f64 expression of the reference
 * (reference.ts) rounded to f32; exp and tanh come from fast-math.ts.
 */
import { OllmError } from "../../../errors.js";
import { numel, rowsOf } from "../../tensor.js";
import { exp, tanh } from "./fast-math.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";

function pair(a: HostTensor, b: HostTensor, op: string): [Float32Array, Float32Array] {
  if (numel(a.shape) !== numel(b.shape))
    throw new OllmError("INTERNAL", `${op}: shapes [${a.shape}] and [${b.shape}] differ`);
  return [f32Of(a), f32Of(b)];
}

export function add(a: HostTensor, b: HostTensor): HostTensor {
  const [as, bs] = pair(a, b, "add");
  const n = as.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = as[i] + bs[i];
  return hostF32(a.shape, out);
}

export function mul(a: HostTensor, b: HostTensor): HostTensor {
  const [as, bs] = pair(a, b, "mul");
  const n = as.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = as[i] * bs[i];
  return hostF32(a.shape, out);
}

export function scale(a: HostTensor, factor: number): HostTensor {
  const xs = f32Of(a);
  const n = xs.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = xs[i] * factor;
  return hostF32(a.shape, out);
}

/** silu(gate) · up = gate / (1 + e^-gate) · up. */
export function swiglu(gate: HostTensor, up: HostTensor): HostTensor {
  const [gs, us] = pair(gate, up, "swiglu");
  const n = gs.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = gs[i];
    out[i] = (g / (1 + exp(-g))) * us[i];
  }
  return hostF32(gate.shape, out);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * gelu_tanh(gate) · up. 0.5 · g · (1 + tanh(z)) is computed as g / (1 + e^-2z): the same function, and it
 * keeps its relative precision where 1 + tanh(z) cancels (large negative g).
 */
export function gegluTanh(gate: HostTensor, up: HostTensor): HostTensor {
  const [gs, us] = pair(gate, up, "gegluTanh");
  const n = gs.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = gs[i];
    const z = GELU_C * (g + 0.044715 * g * g * g);
    out[i] = (g / (1 + exp(-2 * z))) * us[i];
  }
  return hostF32(gate.shape, out);
}

/** x · σ(gate); gate is [rows, cols] like x, or [rows, 1] broadcast over each row. */
export function sigmoidGate(x: HostTensor, gate: HostTensor): HostTensor {
  const xs = f32Of(x);
  const gs = f32Of(gate);
  const [rows, cols] = rowsOf(x);
  const gateCols = numel(gate.shape) / rows;
  if (gateCols !== cols && gateCols !== 1)
    throw new OllmError("INTERNAL", `sigmoidGate: gate [${gate.shape}] does not fit [${x.shape}]`);
  const out = new Float32Array(xs.length);
  if (gateCols === 1) {
    for (let r = 0; r < rows; r++) {
      const s = Math.fround(1 / (1 + exp(-gs[r])));
      const base = r * cols;
      for (let c = 0; c < cols; c++) out[base + c] = xs[base + c] * s;
    }
  } else {
    const n = rows * cols;
    for (let i = 0; i < n; i++) out[i] = xs[i] * Math.fround(1 / (1 + exp(-gs[i])));
  }
  return hostF32(x.shape, out);
}

/** cap · tanh(x / cap), rounded to f32 at each step as transformers does in f32. */
export function softcap(x: HostTensor, cap: number): HostTensor {
  const xs = f32Of(x);
  const n = xs.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(tanh(Math.fround(xs[i] / cap))) * cap;
  return hostF32(x.shape, out);
}

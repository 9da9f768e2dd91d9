/**
 * RMS norm, alone and fused with the residual add (the sum and its sum of squares in one pass, then the output),
 * allocating only the outputs (bf16/f16 weights widen into a reused scratch, not a fresh array a call). The
 * arithmetic is the reference's (reference.ts) step for step: the sum of squares in f64 in index order, its
 * mean rounded to f32, x · (1 / √(mean + eps)) rounded to f32, times (weightOffset + w); results are
 * bit-identical to it.
 */
import { OllmError } from "../../../errors.js";
import { numel } from "../../tensor.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";
import { f32View } from "./scratch.js";

function normGroups(
  xs: Float32Array,
  out: Float32Array,
  w: Float32Array,
  weightOffset: number,
  dim: number,
  eps: number,
): void {
  const n = xs.length;
  for (let g = 0; g < n; g += dim) {
    let ss = 0;
    for (let i = g; i < g + dim; i++) {
      const v = xs[i];
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(Math.fround(ss / dim) + eps);
    for (let i = 0; i < dim; i++) out[g + i] = Math.fround(xs[g + i] * inv) * (weightOffset + w[i]);
  }
}

function checkGroups(x: HostTensor, weight: HostTensor, op: string): number {
  const dim = numel(weight.shape);
  const n = numel(x.shape);
  if (dim === 0 || n % dim !== 0)
    throw new OllmError(
      "INTERNAL",
      `${op}: [${x.shape}] is not whole groups of the weight [${weight.shape}]`,
    );
  return dim;
}

/** RMS norm over every consecutive group of weight.length values: x / rms(x) · (weightOffset + w). */
export function rmsNorm(x: HostTensor, weight: HostTensor, eps: number, weightOffset = 0): HostTensor {
  const dim = checkGroups(x, weight, "rmsNorm");
  const xs = f32Of(x);
  const out = new Float32Array(xs.length);
  normGroups(xs, out, f32View(weight, "norm.weight"), weightOffset, dim, eps);
  return hostF32(x.shape, out);
}

/** sum = a + b (f32) and rmsNorm(sum) in one pass over a and b. */
export function addRmsNorm(
  a: HostTensor,
  b: HostTensor,
  weight: HostTensor,
  eps: number,
  weightOffset = 0,
): { sum: HostTensor; normed: HostTensor } {
  if (numel(a.shape) !== numel(b.shape))
    throw new OllmError("INTERNAL", `addRmsNorm: shapes [${a.shape}] and [${b.shape}] differ`);
  const dim = checkGroups(a, weight, "addRmsNorm");
  const as = f32Of(a);
  const bs = f32Of(b);
  const w = f32View(weight, "norm.weight");
  const n = as.length;
  const sum = new Float32Array(n);
  const out = new Float32Array(n);
  for (let g = 0; g < n; g += dim) {
    let ss = 0;
    for (let i = g; i < g + dim; i++) {
      const v = Math.fround(as[i] + bs[i]);
      sum[i] = v;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(Math.fround(ss / dim) + eps);
    for (let i = 0; i < dim; i++) out[g + i] = Math.fround(sum[g + i] * inv) * (weightOffset + w[i]);
  }
  return { sum: hostF32(a.shape, sum), normed: hostF32(a.shape, out) };
}

/**
 * The CPU backend's first TypeScript ops (f64 scores, a closure per element), kept unchanged as the numerical
 * reference: test/cpu-ops holds the fast ops (attention.ts, elementwise.ts, norms.ts, rotary.ts) to them,
 * and tools/bench/cpu-ops.ts measures both in one run. Not used by the backend.
 */
import { OllmError } from "../../../errors.js";
import type { AttentionOptions, RopeOptions, RopeSpec } from "../../backend.js";
import { numel, rowsOf } from "../../tensor.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";

export { sigmoidGate, softcap } from "./columns.js";

function elementwise(
  a: HostTensor,
  b: HostTensor,
  op: string,
  fn: (p: number, q: number) => number,
): HostTensor {
  if (numel(a.shape) !== numel(b.shape))
    throw new OllmError("INTERNAL", `${op}: shapes [${a.shape}] and [${b.shape}] differ`);
  const as = f32Of(a);
  const bs = f32Of(b);
  const out = new Float32Array(as.length);
  for (let i = 0; i < as.length; i++) out[i] = fn(as[i], bs[i]);
  return hostF32(a.shape, out);
}

export function add(a: HostTensor, b: HostTensor): HostTensor {
  return elementwise(a, b, "add", (p, q) => p + q);
}

export function mul(a: HostTensor, b: HostTensor): HostTensor {
  return elementwise(a, b, "mul", (p, q) => p * q);
}

export function scale(a: HostTensor, factor: number): HostTensor {
  const xs = f32Of(a);
  const out = new Float32Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = xs[i] * factor;
  return hostF32(a.shape, out);
}

export function swiglu(gate: HostTensor, up: HostTensor): HostTensor {
  return elementwise(gate, up, "swiglu", (g, u) => (g / (1 + Math.exp(-g))) * u);
}

export function gegluTanh(gate: HostTensor, up: HostTensor): HostTensor {
  const c = Math.sqrt(2 / Math.PI);
  return elementwise(
    gate,
    up,
    "gegluTanh",
    (g, u) => 0.5 * g * (1 + Math.tanh(c * (g + 0.044715 * g * g * g))) * u,
  );
}

export function rmsNorm(x: HostTensor, weight: HostTensor, eps: number, weightOffset = 0): HostTensor {
  const xs = f32Of(x);
  const w = f32Of(weight);
  const dim = w.length;
  const out = new Float32Array(xs.length);
  for (let g = 0; g < xs.length; g += dim) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += xs[g + i] * xs[g + i];
    const inv = 1 / Math.sqrt(Math.fround(ss / dim) + eps);
    for (let i = 0; i < dim; i++) out[g + i] = Math.fround(xs[g + i] * inv) * (weightOffset + w[i]);
  }
  return hostF32(x.shape, out);
}

export function addRmsNorm(
  a: HostTensor,
  b: HostTensor,
  weight: HostTensor,
  eps: number,
  weightOffset = 0,
): { sum: HostTensor; normed: HostTensor } {
  const sum = add(a, b);
  return { sum, normed: rmsNorm(sum, weight, eps, weightOffset) };
}

export function rope(x: HostTensor, positions: Int32Array, spec: RopeSpec, options: RopeOptions): HostTensor {
  const xs = f32Of(x);
  const [rows, width] = rowsOf(x);
  if (rows !== positions.length)
    throw new OllmError("INTERNAL", `rope: ${rows} rows, ${positions.length} positions`);
  const headDim = options.headDim;
  const rot = options.rotaryDim ?? headDim;
  const half = rot / 2;
  const out = Float32Array.from(xs);
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let r = 0; r < rows; r++) {
    const pos = positions[r];
    for (let i = 0; i < half; i++) {
      // transformers computes the angle in f32; round the same way.
      const angle = Math.fround(spec.invFreq[i] * pos);
      cos[i] = Math.fround(Math.cos(angle)) * spec.attentionScaling;
      sin[i] = Math.fround(Math.sin(angle)) * spec.attentionScaling;
    }
    for (let h = r * width; h < (r + 1) * width; h += headDim) {
      for (let i = 0; i < half; i++) {
        const x1 = xs[h + i];
        const x2 = xs[h + i + half];
        out[h + i] = x1 * cos[i] - x2 * sin[i];
        out[h + i + half] = x2 * cos[i] + x1 * sin[i];
      }
    }
  }
  return hostF32(x.shape, out);
}

export function attention(
  q: HostTensor,
  k: HostTensor,
  v: HostTensor,
  o: Omit<AttentionOptions, "sinks"> & { sinks?: HostTensor },
): HostTensor {
  const qs = f32Of(q);
  const ks = f32Of(k);
  const vs = f32Of(v);
  const { numHeads, numKvHeads, headDim, kvLength, window, softcap } = o;
  const rows = o.queryPositions.length;
  const group = numHeads / numKvHeads;
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  const sinks = o.sinks ? f32Of(o.sinks) : undefined;
  const out = new Float32Array(rows * qWidth);
  const scores = new Float64Array(kvLength);
  const offset = o.kvPositionOffset ?? 0;
  for (let r = 0; r < rows; r++) {
    const pos = o.queryPositions[r];
    // Row j holds absolute position offset + j.
    const last = Math.min(pos - offset, kvLength - 1);
    const first = window === undefined ? 0 : Math.max(0, pos - window + 1 - offset);
    for (let h = 0; h < numHeads; h++) {
      const qo = r * qWidth + h * headDim;
      const kvo = Math.floor(h / group) * headDim;
      let max = sinks ? sinks[h] : Number.NEGATIVE_INFINITY;
      for (let j = first; j <= last; j++) {
        const ko = j * kvWidth + kvo;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += qs[qo + d] * ks[ko + d];
        let s = Math.fround(dot) * o.scale;
        if (softcap !== undefined) s = softcap * Math.tanh(s / softcap);
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = sinks ? Math.exp(sinks[h] - max) : 0;
      for (let j = first; j <= last; j++) {
        const e = Math.exp(scores[j] - max);
        scores[j] = e;
        sum += e;
      }
      const oo = r * qWidth + h * headDim;
      for (let j = first; j <= last; j++) {
        const p = scores[j] / sum;
        const vo = j * kvWidth + kvo;
        for (let d = 0; d < headDim; d++) out[oo + d] += p * vs[vo + d];
      }
    }
  }
  return hostF32([rows, qWidth], out);
}

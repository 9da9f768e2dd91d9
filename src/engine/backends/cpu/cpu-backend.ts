import { OllmError } from "../../../errors.js";
import type {
  AttentionOptions,
  Backend,
  DeltaRuleOptions,
  GatedActivation,
  LinearPart,
  RopeOptions,
  RopeSpec,
} from "../../backend.js";
import { topKRowsHost } from "../../topk.js";
import { DTYPE_BYTES, type DType, numel, rowsOf, type Tensor } from "../../tensor.js";
import { type CpuKernelOptions, FastKernels, releaseKernelData } from "./kernels/fast-kernels.js";
import { typedView, type WeightData, widenAll, widenInto } from "./widen.js";
import * as columns from "./columns.js";
import * as deltaRule from "./delta-rule.js";
import type { HostTensor } from "./host.js";
import * as moe from "./moe.js";
import * as mxfp4 from "./mxfp4.js";

/** A tensor whose data lives in a JavaScript typed array. */
export class CpuTensor implements Tensor {
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    public data: WeightData,
  ) {}

  async read(): Promise<Float32Array> {
    return Float32Array.from(widenAll(this.dtype, this.data));
  }

  dispose(): void {
    releaseKernelData(this.data);
    this.data = new Float32Array(0);
  }
}

function cpu(t: Tensor): CpuTensor {
  if (!(t instanceof CpuTensor))
    throw new OllmError("INTERNAL", "CPU backend was given a tensor of another backend");
  return t;
}

function f32(t: Tensor): Float32Array {
  const c = cpu(t);
  if (c.dtype !== "f32") return widenAll(c.dtype, c.data);
  return c.data as Float32Array;
}

function wrap(t: HostTensor): CpuTensor {
  return new CpuTensor(t.shape, t.dtype, t.data);
}

function sameShape(a: Tensor, b: Tensor, op: string): void {
  if (numel(a.shape) !== numel(b.shape))
    throw new OllmError("INTERNAL", `${op}: shapes [${a.shape}] and [${b.shape}] differ`);
}

/**
 * CPU backend: f32 compute, eager execution. The plain TypeScript ops are the reference; `linear` runs on
 * WASM SIMD kernels over worker threads (kernels/) unless `kernels: "reference"`.
 */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  private readonly fast: FastKernels | undefined;

  constructor(options: CpuKernelOptions = {}) {
    this.fast = FastKernels.create(options);
  }

  upload(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor {
    if (bytes.byteLength !== numel(shape) * DTYPE_BYTES[dtype])
      throw new OllmError("INTERNAL", `upload: ${bytes.byteLength} bytes do not fit [${shape}] ${dtype}`);
    return new CpuTensor(shape, dtype, this.fast?.place(bytes, dtype) ?? typedView(bytes, dtype));
  }

  fromFloat32(data: Float32Array, shape: number[]): Tensor {
    return new CpuTensor(shape, "f32", data);
  }

  zeros(shape: number[]): Tensor {
    return new CpuTensor(shape, "f32", new Float32Array(numel(shape)));
  }

  embedding(table: Tensor, ids: Int32Array, scale = 1): Tensor {
    const t = cpu(table);
    const [vocab, dim] = rowsOf(t);
    const out = new Float32Array(ids.length * dim);
    const bits = new Uint32Array(out.buffer);
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (!(id >= 0 && id < vocab))
        throw new OllmError("INVALID_ARGUMENT", `token id ${id} is outside the vocabulary (0..${vocab - 1})`);
      widenInto(t.dtype, t.data, id * dim, dim, out.subarray(r * dim), bits.subarray(r * dim));
    }
    if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] *= scale;
    return new CpuTensor([ids.length, dim], "f32", out);
  }

  linear(x: Tensor, w: Tensor, bias?: Tensor): Tensor {
    const xs = f32(x);
    const wt = cpu(w);
    const [rows, inDim] = rowsOf(x);
    const [outDim, wIn] = rowsOf(wt);
    if (wIn !== inDim)
      throw new OllmError("INTERNAL", `linear: input width ${inDim} vs weight [${wt.shape}]`);
    const fast = this.fast?.linear(xs, rows, inDim, wt.data, wt.dtype, outDim);
    const out = fast ?? new Float32Array(rows * outDim);
    const row = new Float32Array(inDim);
    const rowBits = new Uint32Array(row.buffer);
    const direct = wt.dtype === "f32" ? (wt.data as Float32Array) : undefined;
    for (let o = 0; !fast && o < outDim; o++) {
      let wr: Float32Array;
      let base = 0;
      if (direct) {
        wr = direct;
        base = o * inDim;
      } else {
        widenInto(wt.dtype, wt.data, o * inDim, inDim, row, rowBits);
        wr = row;
      }
      for (let r = 0; r < rows; r++) {
        const xo = r * inDim;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let k = 0;
        for (; k + 3 < inDim; k += 4) {
          s0 += xs[xo + k] * wr[base + k];
          s1 += xs[xo + k + 1] * wr[base + k + 1];
          s2 += xs[xo + k + 2] * wr[base + k + 2];
          s3 += xs[xo + k + 3] * wr[base + k + 3];
        }
        for (; k < inDim; k++) s0 += xs[xo + k] * wr[base + k];
        out[r * outDim + o] = s0 + s1 + s2 + s3;
      }
    }
    if (bias) {
      const b = f32(bias);
      for (let r = 0; r < rows; r++) for (let o = 0; o < outDim; o++) out[r * outDim + o] += b[o];
    }
    return new CpuTensor([rows, outDim], "f32", out);
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number, weightOffset = 0): Tensor {
    const xs = f32(x);
    const w = f32(weight);
    const dim = w.length;
    const out = new Float32Array(xs.length);
    for (let g = 0; g < xs.length; g += dim) {
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += xs[g + i] * xs[g + i];
      const inv = 1 / Math.sqrt(Math.fround(ss / dim) + eps);
      for (let i = 0; i < dim; i++) out[g + i] = Math.fround(xs[g + i] * inv) * (weightOffset + w[i]);
    }
    return new CpuTensor(x.shape, "f32", out);
  }

  add(a: Tensor, b: Tensor): Tensor {
    return this.elementwise(a, b, "add", (p, q) => p + q);
  }

  mul(a: Tensor, b: Tensor): Tensor {
    return this.elementwise(a, b, "mul", (p, q) => p * q);
  }

  scale(a: Tensor, factor: number): Tensor {
    const xs = f32(a);
    const out = new Float32Array(xs.length);
    for (let i = 0; i < xs.length; i++) out[i] = xs[i] * factor;
    return new CpuTensor(a.shape, "f32", out);
  }

  linearGated(
    x: Tensor,
    gate: Tensor,
    up: Tensor,
    activation: GatedActivation,
    gateBias?: Tensor,
    upBias?: Tensor,
  ): Tensor {
    const g = this.linear(x, gate, gateBias);
    const u = this.linear(x, up, upBias);
    return activation === "silu" ? this.swiglu(g, u) : this.gegluTanh(g, u);
  }

  linearMany(x: Tensor, parts: readonly LinearPart[]): Tensor[] {
    return parts.map((p) => this.linear(x, p.weight, p.bias));
  }

  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number, weightOffset = 0) {
    const sum = this.add(a, b);
    return { sum, normed: this.rmsNorm(sum, weight, eps, weightOffset) };
  }

  topKRows(x: Tensor, k: number): Tensor {
    const [rows, cols] = rowsOf(x);
    return new CpuTensor([rows, 2 * k + 1], "f32", topKRowsHost(f32(x), rows, cols, k));
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    return this.elementwise(gate, up, "swiglu", (g, u) => (g / (1 + Math.exp(-g))) * u);
  }

  gegluTanh(gate: Tensor, up: Tensor): Tensor {
    const c = Math.sqrt(2 / Math.PI);
    return this.elementwise(
      gate,
      up,
      "gegluTanh",
      (g, u) => 0.5 * g * (1 + Math.tanh(c * (g + 0.044715 * g * g * g))) * u,
    );
  }

  rope(x: Tensor, positions: Int32Array, spec: RopeSpec, options: RopeOptions): Tensor {
    const xs = f32(x);
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
    return new CpuTensor(x.shape, "f32", out);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
    const qs = f32(q);
    const ks = f32(k);
    const vs = f32(v);
    const { numHeads, numKvHeads, headDim, kvLength, window, softcap } = o;
    const rows = o.queryPositions.length;
    const group = numHeads / numKvHeads;
    const qWidth = numHeads * headDim;
    const kvWidth = numKvHeads * headDim;
    const sinks = o.sinks ? f32(o.sinks) : undefined;
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
    return new CpuTensor([rows, qWidth], "f32", out);
  }

  sliceRows(x: Tensor, start: number, count: number): Tensor {
    const xs = f32(x);
    const [, cols] = rowsOf(x);
    return new CpuTensor([count, cols], "f32", xs.slice(start * cols, (start + count) * cols));
  }

  writeRows(dst: Tensor, dstRow: number, src: Tensor): void {
    const d = cpu(dst);
    if (d.dtype !== "f32") throw new OllmError("INTERNAL", "writeRows: destination must be f32");
    const [rows, cols] = rowsOf(d);
    const s = f32(src);
    if (dstRow + s.length / cols > rows) throw new OllmError("INTERNAL", "writeRows: destination too small");
    (d.data as Float32Array).set(s, dstRow * cols);
  }

  async sync(): Promise<void> {}

  // MoE, MXFP4 and hybrid-model ops: kernels in moe.ts, mxfp4.ts, columns.ts, delta-rule.ts.
  subTensor(t: Tensor, index: number): Tensor {
    return wrap(moe.subTensor(cpu(t), index));
  }

  matmul(x: Tensor, w: Tensor, bias?: Tensor): Tensor {
    return wrap(moe.matmul(cpu(x), cpu(w), bias && cpu(bias)));
  }

  linearMxfp4(x: Tensor, blocks: Tensor, scales: Tensor, bias?: Tensor): Tensor {
    return wrap(mxfp4.linearMxfp4(cpu(x), cpu(blocks), cpu(scales), bias && cpu(bias)));
  }

  gatherRows(x: Tensor, rows: Int32Array): Tensor {
    return wrap(moe.gatherRows(cpu(x), rows));
  }

  scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void {
    moe.scatterAddRows(cpu(dst), rows, cpu(src), weights);
  }

  clampedSwiglu(gateUp: Tensor, alpha: number, limit: number): Tensor {
    return wrap(moe.clampedSwiglu(cpu(gateUp), alpha, limit));
  }

  sigmoidGate(x: Tensor, gate: Tensor): Tensor {
    return wrap(columns.sigmoidGate(cpu(x), cpu(gate)));
  }

  softcap(x: Tensor, cap: number): Tensor {
    return wrap(columns.softcap(cpu(x), cap));
  }

  sliceColumns(x: Tensor, start: number, width: number, group?: number): Tensor {
    return wrap(columns.sliceColumns(cpu(x), start, width, group));
  }

  concatColumns(parts: Tensor[]): Tensor {
    return wrap(columns.concatColumns(parts.map(cpu)));
  }

  causalConv1d(x: Tensor, weight: Tensor, state: Tensor | undefined): { y: Tensor; state: Tensor } {
    const r = deltaRule.causalConv1d(cpu(x), cpu(weight), state && cpu(state));
    return { y: wrap(r.y), state: wrap(r.state) };
  }

  deltaRuleGates(a: Tensor, b: Tensor, aLog: Tensor, dtBias: Tensor): { g: Tensor; beta: Tensor } {
    const r = deltaRule.deltaRuleGates(cpu(a), cpu(b), cpu(aLog), cpu(dtBias));
    return { g: wrap(r.g), beta: wrap(r.beta) };
  }

  gatedDeltaRule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    beta: Tensor,
    state: Tensor | undefined,
    options: DeltaRuleOptions,
  ): { out: Tensor; state: Tensor } {
    const s = state && cpu(state);
    const r = deltaRule.gatedDeltaRule(cpu(q), cpu(k), cpu(v), cpu(g), cpu(beta), s, options);
    return { out: wrap(r.out), state: wrap(r.state) };
  }

  private elementwise(a: Tensor, b: Tensor, op: string, fn: (p: number, q: number) => number): Tensor {
    sameShape(a, b, op);
    const as = f32(a);
    const bs = f32(b);
    const out = new Float32Array(as.length);
    for (let i = 0; i < as.length; i++) out[i] = fn(as[i], bs[i]);
    return new CpuTensor(a.shape, "f32", out);
  }
}

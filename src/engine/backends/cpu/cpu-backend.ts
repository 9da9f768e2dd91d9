import { OllmError } from "../../../errors.js";
import type {
  AttentionOptions,
  Backend,
  DeltaRuleOptions,
  GatedActivation,
  InputFusion,
  LinearFusion,
  LinearPart,
  RopeOptions,
  RopeSpec,
  TokenIds,
} from "../../backend.js";
import { normedInput, unfusedLinear } from "../../linear-fusion.js";
import { topKRowsHost } from "../../topk.js";
import { DTYPE_BYTES, type DType, numel, rowsOf, type Tensor } from "../../tensor.js";
import {
  type CpuKernelOptions,
  FastKernels,
  type Projection,
  releaseKernelData,
  rowMajor,
  rowMajorCopy,
  tiledLayout,
} from "./kernels/fast-kernels.js";
import { widenTiledRow } from "./kernels/tiled.js";
import { typedView, type WeightData, widenAll, widenInto } from "./widen.js";
import * as attentionOps from "./attention.js";
import * as columns from "./columns.js";
import * as deltaRule from "./delta-rule.js";
import * as elementwise from "./elementwise.js";
import type { HostTensor } from "./host.js";
import * as moe from "./moe.js";
import * as mxfp4 from "./mxfp4.js";
import * as norms from "./norms.js";
import * as rotary from "./rotary.js";

/** A tensor whose data lives in a JavaScript typed array. */
export class CpuTensor implements Tensor {
  #stored: WeightData;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    data: WeightData,
  ) {
    this.#stored = data;
  }

  /**
   * The values, row-major. A weight the WASM kernels hold tiled (kernels/tiled.ts) is put back in
   * row-major order on first access, so every op and every in-place writer sees the plain layout;
   * `linear`, `linearMany`, `linearGated`, `embedding` and `read` use `stored` and keep the tiles.
   */
  get data(): WeightData {
    return rowMajor(this.#stored);
  }

  /** The data as stored: a placed 2-D weight may be tiled (`tiledLayout(stored)` says). */
  get stored(): WeightData {
    return this.#stored;
  }

  async read(): Promise<Float32Array> {
    return Float32Array.from(widenAll(this.dtype, rowMajorCopy(this.#stored)));
  }

  dispose(): void {
    releaseKernelData(this.#stored);
    this.#stored = new Float32Array(0);
  }
}

/** The first value of each row as an integer (token ids kept in a tensor, see `TokenIds`). */
function firstColumn(t: CpuTensor): Int32Array {
  const [rows, cols] = rowsOf(t);
  const values = f32(t);
  return Int32Array.from({ length: rows }, (_, r) => values[r * cols]);
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
    return new CpuTensor(shape, dtype, this.fast?.place(bytes, dtype, shape) ?? typedView(bytes, dtype));
  }

  fromFloat32(data: Float32Array, shape: number[]): Tensor {
    return new CpuTensor(shape, "f32", data);
  }

  zeros(shape: number[]): Tensor {
    return new CpuTensor(shape, "f32", new Float32Array(numel(shape)));
  }

  embedding(table: Tensor, tokenIds: TokenIds, scale = 1): Tensor {
    const ids = tokenIds instanceof Int32Array ? tokenIds : firstColumn(cpu(tokenIds));
    const t = cpu(table);
    const [vocab, dim] = rowsOf(t);
    const out = new Float32Array(ids.length * dim);
    const bits = new Uint32Array(out.buffer);
    // A tied embedding is also the lm_head: its rows are gathered out of the kernels' tiles.
    const data = t.stored;
    const tiled = tiledLayout(data);
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (!(id >= 0 && id < vocab))
        throw new OllmError("INVALID_ARGUMENT", `token id ${id} is outside the vocabulary (0..${vocab - 1})`);
      const dst = out.subarray(r * dim);
      const dstBits = bits.subarray(r * dim);
      if (tiled) widenTiledRow(t.dtype, data, tiled, id, dst, dstBits);
      else widenInto(t.dtype, data, id * dim, dim, dst, dstBits);
    }
    if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] *= scale;
    return new CpuTensor([ids.length, dim], "f32", out);
  }

  linear(x: Tensor, w: Tensor, bias?: Tensor, fusion?: LinearFusion): Tensor {
    // The CPU gains nothing from fusing a norm or an add into the product (no dispatch to save).
    if (fusion?.norm || fusion?.residual)
      return unfusedLinear(this, x, fusion, (input) => this.linear(input, w, bias));
    const xs = f32(x);
    const wt = cpu(w);
    const [rows, inDim] = rowsOf(x);
    const [outDim, wIn] = rowsOf(wt);
    if (wIn !== inDim)
      throw new OllmError("INTERNAL", `linear: input width ${inDim} vs weight [${wt.shape}]`);
    const fast = this.fast?.linear(xs, rows, inDim, wt.stored, wt.dtype, outDim, bias && f32(bias));
    if (fast) return new CpuTensor([rows, outDim], "f32", fast);
    const out = new Float32Array(rows * outDim);
    const row = new Float32Array(inDim);
    const rowBits = new Uint32Array(row.buffer);
    const wdata = wt.data;
    const direct = wt.dtype === "f32" ? (wdata as Float32Array) : undefined;
    for (let o = 0; o < outDim; o++) {
      let wr: Float32Array;
      let base = 0;
      if (direct) {
        wr = direct;
        base = o * inDim;
      } else {
        widenInto(wt.dtype, wdata, o * inDim, inDim, row, rowBits);
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

  // Non-linear ops: fast TypeScript kernels in norms.ts, elementwise.ts, rotary.ts, attention.ts (reference.ts
  // keeps the first implementations; test/cpu-ops holds these to them).
  rmsNorm(x: Tensor, weight: Tensor, eps: number, weightOffset = 0): Tensor {
    return wrap(norms.rmsNorm(cpu(x), cpu(weight), eps, weightOffset));
  }

  add(a: Tensor, b: Tensor): Tensor {
    return wrap(elementwise.add(cpu(a), cpu(b)));
  }

  mul(a: Tensor, b: Tensor): Tensor {
    return wrap(elementwise.mul(cpu(a), cpu(b)));
  }

  scale(a: Tensor, factor: number): Tensor {
    return wrap(elementwise.scale(cpu(a), factor));
  }

  linearGated(
    x: Tensor,
    gate: Tensor,
    up: Tensor,
    activation: GatedActivation,
    gateBias?: Tensor,
    upBias?: Tensor,
    fusion?: InputFusion,
  ): Tensor {
    if (fusion?.norm)
      return this.linearGated(normedInput(this, x, fusion.norm), gate, up, activation, gateBias, upBias);
    if (this.fast) {
      // One kernel job: both projections read per output, act(g) · u written once.
      const [rows, k] = rowsOf(x);
      const g = this.projection(gate, k, gateBias);
      const u = this.projection(up, k, upBias);
      const out = this.fast.linearGated(f32(x), rows, k, g, u, activation);
      if (out) return new CpuTensor([rows, g.n], "f32", out);
    }
    const g = this.linear(x, gate, gateBias);
    const u = this.linear(x, up, upBias);
    return activation === "silu" ? this.swiglu(g, u) : this.gegluTanh(g, u);
  }

  linearMany(x: Tensor, parts: readonly LinearPart[], fusion?: InputFusion): Tensor[] {
    if (fusion?.norm) return this.linearMany(normedInput(this, x, fusion.norm), parts);
    if (this.fast && parts.length > 1) {
      // One kernel job over every part: x copied once, one barrier.
      const [rows, k] = rowsOf(x);
      const projections = parts.map((p) => this.projection(p.weight, k, p.bias));
      const outs = this.fast.linearMany(f32(x), rows, k, projections);
      if (outs) return outs.map((o, i) => new CpuTensor([rows, projections[i].n], "f32", o));
    }
    return parts.map((p) => this.linear(x, p.weight, p.bias));
  }

  /** A weight [n, k] (and bias) as the fast kernels take it. */
  private projection(weight: Tensor, k: number, bias?: Tensor): Projection {
    const w = cpu(weight);
    const [n, wIn] = rowsOf(w);
    if (wIn !== k) throw new OllmError("INTERNAL", `linear: input width ${k} vs weight [${w.shape}]`);
    return { w: w.stored, dtype: w.dtype, n, bias: bias && f32(bias) };
  }

  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number, weightOffset = 0) {
    const r = norms.addRmsNorm(cpu(a), cpu(b), cpu(weight), eps, weightOffset);
    return { sum: wrap(r.sum), normed: wrap(r.normed) };
  }

  topKRows(x: Tensor, k: number): Tensor {
    const [rows, cols] = rowsOf(x);
    return new CpuTensor([rows, 2 * k + 1], "f32", topKRowsHost(f32(x), rows, cols, k));
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    return wrap(elementwise.swiglu(cpu(gate), cpu(up)));
  }

  gegluTanh(gate: Tensor, up: Tensor): Tensor {
    return wrap(elementwise.gegluTanh(cpu(gate), cpu(up)));
  }

  rope(x: Tensor, positions: Int32Array, spec: RopeSpec, options: RopeOptions): Tensor {
    return wrap(rotary.rope(cpu(x), positions, spec, options));
  }

  attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
    return wrap(attentionOps.attention(cpu(q), cpu(k), cpu(v), o, o.sinks && cpu(o.sinks)));
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
    return wrap(elementwise.sigmoidGate(cpu(x), cpu(gate)));
  }

  softcap(x: Tensor, cap: number): Tensor {
    return wrap(elementwise.softcap(cpu(x), cap));
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
}

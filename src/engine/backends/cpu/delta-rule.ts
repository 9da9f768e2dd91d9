/**
 * Kernels of gated delta-rule linear attention (qwen3-next's Gated DeltaNet): the causal depthwise conv
 * with its carried state, the decay/beta gates, and the delta rule itself in two forms that compute the same
 * function — the chunked (WY) form for prefill and the token-by-token recurrence for decode — both mirroring
 * transformers' torch reference (torch_chunk_gated_delta_rule / torch_recurrent_gated_delta_rule) in f32.
 */
import { OllmError } from "../../../errors.js";
import type { DeltaRuleOptions } from "../../backend.js";
import { rowsOf } from "../../tensor.js";
import { expectSize, f32Of, type HostTensor, hostF32 } from "./host.js";

const f = Math.fround;

function silu(x: number): number {
  return f(x / (1 + Math.exp(-x)));
}

export function causalConv1d(
  x: HostTensor,
  weight: HostTensor,
  state: HostTensor | undefined,
): { y: HostTensor; state: HostTensor } {
  const xs = f32Of(x);
  const [rows, channels] = rowsOf(x);
  const w = f32Of(weight);
  const kernel = w.length / channels;
  if (weight.shape[0] !== channels || !Number.isInteger(kernel) || kernel < 1)
    throw new OllmError("INTERNAL", `causalConv1d: weight [${weight.shape}] for ${channels} channels`);
  const history = kernel - 1;
  // Inputs in time order: the carried history, then this chunk.
  const ext = new Float32Array((history + rows) * channels);
  if (state) {
    expectSize(state, history * channels, "causalConv1d", "state");
    ext.set(f32Of(state));
  }
  ext.set(xs, history * channels);
  const out = new Float32Array(rows * channels);
  for (let t = 0; t < rows; t++)
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let j = 0; j < kernel; j++) s += w[c * kernel + j] * ext[(t + j) * channels + c];
      out[t * channels + c] = silu(f(s));
    }
  const next = ext.slice(rows * channels, (rows + history) * channels);
  return { y: hostF32([rows, channels], out), state: hostF32([history, channels], next) };
}

export function deltaRuleGates(
  a: HostTensor,
  b: HostTensor,
  aLog: HostTensor,
  dtBias: HostTensor,
): { g: HostTensor; beta: HostTensor } {
  const as = f32Of(a);
  const bs = f32Of(b);
  const al = f32Of(aLog);
  const dt = f32Of(dtBias);
  const heads = al.length;
  if (dt.length !== heads || as.length !== bs.length || as.length % heads !== 0)
    throw new OllmError("INTERNAL", `deltaRuleGates: a [${a.shape}], b [${b.shape}], ${heads} heads`);
  const g = new Float32Array(as.length);
  const beta = new Float32Array(bs.length);
  const decayRate = al.map((v) => f(Math.exp(v)));
  for (let i = 0; i < as.length; i++) {
    const h = i % heads;
    const x = f(as[i] + dt[h]);
    // torch softplus (beta 1, threshold 20)
    const softplus = x > 20 ? x : f(Math.log1p(Math.exp(x)));
    g[i] = f(-decayRate[h] * softplus);
    beta[i] = f(1 / (1 + Math.exp(-bs[i])));
  }
  return { g: hostF32(a.shape, g), beta: hostF32(b.shape, beta) };
}

/** x / sqrt(Σx² + 1e-6) over `dim` values at `src`, times `scale`, into dst at `dst`. */
function l2normInto(
  src: Float32Array,
  from: number,
  dim: number,
  scale: number,
  dst: Float32Array,
  to: number,
) {
  let ss = 0;
  for (let i = 0; i < dim; i++) ss += src[from + i] * src[from + i];
  const inv = f(1 / Math.sqrt(f(f(ss) + 1e-6)));
  for (let i = 0; i < dim; i++)
    dst[to + i] = scale === 1 ? f(src[from + i] * inv) : f(f(src[from + i] * inv) * scale);
}

interface HeadInputs {
  /** [T, dk] l2-normed and scaled */
  q: Float32Array;
  /** [T, dk] l2-normed */
  k: Float32Array;
  /** [T, dv] */
  v: Float32Array;
  g: Float32Array;
  beta: Float32Array;
}

export function gatedDeltaRule(
  q: HostTensor,
  k: HostTensor,
  v: HostTensor,
  g: HostTensor,
  beta: HostTensor,
  state: HostTensor | undefined,
  o: DeltaRuleOptions,
): { out: HostTensor; state: HostTensor } {
  const { numKeyHeads: nk, numValueHeads: nv, keyHeadDim: dk, valueHeadDim: dv } = o;
  if (nv % nk !== 0) throw new OllmError("INTERNAL", `gatedDeltaRule: ${nv} value heads vs ${nk} key heads`);
  const rows = rowsOf(q)[0];
  expectSize(q, rows * nk * dk, "gatedDeltaRule", "q");
  expectSize(k, rows * nk * dk, "gatedDeltaRule", "k");
  expectSize(v, rows * nv * dv, "gatedDeltaRule", "v");
  expectSize(g, rows * nv, "gatedDeltaRule", "g");
  expectSize(beta, rows * nv, "gatedDeltaRule", "beta");
  const qs = f32Of(q);
  const ks = f32Of(k);
  const vs = f32Of(v);
  const gs = f32Of(g);
  const bs = f32Of(beta);
  const states = new Float32Array(nv * dk * dv);
  if (state) {
    expectSize(state, nv * dk * dv, "gatedDeltaRule", "state");
    states.set(f32Of(state));
  }
  const scale = 1 / Math.sqrt(dk);
  const ratio = nv / nk;
  const out = new Float32Array(rows * nv * dv);
  // l2-normed q (scaled) and k per key head, shared by the value heads that read them.
  const qn = new Float32Array(rows * nk * dk);
  const kn = new Float32Array(rows * nk * dk);
  for (let t = 0; t < rows; t++)
    for (let h = 0; h < nk; h++) {
      const at = (t * nk + h) * dk;
      l2normInto(qs, at, dk, scale, qn, at);
      l2normInto(ks, at, dk, 1, kn, at);
    }
  for (let h = 0; h < nv; h++) {
    const kh = Math.floor(h / ratio);
    const head: HeadInputs = {
      q: new Float32Array(rows * dk),
      k: new Float32Array(rows * dk),
      v: new Float32Array(rows * dv),
      g: new Float32Array(rows),
      beta: new Float32Array(rows),
    };
    for (let t = 0; t < rows; t++) {
      const at = (t * nk + kh) * dk;
      head.q.set(qn.subarray(at, at + dk), t * dk);
      head.k.set(kn.subarray(at, at + dk), t * dk);
      const vt = (t * nv + h) * dv;
      head.v.set(vs.subarray(vt, vt + dv), t * dv);
      head.g[t] = gs[t * nv + h];
      head.beta[t] = bs[t * nv + h];
    }
    const s = states.subarray(h * dk * dv, (h + 1) * dk * dv);
    const result =
      o.mode === "recurrent"
        ? recurrent(head, s, rows, dk, dv)
        : chunked(head, s, rows, dk, dv, o.chunkSize ?? 64);
    for (let t = 0; t < rows; t++) out.set(result.subarray(t * dv, (t + 1) * dv), (t * nv + h) * dv);
  }
  return { out: hostF32([rows, nv * dv], out), state: hostF32([nv, dk, dv], states) };
}

/** Token by token: S ← S·e^g; S += k ⊗ β(v − Sᵀk); o = Sᵀq. Updates `s` [dk, dv] in place. */
function recurrent(x: HeadInputs, s: Float32Array, rows: number, dk: number, dv: number): Float32Array {
  const out = new Float32Array(rows * dv);
  const delta = new Float32Array(dv);
  for (let t = 0; t < rows; t++) {
    const decay = f(Math.exp(x.g[t]));
    for (let i = 0; i < s.length; i++) s[i] = f(s[i] * decay);
    for (let j = 0; j < dv; j++) {
      let mem = 0;
      for (let i = 0; i < dk; i++) mem += s[i * dv + j] * x.k[t * dk + i];
      delta[j] = f(f(x.v[t * dv + j] - f(mem)) * x.beta[t]);
    }
    for (let i = 0; i < dk; i++) {
      const ki = x.k[t * dk + i];
      for (let j = 0; j < dv; j++) s[i * dv + j] = f(s[i * dv + j] + f(ki * delta[j]));
    }
    for (let j = 0; j < dv; j++) {
      let acc = 0;
      for (let i = 0; i < dk; i++) acc += s[i * dv + j] * x.q[t * dk + i];
      out[t * dv + j] = f(acc);
    }
  }
  return out;
}

/**
 * The chunked form: within a chunk of C rows the delta rule's triangular system is solved once (the
 * WY representation), and the state is carried from chunk to chunk. Updates `s` [dk, dv] in place.
 */
function chunked(
  x: HeadInputs,
  s: Float32Array,
  rows: number,
  dk: number,
  dv: number,
  C: number,
): Float32Array {
  const out = new Float32Array(rows * dv);
  const gc = new Float64Array(C);
  const decay = new Float32Array(C * C);
  const A = new Float32Array(C * C);
  const row = new Float32Array(C);
  const kb = new Float32Array(C * dk);
  const vb = new Float32Array(C * dv);
  const value = new Float32Array(C * dv);
  const kCumDecay = new Float32Array(C * dk);
  const vNew = new Float32Array(C * dv);
  const attn = new Float32Array(C * C);
  for (let c0 = 0; c0 < rows; c0 += C) {
    const n = Math.min(C, rows - c0); // rows past n are zero padding: they change nothing
    // cumulative log decay within the chunk (f32, as torch's cumsum)
    let acc = 0;
    for (let i = 0; i < C; i++) {
      acc = f(acc + (i < n ? x.g[c0 + i] : 0));
      gc[i] = acc;
    }
    decay.fill(0);
    for (let i = 0; i < C; i++) for (let j = 0; j <= i; j++) decay[i * C + j] = f(Math.exp(f(gc[i] - gc[j])));
    kb.fill(0);
    vb.fill(0);
    for (let i = 0; i < n; i++) {
      const b = x.beta[c0 + i];
      for (let d = 0; d < dk; d++) kb[i * dk + d] = f(x.k[(c0 + i) * dk + d] * b);
      for (let d = 0; d < dv; d++) vb[i * dv + d] = f(x.v[(c0 + i) * dv + d] * b);
    }
    // A = −(kβ kᵀ ⊙ decay), strictly lower triangular
    A.fill(0);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < i; j++) {
        let dot = 0;
        for (let d = 0; d < dk; d++) dot += kb[i * dk + d] * x.k[(c0 + j) * dk + d];
        A[i * C + j] = -f(f(dot) * decay[i * C + j]);
      }
    // forward substitution: row i += Σ_m row_i[m] · A[m, :] over the rows already solved
    for (let i = 1; i < n; i++) {
      for (let j = 0; j < i; j++) row[j] = A[i * C + j];
      for (let j = 0; j < i; j++) {
        let sum = 0;
        for (let m = j + 1; m < i; m++) sum += row[m] * A[m * C + j];
        A[i * C + j] = f(row[j] + f(sum));
      }
    }
    for (let i = 0; i < C; i++) A[i * C + i] = 1;
    // value = A vβ; kCumDecay = A (kβ ⊙ e^g)
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < dv; d++) {
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += A[i * C + j] * vb[j * dv + d];
        value[i * dv + d] = f(sum);
      }
      for (let d = 0; d < dk; d++) {
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += A[i * C + j] * f(kb[j * dk + d] * f(Math.exp(gc[j])));
        kCumDecay[i * dk + d] = f(sum);
      }
    }
    // intra-chunk attention (q kᵀ ⊙ decay, lower triangular with the diagonal)
    for (let i = 0; i < n; i++)
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < dk; d++) dot += x.q[(c0 + i) * dk + d] * x.k[(c0 + j) * dk + d];
        attn[i * C + j] = f(f(dot) * decay[i * C + j]);
      }
    // v_new = value − kCumDecay S
    for (let i = 0; i < n; i++)
      for (let d = 0; d < dv; d++) {
        let sum = 0;
        for (let e = 0; e < dk; e++) sum += kCumDecay[i * dk + e] * s[e * dv + d];
        vNew[i * dv + d] = f(value[i * dv + d] - f(sum));
      }
    // out = (q ⊙ e^g) S + attn v_new
    for (let i = 0; i < n; i++) {
      const eg = f(Math.exp(gc[i]));
      for (let d = 0; d < dv; d++) {
        let inter = 0;
        for (let e = 0; e < dk; e++) inter += f(x.q[(c0 + i) * dk + e] * eg) * s[e * dv + d];
        let intra = 0;
        for (let j = 0; j <= i; j++) intra += attn[i * C + j] * vNew[j * dv + d];
        out[(c0 + i) * dv + d] = f(f(inter) + f(intra));
      }
    }
    // S = S e^{g_last} + Σ_i (k_i e^{g_last − g_i}) ⊗ v_new_i
    const gLast = gc[C - 1];
    const eLast = f(Math.exp(gLast));
    for (let e = 0; e < dk; e++) {
      for (let d = 0; d < dv; d++) {
        let sum = 0;
        for (let i = 0; i < n; i++)
          sum += f(x.k[(c0 + i) * dk + e] * f(Math.exp(f(gLast - gc[i])))) * vNew[i * dv + d];
        s[e * dv + d] = f(f(s[e * dv + d] * eLast) + f(sum));
      }
    }
  }
  return out;
}

/**
 * Causal attention on the CPU (GQA, sliding window, sinks, soft-capping, a KV position offset), one query row
 * at a time (decode is one row; prefill rows each see their own causal range).
 *
 * Query heads that share a KV head run four at a time: each K and V row is loaded once for the four heads,
 * two key rows per pass, with eight (q·k) or four (p·v) independent accumulators for the CPU to overlap.
 * Leftover heads (group sizes not a multiple of four) run one at a time, four key rows per pass.
 *
 * The arithmetic is the reference's (reference.ts), in the same order: each q·k summed in f64 over d, rounded
 * to f32, times `scale` (then cap · tanh(s / cap)); softmax in f64 with the sink logit joining max and sum;
 * each output element accumulated in f32 over the keys in order (out = f32(out + p · v)). Only exp and tanh
 * differ (fast-math.ts, a few f64 ulp), so results match the reference to f32 rounding.
 */
import { OllmError } from "../../../errors.js";
import { checkAttentionOptions } from "../../attention-options.js";
import type { AttentionOptions } from "../../backend.js";
import { exp, tanh } from "./fast-math.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";
import { f32View, f64Scratch } from "./scratch.js";

const f = Math.fround;

/** Scores of 4 consecutive query heads (q at qo, qo+D, …) against keys first..first+n-1 → sc[c·n + t]. */
function scores4(
  qs: Float32Array,
  ks: Float32Array,
  sc: Float64Array,
  qo: number,
  D: number,
  kvo: number,
  kvWidth: number,
  first: number,
  n: number,
  scale: number,
): void {
  const q0 = qo;
  const q1 = q0 + D;
  const q2 = q1 + D;
  const q3 = q2 + D;
  const n2 = 2 * n;
  const n3 = 3 * n;
  let t = 0;
  for (; t + 1 < n; t += 2) {
    const ka = (first + t) * kvWidth + kvo;
    const kb = ka + kvWidth;
    let a0 = 0;
    let b0 = 0;
    let c0 = 0;
    let e0 = 0;
    let a1 = 0;
    let b1 = 0;
    let c1 = 0;
    let e1 = 0;
    for (let d = 0; d < D; d++) {
      const x = ks[ka + d];
      const y = ks[kb + d];
      const qa = qs[q0 + d];
      const qb = qs[q1 + d];
      const qc = qs[q2 + d];
      const qe = qs[q3 + d];
      a0 += qa * x;
      b0 += qb * x;
      c0 += qc * x;
      e0 += qe * x;
      a1 += qa * y;
      b1 += qb * y;
      c1 += qc * y;
      e1 += qe * y;
    }
    sc[t] = f(a0) * scale;
    sc[n + t] = f(b0) * scale;
    sc[n2 + t] = f(c0) * scale;
    sc[n3 + t] = f(e0) * scale;
    sc[t + 1] = f(a1) * scale;
    sc[n + t + 1] = f(b1) * scale;
    sc[n2 + t + 1] = f(c1) * scale;
    sc[n3 + t + 1] = f(e1) * scale;
  }
  if (t < n) {
    const ka = (first + t) * kvWidth + kvo;
    let a0 = 0;
    let b0 = 0;
    let c0 = 0;
    let e0 = 0;
    for (let d = 0; d < D; d++) {
      const x = ks[ka + d];
      a0 += qs[q0 + d] * x;
      b0 += qs[q1 + d] * x;
      c0 += qs[q2 + d] * x;
      e0 += qs[q3 + d] * x;
    }
    sc[t] = f(a0) * scale;
    sc[n + t] = f(b0) * scale;
    sc[n2 + t] = f(c0) * scale;
    sc[n3 + t] = f(e0) * scale;
  }
}

/** out[head c] += Σ_t sc[c·n + t] · v[first + t] for 4 consecutive heads, in key order, rounding to f32 per add. */
function values4(
  vs: Float32Array,
  out: Float32Array,
  sc: Float64Array,
  oo: number,
  D: number,
  kvo: number,
  kvWidth: number,
  first: number,
  n: number,
): void {
  const o0 = oo;
  const o1 = o0 + D;
  const o2 = o1 + D;
  const o3 = o2 + D;
  const n2 = 2 * n;
  const n3 = 3 * n;
  let t = 0;
  for (; t + 1 < n; t += 2) {
    const va = (first + t) * kvWidth + kvo;
    const vb = va + kvWidth;
    const p0 = sc[t];
    const p1 = sc[n + t];
    const p2 = sc[n2 + t];
    const p3 = sc[n3 + t];
    const r0 = sc[t + 1];
    const r1 = sc[n + t + 1];
    const r2 = sc[n2 + t + 1];
    const r3 = sc[n3 + t + 1];
    for (let d = 0; d < D; d++) {
      const x = vs[va + d];
      const y = vs[vb + d];
      out[o0 + d] = f(out[o0 + d] + p0 * x) + r0 * y;
      out[o1 + d] = f(out[o1 + d] + p1 * x) + r1 * y;
      out[o2 + d] = f(out[o2 + d] + p2 * x) + r2 * y;
      out[o3 + d] = f(out[o3 + d] + p3 * x) + r3 * y;
    }
  }
  if (t < n) {
    const va = (first + t) * kvWidth + kvo;
    const p0 = sc[t];
    const p1 = sc[n + t];
    const p2 = sc[n2 + t];
    const p3 = sc[n3 + t];
    for (let d = 0; d < D; d++) {
      const x = vs[va + d];
      out[o0 + d] += p0 * x;
      out[o1 + d] += p1 * x;
      out[o2 + d] += p2 * x;
      out[o3 + d] += p3 * x;
    }
  }
}

/** Scores of one query head against keys first..first+n-1 → sc[t], four keys per pass. */
function scores1(
  qs: Float32Array,
  ks: Float32Array,
  sc: Float64Array,
  qo: number,
  D: number,
  kvo: number,
  kvWidth: number,
  first: number,
  n: number,
  scale: number,
): void {
  let t = 0;
  for (; t + 3 < n; t += 4) {
    const k0 = (first + t) * kvWidth + kvo;
    const k1 = k0 + kvWidth;
    const k2 = k1 + kvWidth;
    const k3 = k2 + kvWidth;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let d = 0; d < D; d++) {
      const q = qs[qo + d];
      s0 += q * ks[k0 + d];
      s1 += q * ks[k1 + d];
      s2 += q * ks[k2 + d];
      s3 += q * ks[k3 + d];
    }
    sc[t] = f(s0) * scale;
    sc[t + 1] = f(s1) * scale;
    sc[t + 2] = f(s2) * scale;
    sc[t + 3] = f(s3) * scale;
  }
  for (; t < n; t++) {
    const ko = (first + t) * kvWidth + kvo;
    let s = 0;
    for (let d = 0; d < D; d++) s += qs[qo + d] * ks[ko + d];
    sc[t] = f(s) * scale;
  }
}

/** out[head] += Σ_t sc[t] · v[first + t] for one head, four keys per pass, rounding to f32 per add. */
function values1(
  vs: Float32Array,
  out: Float32Array,
  sc: Float64Array,
  oo: number,
  D: number,
  kvo: number,
  kvWidth: number,
  first: number,
  n: number,
): void {
  let t = 0;
  for (; t + 3 < n; t += 4) {
    const v0 = (first + t) * kvWidth + kvo;
    const v1 = v0 + kvWidth;
    const v2 = v1 + kvWidth;
    const v3 = v2 + kvWidth;
    const p0 = sc[t];
    const p1 = sc[t + 1];
    const p2 = sc[t + 2];
    const p3 = sc[t + 3];
    for (let d = 0; d < D; d++)
      out[oo + d] =
        f(f(f(out[oo + d] + p0 * vs[v0 + d]) + p1 * vs[v1 + d]) + p2 * vs[v2 + d]) + p3 * vs[v3 + d];
  }
  for (; t < n; t++) {
    const vo = (first + t) * kvWidth + kvo;
    const p = sc[t];
    for (let d = 0; d < D; d++) out[oo + d] += p * vs[vo + d];
  }
}

/**
 * Scores sc[base .. base+n) → probabilities in place: soft-capping (when hasCap), then softmax with the sink
 * logit (when hasSink) in the max and the sum.
 */
function softmax(
  sc: Float64Array,
  base: number,
  n: number,
  hasCap: boolean,
  cap: number,
  hasSink: boolean,
  sink: number,
): void {
  const end = base + n;
  if (hasCap) for (let i = base; i < end; i++) sc[i] = cap * tanh(sc[i] / cap);
  let max = hasSink ? sink : Number.NEGATIVE_INFINITY;
  for (let i = base; i < end; i++) {
    const s = sc[i];
    if (s > max) max = s;
  }
  let sum = hasSink ? exp(sink - max) : 0;
  for (let i = base; i < end; i++) {
    const e = exp(sc[i] - max);
    sc[i] = e;
    sum += e;
  }
  for (let i = base; i < end; i++) sc[i] = sc[i] / sum;
}

/**
 * Causal attention of q [rows, heads·dim] over k/v [≥ kvLength, kvHeads·dim]; `sinks` replaces
 * options.sinks (a HostTensor, [heads]).
 */
export function attention(
  q: HostTensor,
  k: HostTensor,
  v: HostTensor,
  o: Omit<AttentionOptions, "sinks">,
  sinksTensor?: HostTensor,
): HostTensor {
  const qs = f32Of(q);
  const ks = f32Of(k);
  const vs = f32Of(v);
  const { numHeads, numKvHeads, headDim: D, kvLength, window, scale } = o;
  checkAttentionOptions(o);
  const rows = o.queryPositions.length;
  const qWidth = numHeads * D;
  const kvWidth = numKvHeads * D;
  if (!(numKvHeads > 0 && numHeads % numKvHeads === 0))
    throw new OllmError("INTERNAL", `attention: ${numHeads} heads over ${numKvHeads} KV heads`);
  if (qs.length < rows * qWidth || ks.length < kvLength * kvWidth || vs.length < kvLength * kvWidth)
    throw new OllmError("INTERNAL", `attention: q/k/v too small for ${rows} rows over ${kvLength} keys`);
  const group = numHeads / numKvHeads;
  const sinks = sinksTensor ? f32View(sinksTensor, "attention.sinks") : undefined;
  if (sinks && sinks.length < numHeads)
    throw new OllmError("INTERNAL", `attention: ${sinks.length} sinks for ${numHeads} heads`);
  const hasSink = sinks !== undefined;
  const hasCap = o.softcap !== undefined;
  const cap = o.softcap ?? 1;
  const offset = o.kvPositionOffset ?? 0;
  const out = new Float32Array(rows * qWidth);
  const sc = f64Scratch("attention.scores", 4 * Math.max(1, kvLength));
  for (let r = 0; r < rows; r++) {
    const pos = o.queryPositions[r];
    // Row j holds absolute position offset + j.
    const last = Math.min(pos - offset, kvLength - 1);
    const first = window === undefined ? 0 : Math.max(0, pos - window + 1 - offset);
    const n = last - first + 1;
    if (!(n > 0)) continue;
    for (let kh = 0; kh < numKvHeads; kh++) {
      const kvo = kh * D;
      const end = (kh + 1) * group;
      let h = kh * group;
      for (; h + 4 <= end; h += 4) {
        const qo = r * qWidth + h * D;
        scores4(qs, ks, sc, qo, D, kvo, kvWidth, first, n, scale);
        for (let c = 0; c < 4; c++) softmax(sc, c * n, n, hasCap, cap, hasSink, hasSink ? sinks[h + c] : 0);
        values4(vs, out, sc, qo, D, kvo, kvWidth, first, n);
      }
      for (; h < end; h++) {
        const qo = r * qWidth + h * D;
        scores1(qs, ks, sc, qo, D, kvo, kvWidth, first, n, scale);
        softmax(sc, 0, n, hasCap, cap, hasSink, hasSink ? sinks[h] : 0);
        values1(vs, out, sc, qo, D, kvo, kvWidth, first, n);
      }
    }
  }
  return hostF32([rows, qWidth], out);
}

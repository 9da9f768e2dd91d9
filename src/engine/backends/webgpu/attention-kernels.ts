/**
 * Attention (flash-decoding): pass 1 has one workgroup per (key split, KV head, query-head block, query row)
 * that serves every query head of its block, so each K/V row is read once per block rather than once per
 * query head. Its keys are walked in blocks of BLOCK with an online softmax; when one split covers every key
 * the workgroup normalises (with the sink logit) and writes the output itself, otherwise pass 2 combines the
 * splits. The number of splits is picked on the host (attentionPlan): short decode contexts are
 * latency-bound, so they are cut into small chunks until there are about as many workgroups as the tuning's target.
 *
 * Thread layouts inside a workgroup (WG threads, head width D = LANES vectors of VW floats):
 * - scoring: PARTS threads per key, each dotting every PARTS-th vector of the key row with the block's query
 *   heads; consecutive threads read consecutive 16 bytes, so the threads of one key read 128-byte segments.
 *   The partial dots meet in workgroup memory, where one thread per (query, key) sums them.
 * - values: VL threads per value row (a 128-wide row is 32 threads × vec4), `slots` rows at a time; each thread
 *   keeps running sums for its vectors over its share of the keys, reduced over the slots once at the end
 *   (no thread loops over all keys).
 * The next block's K (and V) rows are requested before the current block's softmax (values) so their
 * latency overlaps the work, and Q, K and V of the first block are requested before anything waits on them.
 */
import type { DType } from "../../tensor.js";
import {
  build,
  host,
  type KernelSource,
  loader,
  memo,
  NEG,
  type ParamType,
  r,
  rf,
  SAFE_MATH,
  u32s,
  w,
} from "./kernels.js";

const WG = 256;
/** Threads sharing one key's dot products (8 × vec4 = a 128-byte segment per load step). */
const PARTS = 8;
/** Keys scored per step: one per group of PARTS threads. */
const BLOCK = WG / PARTS;
/** Most query heads per workgroup (their running sums live in registers). */
const MAX_QUERIES = 8;

/**
 * How a call is cut: the workgroups it aims for (about one per SM of a large GPU: 132 on an H200) and the
 * most query heads one workgroup serves (fewer: more workgroups, each K/V row read by more of them).
 */
export interface AttentionTuning {
  targetWorkgroups: number;
  maxQueries: number;
  /** Fewest keys per split (default one block): below it a combine pass costs more than the split saves. */
  minSplitKeys?: number;
}

/** For measurements: env OLLM_WEBGPU_ATTN_MIN_SPLIT replaces the default tunings' minSplitKeys. */
const MIN_SPLIT_KEYS = Number(process.env.OLLM_WEBGPU_ATTN_MIN_SPLIT) || undefined;

/**
 * The cut for head width `dim`: with 64-wide heads a workgroup serves the whole GQA group, with 128-wide heads
 * one query head per workgroup and twice the workgroups, as the H200's attention probe ranked them
 * (results/h200-2026-11-28g-attention.json; that probe then timed one batch per case, whose figures varied
 * up to 4× between identical cases: treat them as a ranking at best). Splits of fewer than 128 keys (64 for
 * narrower heads) did not pay for their combine pass, measured in place: the decode step's GPU time went
 * 4.67 → 4.59 ms on the 8B shape and 1.05 → 1.02 on the 1B (results/h200-2026-11-29d-*). With the probe's
 * timing fixed, this cut costs 4–7 µs per 8B layer up to 128 keys, 31–34 at 4096 (results/h200-2026-11-29k-*).
 */
export function defaultAttentionTuning(dim: number): AttentionTuning {
  return dim >= 128
    ? { targetWorkgroups: 256, maxQueries: 1, minSplitKeys: MIN_SPLIT_KEYS ?? 128 }
    : { targetWorkgroups: 128, maxQueries: MAX_QUERIES, minSplitKeys: MIN_SPLIT_KEYS ?? 64 };
}
/**
 * The parameters the decode and prefill attention kernels end with, in this order: the window, the offsets
 * of q, k, v, the positions and the output, the row strides, the key position offset, the sinks' offset,
 * then the logit scale and soft cap.
 */
export const ATTENTION_SHARED_PARAMS: [string, ParamType][] = [
  ...u32s("window", "qo", "ko", "vo", "qStride", "kvStride", "po", "oo", "koff", "sko"),
  ["scale", "f32"],
  ["softcap", "f32"],
];

/** Most splits per call (pass 2 reads every split of a head). */
const MAX_SPLITS = 64;
/** Workgroup memory a kernel may use (the WebGPU default limit, and llvmpipe's). */
const SHARED_BYTES = 16384;

interface Layout {
  vw: number;
  lanes: number;
  /** Vectors of a key row per scoring thread. */
  kpt: number;
  /** Threads per value row, vectors per such thread, value rows at a time, value rows per thread per block. */
  vl: number;
  lpt: number;
  slots: number;
  vpt: number;
}

function layout(dim: number): Layout {
  const vw = dim % 4 === 0 ? 4 : 1;
  const lanes = dim / vw;
  const vl = Math.min(lanes, WG);
  const slots = Math.floor(WG / vl);
  return {
    vw,
    lanes,
    kpt: Math.ceil(lanes / PARTS),
    vl,
    lpt: Math.ceil(lanes / vl),
    slots,
    vpt: Math.ceil(BLOCK / slots),
  };
}

/** Floats of the scratch array: partial dots of a block, then the value sums of the slots (one query at least). */
const scratchFloats = (dim: number, qb: number) => Math.max(qb * WG, layout(dim).slots * dim);

/** Workgroup memory of a kernel: queries, scratch, scores and probabilities of a block, running maxima. */
const sharedBytes = (dim: number, qb: number) =>
  4 * (qb * dim + scratchFloats(dim, qb) + 2 * qb * BLOCK + qb);

export interface AttentionPlan {
  /** Query heads per workgroup, and workgroups per KV head (qBlock · qBlocks ≥ group). */
  qBlock: number;
  qBlocks: number;
  /** Keys per split (whole blocks), and splits (1: no second pass). */
  chunk: number;
  splits: number;
}

/** How attention over `kvLen` keys is cut into workgroups. */
export function attentionPlan(
  rows: number,
  heads: number,
  kvHeads: number,
  dim: number,
  kvLen: number,
  tuning: AttentionTuning = defaultAttentionTuning(dim),
): AttentionPlan {
  const group = heads / kvHeads;
  let most = Math.min(MAX_QUERIES, tuning.maxQueries);
  while (most > 1 && sharedBytes(dim, most) > SHARED_BYTES) most--;
  const qBlocks = Math.ceil(group / most);
  const qBlock = Math.ceil(group / qBlocks);
  const wanted = Math.ceil(tuning.targetWorkgroups / (rows * kvHeads * qBlocks));
  const minKeys = Math.max(BLOCK, tuning.minSplitKeys ?? BLOCK);
  const splits = Math.max(1, Math.min(MAX_SPLITS, Math.ceil(kvLen / minKeys), wanted));
  const chunk = BLOCK * Math.max(1, Math.ceil(kvLen / (splits * BLOCK)));
  return { qBlock, qBlocks, chunk, splits: Math.max(1, Math.ceil(kvLen / chunk)) };
}

/**
 * Pass 1 for head width `dim` and `qb` query heads per workgroup. `kvVec`: K and V bound as vec4<f32> (their
 * offsets and row stride multiples of 4, and neither in the written buffer). `direct` (one split): writes the
 * normalised output [rows, heads·dim]; else the partials [rows, heads, splits, dim + 2] as (max, sum, Σ p·v).
 */
function attentionDecodeKernelImpl(
  dim: number,
  qb: number,
  kvVec: boolean,
  direct: boolean,
  sinks: DType | undefined,
): KernelSource {
  const L = layout(dim);
  const vec = L.vw === 4;
  const VT = vec ? "vec4<f32>" : "f32";
  const scalars = (name: string, i: string) =>
    vec
      ? `vec4<f32>(${name}[${i}], ${name}[${i} + 1u], ${name}[${i} + 2u], ${name}[${i} + 3u])`
      : `${name}[${i}]`;
  const stores = (name: string, i: string, v: string) =>
    vec
      ? `${name}[${i}] = ${v}.x; ${name}[${i} + 1u] = ${v}.y; ${name}[${i} + 2u] = ${v}.z; ${name}[${i} + 3u] = ${v}.w;`
      : `${name}[${i}] = ${v};`;
  const kvAt = (name: string) =>
    `fn ${name.toLowerCase()}at(e: u32) -> VT { return ${kvVec ? `${name}[e >> 2u]` : scalars(name, "e")}; }`;
  const loadK = (j: string) => `{
      let key = ${j} + ks;
      for (var i = 0u; i < KPT; i++) {
        let lane = pt + i * PT;
        var x = VT();
        if (key < hi && lane < LANES) { x = kat(kb + key * p.kvStride + lane * VW); }
        kr[i] = x;
      }
    }`;
  const loadV = (j: string) => `for (var i = 0u; i < VPT; i++) {
      let key = vs + i * S;
      let ok = vs < S && key < KB && ${j} + key < hi;
      for (var c = 0u; c < LPT; c++) {
        let lane = vl + c * VL;
        var x = VT();
        if (ok && lane < LANES) { x = vat(vb + (${j} + key) * p.kvStride + lane * VW); }
        vr[i * LPT + c] = x;
      }
    }`;
  const vkv = kvVec ? "vec4<f32>" : "f32";
  const bindings = [rf("Q"), { ...rf("K"), type: vkv }, { ...rf("V"), type: vkv }, host("POS", "i32")];
  if (direct && sinks) bindings.push(r("SNK", sinks));
  bindings.push(w("O"));
  // HS: distance between the block's heads in O (D in the output, splits·(D + 2) in the partials).
  const finish = direct
    ? `var top = bm[q];
        ${sinks ? "let sink = SNK_at(p.sko + h0 + q); top = max(top, sink);" : ""}
        let rescale = exp(bm[q] - top);
        let total = sc[q] * rescale${sinks ? " + exp(sink - top)" : ""};
        var inv = 0.0;
        if (total > 0.0) { inv = rescale / total; }
        let y = o * inv;
        ${stores("O", "ob + q * HS + lane * VW", "y")}`
    : `${stores("O", "ob + q * HS + 2u + lane * VW", "o")}
        if (lane == 0u) { O[ob + q * HS] = bm[q]; O[ob + q * HS + 1u] = sc[q]; }`;
  const empty = direct
    ? "for (var e = l; e < nq * D; e += WG) { O[ob + (e / D) * HS + e % D] = 0.0; }"
    : `for (var e = l; e < nq * D; e += WG) { O[ob + (e / D) * HS + 2u + e % D] = 0.0; }
    if (l < nq) { O[ob + l * HS] = ${NEG}; O[ob + l * HS + 1u] = 0.0; }`;
  const scr = scratchFloats(dim, qb);
  return build(
    `attnd:${dim}:${qb}:${kvVec}:${direct ? `direct:${sinks ?? "-"}` : "split"}`,
    [...u32s("heads", "group", "qBlocks", "kvLen", "chunk", "splits"), ...ATTENTION_SHARED_PARAMS],
    bindings,
    `${SAFE_MATH}
${direct && sinks ? loader("SNK", sinks) : ""}
alias VT = ${VT};
const WG: u32 = ${WG}u;
const PT: u32 = ${PARTS}u;
const KB: u32 = ${BLOCK}u;
const D: u32 = ${dim}u;
const VW: u32 = ${L.vw}u;
const LANES: u32 = ${L.lanes}u;
const KPT: u32 = ${L.kpt}u;
const VL: u32 = ${L.vl}u;
const LPT: u32 = ${L.lpt}u;
const S: u32 = ${L.slots}u;
const VPT: u32 = ${L.vpt}u;
const QB: u32 = ${qb}u;
const QPT: u32 = ${Math.ceil((qb * L.lanes) / WG)}u;
// Queries whose slot sums fit the scratch at once.
const QR: u32 = ${Math.floor(scr / (L.slots * dim))}u;
var<workgroup> qs: array<VT, ${qb * L.lanes}>;
var<workgroup> scr: array<f32, ${scr}>;
var<workgroup> sc: array<f32, ${qb * BLOCK}>;
var<workgroup> pb: array<f32, ${qb * BLOCK}>;
var<workgroup> bm: array<f32, ${qb}>;
fn qat(e: u32) -> VT { return ${scalars("Q", "e")}; }
${kvAt("K")}
${kvAt("V")}
fn vdot(a: VT, b: VT) -> f32 { return ${vec ? "dot(a, b)" : "a * b"}; }
fn scr_at(i: u32) -> VT { return ${scalars("scr", "i")}; }
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let split = wid.x; let kvh = wid.y / p.qBlocks; let row = wid.z;
  let h0 = kvh * p.group + (wid.y % p.qBlocks) * QB;
  let nq = min(QB, (kvh + 1u) * p.group - h0);
  // Key rows [first, end) are visible: rel is the query's row (its absolute position minus koff).
  let rel = POS[p.po + row] - i32(p.koff);
  var end = 0u;
  var first = 0u;
  if (rel >= 0) {
    end = min(u32(rel) + 1u, p.kvLen);
    if (p.window > 0u && u32(rel) + 1u > p.window) { first = u32(rel) + 1u - p.window; }
  }
  let c0 = split * p.chunk;
  let hi = min(c0 + p.chunk, end);
  let lo = max(c0, first);
  ${direct ? "let HS = D;\n  let ob = p.oo + row * p.heads * D + h0 * D;" : "let HS = p.splits * (D + 2u);\n  let ob = p.oo + ((row * p.heads + h0) * p.splits + split) * (D + 2u);"}
  if (lo >= hi) {
    ${empty}
    return;
  }
  var qv: array<VT, QPT>;
  for (var i = 0u; i < QPT; i++) {
    let e = l + i * WG;
    if (e / LANES < nq) { qv[i] = qat(p.qo + row * p.qStride + (h0 + e / LANES) * D + (e % LANES) * VW); }
  }
  let pt = l % PT; let ks = l / PT;
  let vl = l % VL; let vs = l / VL;
  let kb = p.ko + kvh * D; let vb = p.vo + kvh * D;
  var kr: array<VT, KPT>;
  var vr: array<VT, ${L.vpt * L.lpt}>;
  ${loadK("lo")}
  ${loadV("lo")}
  for (var i = 0u; i < QPT; i++) { let e = l + i * WG; if (e < QB * LANES) { qs[e] = qv[i]; } }
  workgroupBarrier();
  // Running max per query (the same in every thread; indexed by constants only, so it stays in registers), the
  // owner's running max and share of the sum for its query, this thread's value sums.
  var m: array<f32, QB>;
  for (var q = 0u; q < QB; q++) { m[q] = ${NEG}; }
  var mown = ${NEG};
  var lown = 0.0;
  var acc: array<VT, ${qb * L.lpt}>;
  // Thread l < QB·KB owns the score of (query oq, key oj of the block).
  let oq = l / KB; let oj = l % KB;
  var j0 = lo;
  loop {
    for (var q = 0u; q < QB; q++) {
      var d = 0.0;
      for (var i = 0u; i < KPT; i++) {
        let lane = pt + i * PT;
        if (lane < LANES) { d += vdot(qs[q * LANES + lane], kr[i]); }
      }
      scr[q * WG + pt * KB + ks] = d;
    }
    workgroupBarrier();
    let j1 = j0 + KB;
    ${loadK("j1")}
    var s = ${NEG};
    if (oq < QB) {
      if (j0 + oj < hi) {
        var d = 0.0;
        for (var i = 0u; i < PT; i++) { d += scr[oq * WG + i * KB + oj]; }
        s = d * p.scale;
        if (p.softcap > 0.0) { s = p.softcap * tanh_s(s / p.softcap); }
      }
      sc[l] = s;
    }
    workgroupBarrier();
    if (oq < QB) {
      var mb = ${NEG};
      for (var j = 0u; j < KB; j++) { mb = max(mb, sc[oq * KB + j]); }
      let mn = max(mown, mb);
      let e = exp(s - mn);
      pb[l] = e;
      lown = lown * exp(mown - mn) + e;
      mown = mn;
      if (oj == 0u) { bm[oq] = mn; }
    }
    workgroupBarrier();
    for (var q = 0u; q < QB; q++) {
      let mn = bm[q];
      let a = exp(m[q] - mn);
      m[q] = mn;
      for (var c = 0u; c < LPT; c++) { acc[q * LPT + c] *= a; }
    }
    for (var i = 0u; i < VPT; i++) {
      let key = vs + i * S;
      if (vs < S && key < KB) {
        for (var q = 0u; q < QB; q++) {
          let pr = pb[q * KB + key];
          for (var c = 0u; c < LPT; c++) { acc[q * LPT + c] += pr * vr[i * LPT + c]; }
        }
      }
    }
    j0 = j1;
    if (j0 >= hi) { break; }
    ${loadV("j0")}
  }
  // Sums: the owners' shares, added per query into sc (bm keeps the final maxima).
  workgroupBarrier();
  if (oq < QB) { pb[l] = lown; }
  workgroupBarrier();
  if (l < QB) {
    var t = 0.0;
    for (var j = 0u; j < KB; j++) { t += pb[l * KB + j]; }
    sc[l] = t;
  }
  // Value sums of the slots meet in the scratch, QR queries at a time.
  for (var r0 = 0u; r0 < QB; r0 += QR) {
    workgroupBarrier();
    for (var qq = 0u; qq < QR; qq++) {
      if (vs < S && r0 + qq < QB) {
        for (var c = 0u; c < LPT; c++) {
          let lane = vl + c * VL;
          let v = acc[(r0 + qq) * LPT + c];
          if (lane < LANES) { ${stores("scr", "(qq * S + vs) * D + lane * VW", "v")} }
        }
      }
    }
    workgroupBarrier();
    for (var e = l; e < QR * LANES; e += WG) {
      let qq = e / LANES; let lane = e % LANES;
      let q = r0 + qq;
      if (q < nq) {
        var o = scr_at(qq * S * D + lane * VW);
        for (var i = 1u; i < S; i++) { o += scr_at((qq * S + i) * D + lane * VW); }
        ${finish}
      }
    }
  }
}`,
  );
}

/**
 * Pass 2: one workgroup per (head, row) combines the splits' partials (and the sink logit). Threads are
 * (dimension, split slot) pairs so no thread walks every split of a dimension; the slots meet in workgroup
 * memory.
 */
function attentionCombineKernelImpl(dim: number, sinks: DType | undefined): KernelSource {
  const lanes = dim <= 128 ? 32 : dim <= 256 ? 64 : 128;
  const bindings = [rf("O"), w("Y")];
  if (sinks) bindings.splice(1, 0, r("SNK", sinks));
  return build(
    `attnc:${dim}:${sinks ?? "-"}`,
    u32s("heads", "splits", "yo", "sko", "oo"),
    bindings,
    `${sinks ? loader("SNK", sinks) : ""}
const WG: u32 = ${WG}u;
const D: u32 = ${dim}u;
const CL: u32 = ${lanes}u;
const SS: u32 = WG / CL;
const DPT: u32 = ${Math.ceil(dim / lanes)}u;
var<workgroup> ms: array<f32, ${MAX_SPLITS}>;
var<workgroup> ws: array<f32, ${MAX_SPLITS}>;
var<workgroup> ls: array<f32, ${MAX_SPLITS}>;
var<workgroup> red: array<f32, ${(WG / lanes) * dim}>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let h = wid.x; let row = wid.y;
  let base = p.oo + (row * p.heads + h) * p.splits * (D + 2u);
  var mi = ${NEG};
  var li = 0.0;
  if (l < p.splits) { mi = O[base + l * (D + 2u)]; li = O[base + l * (D + 2u) + 1u]; ms[l] = mi; }
  workgroupBarrier();
  var mx = ${NEG};
  ${sinks ? "let sink = SNK_at(p.sko + h); mx = sink;" : ""}
  for (var s = 0u; s < p.splits; s++) { mx = max(mx, ms[s]); }
  if (l < p.splits) { let e = exp(mi - mx); ws[l] = e; ls[l] = li * e; }
  workgroupBarrier();
  var total = ${sinks ? "exp(sink - mx)" : "0.0"};
  for (var s = 0u; s < p.splits; s++) { total += ls[s]; }
  var inv = 0.0;
  if (total > 0.0) { inv = 1.0 / total; }
  let c = l % CL; let ss = l / CL;
  var acc: array<f32, DPT>;
  for (var s = ss; s < p.splits; s += SS) {
    let wt = ws[s];
    let b = base + s * (D + 2u) + 2u;
    for (var i = 0u; i < DPT; i++) {
      let d = c + i * CL;
      if (d < D) { acc[i] += wt * O[b + d]; }
    }
  }
  for (var i = 0u; i < DPT; i++) {
    let d = c + i * CL;
    if (d < D) { red[ss * D + d] = acc[i]; }
  }
  workgroupBarrier();
  for (var d = l; d < D; d += WG) {
    var o = 0.0;
    for (var i = 0u; i < SS; i++) { o += red[i * D + d]; }
    Y[p.yo + row * p.heads * D + h * D + d] = o * inv;
  }
}`,
  );
}

export const attentionDecodeKernel = memo(attentionDecodeKernelImpl);
export const attentionCombineKernel = memo(attentionCombineKernelImpl);

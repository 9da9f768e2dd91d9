/**
 * Prefill attention (FlashAttention-2 style): one workgroup per (block of query rows, KV head, block of its query
 * heads) walks the keys its rows can see in tiles of BC keys. Each K and V tile is staged once in workgroup memory
 * and read by all M = 64 query rows of the block (positions × heads of the GQA group), where the decode kernel
 * re-reads every key for every query row. Blocks of the latest positions are dispatched first (causal: the most
 * keys), and tiles past the block's last visible key are never read; keys are masked per row inside a tile.
 *
 * Threads: T = dim / (4·NV) threads per query row, each owning NV vec4 columns (interleaved: column i·T + part, so
 * the T threads of a row read adjacent 16-byte words, which the other rows of a warp read too) of R = 2 rows,
 * m = rg and rg + 32. A thread keeps its slice of q and of the output accumulators in registers (2·R·NV vec4),
 * dots its slice with every key of the tile, and the T partial dots of a (row, key) meet in workgroup memory (over
 * the K tile, no longer read then); every thread of a row sums them, so each runs the row's online softmax itself
 * and no value has to be broadcast. The next tile is loaded into registers during the softmax and values.
 * Width 128: 128 threads, BC = 16, 24 KiB of workgroup memory, four barriers per tile.
 *
 * Without subgroup operations (llvmpipe has none) the partial dots cost a workgroup-memory round trip per tile
 * (width 128: 8 stores and 32 loads of 16 bytes a thread, against 256 loads of K and V). Code touching the
 * register arrays is unrolled here, so their indices are constants and they stay in registers.
 */
import type { DType } from "../../tensor.js";
import { ATTENTION_SHARED_PARAMS } from "./attention-kernels.js";
import { build, host, type KernelSource, loader, memo, NEG, r, rf, SAFE_MATH, u32s, w } from "./kernels.js";

/** Query rows (position, head) per workgroup, rows per thread, and threads per part (M / R). */
const M = 64;
const R = 2;
const RG = M / R;
/** Fewer query rows than this stay on the decode kernel (its key splits keep a small call's GPU busy). */
const PREFILL_MIN_ROWS = 16;
/** OLLM_WEBGPU_PREFILL_ATTENTION=0 sends prefill to the decode kernel (benchmarks compare the two). */
const ENABLED = process.env.OLLM_WEBGPU_PREFILL_ATTENTION !== "0";

/** Vec4 columns per thread: 8 (32 floats of q and of the output, per row) where the width allows. */
function vecsPerThread(dim: number): number {
  return dim % 32 === 0 ? 8 : dim % 16 === 0 ? 4 : 0;
}

/** Vec4 words of the two workgroup arrays: the K tile or the partial dots, and the V tile. */
function sharedVec4s(dim: number, bc: number): { a: number; v: number } {
  const t = dim / (4 * vecsPerThread(dim));
  const tile = (bc * dim) / 4;
  return { a: Math.max(tile, (bc / 4) * t * M), v: tile };
}

export interface PrefillAttentionPlan {
  /** Keys per tile. */
  bc: number;
  /** Query heads per workgroup and head blocks per KV head (hb · qBlocks ≥ group). */
  hb: number;
  qBlocks: number;
  /** Query rows (positions) per workgroup, and their blocks. */
  positions: number;
  pBlocks: number;
  grid: [number, number, number];
}

/** How a call runs on the prefill kernel, or undefined where it does not apply (few rows, width, limits). */
export function prefillAttentionPlan(
  rows: number,
  heads: number,
  kvHeads: number,
  dim: number,
  limits: {
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
  },
): PrefillAttentionPlan | undefined {
  const nv = vecsPerThread(dim);
  if (!ENABLED || rows < PREFILL_MIN_ROWS || nv === 0) return undefined;
  const threads = RG * (dim / (4 * nv));
  if (threads > Math.min(256, limits.maxComputeInvocationsPerWorkgroup)) return undefined;
  let bc = 16;
  const bytes = () => {
    const s = sharedVec4s(dim, bc);
    return 16 * (s.a + s.v);
  };
  while (bc > 4 && bytes() > limits.maxComputeWorkgroupStorageSize) bc /= 2;
  if (bytes() > limits.maxComputeWorkgroupStorageSize) return undefined;
  const group = heads / kvHeads;
  const qBlocks = Math.ceil(group / M);
  const hb = Math.ceil(group / qBlocks);
  const positions = Math.floor(M / hb);
  const pBlocks = Math.ceil(rows / positions);
  if (pBlocks > limits.maxComputeWorkgroupsPerDimension) return undefined;
  return { bc, hb, qBlocks, positions, pBlocks, grid: [kvHeads * qBlocks, pBlocks, 1] };
}

/** Offsets (in floats) and options of one call, in the kernel's parameter order. */
export function prefillAttentionParams(
  plan: PrefillAttentionPlan,
  o: {
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    kvLength: number;
    window?: number;
    scale: number;
    softcap?: number;
  },
  rows: number,
  at: { q: number; k: number; v: number; out: number; koff: number; sinks: number },
): number[] {
  return [
    o.numHeads / o.numKvHeads,
    plan.hb,
    plan.qBlocks,
    plan.positions,
    plan.pBlocks,
    rows,
    o.kvLength,
    o.window ?? 0,
    at.q,
    at.k,
    at.v,
    o.numHeads * o.headDim,
    o.numKvHeads * o.headDim,
    0,
    at.out,
    at.koff,
    at.sinks,
    o.scale,
    o.softcap ?? 0,
  ];
}

/** `n` generated statements. */
const each = (n: number, line: (i: number) => string) =>
  Array.from({ length: n }, (_, i) => line(i)).join("\n");

/**
 * The kernel for head width `dim` and `bc` keys per tile. `kvVec`: K and V bound as vec4<f32> (offsets multiples
 * of 4, neither in the written buffer). Bindings Q, K, V, POS, [SNK], O; output [rows, heads·dim].
 */
function prefillAttentionKernelImpl(
  dim: number,
  bc: number,
  kvVec: boolean,
  sinks: DType | undefined,
): KernelSource {
  const nv = vecsPerThread(dim);
  const T = dim / (4 * nv);
  const wg = RG * T;
  const dv = dim / 4;
  const tile = bc * dv;
  const kpt = Math.ceil(tile / wg);
  const shared = sharedVec4s(dim, bc);
  const vkv = kvVec ? "vec4<f32>" : "f32";
  const bindings = [rf("Q"), { ...rf("K"), type: vkv }, { ...rf("V"), type: vkv }, host("POS", "i32")];
  if (sinks) bindings.push(r("SNK", sinks));
  bindings.push(w("O"));
  const kvAt = (name: string) =>
    `fn ${name.toLowerCase()}at(e: u32) -> vec4<f32> { return ${kvVec ? `${name}[e >> 2u]` : `vec4<f32>(${name}[e], ${name}[e + 1u], ${name}[e + 2u], ${name}[e + 3u])`}; }`;
  // Tile rows [j, j + bc) into kp/vp (zeros past the block's last visible key), and from there into the tiles.
  const guard = (k: number) => ((k + 1) * wg > tile ? `l + ${k * wg}u < ${tile}u && ` : "");
  const load = (j: string) =>
    each(
      kpt,
      (k) => `{
    let e = l + ${k * wg}u; let key = ${j} + e / DV;
    var x = vec4<f32>(); var y = vec4<f32>();
    if (${guard(k)}key < hi) { let c = (e % DV) * 4u; x = kat(kb + key * p.kvStride + c); y = vat(vb + key * p.kvStride + c); }
    kp[${k}] = x; vp[${k}] = y;
  }`,
    );
  const store = each(kpt, (k) => {
    const s = `sa[l + ${k * wg}u] = kp[${k}]; sv[l + ${k * wg}u] = vp[${k}];`;
    return (k + 1) * wg > tile ? `if (l + ${k * wg}u < ${tile}u) { ${s} }` : s;
  });
  const rows = [...Array(R).keys()];
  // Partial dots of this thread's rows with key jj of the tile: sp[rr·BC + jj].
  const scores = each(
    bc,
    (jj) => `{
    ${each(nv, (i) => `let k${i} = sa[${jj * dv + i * T}u + part];`)}
    ${rows.map((rr) => `var a${rr} = q[${rr * nv}] * k0;`).join(" ")}
    ${each(nv - 1, (i) => rows.map((rr) => `a${rr} = fma(q[${rr * nv + i + 1}], k${i + 1}, a${rr});`).join(" "))}
    ${rows.map((rr) => `sp[${rr * bc + jj}] = a${rr}.x + a${rr}.y + a${rr}.z + a${rr}.w;`).join(" ")}
  }`,
  );
  // Partial dots stored as [key/4][part][row] vec4s: a row's T threads read one word, 32 rows 32 adjacent words.
  const partAt = (jj4: number, t: string, rr: number) => `${jj4 * T * M + rr * RG}u + ${t} * M + rg`;
  const putPartials = each(bc / 4, (jj4) =>
    rows
      .map(
        (rr) =>
          `sa[${partAt(jj4, "part", rr)}] = vec4<f32>(${[0, 1, 2, 3].map((c) => `sp[${rr * bc + jj4 * 4 + c}]`).join(", ")});`,
      )
      .join(" "),
  );
  // Scores of row rr (masked: NEG), its online softmax step, then its probabilities pr{rr}_{jj4} (0 where masked).
  const softmax = (rr: number) => `{
    var mb = mx${rr};
    ${each(
      bc / 4,
      (jj4) => `var s${jj4} = ${each(T, (t) => `sa[${partAt(jj4, `${t}u`, rr)}]`)
        .split("\n")
        .join(" + ")};
    s${jj4} *= p.scale;
    if (p.softcap > 0.0) { s${jj4} = p.softcap * tanh4(s${jj4} / p.softcap); }
    let kj${jj4} = vec4<u32>(j0 + ${jj4 * 4}u) + vec4<u32>(0u, 1u, 2u, 3u);
    let in${jj4} = (kj${jj4} >= vec4<u32>(kr${rr}.x)) & (kj${jj4} < vec4<u32>(kr${rr}.y));
    s${jj4} = select(vec4<f32>(${NEG}), s${jj4}, in${jj4});
    mb = max(mb, max(max(s${jj4}.x, s${jj4}.y), max(s${jj4}.z, s${jj4}.w)));`,
    )}
    let alpha = exp(mx${rr} - mb);
    mx${rr} = mb;
    var add = 0.0;
    ${each(bc / 4, (jj4) => `pr${rr}_${jj4} = select(vec4<f32>(), exp(s${jj4} - vec4<f32>(mb)), in${jj4}); add += dot(pr${rr}_${jj4}, vec4<f32>(1.0));`)}
    sum${rr} = sum${rr} * alpha + add;
    ${each(nv, (i) => `o[${rr * nv + i}] *= alpha;`)}
  }`;
  const comp = ["x", "y", "z", "w"];
  const values = each(
    bc,
    (jj) => `{
    ${each(nv, (i) => `let v${i} = sv[${jj * dv + i * T}u + part];`)}
    ${rows.map((rr) => `let w${rr} = vec4<f32>(pr${rr}_${jj >> 2}.${comp[jj & 3]});`).join(" ")}
    ${each(nv, (i) => rows.map((rr) => `o[${rr * nv + i}] = fma(w${rr}, v${i}, o[${rr * nv + i}]);`).join(" "))}
  }`,
  );
  const perRow = (rr: number) => `
  let m${rr} = rg + ${rr * RG}u;
  let pl${rr} = m${rr} / p.hb; let hl${rr} = m${rr} % p.hb;
  let row${rr} = r0 + pl${rr}; let head${rr} = h0 + hl${rr};
  let ok${rr} = pl${rr} < p.positions && row${rr} < p.rows && hl${rr} < nh;
  var kr${rr} = vec2<u32>(0u, 0u);
  if (ok${rr}) {
    kr${rr} = keyRange(POS[p.po + row${rr}]);
    let b = p.qo + row${rr} * p.qStride + head${rr} * D + part * 4u;
    ${each(nv, (i) => `q[${rr * nv + i}] = qat(b + ${i * T * 4}u);`)}
  }
  var mx${rr} = ${NEG};
  var sum${rr} = 0.0;
  ${each(bc / 4, (jj4) => `var pr${rr}_${jj4} = vec4<f32>();`)}`;
  const finish = (rr: number) => `if (ok${rr}) {
    var top = mx${rr};
    ${sinks ? `let sink = SNK_at(p.sko + head${rr}); top = max(top, sink);` : ""}
    let rescale = exp(mx${rr} - top);
    let total = sum${rr} * rescale${sinks ? " + exp(sink - top)" : ""};
    var inv = 0.0;
    if (total > 0.0) { inv = rescale / total; }
    let b = p.oo + row${rr} * p.qStride + head${rr} * D + part * 4u;
    ${each(nv, (i) => `{ let y = o[${rr * nv + i}] * inv; let e = b + ${i * T * 4}u; O[e] = y.x; O[e + 1u] = y.y; O[e + 2u] = y.z; O[e + 3u] = y.w; }`)}
  }`;
  return build(
    `attnp:${dim}:${bc}:${kvVec}:${sinks ?? "-"}`,
    [...u32s("group", "hb", "qBlocks", "positions", "pBlocks", "rows", "kvLen"), ...ATTENTION_SHARED_PARAMS],
    bindings,
    `${SAFE_MATH}
${sinks ? loader("SNK", sinks) : ""}
const D: u32 = ${dim}u;
const DV: u32 = ${dv}u;
const M: u32 = ${M}u;
const T: u32 = ${T}u;
// The K tile [key][column], then the partial dots [key/4][part][row]; the V tile [key][column].
var<workgroup> sa: array<vec4<f32>, ${shared.a}>;
var<workgroup> sv: array<vec4<f32>, ${shared.v}>;
fn qat(e: u32) -> vec4<f32> { return vec4<f32>(Q[e], Q[e + 1u], Q[e + 2u], Q[e + 3u]); }
${kvAt("K")}
${kvAt("V")}
fn tanh4(x: vec4<f32>) -> vec4<f32> { return vec4<f32>(tanh_s(x.x), tanh_s(x.y), tanh_s(x.z), tanh_s(x.w)); }
// Key rows [first, end) visible to a query at absolute position pos (key row j is at position j + koff).
fn keyRange(pos: i32) -> vec2<u32> {
  let rel = pos - i32(p.koff);
  var end = 0u;
  var first = 0u;
  if (rel >= 0) {
    end = min(u32(rel) + 1u, p.kvLen);
    if (p.window > 0u && u32(rel) + 1u > p.window) { first = u32(rel) + 1u - p.window; }
  }
  return vec2<u32>(first, end);
}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let part = l % T; let rg = l / T;
  let kvh = wid.x / p.qBlocks;
  let h0 = kvh * p.group + (wid.x % p.qBlocks) * p.hb;
  let nh = min(p.hb, (kvh + 1u) * p.group - h0);
  // Latest rows first: with causal masks they see the most keys, so the longest workgroups start first.
  let r0 = (p.pBlocks - 1u - wid.y) * p.positions;
  // Keys [lo, hi) seen by some row of the block (the same in every thread: read from host data).
  var lo = p.kvLen;
  var hi = 0u;
  for (var i = 0u; i < p.positions; i++) {
    if (r0 + i < p.rows) {
      let kr = keyRange(POS[p.po + r0 + i]);
      if (kr.x < kr.y) { lo = min(lo, kr.x); hi = max(hi, kr.y); }
    }
  }
  var q: array<vec4<f32>, ${R * nv}>;
  var o: array<vec4<f32>, ${R * nv}>;
  var sp: array<f32, ${R * bc}>;
  ${rows.map(perRow).join("\n")}
  let kb = p.ko + kvh * D; let vb = p.vo + kvh * D;
  var kp: array<vec4<f32>, ${kpt}>;
  var vp: array<vec4<f32>, ${kpt}>;
  ${load("lo")}
  var j0 = lo;
  loop {
    if (j0 >= hi) { break; }
    ${store}
    workgroupBarrier();
    ${scores}
    // The partial dots go over the K tile once every thread is done with it.
    workgroupBarrier();
    ${putPartials}
    workgroupBarrier();
    let j1 = j0 + ${bc}u;
    ${load("j1")}
    ${rows.map(softmax).join("\n")}
    ${values}
    workgroupBarrier();
    j0 = j1;
  }
  ${rows.map(finish).join("\n  ")}
}`,
  );
}

export const prefillAttentionKernel = memo(prefillAttentionKernelImpl);

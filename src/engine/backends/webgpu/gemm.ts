/**
 * Tiled GEMM for prefill: Y[m, no + n] = Σ_k X[m, k] · W[n, k] (+ bias), X f32 [M, K], W in its stored dtype,
 * [N, K] row-major or, `transposed`, [K, N] with row stride `ldw`.
 *
 * 256 threads compute a (16·tm) × (16·tn) tile, each thread tm × tn outputs held in vec4 registers. Both tiles
 * are kept k-major in workgroup memory as vec4 along m / n, so the inner loop reads each thread's fragment as
 * tm/4 + tn/4 vec4 loads per k (against tm·tn FMAs), and a warp's reads touch 4 and 8 consecutive vec4: no
 * bank conflicts. Global loads are blocks of 4 rows × 1 k (or × 2 k: one u32 word of 16-bit weights), which
 * the thread transposes into one vec4 store per k; the block → thread map rotates rows against k so the 8
 * lanes of a 128-bit store hit 8 different banks without padding (a 128 × 128 × 32 tile fits 32 KiB).
 *
 * `pipeline` overlaps the next k-tile's global loads with the math: "plain" (load, store, compute),
 * "prefetch" (next tile into registers during the compute, two barriers per tile) or "double" (two tile
 * buffers, one barrier per tile). Edges (any M, N, K) are zero-filled on load and masked on store.
 */
import type { DType } from "../../tensor.js";
import { build, type KernelSource, loader, memo, r, rf, u32s, w } from "./kernels.js";

/** The uniform parameters of every GEMM kernel, in order (the same as kernels.ts's gemmKernel). */
export const GEMM_PARAMS = ["M", "N", "K", "xo", "wo", "yo", "no", "bo", "ldy", "ldw"] as const;

export type GemmPipeline = "plain" | "prefetch" | "double";

/** The shape of the work: what the H200 probe (tools/bench-gpu/gemm-probe.ts) compares. */
export interface GemmTile {
  /** Outputs per thread along M and N: the tile is 16·tm × 16·tn. */
  tm: 4 | 8;
  tn: 4 | 8;
  /** k values per workgroup-memory tile. */
  bk: 8 | 16 | 32;
  pipeline: GemmPipeline;
}

export interface TiledGemmVariant extends GemmTile {
  dtype: DType;
  transposed: boolean;
  bias: DType | undefined;
  /** bf16/f16 weights read as whole u32 words (k, k+1): needs an even K and weight offset, not transposed. */
  pairs: boolean;
}

/** Workgroup memory of a tile shape, in bytes. */
export function gemmSharedBytes(t: GemmTile): number {
  return t.bk * 16 * (t.tm + t.tn) * 4 * (t.pipeline === "double" ? 2 : 1);
}

/**
 * Tile shapes in order of preference: the first that fits the workgroup memory and gives at least
 * GEMM_MIN_WORKGROUPS workgroups is used (big tiles re-read less, but a few big tiles leave SMs idle).
 */
export const GEMM_TILES: readonly GemmTile[] = [
  { tm: 8, tn: 8, bk: 16, pipeline: "prefetch" },
  { tm: 8, tn: 4, bk: 16, pipeline: "prefetch" },
  { tm: 4, tn: 4, bk: 16, pipeline: "prefetch" },
];
// About one workgroup per SM of an H200 (132): on its probe (tools/bench-gpu/results/h200-2026-11-28f-gemm.json)
// 128×128 tiles won down to 128 workgroups (N = 1024 at M = 2048: 37 TFLOP/s against 31 for 128×64), and
// lost below (N = 512: 18 against 25).
export const GEMM_MIN_WORKGROUPS = 128;

/** The kernel variant for one GEMM; `wo` is the weight's element offset, `maxShared` the device limit. */
export function gemmVariant(
  dtype: DType,
  transposed: boolean,
  bias: DType | undefined,
  m: number,
  n: number,
  k: number,
  wo: number,
  maxShared: number,
): TiledGemmVariant {
  const fits = GEMM_TILES.filter((t) => gemmSharedBytes(t) <= maxShared);
  const tile =
    fits.find((t) => Math.ceil(m / (16 * t.tm)) * Math.ceil(n / (16 * t.tn)) >= GEMM_MIN_WORKGROUPS) ??
    fits[fits.length - 1];
  const pairs = !transposed && (dtype === "bf16" || dtype === "f16") && k % 2 === 0 && wo % 2 === 0;
  return { ...tile, dtype, transposed, bias, pairs };
}

/** Workgroups of a GEMM dispatch: x over N, y over M. */
export function gemmGrid(t: GemmTile, m: number, n: number): [number, number, number] {
  return [Math.ceil(n / (16 * t.tn)), Math.ceil(m / (16 * t.tm)), 1];
}

/**
 * Code that maps block `b` of a rows × kc grid of k-major blocks (4 rows each) to `${v}k` (k column) and
 * `${v}r` (row block). Each run of 8 (or kc) consecutive blocks takes consecutive k, and the row block
 * rotates with k, so a quarter-warp stores to 8 distinct banks.
 */
function kMajorBlock(v: string, b: string, kc: number): string {
  const kl = Math.min(8, kc);
  return `let ${v}lo = ${b} % ${kl}u; let ${v}j = (${b} / ${kl}u) % 8u; let ${v}rest = ${b} / ${8 * kl}u;
  let ${v}k = ${v}lo + ${kl}u * (${v}rest % ${kc / kl}u);
  let ${v}r = 8u * (${v}rest / ${kc / kl}u) + (${v}lo * ${8 / kl}u + ${v}j) % 8u;`;
}

const LOAD_X = `fn loadA(m: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (k < p.K) {
    let i = p.xo + m * p.K + k;
    if (m + 3u < p.M) {
      v = vec4<f32>(X[i], X[i + p.K], X[i + 2u * p.K], X[i + 3u * p.K]);
    } else {
      for (var c = 0u; c < 4u; c++) { if (m + c < p.M) { v[c] = X[i + c * p.K]; } }
    }
  }
  return v;
}`;

/** Weight rows n..n+3 at k (or the words holding k, k+1), or columns n..n+3 of row k when transposed. */
function loadW(v: TiledGemmVariant): string {
  if (v.pairs)
    return `fn loadB(n: u32, k: u32) -> vec4<u32> {
  var v = vec4<u32>(0u);
  if (k < p.K) {
    let s = p.K >> 1u;
    let i = (p.wo + n * p.K + k) >> 1u;
    if (n + 3u < p.N) {
      v = vec4<u32>(W[i], W[i + s], W[i + 2u * s], W[i + 3u * s]);
    } else {
      for (var c = 0u; c < 4u; c++) { if (n + c < p.N) { v[c] = W[i + c * s]; } }
    }
  }
  return v;
}
${
  v.dtype === "bf16"
    ? `fn lo(v: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>(v << vec4<u32>(16u)); }
fn hi(v: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>(v & vec4<u32>(0xffff0000u)); }`
    : `fn lo(v: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(v.x).x, unpack2x16float(v.y).x, unpack2x16float(v.z).x, unpack2x16float(v.w).x);
}
fn hi(v: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(v.x).y, unpack2x16float(v.y).y, unpack2x16float(v.z).y, unpack2x16float(v.w).y);
}`
}`;
  const [start, step, bound] = v.transposed
    ? ["p.wo + k * p.ldw + p.no + n", "1u", "p.N"]
    : ["p.wo + n * p.K + k", "p.K", "p.N"];
  return `${loader("W", v.dtype)}
fn loadB(n: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (k < p.K) {
    let i = ${start};
    if (n + 3u < ${bound}) {
      v = vec4<f32>(W_at(i), W_at(i + ${step}), W_at(i + 2u * ${step}), W_at(i + 3u * ${step}));
    } else {
      for (var c = 0u; c < 4u; c++) { if (n + c < ${bound}) { v[c] = W_at(i + c * ${step}); } }
    }
  }
  return v;
}`;
}

function tiledGemmImpl(v: TiledGemmVariant): KernelSource {
  const BM = 16 * v.tm;
  const BN = 16 * v.tn;
  const BK = v.bk;
  const SA = BM / 4; // vec4 per k row of As
  const SB = BN / 4;
  const bufs = v.pipeline === "double" ? 2 : 1;

  // Blocks each thread loads per tile: A as 4 rows × 1 k; W as 4 rows × 1 or 2 k, or 1 k × 4 columns.
  const aBlocks = SA * BK;
  const wKc = v.pairs ? BK / 2 : BK;
  const wBlocks = SB * wKc;
  const setup: string[] = [];
  const load: string[] = [];
  const store: string[] = [];
  /** Block e of each thread: its coordinates (`coords(prefix, index)`), then its load and store code. */
  const blocks = (
    name: string,
    total: number,
    coords: (v: string, b: string) => string,
    one: (e: number) => void,
  ) => {
    for (let e = 0; e < Math.ceil(total / 256); e++) {
      const b = `${name}b${e}`;
      setup.push(`let ${b} = l + ${256 * e}u;`, coords(`${name}${e}`, b));
      const guard = 256 * (e + 1) > total; // fewer blocks than threads
      if (guard) {
        load.push(`if (${b} < ${total}u) {`);
        store.push(`if (${b} < ${total}u) {`);
      }
      one(e);
      if (guard) {
        load.push("}");
        store.push("}");
      }
    }
  };
  blocks(
    "a",
    aBlocks,
    (p, b) => kMajorBlock(p, b, BK),
    (e) => {
      setup.push(`var ra${e}: vec4<f32>;`);
      load.push(`ra${e} = loadA(m0 + 4u * a${e}r, k0 + a${e}k);`);
      store.push(`As[ab + a${e}k * ${SA}u + a${e}r] = ra${e};`);
    },
  );
  blocks(
    "w",
    wBlocks,
    (p, b) =>
      v.transposed ? `let ${p}r = ${b} % ${SB}u; let ${p}k = ${b} / ${SB}u;` : kMajorBlock(p, b, wKc),
    (e) => {
      if (v.pairs) {
        setup.push(`var rw${e}: vec4<u32>;`);
        load.push(`rw${e} = loadB(n0 + 4u * w${e}r, k0 + 2u * w${e}k);`);
        store.push(`Bs[bb + 2u * w${e}k * ${SB}u + w${e}r] = lo(rw${e});`);
        store.push(`Bs[bb + (2u * w${e}k + 1u) * ${SB}u + w${e}r] = hi(rw${e});`);
      } else {
        setup.push(`var rw${e}: vec4<f32>;`);
        load.push(`rw${e} = loadB(n0 + 4u * w${e}r, k0 + w${e}k);`);
        store.push(`Bs[bb + w${e}k * ${SB}u + w${e}r] = rw${e};`);
      }
    },
  );

  // The math of one tile: thread (tx, ty) owns rows h·64 + 4·ty + 0..3 and columns g·64 + 4·tx + 0..3.
  const H = v.tm / 4;
  const G = v.tn / 4;
  const XYZW = ["x", "y", "z", "w"];
  const compute: string[] = [];
  for (let kk = 0; kk < BK; kk++) {
    const body: string[] = [];
    for (let h = 0; h < H; h++) body.push(`let a${h} = As[ar + ${kk * SA + 16 * h}u];`);
    for (let g = 0; g < G; g++) body.push(`let b${g} = Bs[br + ${kk * SB + 16 * g}u];`);
    for (let h = 0; h < H; h++)
      for (let c = 0; c < 4; c++)
        for (let g = 0; g < G; g++)
          body.push(`c${4 * h + c}_${g} = fma(vec4<f32>(a${h}.${XYZW[c]}), b${g}, c${4 * h + c}_${g});`);
    compute.push(`{ ${body.join(" ")} }`);
  }
  const acc: string[] = [];
  const put: string[] = [];
  for (let i = 0; i < v.tm; i++)
    for (let g = 0; g < G; g++) {
      acc.push(`var c${i}_${g} = vec4<f32>(0.0);`);
      put.push(`put(m0 + ${64 * (i >> 2) + (i & 3)}u + 4u * ty, n0 + ${64 * g}u + 4u * tx, c${i}_${g});`);
    }

  // Tile buffer `buf` (0 or 1) of As and Bs.
  const storeTile = (buf: string) =>
    `{ let ab = ${buf} * ${BK * SA}u; let bb = ${buf} * ${BK * SB}u;\n    ${store.join("\n    ")}\n  }`;
  const computeTile = (buf: string) =>
    `{ let ar = ${buf} * ${BK * SA}u + ty; let br = ${buf} * ${BK * SB}u + tx;\n    ${compute.join("\n    ")}\n  }`;
  const loadTile = load.join("\n    ");
  let loop: string;
  switch (v.pipeline) {
    case "plain":
      loop = `for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    ${loadTile}
    ${storeTile("0u")}
    workgroupBarrier();
    ${computeTile("0u")}
    workgroupBarrier();
  }`;
      break;
    case "prefetch":
      loop = `var k0 = 0u;
  ${loadTile}
  while (k0 < p.K) {
    ${storeTile("0u")}
    workgroupBarrier();
    k0 += ${BK}u;
    if (k0 < p.K) {
      ${loadTile}
    }
    ${computeTile("0u")}
    workgroupBarrier();
  }`;
      break;
    case "double":
      loop = `var k0 = 0u;
  ${loadTile}
  ${storeTile("0u")}
  workgroupBarrier();
  var cur = 0u;
  while (k0 < p.K) {
    k0 += ${BK}u;
    let more = k0 < p.K;
    if (more) {
      ${loadTile}
    }
    ${computeTile("cur")}
    if (more) ${storeTile("(1u - cur)")}
    workgroupBarrier();
    cur = 1u - cur;
  }`;
      break;
  }

  const bias = v.bias;
  return build(
    `tgemm:${v.dtype}:${v.transposed}:${bias ?? "-"}:${v.tm}x${v.tn}:${BK}:${v.pipeline}:${v.pairs}`,
    u32s(...GEMM_PARAMS),
    [rf("X"), r("W", v.dtype), w("Y"), ...(bias ? [r("B", bias)] : [])],
    `${bias ? loader("B", bias) : ""}
${LOAD_X}
${loadW(v)}
fn put(m: u32, n: u32, v: vec4<f32>) {
  if (m >= p.M) { return; }
  let row = p.yo + m * p.ldy + p.no;
  for (var c = 0u; c < 4u; c++) {
    if (n + c < p.N) { Y[row + n + c] = v[c]${bias ? " + B_at(p.bo + p.no + n + c)" : ""}; }
  }
}
var<workgroup> As: array<vec4<f32>, ${bufs * BK * SA}>;
var<workgroup> Bs: array<vec4<f32>, ${bufs * BK * SB}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  // A warp covers 8 × 4 threads: its fragment reads are 8 and 4 consecutive vec4.
  let tx = ((l >> 5u) & 1u) * 8u + (l & 7u);
  let ty = (l >> 6u) * 4u + ((l >> 3u) & 3u);
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  ${setup.join("\n  ")}
  ${acc.join("\n  ")}
  ${loop}
  ${put.join("\n  ")}
}`,
  );
}

/** The tiled GEMM kernel of a variant (memoised). */
export const tiledGemmKernel = memo(
  tiledGemmImpl,
  (v) => `${v.dtype}:${v.transposed}:${v.bias}:${v.tm}:${v.tn}:${v.bk}:${v.pipeline}:${v.pairs}`,
);

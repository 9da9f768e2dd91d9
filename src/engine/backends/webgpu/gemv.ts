/**
 * GEMV for decode (few activation rows): one workgroup per output row, its threads striding over K with
 * 16-byte weight loads, `unroll` loads in flight, then a subgroup + workgroup reduction. On the H200 this
 * design reads bf16 weights at 2.6–4.2 TB/s on the 8B shapes (tools/bench-gpu/probe.ts), about 2–3× the
 * earlier threads-per-row kernel, and reading x as vec4<f32> instead of four scalars is worth ~30% on the
 * small matrices — so x is bound as vec4 when it does not share a buffer with an output.
 *
 * One kernel covers `linear` (1 weight), `linearMany` (2–3 weights of different row counts, one output each:
 * q/k/v in one dispatch) and `linearGated` (gate and up → act(g)·u without writing either projection).
 */
import type { GatedActivation } from "../../backend.js";
import type { DType } from "../../tensor.js";
import {
  type BindingDecl,
  bindType,
  build,
  elementsPerVec4,
  GELU_TANH,
  type KernelSource,
  loader,
  memo,
  SAFE_MATH,
  u32s,
  vecDot,
  XV,
} from "./kernels.js";

export interface BlockGemvVariant {
  dtype: DType;
  /** Activation rows handled by one dispatch (each weight load is used this many times). */
  rows: number;
  /** Threads per output row (the workgroup size). */
  wg: number;
  /** Weight loads in flight per thread. */
  unroll: number;
  /** Weights read as vec4<u32> (K and every weight offset aligned to elementsPerVec4). */
  wVec: boolean;
  /** x bound as array<vec4<f32>> (x offset and K multiples of 4; x shares no buffer with an output). */
  xVec: boolean;
  /** Subgroup size for the reduction (0: workgroup memory only). */
  subgroup: number;
  /** Number of weights: 1–3 with one output each, or 2 (gate, up) with `gated`. */
  parts: number;
  gated?: GatedActivation;
  /** Bias dtype per weight (undefined: none). */
  bias: readonly (DType | undefined)[];
}

/** Largest number of weights one dispatch takes. */
export const GEMV_MAX_PARTS = 3;
/** Largest number of activation rows one dispatch takes. */
export const GEMV_BLOCK_ROWS = 4;

/** Storage bindings a variant needs (x, weights, outputs, biases), to check against the adapter's limit. */
export function gemvBindings(parts: number, gated: boolean, biases: number): number {
  return 1 + parts + (gated ? 1 : parts) + biases;
}

/**
 * Uniform parameters, in order: K, xo (element offset of x row 0; rows are K apart), then per weight j:
 * n{j} (rows of this weight in this dispatch), wo{j} (element offset), yo{j} (output offset), no{j} (first
 * output column), ldy{j} (output row stride), bo{j} (bias offset).
 */
export function gemvParams(parts: number): string[] {
  const names = ["K", "xo"];
  for (let j = 0; j < parts; j++) names.push(`n${j}`, `wo${j}`, `yo${j}`, `no${j}`, `ldy${j}`, `bo${j}`);
  return names;
}

function gemvKernelBlockImpl(v: BlockGemvVariant): KernelSource {
  const epu = elementsPerVec4(v.dtype);
  const outputs = v.gated ? 1 : v.parts;
  const bindings: BindingDecl[] = [{ name: "X", access: "read", type: v.xVec ? "vec4<f32>" : "f32" }];
  for (let j = 0; j < v.parts; j++)
    bindings.push({ name: `W${j}`, access: "read", type: v.wVec ? "vec4<u32>" : bindType(v.dtype) });
  for (let j = 0; j < outputs; j++) bindings.push({ name: `Y${j}`, access: "rw", type: "f32" });
  v.bias.forEach((b, j) => {
    if (b) bindings.push({ name: `B${j}`, access: "read", type: bindType(b) });
  });
  const MR = v.rows;
  // x element e of row m: a vec4 at (xo + m*K + e) / 4, or four scalars.
  const xv = v.xVec ? "fn xv(e: u32) -> vec4<f32> { return X[e >> 2u]; }" : XV;
  const xs = v.xVec
    ? "fn xs(e: u32) -> f32 { return X[e >> 2u][e & 3u]; }"
    : "fn xs(e: u32) -> f32 { return X[e]; }";
  const weightFns = Array.from({ length: v.parts }, (_, j) =>
    v.wVec
      ? `fn dot${j}(u: u32, xb: u32) -> f32 { let w = W${j}[u]; ${vecDot(v.dtype)} }`
      : `${loader(`W${j}`, v.dtype)}`,
  ).join("\n");
  const biasFns = v.bias.map((b, j) => (b ? loader(`B${j}`, b) : "")).join("\n");
  // The K loop for weights `ws` (indices into the parts) accumulating acc{j}[m].
  const loop = (ws: number[]) => {
    const body = (u: string) =>
      v.wVec
        ? `for (var m = 0u; m < MR; m++) { let xb = p.xo + m * p.K + (${u}) * ${epu}u; ${ws.map((j) => `acc${j}[m] += dot${j}(wb${j} + ${u}, xb);`).join(" ")} }`
        : `for (var m = 0u; m < MR; m++) { let xk = xs(p.xo + m * p.K + ${u}); ${ws.map((j) => `acc${j}[m] += W${j}_at(wb${j} + ${u}) * xk;`).join(" ")} }`;
    const U = v.unroll;
    const unrolled = Array.from({ length: U }, (_, i) => body(i === 0 ? "u" : `u + ${i}u * WG`)).join(
      "\n      ",
    );
    return `let units = ${v.wVec ? `p.K / ${epu}u` : "p.K"};
    ${ws.map((j) => `let wb${j} = ${v.wVec ? `p.wo${j} / ${epu}u + o * units` : `p.wo${j} + o * p.K`};`).join(" ")}
    var u = l;
    ${U > 1 ? `for (; u + ${U - 1}u * WG < units; u += ${U}u * WG) {\n      ${unrolled}\n    }` : ""}
    for (; u < units; u += WG) { ${body("u")} }`;
  };
  const sg = v.subgroup;
  const NSG = sg > 0 ? v.wg / sg : v.wg;
  // Reduces acc{j}[m] over the workgroup into red[j * MR + m] (read by thread 0).
  const reduce = (ws: number[]) =>
    sg > 0
      ? `for (var m = 0u; m < MR; m++) {
      ${ws.map((j, i) => `let s${j} = subgroupAdd(acc${j}[m]); if (l % ${sg}u == 0u) { part[(${i}u * MR + m) * NSG + l / ${sg}u] = s${j}; }`).join("\n      ")}
    }
    workgroupBarrier();
    if (l < ${ws.length}u * MR) {
      var t = 0.0;
      for (var i = 0u; i < NSG; i++) { t += part[l * NSG + i]; }
      red[l] = t;
    }
    workgroupBarrier();`
      : `for (var m = 0u; m < MR; m++) {
      ${ws.map((j, i) => `part[(${i}u * MR + m) * NSG + l] = acc${j}[m];`).join(" ")}
    }
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
      if (l < st) { for (var q = 0u; q < ${ws.length}u * MR; q++) { part[q * NSG + l] += part[q * NSG + l + st]; } }
      workgroupBarrier();
    }
    if (l < ${ws.length}u * MR) { red[l] = part[l * NSG]; }
    workgroupBarrier();`;
  const bias = (j: number, o: string) => (v.bias[j] ? ` + B${j}_at(p.bo${j} + p.no${j} + ${o})` : "");
  const store = (j: number, value: string) => `Y${j}[p.yo${j} + m * p.ldy${j} + p.no${j} + o] = ${value};`;
  let main: string;
  const decl = (ws: number[]) => ws.map((j) => `var acc${j}: array<f32, MR>;`).join(" ");
  if (v.gated) {
    const act = v.gated === "silu" ? "g / (1.0 + exp(-g))" : GELU_TANH("g");
    main = `let o = g0;
  if (o >= p.n0) { return; }
  ${decl([0, 1])}
  ${loop([0, 1])}
  ${reduce([0, 1])}
  if (l < MR) {
    let m = l;
    let g = red[m]${bias(0, "o")};
    let up = red[MR + m]${bias(1, "o")};
    ${store(0, `(${act}) * up`)}
  }`;
  } else {
    const branch = (j: number, start: string) => `{
    let o = g0 - (${start});
    ${decl([j])}
    ${loop([j])}
    ${reduce([j])}
    if (l < MR) { let m = l; ${store(j, `red[m]${bias(j, "o")}`)} }
  }`;
    const starts = ["0u", "p.n0", "p.n0 + p.n1"];
    const ends = ["p.n0", "p.n0 + p.n1", "p.n0 + p.n1 + p.n2"];
    main = Array.from({ length: v.parts }, (_, j) =>
      j === 0
        ? `if (g0 < ${ends[0]}) ${branch(0, starts[0])}`
        : `else if (g0 < ${ends[j]}) ${branch(j, starts[j])}`,
    ).join(" ");
  }
  const reds = (v.gated ? 2 : 1) * MR;
  return build(
    gemvKey(v),
    u32s(...gemvParams(v.parts)),
    bindings,
    `${SAFE_MATH}
${xv}
${xs}
${weightFns}
${biasFns}
const WG: u32 = ${v.wg}u;
const MR: u32 = ${MR}u;
const NSG: u32 = ${NSG}u;
var<workgroup> part: array<f32, ${reds * NSG}>;
var<workgroup> red: array<f32, ${reds}>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let g0 = wid.x + wid.y * nwg.x;
  ${main}
}`,
    { subgroups: sg > 0 },
  );
}

/** A variant's name: the memo key and the kernel's key (JSON.stringify per dispatch costs host time). */
function gemvKey(v: BlockGemvVariant): string {
  return `gemvb:${v.dtype}:${v.rows}:${v.wg}:${v.unroll}:${v.wVec}:${v.xVec}:${v.subgroup}:${v.parts}:${v.gated ?? "-"}:${v.bias.map((b) => b ?? "-").join(",")}`;
}

/** The kernel of a variant (memoised: generating WGSL per call would cost more than the dispatch). */
export const gemvBlockKernel = memo(gemvKernelBlockImpl, gemvKey);

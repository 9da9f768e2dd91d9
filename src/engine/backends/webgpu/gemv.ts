/**
 * GEMV for decode (few activation rows): one workgroup per `out` output rows (x loaded once for all of them),
 * its threads striding over K with 16-byte weight loads, `unroll` loads in flight, then a subgroup + workgroup
 * reduction. On the H200 this
 * design reads bf16 weights at 2.6–4.2 TB/s on the 8B shapes (tools/bench-gpu/probe.ts), about 2–3× the
 * earlier threads-per-row kernel, and reading x as vec4<f32> instead of four scalars is worth ~30% on the
 * small matrices — so x is bound as vec4 when it does not share a buffer with an output.
 *
 * One kernel covers `linear` (1 weight), `linearMany` (2–3 weights of different row counts, one output each:
 * q/k/v in one dispatch) and `linearGated` (gate and up → act(g)·u without writing either projection).
 * It can also RMS-norm its input on the fly (Σx² gathered in the same pass over x, the norm weight applied to
 * each x value, 1/rms applied to the dot products) and add a residual to its output, so a decoder layer needs
 * no separate norm and add dispatches.
 */
import { OllmError } from "../../../errors.js";
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
  type ParamType,
  SAFE_MATH,
  u32s,
  vecDot,
  XV,
} from "./kernels.js";

export interface BlockGemvVariant {
  dtype: DType;
  /** Activation rows handled by one dispatch (each weight load is used this many times). */
  rows: number;
  /**
   * Output rows per workgroup (each x load is used this many times; it must divide every weight's row
   * count). x is re-read from L2 by every workgroup, as many bytes as an f32 row: twice a bf16 weight row.
   */
  out: number;
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
  /** dtype of the RMS-norm weight applied to x first (undefined: x as it is). */
  norm?: DType;
  /** A residual R (f32, laid out like the output) is added to the output (one weight, not gated). */
  residual?: boolean;
  /**
   * Per weight: its output rows are rotary-embedded (rotate-half, full head width) into a second output
   * RO{j} from a cos/sin table T, the raw values still going to Y{j}. Needs `out` = 2: a workgroup computes
   * rows i and i + half of one head, the pair the rotation mixes.
   */
  rope?: readonly boolean[];
  /** Per weight: its (rotated, where `rope`) output rows are also copied to C{j} (a KV cache's next rows). */
  copy?: readonly boolean[];
}

/** Largest number of weights one dispatch takes. */
export const GEMV_MAX_PARTS = 3;
/** Largest number of activation rows one dispatch takes. */
export const GEMV_BLOCK_ROWS = 4;

/** Storage bindings a variant needs (x, weights, outputs, biases, norm weight, residual), against the limit. */
export function gemvBindings(parts: number, gated: boolean, biases: number, extras = 0): number {
  return 1 + parts + (gated ? 1 : parts) + biases + extras;
}

/**
 * Uniform parameters, in order: K, xo (element offset of x row 0; rows are K apart), then per weight j:
 * n{j} (rows of this weight in this dispatch), wo{j} (element offset), yo{j} (output offset), no{j} (first
 * output column), ldy{j} (output row stride), bo{j} (bias offset); with a norm go (norm weight offset), eps,
 * goff (added to the norm weight); with a residual ro (its offset; rows ldy0 apart like the output); with
 * `rope`/`copy` the names below.
 */
export function gemvParams(
  v: Pick<BlockGemvVariant, "parts" | "norm" | "residual" | "rope" | "copy">,
): [string, ParamType][] {
  const names = ["K", "xo"];
  for (let j = 0; j < v.parts; j++) names.push(`n${j}`, `wo${j}`, `yo${j}`, `no${j}`, `ldy${j}`, `bo${j}`);
  if (v.norm) names.push("go");
  if (v.residual) names.push("ro");
  // Rotation: head width, half of it, cos and sin offsets in T; per rotated weight its RO offset; per copied
  // weight its C offset (RO and C rows are ldy apart, like Y's).
  if (v.rope?.some(Boolean)) names.push("hd", "half", "to", "so");
  for (let j = 0; j < v.parts; j++) if (v.rope?.[j]) names.push(`zo${j}`);
  for (let j = 0; j < v.parts; j++) if (v.copy?.[j]) names.push(`co${j}`);
  const params = u32s(...names);
  if (v.norm) params.push(["eps", "f32"], ["goff", "f32"]);
  return params;
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
  if (v.norm) bindings.push({ name: "G", access: "read", type: bindType(v.norm) });
  if (v.residual) bindings.push({ name: "R", access: "read", type: "f32" });
  const rope = (j: number) => v.rope?.[j] === true;
  const copy = (j: number) => v.copy?.[j] === true;
  if (v.rope?.some(Boolean)) bindings.push({ name: "T", access: "read", type: "f32", host: true });
  for (let j = 0; j < v.parts; j++) if (rope(j)) bindings.push({ name: `RO${j}`, access: "rw", type: "f32" });
  for (let j = 0; j < v.parts; j++) if (copy(j)) bindings.push({ name: `C${j}`, access: "rw", type: "f32" });
  const MR = v.rows;
  // x element e of row m: a vec4 at (xo + m*K + e) / 4, or four scalars.
  const xv = v.xVec ? "fn xv(e: u32) -> vec4<f32> { return X[e >> 2u]; }" : XV;
  const xs = v.xVec
    ? "fn xs(e: u32) -> f32 { return X[e >> 2u][e & 3u]; }"
    : "fn xs(e: u32) -> f32 { return X[e]; }";
  // With a norm, each x vector is multiplied by the norm weight of its columns (gv) and Σx² gathers in ss[m].
  const normFns = v.norm
    ? `${loader("G", v.norm)}
fn gs(c: u32) -> f32 { return p.goff + G_at(p.go + c); }
fn gv(c: u32) -> vec4<f32> { return vec4<f32>(gs(c), gs(c + 1u), gs(c + 2u), gs(c + 3u)); }`
    : "";
  // One unit of x: epu values as vec4 registers x0, x1, … (loaded once, used for every output row).
  const xRegs = Array.from({ length: epu / 4 }, (_, i) => `x${i}`);
  const weightFns = Array.from({ length: v.parts }, (_, j) =>
    v.wVec
      ? `fn dot${j}(w: vec4<u32>, ${xRegs.map((x) => `${x}: vec4<f32>`).join(", ")}) -> f32 { ${vecDot(v.dtype, (d) => `x${d / 4}`)} }`
      : `${loader(`W${j}`, v.dtype)}`,
  ).join("\n");
  const R = v.out;
  const L = R * MR;
  // A rotated weight's workgroup computes rows row0 and row0 + half (pair `first / 2` of its head); others
  // rows first, first + 1, ….
  const base = (j: number) => (rope(j) ? "row0" : "first");
  const step = (j: number) => (rope(j) ? "p.half" : "1u");
  const biasFns = v.bias.map((b, j) => (b ? loader(`B${j}`, b) : "")).join("\n");
  // The K loop for weights `ws` (indices into the parts): output row first + r of activation row m
  // accumulates in acc{j}[r * MR + m] (and Σx² in ss[m] with a norm).
  const accumulate = (ws: number[], term: (j: number, r: number) => string) =>
    ws
      .flatMap((j) => Array.from({ length: R }, (_, r) => `acc${j}[${r}u * MR + m] += ${term(j, r)};`))
      .join(" ");
  const loop = (ws: number[]) => {
    const body = (u: string) => {
      if (v.wVec) {
        const loads = xRegs.map((x, i) => `let ${x}r = xv(xb + ${4 * i}u);`).join(" ");
        const normed = v.norm
          ? `ss[m] += ${xRegs.map((x) => `dot(${x}r, ${x}r)`).join(" + ")}; ${xRegs.map((x, i) => `let ${x} = ${x}r * gv(c + ${4 * i}u);`).join(" ")}`
          : xRegs.map((x) => `let ${x} = ${x}r;`).join(" ");
        const dots = accumulate(
          ws,
          (j, r) =>
            `dot${j}(W${j}[wb${j} + ${r ? `${r}u * ${step(j)} * units + ` : ""}${u}], ${xRegs.join(", ")})`,
        );
        return `{ let c = (${u}) * ${epu}u; for (var m = 0u; m < MR; m++) { let xb = p.xo + m * p.K + c; ${loads} ${normed} ${dots} } }`;
      }
      const xk = v.norm
        ? `let xr = xs(p.xo + m * p.K + ${u}); ss[m] += xr * xr; let xk = xr * gs(${u});`
        : `let xk = xs(p.xo + m * p.K + ${u});`;
      return `for (var m = 0u; m < MR; m++) { ${xk} ${accumulate(ws, (j, r) => `W${j}_at(wb${j} + ${r ? `${r}u * ${step(j)} * p.K + ` : ""}${u}) * xk`)} }`;
    };
    const U = v.unroll;
    const unrolled = Array.from({ length: U }, (_, i) => body(i === 0 ? "u" : `u + ${i}u * WG`)).join(
      "\n      ",
    );
    return `let units = ${v.wVec ? `p.K / ${epu}u` : "p.K"};
    ${ws.map((j) => `let wb${j} = ${v.wVec ? `p.wo${j} / ${epu}u + ${base(j)} * units` : `p.wo${j} + ${base(j)} * p.K`};`).join(" ")}
    var u = l;
    ${U > 1 ? `for (; u + ${U - 1}u * WG < units; u += ${U}u * WG) {\n      ${unrolled}\n    }` : ""}
    for (; u < units; u += WG) { ${body("u")} }`;
  };
  const sg = v.subgroup;
  const NSG = sg > 0 ? v.wg / sg : v.wg;
  // Reduces the accumulators of weights `ws` (L values each), then ss (MR values), over the workgroup into
  // red, in that order: acc{ws[i]}[q] lands in red[i * L + q], ss[m] in red[ws.length * L + m].
  const reduce = (ws: number[]) => {
    const accs = [
      ...ws.map((j) => ({ name: `acc${j}`, len: L })),
      ...(v.norm ? [{ name: "ss", len: MR }] : []),
    ];
    const total = accs.reduce((t, a) => t + a.len, 0);
    let offset = 0;
    const spill = accs
      .map(({ name, len }) => {
        const at = offset;
        offset += len;
        return sg > 0
          ? `for (var q = 0u; q < ${len}u; q++) { let s = subgroupAdd(${name}[q]); if (l % ${sg}u == 0u) { part[(${at}u + q) * NSG + l / ${sg}u] = s; } }`
          : `for (var q = 0u; q < ${len}u; q++) { part[(${at}u + q) * NSG + l] = ${name}[q]; }`;
      })
      .join("\n    ");
    return sg > 0
      ? `${spill}
    workgroupBarrier();
    for (var q = l; q < ${total}u; q += WG) {
      var t = 0.0;
      for (var i = 0u; i < NSG; i++) { t += part[q * NSG + i]; }
      red[q] = t;
    }
    workgroupBarrier();`
      : `${spill}
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
      if (l < st) { for (var q = 0u; q < ${total}u; q++) { part[q * NSG + l] += part[q * NSG + l + st]; } }
      workgroupBarrier();
    }
    for (var q = l; q < ${total}u; q += WG) { red[q] = part[q * NSG]; }
    workgroupBarrier();`;
  };
  const bias = (j: number, o: string) => (v.bias[j] ? ` + B${j}_at(p.bo${j} + p.no${j} + ${o})` : "");
  const residual = v.residual ? " + R[p.ro + m * p.ldy0 + p.no0 + o]" : "";
  const store = (j: number, value: string) => `Y${j}[p.yo${j} + m * p.ldy${j} + p.no${j} + o] = ${value};`;
  // Projection i of output row o = first + r, activation row m (thread q = r * MR + m) after the reduction:
  // scaled by 1/rms with a norm (ss sits after the `count` projections).
  const projection = (i: number, count: number, q = "q") =>
    v.norm
      ? `red[${i}u * L + ${q}] * inverseSqrt(red[${count}u * L + m] / f32(p.K) + p.eps)`
      : `red[${i}u * L + ${q}]`;
  const thread = "let q = l; let m = q % MR; let o = first + q / MR;";
  let main: string;
  const decl = (ws: number[]) =>
    [...ws.map((j) => `var acc${j}: array<f32, L>;`), ...(v.norm ? ["var ss: array<f32, MR>;"] : [])].join(
      " ",
    );
  if (v.gated) {
    const act = v.gated === "silu" ? "g / (1.0 + exp(-g))" : GELU_TANH("g");
    main = `let first = g0 * R;
  if (first >= p.n0) { return; }
  ${decl([0, 1])}
  ${loop([0, 1])}
  ${reduce([0, 1])}
  if (l < L) {
    ${thread}
    let g = ${projection(0, 2)}${bias(0, "o")};
    let up = ${projection(1, 2)}${bias(1, "o")};
    ${store(0, `(${act}) * up`)}
  }`;
  } else {
    // Rows of the parts are numbered one after another; a workgroup's R rows lie in one part (R divides each n).
    const branch = (j: number, start: string) => {
      const head = rope(j) ? `let pair = first / 2u; let row0 = (pair / p.half) * p.hd + pair % p.half;` : "";
      const copied = (value: string) =>
        copy(j) ? `C${j}[p.co${j} + m * p.ldy${j} + p.no${j} + o] = ${value};` : "";
      // Rotated: thread q holds row r = q / MR of the pair, its partner sits at q ± MR.
      const epilogue = rope(j)
        ? `let m = l % MR; let r = l / MR; let o = row0 + r * p.half;
    let y = ${projection(0, 1, "l")}${bias(j, "o")};
    let partner = ${projection(0, 1, "(1u - r) * MR + m")}${bias(j, "row0 + (1u - r) * p.half")};
    let t = m * p.half + pair % p.half;
    let c = T[p.to + t]; let s = T[p.so + t];
    var z = y * c + partner * s;
    if (r == 0u) { z = y * c - partner * s; }
    ${store(j, "y")}
    RO${j}[p.zo${j} + m * p.ldy${j} + p.no${j} + o] = z;
    ${copied("z")}`
        : `${thread} let y = ${projection(0, 1)}${bias(j, "o")}${residual}; ${store(j, "y")} ${copied("y")}`;
      return `{
    let first = g0 * R - (${start});
    ${head}
    ${decl([j])}
    ${loop([j])}
    ${reduce([j])}
    if (l < L) { ${epilogue} }
  }`;
    };
    const starts = ["0u", "p.n0", "p.n0 + p.n1"];
    const ends = ["p.n0", "p.n0 + p.n1", "p.n0 + p.n1 + p.n2"];
    main = Array.from({ length: v.parts }, (_, j) =>
      j === 0
        ? `if (g0 * R < ${ends[0]}) ${branch(0, starts[0])}`
        : `else if (g0 * R < ${ends[j]}) ${branch(j, starts[j])}`,
    ).join(" ");
  }
  const reds = (v.gated ? 2 : 1) * L + (v.norm ? MR : 0);
  return build(
    gemvKey(v),
    gemvParams(v),
    bindings,
    `${SAFE_MATH}
${xv}
${xs}
${weightFns}
${biasFns}
${normFns}
const WG: u32 = ${v.wg}u;
const MR: u32 = ${MR}u;
const R: u32 = ${R}u;
const L: u32 = ${L}u;
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

/** A variant's name (the kernel's key, in pipeline labels and profiles). */
function gemvKey(v: BlockGemvVariant): string {
  return `gemvb:${v.dtype}:${v.rows}:${v.wg}:${v.unroll}:${v.wVec}:${v.xVec}:${v.subgroup}:${v.parts}:${v.gated ?? "-"}:${v.bias.map((b) => b ?? "-").join(",")}:${v.norm ?? "-"}:${v.residual === true}:${v.out}:${v.rope?.map(Number).join("") ?? ""}:${v.copy?.map(Number).join("") ?? ""}`;
}

const DTYPE_CODE: Record<DType, number> = { f32: 1, bf16: 2, f16: 3, i8: 4, u8: 5, i32: 6 };
const GATE_CODE: Record<GatedActivation, number> = { silu: 1, gelu_tanh: 2 };

/**
 * A variant as one exact number (mixed radix, 51 bits): the cache key of `gemvBlockKernel`, which runs for
 * every decode GEMV; building the string key cost ~2 µs there.
 */
function gemvCode(v: BlockGemvVariant): number {
  // Each field must fit its digit, or two variants would share a kernel.
  if (!(v.rows < 8 && v.wg < 2 ** 16 && v.unroll < 8 && v.out < 16 && v.subgroup < 2 ** 15 && v.parts <= 3))
    throw new OllmError("INTERNAL", `GEMV variant out of range: ${gemvKey(v)}`);
  const dt = (d: DType | undefined) => (d ? DTYPE_CODE[d] : 0);
  const flags = (f: readonly boolean[] | undefined) => (f?.[0] ? 1 : 0) + (f?.[1] ? 2 : 0) + (f?.[2] ? 4 : 0);
  let c = dt(v.dtype);
  c = c * 8 + v.rows;
  c = c * 16 + Math.log2(v.wg);
  c = c * 8 + v.unroll;
  c = c * 4 + (v.wVec ? 2 : 0) + (v.xVec ? 1 : 0);
  c = c * 16 + (v.subgroup > 0 ? Math.log2(v.subgroup) + 1 : 0);
  c = c * 4 + v.parts;
  c = c * 4 + (v.gated ? GATE_CODE[v.gated] : 0);
  for (let j = 0; j < GEMV_MAX_PARTS; j++) c = c * 8 + dt(v.bias[j]);
  c = c * 8 + dt(v.norm);
  c = c * 2 + (v.residual ? 1 : 0);
  c = c * 16 + v.out;
  return (c * 8 + flags(v.rope)) * 8 + flags(v.copy);
}

const gemvSources = new Map<number, KernelSource>();

/** The kernel of a variant (memoised: generating WGSL per call would cost more than the dispatch). */
export function gemvBlockKernel(v: BlockGemvVariant): KernelSource {
  const code = gemvCode(v);
  let src = gemvSources.get(code);
  if (!src) {
    src = gemvKernelBlockImpl(v);
    gemvSources.set(code, src);
  }
  return src;
}

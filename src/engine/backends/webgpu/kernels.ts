/**
 * WGSL sources of every op, generated per variant (input dtypes, vector widths, workgroup shapes).
 * Buffers are bound as array<u32> (weights in their stored type, widened in the kernel: bf16 is the top
 * half of an f32, f16 through unpack2x16float so no shader-f16 is needed, i8/u8 four to a word) or
 * array<f32> (activations). Binding 0 is always the uniform parameter block `p`.
 */
import type { DType } from "../../tensor.js";

export type ParamType = "u32" | "f32" | "i32";
export type Access = "read" | "rw";

export interface BindingDecl {
  name: string;
  access: Access;
  /** WGSL element type of the array ("f32" for activations, which may share one physical buffer). */
  type: string;
  /** Host data from the parameter arena (bound with a dynamic offset). */
  host?: boolean;
}

export interface KernelSource {
  key: string;
  /** A small number naming the source in the backend's bind-group cache keys (cheaper than `key`). */
  id: number;
  /** WGSL after the bindings, written against the logical binding names. */
  body: string;
  params: ParamType[];
  bindings: BindingDecl[];
  subgroups: boolean;
}

/** 2D dispatches: workgroup id (x, y) → a linear index, for counts above maxComputeWorkgroupsPerDimension. */
const LINEAR_WG = "(wid.x + wid.y * nwg.x)";

let nextSourceId = 1;

/**
 * Memoised by arguments: generating WGSL text per op call would cost more than recording the dispatch.
 * Primitive arguments are joined (JSON.stringify per op was a visible part of the host cost); objects
 * (variants) are serialised unless `keyOf` names the variant more cheaply.
 */
// biome-ignore lint/suspicious/noExplicitAny: generic over the generators' argument lists
export function memo<A extends any[]>(
  make: (...args: A) => KernelSource,
  keyOf?: (...args: A) => string,
): (...args: A) => KernelSource {
  const sources = new Map<string, KernelSource>();
  return (...args: A) => {
    let key = "";
    if (keyOf) key = keyOf(...args);
    else for (const a of args) key += typeof a === "object" && a !== null ? `${JSON.stringify(a)};` : `${a};`;
    let k = sources.get(key);
    if (!k) {
      k = make(...args);
      sources.set(key, k);
    }
    return k;
  };
}

export function build(
  key: string,
  params: [string, ParamType][],
  bindings: BindingDecl[],
  body: string,
  options: { subgroups?: boolean } = {},
): KernelSource {
  const fields = params.length > 0 ? params : ([["_pad", "u32"]] as [string, ParamType][]);
  const struct = `struct P { ${fields.map(([n, t]) => `${n}: ${t}`).join(", ")} }`;
  return {
    key,
    id: nextSourceId++,
    body: `${struct}\n@group(0) @binding(0) var<uniform> p: P;\n${body}`,
    params: fields.map(([, t]) => t),
    bindings,
    subgroups: options.subgroups === true,
  };
}

/** One physical binding: the logical arrays it serves (several when they live in one buffer). */
export interface PhysicalBinding {
  names: string[];
  access: Access;
  type: string;
  host: boolean;
}

/** WGSL of `src` with logical arrays mapped onto physical bindings 1..n (binding 0 is `p`). */
export function specialize(src: KernelSource, physical: PhysicalBinding[]): string {
  const lines: string[] = [];
  if (src.subgroups) lines.push("enable subgroups;");
  let body = src.body;
  physical.forEach((b, i) => {
    const space = b.access === "read" ? "storage, read" : "storage, read_write";
    lines.push(`@group(0) @binding(${i + 1}) var<${space}> b${i + 1}: array<${b.type}>;`);
    for (const name of b.names) body = body.replace(new RegExp(`(?<![.\\w])${name}\\[`, "g"), `b${i + 1}[`);
  });
  lines.push(body);
  return lines.join("\n");
}

/** WGSL array type a tensor of `dtype` is bound as. */
export function bindType(dtype: DType): string {
  return dtype === "f32" ? "f32" : "u32";
}

/** `fn NAME_at(i) -> f32`: element i of a u32-packed buffer of `dtype`, widened. */
export function loader(name: string, dtype: DType): string {
  const head = `fn ${name}_at(i: u32) -> f32 {`;
  switch (dtype) {
    case "f32":
      return `${head} return ${name}[i]; }`;
    case "bf16":
      return `${head} let w = ${name}[i >> 1u]; return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }`;
    case "f16":
      return `${head} return unpack2x16float(${name}[i >> 1u])[i & 1u]; }`;
    case "i8":
      return `${head} return f32(extractBits(bitcast<i32>(${name}[i >> 2u]), (i & 3u) * 8u, 8u)); }`;
    case "u8":
      return `${head} return f32(extractBits(${name}[i >> 2u], (i & 3u) * 8u, 8u)); }`;
    case "i32":
      return `${head} return f32(bitcast<i32>(${name}[i])); }`;
  }
}

/** Uniform parameters of type u32, in order. */
export const u32s = (...names: string[]): [string, ParamType][] => names.map((n) => [n, "u32"]);

/** A read-only input of `dtype`. */
export const r = (name: string, dtype: DType): BindingDecl => ({
  name,
  access: "read",
  type: bindType(dtype),
});
export const rf = (name: string): BindingDecl => ({ name, access: "read", type: "f32" });
export const w = (name: string): BindingDecl => ({ name, access: "rw", type: "f32" });
export const host = (name: string, type = "u32"): BindingDecl => ({ name, access: "read", type, host: true });
/** Binding and loader of the optional bias `B` (none when absent). */
const biasBinding = (bias: DType | undefined): BindingDecl[] => (bias ? [r("B", bias)] : []);
const biasLoader = (bias: DType | undefined): string => (bias ? loader("B", bias) : "");

const MAIN_1D = `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let i = ${LINEAR_WG} * 256u + l;`;

export const SAFE_MATH = `
fn tanh_s(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }`;

/** Y[yo+i] = 0 for i < n. */
function fillKernelImpl(): KernelSource {
  return build("fill", u32s("n", "yo"), [w("Y")], `${MAIN_1D}\n  if (i < p.n) { Y[p.yo + i] = 0.0; }\n}`);
}

/**
 * Strided 2D copy with widening: Y[yo + r*ys + c] = S[so + r*ss + c] for r < rows, c < cols.
 * Covers sliceRows/writeRows (contiguous), sliceColumns and concatColumns.
 */
function copyKernelImpl(src: DType): KernelSource {
  return build(
    `copy:${src}`,
    u32s("n", "cols", "so", "ss", "yo", "ys"),
    [r("S", src), w("Y")],
    `${loader("S", src)}
${MAIN_1D}
  if (i >= p.n) { return; }
  let row = i / p.cols; let c = i % p.cols;
  Y[p.yo + row * p.ys + c] = S_at(p.so + row * p.ss + c);
}`,
  );
}

/**
 * Two independent strided copies in one dispatch (the k and v rows of a KV append): threads [0, n0) do the
 * first as copyKernel does, threads [n0, n0 + n1) the second.
 */
function copyPairKernelImpl(src0: DType, src1: DType): KernelSource {
  return build(
    `copy2:${src0}:${src1}`,
    u32s("n0", "cols0", "so0", "ss0", "yo0", "ys0", "n1", "cols1", "so1", "ss1", "yo1", "ys1"),
    [r("S0", src0), w("Y0"), r("S1", src1), w("Y1")],
    `${loader("S0", src0)}
${loader("S1", src1)}
${MAIN_1D}
  if (i < p.n0) {
    let row = i / p.cols0; let c = i % p.cols0;
    Y0[p.yo0 + row * p.ys0 + c] = S0_at(p.so0 + row * p.ss0 + c);
  } else if (i < p.n0 + p.n1) {
    let j = i - p.n0;
    let row = j / p.cols1; let c = j % p.cols1;
    Y1[p.yo1 + row * p.ys1 + c] = S1_at(p.so1 + row * p.ss1 + c);
  }
}`,
  );
}

/** Y[r*cols+c] = S[rows[r]*cols + c] (rows from an i32 list). */
function gatherKernelImpl(src: DType): KernelSource {
  return build(
    `gather:${src}`,
    u32s("n", "cols", "so", "yo", "io"),
    [r("S", src), host("I"), w("Y")],
    `${loader("S", src)}
${MAIN_1D}
  if (i >= p.n) { return; }
  let row = i / p.cols; let c = i % p.cols;
  let src_row = I[p.io + row];
  Y[p.yo + i] = S_at(p.so + src_row * p.cols + c);
}`,
  );
}

/** dst[rows[i]] += wts[i] * src[i], one thread per column looping over rows (no write races). */
function scatterAddKernelImpl(src: DType): KernelSource {
  return build(
    `scatter:${src}`,
    u32s("cols", "count", "so", "yo", "io"),
    [r("S", src), host("I"), w("Y")],
    `${loader("S", src)}
${MAIN_1D}
  if (i >= p.cols) { return; }
  for (var k = 0u; k < p.count; k++) {
    let dst = I[p.io + k];
    let wt = bitcast<f32>(I[p.io + p.count + k]);
    Y[p.yo + dst * p.cols + i] += wt * S_at(p.so + k * p.cols + i);
  }
}`,
  );
}

export type UnaryOp = "scale" | "softcap";
const UNARY: Record<UnaryOp, string> = {
  scale: "x * p.f",
  softcap: "p.f * tanh_s(x / p.f)",
};

function unaryKernelImpl(op: UnaryOp, a: DType): KernelSource {
  return build(
    `unary:${op}:${a}`,
    [...u32s("n", "ao", "yo"), ["f", "f32"]],
    [r("A", a), w("Y")],
    `${loader("A", a)}${SAFE_MATH}
${MAIN_1D}
  if (i >= p.n) { return; }
  let x = A_at(p.ao + i);
  Y[p.yo + i] = ${UNARY[op]};
}`,
  );
}

/** gelu with the tanh approximation of x (an expression; needs SAFE_MATH). */
export const GELU_TANH = (x: string) =>
  `0.5 * ${x} * (1.0 + tanh_s(0.7978845608028654 * (${x} + 0.044715 * ${x} * ${x} * ${x})))`;

export type BinaryOp = "add" | "mul" | "swiglu" | "geglu" | "sigmoidGate";
const BINARY: Record<BinaryOp, string> = {
  add: "a + b",
  mul: "a * b",
  swiglu: "(a / (1.0 + exp(-a))) * b",
  geglu: `${GELU_TANH("a")} * b`,
  sigmoidGate: "a * sigmoid(b)",
};

/** Y[i] = op(A[i], B[i / bdiv]) (bdiv > 1 broadcasts one B value over a row). */
function binaryKernelImpl(op: BinaryOp, a: DType, b: DType): KernelSource {
  return build(
    `binary:${op}:${a}:${b}`,
    u32s("n", "ao", "bo", "yo", "bdiv"),
    [r("A", a), r("B", b), w("Y")],
    `${loader("A", a)}
${loader("B", b)}${SAFE_MATH}
${MAIN_1D}
  if (i >= p.n) { return; }
  let a = A_at(p.ao + i);
  let b = B_at(p.bo + i / p.bdiv);
  Y[p.yo + i] = ${BINARY[op]};
}`,
  );
}

/** gpt-oss clamped SwiGLU over interleaved [gate, up] columns. */
function clampedSwigluKernelImpl(a: DType): KernelSource {
  return build(
    `clampedSwiglu:${a}`,
    [...u32s("n", "ao", "yo"), ["alpha", "f32"], ["limit", "f32"]],
    [r("A", a), w("Y")],
    `${loader("A", a)}${SAFE_MATH}
${MAIN_1D}
  if (i >= p.n) { return; }
  let g = min(A_at(p.ao + 2u * i), p.limit);
  let u = clamp(A_at(p.ao + 2u * i + 1u), -p.limit, p.limit);
  Y[p.yo + i] = (u + 1.0) * g * sigmoid(p.alpha * g);
}`,
  );
}

/** Embedding rows of one table segment [rowStart, rowStart + rows). */
/** Rows of T picked by ids: host integers, or the first value of each row of a device tensor (TokenIds). */
function embeddingKernelImpl(table: DType, deviceIds: boolean): KernelSource {
  return build(
    `embedding:${table}:${deviceIds}`,
    [...u32s("n", "dim", "to", "rowStart", "rows", "io", "yo", "istride"), ["scale", "f32"]],
    [r("T", table), deviceIds ? rf("I") : host("I"), w("Y")],
    `${loader("T", table)}
${MAIN_1D}
  if (i >= p.n) { return; }
  let row = i / p.dim; let c = i % p.dim;
  let id = ${deviceIds ? "u32(I[p.io + row * p.istride])" : "I[p.io + row]"};
  if (id < p.rowStart || id >= p.rowStart + p.rows) { return; }
  Y[p.yo + i] = T_at(p.to + (id - p.rowStart) * p.dim + c) * p.scale;
}`,
  );
}

/** RMS norm of each group of `dim` values; one workgroup per group. */
function rmsNormKernelImpl(x: DType, weight: DType, wg: number): KernelSource {
  return build(
    `rmsnorm:${x}:${weight}:${wg}`,
    [...u32s("groups", "dim", "xo", "wo", "yo"), ["eps", "f32"], ["woff", "f32"]],
    [r("X", x), r("W", weight), w("Y")],
    `${loader("X", x)}
${loader("W", weight)}
const WG: u32 = ${wg}u;
var<workgroup> red: array<f32, WG>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let g = ${LINEAR_WG};
  if (g >= p.groups) { return; }
  let base = p.xo + g * p.dim;
  var ss = 0.0;
  for (var i = l; i < p.dim; i += WG) { let v = X_at(base + i); ss += v * v; }
  red[l] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] += red[l + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
  for (var i = l; i < p.dim; i += WG) {
    Y[p.yo + g * p.dim + i] = (X_at(base + i) * inv) * (p.woff + W_at(p.wo + i));
  }
}`,
  );
}

/**
 * The residual add and the RMS norm of its result in one pass: S = A + B, Y = rmsNorm(S) per group of `dim`
 * values; one workgroup per group. Each thread reads back only the sums it wrote itself.
 */
function addRmsNormKernelImpl(a: DType, b: DType, weight: DType, wg: number): KernelSource {
  return build(
    `addrmsnorm:${a}:${b}:${weight}:${wg}`,
    [...u32s("groups", "dim", "ao", "bo", "wo", "so", "yo"), ["eps", "f32"], ["woff", "f32"]],
    [r("A", a), r("B", b), r("W", weight), w("S"), w("Y")],
    `${loader("A", a)}
${loader("B", b)}
${loader("W", weight)}
const WG: u32 = ${wg}u;
var<workgroup> red: array<f32, WG>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let g = ${LINEAR_WG};
  if (g >= p.groups) { return; }
  let base = g * p.dim;
  var ss = 0.0;
  for (var i = l; i < p.dim; i += WG) {
    let v = A_at(p.ao + base + i) + B_at(p.bo + base + i);
    S[p.so + base + i] = v;
    ss += v * v;
  }
  red[l] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] += red[l + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
  for (var i = l; i < p.dim; i += WG) {
    Y[p.yo + base + i] = (S[p.so + base + i] * inv) * (p.woff + W_at(p.wo + i));
  }
}`,
  );
}

/**
 * Per row of X [rows, cols]: the k largest values with their indices (descending; ties → lower index) and
 * log(Σ exp(x)), written as [indices (f32) …, values …, logSumExp]. One workgroup per row: each thread keeps
 * the best CAP (≥ k) of its strided columns in private arrays and a running (max, Σ exp) in one pass over the
 * row; then k rounds pick the best head among the threads (a workgroup arg-max) and its owner advances.
 */
function topKKernelImpl(x: DType, cap: number, wg: number): KernelSource {
  const insert =
    cap === 1
      ? "if (better(v, c, tv[0], ti[0])) { tv[0] = v; ti[0] = c; }"
      : `if (better(v, c, tv[CAP - 1u], ti[CAP - 1u])) {
      var j = CAP - 1u;
      loop {
        if (j == 0u) { break; }
        if (!better(v, c, tv[j - 1u], ti[j - 1u])) { break; }
        tv[j] = tv[j - 1u]; ti[j] = ti[j - 1u];
        j--;
      }
      tv[j] = v; ti[j] = c;
    }`;
  return build(
    `topk:${x}:${cap}:${wg}`,
    u32s("rows", "cols", "k", "xo", "yo"),
    [r("X", x), w("Y")],
    `${loader("X", x)}
const WG: u32 = ${wg}u;
const CAP: u32 = ${cap}u;
const NONE: u32 = 0xffffffffu;
var<workgroup> rv: array<f32, WG>;
var<workgroup> rs: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;
// (v1, i1) ranks before (v2, i2): larger value, then lower index; an empty slot (NONE) ranks last.
fn better(v1: f32, i1: u32, v2: f32, i2: u32) -> bool {
  return i1 != NONE && (i2 == NONE || v1 > v2 || (v1 == v2 && i1 < i2));
}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let row = ${LINEAR_WG};
  if (row >= p.rows) { return; }
  let base = p.xo + row * p.cols;
  var tv: array<f32, CAP>;
  var ti: array<u32, CAP>;
  for (var j = 0u; j < CAP; j++) { tv[j] = ${NEG}; ti[j] = NONE; }
  var m = ${NEG};
  var s = 0.0;
  for (var c = l; c < p.cols; c += WG) {
    let v = X_at(base + c);
    if (v > m) { s = s * exp(m - v) + 1.0; m = v; } else { s += exp(v - m); }
    ${insert}
  }
  // log Σ exp: combine the threads' (max, sum).
  rv[l] = m; rs[l] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (l < st) {
      let m1 = rv[l]; let m2 = rv[l + st];
      let mm = max(m1, m2);
      rs[l] = rs[l] * exp(m1 - mm) + rs[l + st] * exp(m2 - mm);
      rv[l] = mm;
    }
    workgroupBarrier();
  }
  let yo = p.yo + row * (2u * p.k + 1u);
  if (l == 0u) { Y[yo + 2u * p.k] = rv[0] + log(rs[0]); }
  workgroupBarrier();
  // k rounds of a workgroup arg-max over the threads' current heads.
  var head = 0u;
  for (var r = 0u; r < p.k; r++) {
    var hv = ${NEG};
    var hi = NONE;
    if (head < CAP) { hv = tv[head]; hi = ti[head]; }
    rv[l] = hv; ri[l] = hi;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
      if (l < st && better(rv[l + st], ri[l + st], rv[l], ri[l])) { rv[l] = rv[l + st]; ri[l] = ri[l + st]; }
      workgroupBarrier();
    }
    let best = ri[0];
    if (l == 0u) { Y[yo + r] = f32(best); Y[yo + p.k + r] = rv[0]; }
    if (hi != NONE && hi == best) { head++; }
    workgroupBarrier();
  }
}`,
  );
}

/** Rotate-half rope from a cos/sin table [rows, half] (then sin at +rows*half) computed on the host in f32. */
function ropeKernelImpl(x: DType): KernelSource {
  return build(
    `rope:${x}`,
    u32s("n", "width", "headDim", "half", "rot", "xo", "yo", "to", "so"),
    [r("X", x), host("T", "f32"), w("Y")],
    `${loader("X", x)}
${MAIN_1D}
  if (i >= p.n) { return; }
  let row = i / p.width;
  let d = (i % p.width) % p.headDim;
  var y: f32;
  if (d < p.half) {
    let t = row * p.half + d;
    y = X_at(p.xo + i) * T[p.to + t] - X_at(p.xo + i + p.half) * T[p.so + t];
  } else if (d < p.rot) {
    let t = row * p.half + d - p.half;
    y = X_at(p.xo + i) * T[p.to + t] + X_at(p.xo + i - p.half) * T[p.so + t];
  } else {
    y = X_at(p.xo + i);
  }
  Y[p.yo + i] = y;
}`,
  );
}

/**
 * Rope of two tensors with the same rows (q and k of one layer) from one cos/sin table, and the KV append,
 * in one dispatch: threads [0, n0) rotate X0 into Y0, threads [n0, n0 + n1) X1 into Y1 (and, with `kCopy`,
 * into KC at ko: the k cache rows), threads [n0 + n1, n0 + n1 + n2) copy S2 (v) into VC.
 */
function ropeKvKernelImpl(x0: DType, x1: DType, kCopy: boolean, v: DType): KernelSource {
  return build(
    `ropekv:${x0}:${x1}:${kCopy}:${v}`,
    [
      ...u32s(
        "n0",
        "width0",
        "xo0",
        "yo0",
        "n1",
        "width1",
        "xo1",
        "yo1",
        "headDim",
        "half",
        "rot",
        "to",
        "so",
      ),
      ...u32s("ko", "n2", "vso", "vo"),
    ],
    [r("X0", x0), r("X1", x1), host("T", "f32"), w("Y0"), w("Y1"), w("KC"), r("S2", v), w("VC")],
    `${loader("X0", x0)}
${loader("X1", x1)}
${loader("S2", v)}
fn rotated(row: u32, d: u32, x: f32, partner: f32) -> f32 {
  if (d < p.half) { let t = row * p.half + d; return x * T[p.to + t] - partner * T[p.so + t]; }
  if (d < p.rot) { let t = row * p.half + d - p.half; return x * T[p.to + t] + partner * T[p.so + t]; }
  return x;
}
${MAIN_1D}
  if (i < p.n0) {
    let d = (i % p.width0) % p.headDim;
    var partner = 0.0;
    if (d < p.half) { partner = X0_at(p.xo0 + i + p.half); } else if (d < p.rot) { partner = X0_at(p.xo0 + i - p.half); }
    Y0[p.yo0 + i] = rotated(i / p.width0, d, X0_at(p.xo0 + i), partner);
  } else if (i < p.n0 + p.n1) {
    let j = i - p.n0;
    let d = (j % p.width1) % p.headDim;
    var partner = 0.0;
    if (d < p.half) { partner = X1_at(p.xo1 + j + p.half); } else if (d < p.rot) { partner = X1_at(p.xo1 + j - p.half); }
    let y = rotated(j / p.width1, d, X1_at(p.xo1 + j), partner);
    Y1[p.yo1 + j] = y;${kCopy ? "\n    KC[p.ko + j] = y;" : ""}
  } else if (i < p.n0 + p.n1 + p.n2) {
    let j = i - p.n0 - p.n1;
    VC[p.vo + j] = S2_at(p.vso + j);
  }
}`,
  );
}

/** Largest head width the attention kernels hold in workgroup memory. */
export const ATTENTION_MAX_DIM = 512;
export const NEG = "-3.0e38";

/** Elements per vec4<u32> load of a weight dtype. */
export function elementsPerVec4(dtype: DType): number {
  switch (dtype) {
    case "f32":
    case "i32":
      return 4;
    case "bf16":
    case "f16":
      return 8;
    case "i8":
    case "u8":
      return 16;
  }
}

/** x[e..e+4) from an f32 array as a vec4 (four scalar loads). */
export const XV = "fn xv(e: u32) -> vec4<f32> { return vec4<f32>(X[e], X[e + 1u], X[e + 2u], X[e + 3u]); }";

/**
 * dot of one vec4<u32> of weights `w` with the matching x values: `x(d)` is the WGSL of the vec4 of x at
 * element d of the unit (by default read from X as vec4<f32> at xb + d).
 */
export function vecDot(dtype: DType, x: (d: number) => string = (d) => `xv(xb + ${d}u)`): string {
  const bf = (v: string) => `bitcast<f32>(${v} << 16u), bitcast<f32>(${v} & 0xffff0000u)`;
  const i8 = (v: string, signed: boolean) => {
    const e = (k: number) =>
      signed ? `f32(extractBits(bitcast<i32>(${v}), ${k}u, 8u))` : `f32(extractBits(${v}, ${k}u, 8u))`;
    return `vec4<f32>(${e(0)}, ${e(8)}, ${e(16)}, ${e(24)})`;
  };
  switch (dtype) {
    case "bf16":
      return `return dot(vec4<f32>(${bf("w.x")}, ${bf("w.y")}), ${x(0)}) + dot(vec4<f32>(${bf("w.z")}, ${bf("w.w")}), ${x(4)});`;
    case "f16":
      return `return dot(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), ${x(0)}) + dot(vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)), ${x(4)});`;
    case "f32":
      return `return dot(bitcast<vec4<f32>>(w), ${x(0)});`;
    case "i32":
      return `return dot(vec4<f32>(bitcast<vec4<i32>>(w)), ${x(0)});`;
    case "i8":
    case "u8": {
      const s = dtype === "i8";
      return `return dot(${i8("w.x", s)}, ${x(0)}) + dot(${i8("w.y", s)}, ${x(4)}) + dot(${i8("w.z", s)}, ${x(8)}) + dot(${i8("w.w", s)}, ${x(12)});`;
    }
  }
}

export interface GemmVariant {
  dtype: DType;
  /** Outputs per thread along M and N (tile = 16·tm × 16·tn). */
  tm: number;
  tn: number;
  /** W stored [in, out] (x @ w) instead of [out, in] (x @ wᵀ). */
  transposed: boolean;
  bias: DType | undefined;
}

/**
 * The first tiled GEMM (16×16 threads, tm×tn outputs each, BK = 8, scalar weight loads): replaced by gemm.ts,
 * kept as the baseline and reference of tools/bench-gpu/gemm-probe.ts.
 */
function gemmKernelImpl(v: GemmVariant): KernelSource {
  const BM = 16 * v.tm;
  const BN = 16 * v.tn;
  const BK = 8;
  // Tile loads: BM*BK and BN*BK values over 256 threads.
  const aLoads = (BM * BK) / 256;
  const bLoads = (BN * BK) / 256;
  const bLoad = v.transposed
    ? `let nn = idx % BN; let kk = idx / BN;
      var b = 0.0;
      if (n0 + nn < p.N && k0 + kk < p.K) { b = W_at(p.wo + (k0 + kk) * p.ldw + p.no + n0 + nn); }
      Bs[kk * BN + nn] = b;`
    : `let nn = idx / BK; let kk = idx % BK;
      var b = 0.0;
      if (n0 + nn < p.N && k0 + kk < p.K) { b = W_at(p.wo + (n0 + nn) * p.K + k0 + kk); }
      Bs[kk * BN + nn] = b;`;
  return build(
    `gemm:${v.dtype}:${v.tm}:${v.tn}:${v.transposed}:${v.bias ?? "-"}`,
    u32s("M", "N", "K", "xo", "wo", "yo", "no", "bo", "ldy", "ldw"),
    [rf("X"), r("W", v.dtype), w("Y"), ...biasBinding(v.bias)],
    `${loader("W", v.dtype)}
${biasLoader(v.bias)}
const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
const TM: u32 = ${v.tm}u;
const TN: u32 = ${v.tn}u;
var<workgroup> As: array<f32, ${BM * BK}>;
var<workgroup> Bs: array<f32, ${BN * BK}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tid = lid.y * 16u + lid.x;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  var acc: array<f32, ${v.tm * v.tn}>;
  for (var i = 0u; i < ${v.tm * v.tn}u; i++) { acc[i] = 0.0; }
  var a: array<f32, ${v.tm}>;
  var b: array<f32, ${v.tn}>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var e = 0u; e < ${aLoads}u; e++) {
      let idx = tid + e * 256u;
      let mm = idx / BK; let kk = idx % BK;
      var av = 0.0;
      if (m0 + mm < p.M && k0 + kk < p.K) { av = X[p.xo + (m0 + mm) * p.K + k0 + kk]; }
      As[kk * BM + mm] = av;
    }
    for (var e = 0u; e < ${bLoads}u; e++) {
      let idx = tid + e * 256u;
      ${bLoad}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var i = 0u; i < TM; i++) { a[i] = As[kk * BM + lid.y * TM + i]; }
      for (var j = 0u; j < TN; j++) { b[j] = Bs[kk * BN + lid.x * TN + j]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + lid.y * TM + i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + lid.x * TN + j;
      if (n < p.N) { Y[p.yo + m * p.ldy + p.no + n] = acc[i * TN + j]${v.bias ? " + B_at(p.bo + p.no + n)" : ""}; }
    }
  }
}`,
  );
}

/** x @ w for w [in, out] and few rows: one thread per output column (coalesced over n), loop over k. */
function gemvTransposedKernelImpl(dtype: DType, bias: DType | undefined): KernelSource {
  return build(
    `gemvT:${dtype}:${bias ?? "-"}`,
    u32s("M", "N", "K", "xo", "wo", "yo", "bo"),
    [rf("X"), r("W", dtype), w("Y"), ...biasBinding(bias)],
    `${loader("W", dtype)}
${biasLoader(bias)}
${MAIN_1D}
  if (i >= p.M * p.N) { return; }
  let m = i / p.N; let n = i % p.N;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc += X[p.xo + m * p.K + k] * W_at(p.wo + k * p.N + n); }
  Y[p.yo + i] = acc${bias ? " + B_at(p.bo + n)" : ""};
}`,
  );
}

/**
 * MXFP4 GEMV: per output row, blocks of 32 FP4 (e2m1) values (16 bytes = one vec4<u32>) and one E8M0
 * scale byte. TPR threads per output, one block per step; workgroup-memory reduction.
 */
function mxfp4KernelImpl(bias: DType | undefined): KernelSource {
  const bindings: BindingDecl[] = [
    rf("X"),
    { name: "BL", access: "read", type: "vec4<u32>" },
    r("SC", "u8"),
    w("Y"),
    ...biasBinding(bias),
  ];
  return build(
    `mxfp4:${bias ?? "-"}`,
    u32s("N", "groups", "xo", "blo", "sco", "yo", "no", "bo", "ldy"),
    bindings,
    `${biasLoader(bias)}
const FP4 = array<f32, 16>(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0);
fn nib(v: u32, k: u32) -> f32 { return FP4[extractBits(v, k * 4u, 4u)]; }
${XV}
fn dot8(v: u32, xb: u32) -> f32 {
  return dot(vec4<f32>(nib(v, 0u), nib(v, 1u), nib(v, 2u), nib(v, 3u)), xv(xb)) + dot(vec4<f32>(nib(v, 4u), nib(v, 5u), nib(v, 6u), nib(v, 7u)), xv(xb + 4u));
}
const WG: u32 = 256u;
const TPR: u32 = 32u;
const RPW: u32 = WG / TPR;
var<workgroup> red: array<f32, WG>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let o = wid.x * RPW + l / TPR;
  let m = wid.y;
  let lane = l % TPR;
  let valid = o < p.N;
  var acc = 0.0;
  if (valid) {
    for (var g = lane; g < p.groups; g += TPR) {
      let si = p.sco + o * p.groups + g;
      let s = extractBits(SC[si >> 2u], (si & 3u) * 8u, 8u);
      let scale = exp2(f32(i32(s) - 127));
      let blk = BL[p.blo / 16u + o * p.groups + g];
      let xb = p.xo + m * p.groups * 32u + g * 32u;
      acc += scale * (dot8(blk.x, xb) + dot8(blk.y, xb + 8u) + dot8(blk.z, xb + 16u) + dot8(blk.w, xb + 24u));
    }
  }
  red[l] = acc;
  workgroupBarrier();
  for (var st = TPR / 2u; st > 0u; st >>= 1u) {
    if (lane < st) { red[l] += red[l + st]; }
    workgroupBarrier();
  }
  if (lane == 0u && valid) { Y[p.yo + m * p.ldy + p.no + o] = red[l]${bias ? " + B_at(p.bo + p.no + o)" : ""}; }
}`,
  );
}

/** Depthwise causal conv1d + SiLU over [state ; x] with weight [channels, kernel]; also writes the new state. */
function causalConvKernelImpl(x: DType, weight: DType, hasState: boolean): KernelSource {
  const bindings: BindingDecl[] = [r("X", x), r("W", weight)];
  if (hasState) bindings.push(rf("ST"));
  bindings.push(w("Y"), w("NS"));
  return build(
    `conv:${x}:${weight}:${hasState}`,
    u32s("rows", "ch", "kernel", "xo", "wo", "sto", "yo", "nso"),
    bindings,
    `${loader("X", x)}
${loader("W", weight)}
${hasState ? loader("ST", "f32") : ""}
fn input(t: i32, c: u32) -> f32 {
  // Time index t over [state (kernel-1 rows) ; x (rows)], t in [0, kernel-1+rows).
  let hist = i32(p.kernel) - 1;
  if (t < hist) { ${hasState ? "return ST_at(p.sto + u32(t) * p.ch + c);" : "return 0.0;"} }
  return X_at(p.xo + u32(t - hist) * p.ch + c);
}
${MAIN_1D}
  let c = i % p.ch;
  let row = i / p.ch;
  if (row < p.rows) {
    var acc = 0.0;
    for (var k = 0u; k < p.kernel; k++) { acc += W_at(p.wo + c * p.kernel + k) * input(i32(row + k), c); }
    Y[p.yo + i] = acc / (1.0 + exp(-acc));
  }
  // New state: the last kernel-1 inputs.
  let hist = p.kernel - 1u;
  if (row < hist) { NS[p.nso + row * p.ch + c] = input(i32(p.rows + row), c); }
}`,
  );
}

/** beta = σ(b), g = −exp(aLog) · softplus(a + dtBias) per (row, head). */
function deltaGatesKernelImpl(a: DType, b: DType, aLog: DType, dt: DType): KernelSource {
  return build(
    `dgates:${a}:${b}:${aLog}:${dt}`,
    u32s("n", "heads", "ao", "bo", "lo", "dto", "go", "beo"),
    [r("A", a), r("B", b), r("AL", aLog), r("DT", dt), w("G"), w("BETA")],
    `${loader("A", a)}
${loader("B", b)}
${loader("AL", aLog)}
${loader("DT", dt)}
${MAIN_1D}
  if (i >= p.n) { return; }
  let h = i % p.heads;
  let x = A_at(p.ao + i) + DT_at(p.dto + h);
  var sp = x;
  if (x <= 20.0) { sp = log(1.0 + exp(x)); }
  G[p.go + i] = -exp(AL_at(p.lo + h)) * sp;
  BETA[p.beo + i] = 1.0 / (1.0 + exp(-B_at(p.bo + i)));
}`,
  );
}

/**
 * Gated delta rule, recurrent form: one workgroup per value head, thread j owns column j of the
 * [kDim, vDim] state (kept in the output state buffer). q and k are L2-normalised (q also scaled by
 * kDim^-0.5) in workgroup memory per token.
 */
function deltaRuleKernelImpl(wg: number): KernelSource {
  return build(
    `delta:${wg}`,
    u32s(
      "rows",
      "kHeads",
      "vHeads",
      "kDim",
      "vDim",
      "hasState",
      "qo",
      "ko",
      "vo",
      "go",
      "beo",
      "s0o",
      "yo",
      "so",
    ),
    [rf("Q"), rf("K"), rf("V"), rf("G"), rf("BETA"), rf("S0"), w("Y"), w("S")],
    `const WG: u32 = ${wg}u;
var<workgroup> qs: array<f32, ${ATTENTION_MAX_DIM}>;
var<workgroup> ks: array<f32, ${ATTENTION_MAX_DIM}>;
var<workgroup> red: array<f32, WG * 2u>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let h = wid.x;
  let kh = h / (p.vHeads / p.kHeads);
  let sb = p.so + h * p.kDim * p.vDim;
  let s0b = p.s0o + h * p.kDim * p.vDim;
  for (var i = l; i < p.kDim * p.vDim; i += WG) {
    var s0 = 0.0;
    if (p.hasState == 1u) { s0 = S0[s0b + i]; }
    S[sb + i] = s0;
  }
  let qscale = inverseSqrt(f32(p.kDim));
  for (var t = 0u; t < p.rows; t++) {
    workgroupBarrier();
    let qb = t * p.kHeads * p.kDim + kh * p.kDim;
    var sq = 0.0; var sk = 0.0;
    for (var i = l; i < p.kDim; i += WG) {
      let qv = Q[p.qo + qb + i]; let kv = K[p.ko + qb + i];
      qs[i] = qv; ks[i] = kv; sq += qv * qv; sk += kv * kv;
    }
    red[l] = sq; red[WG + l] = sk;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
      if (l < st) { red[l] += red[l + st]; red[WG + l] += red[WG + l + st]; }
      workgroupBarrier();
    }
    let qn = inverseSqrt(red[0] + 1e-6) * qscale;
    let kn = inverseSqrt(red[WG] + 1e-6);
    let decay = exp(G[p.go + t * p.vHeads + h]);
    let beta = BETA[p.beo + t * p.vHeads + h];
    for (var j = l; j < p.vDim; j += WG) {
      var mem = 0.0;
      for (var i = 0u; i < p.kDim; i++) {
        let s = S[sb + i * p.vDim + j] * decay;
        S[sb + i * p.vDim + j] = s;
        mem += s * ks[i] * kn;
      }
      let delta = (V[p.vo + t * p.vHeads * p.vDim + h * p.vDim + j] - mem) * beta;
      var out = 0.0;
      for (var i = 0u; i < p.kDim; i++) {
        let s = S[sb + i * p.vDim + j] + ks[i] * kn * delta;
        S[sb + i * p.vDim + j] = s;
        out += s * qs[i] * qn;
      }
      Y[p.yo + t * p.vHeads * p.vDim + h * p.vDim + j] = out;
    }
  }
}`,
  );
}
export const fillKernel = memo(fillKernelImpl);
export const copyKernel = memo(copyKernelImpl);
export const copyPairKernel = memo(copyPairKernelImpl);
export const gatherKernel = memo(gatherKernelImpl);
export const scatterAddKernel = memo(scatterAddKernelImpl);
export const unaryKernel = memo(unaryKernelImpl);
export const binaryKernel = memo(binaryKernelImpl);
export const clampedSwigluKernel = memo(clampedSwigluKernelImpl);
export const embeddingKernel = memo(embeddingKernelImpl);
export const rmsNormKernel = memo(rmsNormKernelImpl);
export const addRmsNormKernel = memo(addRmsNormKernelImpl);
export const topKKernel = memo(topKKernelImpl);
export const ropeKernel = memo(ropeKernelImpl);
export const ropeKvKernel = memo(ropeKvKernelImpl);
export const gemmKernel = memo(gemmKernelImpl);
export const gemvTransposedKernel = memo(gemvTransposedKernelImpl);
export const mxfp4Kernel = memo(mxfp4KernelImpl);
export const causalConvKernel = memo(causalConvKernelImpl);
export const deltaGatesKernel = memo(deltaGatesKernelImpl);
export const deltaRuleKernel = memo(deltaRuleKernelImpl);

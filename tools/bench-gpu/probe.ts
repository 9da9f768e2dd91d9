/**
 * Raw WGSL probes of what bounds decode on a GPU, outside the engine:
 *  1. host and GPU cost of one dispatch (encode, finish, submit; dependent vs independent dispatches);
 *  2. bf16 GEMV designs at decode shapes (GB/s, weights rotated over ≥ 512 MiB so L2 does not serve them).
 *
 *   node probe.js [--json OUT]
 */
import { writeFileSync } from "node:fs";
import { openGpu } from "../../src/engine/backends/webgpu/gpu.js";
import { LLAMA_LINEAR_SHAPES } from "./common.js";

const STORAGE = 0x80;
const COPY_DST = 0x08;
const UNIFORM = 0x40;

const log = (...parts: unknown[]) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...parts);
const jsonOut =
  process.argv.indexOf("--json") >= 0 ? process.argv[process.argv.indexOf("--json") + 1] : undefined;

const gpu = await openGpu({ timestamps: false });
const device = gpu.device;
const sg = gpu.subgroups ? gpu.subgroupSize || 32 : 0;
log(`adapter ${gpu.adapterName} (${gpu.dawnBackend}), subgroups ${gpu.subgroups} (${gpu.subgroupSize})`);
const result: Record<string, unknown> = {
  adapter: gpu.adapterName,
  toggles: process.env.OLLM_DAWN_TOGGLES ?? "",
};

function pipeline(code: string): GPUComputePipeline {
  return device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
  });
}

/** Without subgroups (llvmpipe) the GEMV designs are only compiled, with subgroupAdd stubbed, to check their WGSL. */
const syntaxOnly = sg !== 32;
function gemvPipeline(code: string): GPUComputePipeline {
  return pipeline(syntaxOnly ? code.replace("enable subgroups;", "").replace(/subgroupAdd\(/g, "(") : code);
}

async function done(): Promise<void> {
  await device.queue.onSubmittedWorkDone();
}

// ---------------------------------------------------------------- 1. dispatch cost
{
  const code = `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { b[g.x] = a[g.x] + 1.0; }`;
  const p = pipeline(code);
  const bufs = [0, 1, 2].map(() => device.createBuffer({ size: 64 * 1024 * 4, usage: STORAGE | COPY_DST }));
  const group = (x: number, y: number) =>
    device.createBindGroup({
      layout: p.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: bufs[x] } },
        { binding: 1, resource: { buffer: bufs[y] } },
      ],
    });
  const chain = [group(0, 1), group(1, 0)]; // each dispatch reads the previous one's output
  const indep = [group(2, 0), group(2, 1)];
  const rows: Record<string, number>[] = [];
  for (const [name, groups, wgs] of [
    ["dependent, 1 wg", chain, 1],
    ["dependent, 1024 wg", chain, 1024],
    ["independent pairs, 1 wg", indep, 1],
  ] as [string, GPUBindGroup[], number][]) {
    for (let rep = 0; rep < 3; rep++) {
      const N = 2000;
      await done();
      const t0 = performance.now();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(p);
      for (let i = 0; i < N; i++) {
        pass.setBindGroup(0, groups[i & 1]);
        pass.dispatchWorkgroups(wgs);
      }
      pass.end();
      const t1 = performance.now();
      const cb = enc.finish();
      const t2 = performance.now();
      device.queue.submit([cb]);
      const t3 = performance.now();
      await done();
      const t4 = performance.now();
      if (rep === 2) {
        const r = {
          encodeUs: ((t1 - t0) * 1000) / N,
          finishUs: ((t2 - t1) * 1000) / N,
          submitUs: ((t3 - t2) * 1000) / N,
          waitUs: ((t4 - t3) * 1000) / N,
        };
        rows.push({ ...r });
        log(
          `dispatch ${name}: encode ${r.encodeUs.toFixed(2)} µs, finish ${r.finishUs.toFixed(2)}, submit ${r.submitUs.toFixed(2)}, GPU-wait ${r.waitUs.toFixed(2)} µs per dispatch`,
        );
      }
    }
  }
  // Dynamic offsets (how the engine binds its parameter block) cost.
  const uni = device.createBuffer({ size: 1 << 16, usage: UNIFORM | COPY_DST });
  const dynCode = `struct P { v: f32 }
@group(0) @binding(0) var<uniform> q: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { a[g.x] = a[g.x] + q.v; }`;
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: 4, buffer: { type: "uniform", hasDynamicOffset: true } },
      { binding: 1, visibility: 4, buffer: { type: "storage" } },
    ],
  });
  const pd = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module: device.createShaderModule({ code: dynCode }), entryPoint: "main" },
  });
  const gd = device.createBindGroup({
    layout,
    entries: [
      { binding: 0, resource: { buffer: uni, offset: 0, size: 16 } },
      { binding: 1, resource: { buffer: bufs[0] } },
    ],
  });
  for (let rep = 0; rep < 3; rep++) {
    const N = 2000;
    await done();
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pd);
    for (let i = 0; i < N; i++) {
      pass.setBindGroup(0, gd, [(i % 200) * 256]);
      pass.dispatchWorkgroups(1);
    }
    pass.end();
    const t1 = performance.now();
    device.queue.submit([enc.finish()]);
    const t2 = performance.now();
    await done();
    const t3 = performance.now();
    if (rep === 2) {
      const r = {
        encodeUs: ((t1 - t0) * 1000) / N,
        finishSubmitUs: ((t2 - t1) * 1000) / N,
        waitUs: ((t3 - t2) * 1000) / N,
      };
      rows.push(r);
      log(
        `dispatch with a dynamic offset (array arg): encode ${r.encodeUs.toFixed(2)} µs, finish+submit ${r.finishSubmitUs.toFixed(2)}, wait ${r.waitUs.toFixed(2)}`,
      );
    }
  }
  result.dispatch = rows;
}

// ---------------------------------------------------------------- 2. GEMV designs
interface Design {
  name: string;
  /** Binds a uniform block {K, xo, wo, yo} at binding 3. */
  uniform?: boolean;
  /** Rows per workgroup. */
  rowsPerWg: number;
  wg: number;
  code: (K: number) => string;
}

/** bf16 pair → two f32. */
const BF = `fn bf(v: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xffff0000u)); }
fn dot8(w: vec4<u32>, x0: vec4<f32>, x1: vec4<f32>) -> f32 {
  return dot(vec4<f32>(bf(w.x), bf(w.y)), x0) + dot(vec4<f32>(bf(w.z), bf(w.w)), x1);
}`;

/**
 * Warp-per-rows: a workgroup of `warps` subgroups; each subgroup owns R consecutive rows; its lanes stride over
 * K in 16-byte weight loads (8 bf16), U loads in flight, x read as vec4<f32>; subgroupAdd reduces.
 */
function warpRows(R: number, U: number, warps: number): Design {
  const wg = warps * 32;
  return {
    name: `warp R${R} U${U} wg${wg}`,
    rowsPerWg: warps * R,
    wg,
    code: (K) => `enable subgroups;
${BF}
@group(0) @binding(0) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
const KU: u32 = ${K / 8}u;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let lane = l % 32u;
  let row0 = (wid.x * ${warps}u + l / 32u) * ${R}u;
  var acc: array<f32, ${R}>;
  var u = lane;
  for (; u + ${U - 1}u * 32u < KU; u += ${U * 32}u) {
    ${Array.from(
      { length: U },
      (_, j) => `{ let uu = u + ${j * 32}u; let x0 = X[uu * 2u]; let x1 = X[uu * 2u + 1u];
      for (var r = 0u; r < ${R}u; r++) { acc[r] += dot8(W[(row0 + r) * KU + uu], x0, x1); } }`,
    ).join("\n    ")}
  }
  for (; u < KU; u += 32u) {
    let x0 = X[u * 2u]; let x1 = X[u * 2u + 1u];
    for (var r = 0u; r < ${R}u; r++) { acc[r] += dot8(W[(row0 + r) * KU + u], x0, x1); }
  }
  for (var r = 0u; r < ${R}u; r++) {
    let s = subgroupAdd(acc[r]);
    if (lane == 0u) { Y[row0 + r] = s; }
  }
}`,
  };
}

/**
 * Block-per-row: a whole workgroup on one row (wide K, few rows), U loads in flight per thread, subgroup then
 * workgroup reduction. `xScalar`: x bound as array<f32> (4 scalar loads per vec4, as when x shares a buffer
 * with other activations); `uniform`: K and offsets read from a uniform block (as the engine does).
 */
function blockRow(wg: number, U: number, opts: { xScalar?: boolean; uniform?: boolean } = {}): Design {
  const tag = `${opts.xScalar ? " xs" : ""}${opts.uniform ? " uni" : ""}`;
  const xDecl = opts.xScalar
    ? `@group(0) @binding(1) var<storage, read> X: array<f32>;
fn xv(i: u32) -> vec4<f32> { let e = XO + i * 4u; return vec4<f32>(X[e], X[e + 1u], X[e + 2u], X[e + 3u]); }`
    : `@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
fn xv(i: u32) -> vec4<f32> { return X[i]; }`;
  const consts = opts.uniform
    ? `struct P { K: u32, xo: u32, wo: u32, yo: u32 }
@group(0) @binding(3) var<uniform> p: P;`
    : "";
  return {
    name: `block wg${wg} U${U}${tag}`,
    rowsPerWg: 1,
    wg,
    uniform: opts.uniform,
    code: (K) => `enable subgroups;
${BF}
${consts}
@group(0) @binding(0) var<storage, read> W: array<vec4<u32>>;
${xDecl.replace("XO", opts.uniform ? "p.xo" : "0u")}
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
var<workgroup> red: array<f32, ${wg / 32}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let KU = ${opts.uniform ? "p.K / 8u" : `${K / 8}u`};
  let row = wid.x;
  let wbase = ${opts.uniform ? "p.wo / 8u + " : ""}row * KU;
  var acc = 0.0;
  var u = l;
  for (; u + ${U - 1}u * ${wg}u < KU; u += ${U * wg}u) {
    ${Array.from({ length: U }, (_, j) => `{ let uu = u + ${j * wg}u; acc += dot8(W[wbase + uu], xv(uu * 2u), xv(uu * 2u + 1u)); }`).join("\n    ")}
  }
  for (; u < KU; u += ${wg}u) { acc += dot8(W[wbase + u], xv(u * 2u), xv(u * 2u + 1u)); }
  let s = subgroupAdd(acc);
  if (l % 32u == 0u) { red[l / 32u] = s; }
  workgroupBarrier();
  if (l == 0u) {
    var t = 0.0;
    for (var i = 0u; i < ${wg / 32}u; i++) { t += red[i]; }
    Y[${opts.uniform ? "p.yo + " : ""}row] = t;
  }
}`,
  };
}

const designs: Design[] = [
  warpRows(1, 1, 8),
  warpRows(1, 2, 8),
  warpRows(1, 4, 8),
  warpRows(2, 2, 8),
  warpRows(4, 1, 8),
  warpRows(4, 2, 4),
  warpRows(1, 4, 4),
  warpRows(1, 8, 2),
  blockRow(128, 2),
  blockRow(256, 2),
  blockRow(256, 4),
  blockRow(128, 2, { xScalar: true }),
  blockRow(128, 2, { uniform: true }),
  blockRow(128, 2, { xScalar: true, uniform: true }),
  blockRow(64, 2),
  blockRow(128, 4),
  blockRow(128, 1),
];
if (syntaxOnly) {
  device.pushErrorScope("validation");
  for (const d of designs) gemvPipeline(d.code(4096));
  const error = await device.popErrorScope();
  log(`no subgroups of 32 (have ${sg}): GEMV designs compiled only: ${error ? error.message : "ok"}`);
  designs.length = 0;
}

const shapes: [string, number, number][] = [...LLAMA_LINEAR_SHAPES, ["8B gate+up", 28672, 4096]];
const gemv: Record<string, unknown>[] = [];
for (const [label, N, K] of shapes) {
  if (designs.length === 0) break;
  const bytes = N * K * 2;
  const copies = Math.max(2, Math.ceil((512 << 20) / bytes));
  const ws = Array.from({ length: copies }, () => device.createBuffer({ size: bytes, usage: STORAGE }));
  const x = device.createBuffer({ size: K * 4, usage: STORAGE | COPY_DST });
  device.queue.writeBuffer(x, 0, new Float32Array(K).fill(0.01));
  const y = device.createBuffer({ size: N * 4, usage: STORAGE });
  const params = device.createBuffer({ size: 16, usage: UNIFORM | COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([K, 0, 0, 0]));
  const line: Record<string, number> = {};
  for (const d of designs) {
    if (N % d.rowsPerWg !== 0) continue;
    device.pushErrorScope("validation");
    const p = gemvPipeline(d.code(K));
    const invalid = await device.popErrorScope();
    if (invalid) {
      log(`${d.name}: ${invalid.message}`);
      continue;
    }
    const groups = ws.map((w) =>
      device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: w } },
          { binding: 1, resource: { buffer: x } },
          { binding: 2, resource: { buffer: y } },
          ...(d.uniform ? [{ binding: 3, resource: { buffer: params } }] : []),
        ],
      }),
    );
    let best = Number.POSITIVE_INFINITY;
    const reps = Math.max(copies * 4, Math.min(400, Math.ceil(8e9 / bytes)));
    for (let trial = 0; trial < 3; trial++) {
      await done();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(p);
      for (let i = 0; i < reps; i++) {
        pass.setBindGroup(0, groups[i % copies]);
        pass.dispatchWorkgroups(N / d.rowsPerWg);
      }
      pass.end();
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await done();
      best = Math.min(best, (performance.now() - t0) / reps);
    }
    line[d.name] = bytes / (best / 1000) / 1e9;
  }
  for (const w of ws) w.destroy();
  const top = Object.entries(line).sort((a, b) => b[1] - a[1]);
  log(`GEMV ${label} [${N}x${K}] GB/s: ${top.map(([n, v]) => `${n} ${v.toFixed(0)}`).join(" · ")}`);
  gemv.push({ label, N, K, gbps: line });
}
result.gemv = gemv;

// Copy bandwidth for the bound.
{
  const size = 1 << 30;
  const a = device.createBuffer({ size, usage: STORAGE | 0x04 });
  const b = device.createBuffer({ size, usage: STORAGE | COPY_DST });
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 4; i++) {
    await done();
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(a, 0, b, 0, size);
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await done();
    best = Math.min(best, performance.now() - t0);
  }
  result.copyGBps = (2 * size) / (best / 1000) / 1e9;
  log(`copyBufferToBuffer 1 GiB: ${(result.copyGBps as number).toFixed(0)} GB/s (read + write)`);
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
device.destroy();

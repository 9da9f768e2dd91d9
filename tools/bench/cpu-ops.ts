/**
 * Decode micro-benchmark of the CPU backend's non-linear ops at the ~1B llama's shapes (hidden 2048, 32 heads
 * over 8 KV heads, head dim 64, intermediate 8192, 16 layers): ms per decode step spent in rmsNorm, rope,
 * attention, the residual add + norm, swiglu and the last add, for the reference ops (reference.ts, the
 * backend's ops before they were rewritten) and the backend's ops, interleaved in one run.
 *
 *   node --import ./tools/loadtest/register.mjs tools/bench/cpu-ops.ts [--context 16,256,1024] [--rounds 7]
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { bf16Bits } from "../../src/bench/random-checkpoint.js";
import { median, seededRandom } from "../../src/bench/stats.js";
import type { RopeSpec } from "../../src/engine/backend.js";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import type { HostTensor } from "../../src/engine/backends/cpu/host.js";
import * as reference from "../../src/engine/backends/cpu/reference.js";
import { buildRope } from "../../src/engine/rope.js";
import type { Tensor } from "../../src/engine/tensor.js";

const HIDDEN = 2048;
const HEADS = 32;
const KV_HEADS = 8;
const HEAD_DIM = 64;
const INTERMEDIATE = 8192;
const LAYERS = 16;
const OPS = ["rmsNorm", "rope", "attention", "addRmsNorm", "swiglu", "add"] as const;
type Op = (typeof OPS)[number];

const { values: args } = parseArgs({
  options: {
    context: { type: "string", default: "16,256,1024" },
    rounds: { type: "string", default: "7" },
    steps: { type: "string", default: "" },
  },
});

const next = seededRandom(42);
const randomF32 = (n: number, spread = 1) =>
  Float32Array.from({ length: n }, () => (next() * 2 - 1) * spread);
const f32 = (shape: number[], data: Float32Array): HostTensor => ({ shape, dtype: "f32", data });

const backend = new CpuBackend({ kernels: "reference" });
const normBytes = new Uint8Array(Uint16Array.from(randomF32(HIDDEN, 1), (v) => bf16Bits(1 + v * 0.1)).buffer);
const normWeight = backend.upload(normBytes, "bf16", [HIDDEN]);
const rope: RopeSpec = buildRope(
  {
    rope_type: "llama3",
    rope_theta: 500000,
    factor: 32,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  },
  HEAD_DIM,
  131072,
);
const ropeOptions = { headDim: HEAD_DIM };

interface Inputs {
  hidden: Float32Array;
  q: Float32Array;
  k: Float32Array;
  attended: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  mlp: Float32Array;
  kCache: Float32Array;
  vCache: Float32Array;
  context: number;
}

function inputs(context: number): Inputs {
  return {
    hidden: randomF32(HIDDEN, 2),
    q: randomF32(HIDDEN, 2),
    k: randomF32(KV_HEADS * HEAD_DIM, 2),
    attended: randomF32(HIDDEN, 1),
    gate: randomF32(INTERMEDIATE, 4),
    up: randomF32(INTERMEDIATE, 2),
    mlp: randomF32(HIDDEN, 1),
    kCache: randomF32(context * KV_HEADS * HEAD_DIM, 2),
    vCache: randomF32(context * KV_HEADS * HEAD_DIM, 2),
    context,
  };
}

/** One decode step's ops (16 layers + the final norm) through `impl`, time per op added to `into`. */
type Impl = (x: Inputs, step: number, into: Record<Op, number>) => number;

function attentionOptions(x: Inputs) {
  return {
    numHeads: HEADS,
    numKvHeads: KV_HEADS,
    headDim: HEAD_DIM,
    scale: 1 / Math.sqrt(HEAD_DIM),
    queryPositions: new Int32Array([x.context - 1]),
    kvLength: x.context,
  };
}

const before: Impl = (x, step, into) => {
  const w = normWeight as unknown as HostTensor;
  const hidden = f32([1, HIDDEN], x.hidden);
  const positions = new Int32Array([x.context - 1 + step]);
  const att = attentionOptions(x);
  const kCache = f32([x.context, KV_HEADS * HEAD_DIM], x.kCache);
  const vCache = f32([x.context, KV_HEADS * HEAD_DIM], x.vCache);
  let sink = 0;
  for (let layer = 0; layer < LAYERS; layer++) {
    let t = performance.now();
    const normed = reference.rmsNorm(hidden, w, 1e-5);
    let u = performance.now();
    into.rmsNorm += u - t;
    const q = reference.rope(f32([1, HIDDEN], x.q), positions, rope, ropeOptions);
    const k = reference.rope(f32([1, KV_HEADS * HEAD_DIM], x.k), positions, rope, ropeOptions);
    t = performance.now();
    into.rope += t - u;
    const o = reference.attention(q, kCache, vCache, att);
    u = performance.now();
    into.attention += u - t;
    const { sum } = reference.addRmsNorm(hidden, f32([1, HIDDEN], x.attended), w, 1e-5);
    t = performance.now();
    into.addRmsNorm += t - u;
    const act = reference.swiglu(f32([1, INTERMEDIATE], x.gate), f32([1, INTERMEDIATE], x.up));
    u = performance.now();
    into.swiglu += u - t;
    const out = reference.add(sum, f32([1, HIDDEN], x.mlp));
    into.add += performance.now() - u;
    sink += (normed.data[0] as number) + (k.data[0] as number) + (o.data[0] as number);
    sink += (act.data[0] as number) + (out.data[0] as number);
  }
  const t = performance.now();
  reference.rmsNorm(hidden, w, 1e-5);
  into.rmsNorm += performance.now() - t;
  return sink;
};

const after: Impl = (x, step, into) => {
  const b = backend;
  const hidden = b.fromFloat32(x.hidden, [1, HIDDEN]);
  const positions = new Int32Array([x.context - 1 + step]);
  const att = attentionOptions(x);
  const kCache = b.fromFloat32(x.kCache, [x.context, KV_HEADS * HEAD_DIM]);
  const vCache = b.fromFloat32(x.vCache, [x.context, KV_HEADS * HEAD_DIM]);
  const first = (t: Tensor) => (t as unknown as HostTensor).data[0] as number;
  let sink = 0;
  for (let layer = 0; layer < LAYERS; layer++) {
    let t = performance.now();
    const normed = b.rmsNorm(hidden, normWeight, 1e-5);
    let u = performance.now();
    into.rmsNorm += u - t;
    const q = b.rope(b.fromFloat32(x.q, [1, HIDDEN]), positions, rope, ropeOptions);
    const k = b.rope(b.fromFloat32(x.k, [1, KV_HEADS * HEAD_DIM]), positions, rope, ropeOptions);
    t = performance.now();
    into.rope += t - u;
    const o = b.attention(q, kCache, vCache, att);
    u = performance.now();
    into.attention += u - t;
    const { sum } = b.addRmsNorm(hidden, b.fromFloat32(x.attended, [1, HIDDEN]), normWeight, 1e-5);
    t = performance.now();
    into.addRmsNorm += t - u;
    const act = b.swiglu(b.fromFloat32(x.gate, [1, INTERMEDIATE]), b.fromFloat32(x.up, [1, INTERMEDIATE]));
    u = performance.now();
    into.swiglu += u - t;
    const out = b.add(sum, b.fromFloat32(x.mlp, [1, HIDDEN]));
    into.add += performance.now() - u;
    sink += first(normed) + first(k) + first(o) + first(act) + first(out);
  }
  const t = performance.now();
  b.rmsNorm(hidden, normWeight, 1e-5);
  into.rmsNorm += performance.now() - t;
  return sink;
};

const zero = (): Record<Op, number> => ({
  rmsNorm: 0,
  rope: 0,
  attention: 0,
  addRmsNorm: 0,
  swiglu: 0,
  add: 0,
});

/** ms per step of each op over `steps` steps. */
function measure(impl: Impl, x: Inputs, steps: number, stepBase: number): Record<Op, number> {
  const into = zero();
  let sink = 0;
  for (let s = 0; s < steps; s++) sink += impl(x, stepBase + s, into);
  if (Number.isNaN(sink)) console.error("(NaN in outputs)");
  for (const op of OPS) into[op] /= steps;
  return into;
}

const contexts = args.context.split(",").map(Number);
const rounds = Number(args.rounds);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
console.log(`node ${process.version}, load average ${load()} (1/5/15 min)`);
console.log(
  `per decode step of a 1B llama: ${LAYERS} layers + final norm; median of ${rounds} interleaved rounds\n`,
);
console.log("| context | op | before ms | after ms | speed-up |");
console.log("|---|---|---|---|---|");
for (const context of contexts) {
  const x = inputs(context);
  const steps = args.steps ? Number(args.steps) : Math.max(3, Math.round(2000 / (context + 100)));
  // Warm-up: let both reach their optimised code.
  measure(before, x, steps, 0);
  measure(after, x, steps, 0);
  const runs: Record<"before" | "after", Record<Op, number>[]> = { before: [], after: [] };
  for (let r = 0; r < rounds; r++) {
    runs.before.push(measure(before, x, steps, r * steps));
    runs.after.push(measure(after, x, steps, r * steps));
  }
  const med = (which: "before" | "after", op: Op | "total") =>
    median(runs[which].map((m) => (op === "total" ? OPS.reduce((s, o) => s + m[o], 0) : m[op])));
  for (const op of [...OPS, "total"] as const) {
    const b = med("before", op);
    const a = med("after", op);
    console.log(`| ${context} | ${op} | ${b.toFixed(3)} | ${a.toFixed(3)} | ${(b / a).toFixed(1)}× |`);
  }
}
console.log(`\nload average after: ${load()}`);

/**
 * GPU time of each op of a llama decode step at a model shape, through the Backend API: every op is
 * recorded `reps` times into one pass with timestamp queries (weights rotated over copies so L2 does not
 * hold them), so the figure includes the barrier between dependent dispatches, as in a real step.
 *
 *   node ops-probe.js [8b|1b] [CONTEXT]
 */
import type { Tensor } from "../../src/engine/tensor.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { buildRope } from "../../src/engine/rope.js";

const shapes = {
  "1b": { hidden: 2048, inter: 8192, layers: 16, heads: 32, kvHeads: 8, vocab: 1029 },
  "8b": { hidden: 4096, inter: 14336, layers: 32, heads: 32, kvHeads: 8, vocab: 1029 },
};
const name = (process.argv[2] ?? "8b") as keyof typeof shapes;
const context = Number(process.argv[3] ?? 128);
const s = shapes[name];
const D = s.hidden / s.heads;
const kvw = s.kvHeads * D;
const g = await WebGpuBackend.create({ stats: true });
g.setSubmitEvery(0);
const bf16 = (rows: number, cols: number, copies: number) =>
  Array.from({ length: copies }, () =>
    g.upload(new Uint8Array(rows * cols * 2).fill(0x3c), "bf16", [rows, cols]),
  );
const copiesFor = (bytes: number) => Math.max(1, Math.ceil((256 << 20) / bytes));
const x = g.fromFloat32(new Float32Array(s.hidden).fill(0.01), [1, s.hidden]);
const h = g.fromFloat32(new Float32Array(s.inter).fill(0.01), [1, s.inter]);
const norm = g.fromFloat32(new Float32Array(s.hidden).fill(1), [s.hidden]);
const q = bf16(s.hidden, s.hidden, copiesFor(s.hidden * s.hidden * 2));
const k = bf16(kvw, s.hidden, copiesFor(kvw * s.hidden * 2));
const v = bf16(kvw, s.hidden, copiesFor(kvw * s.hidden * 2));
const gate = bf16(s.inter, s.hidden, copiesFor(s.inter * s.hidden * 2));
const up = bf16(s.inter, s.hidden, copiesFor(s.inter * s.hidden * 2));
const down = bf16(s.hidden, s.inter, copiesFor(s.inter * s.hidden * 2));
const head = bf16(s.vocab, s.hidden, copiesFor(s.vocab * s.hidden * 2));
const kCache = g.fromFloat32(new Float32Array(context * kvw).fill(0.01), [context, kvw]);
const vCache = g.fromFloat32(new Float32Array(context * kvw).fill(0.01), [context, kvw]);
const qRow = g.fromFloat32(new Float32Array(s.hidden).fill(0.01), [1, s.hidden]);
const kRow = g.fromFloat32(new Float32Array(kvw).fill(0.01), [1, kvw]);
const logits = g.fromFloat32(new Float32Array(s.vocab).fill(0.01), [1, s.vocab]);
const rope = buildRope({ rope_type: "default", rope_theta: 500000 }, D, 8192);
const positions = Int32Array.of(context - 1);

const ops: [string, number, (i: number) => Tensor | Tensor[] | undefined][] = [
  ["rmsNorm", 1, () => g.rmsNorm(x, norm, 1e-5)],
  [
    "q/k/v linearMany",
    1,
    (i) =>
      g.linearMany(
        x,
        [q, k, v].map((w) => ({ weight: w[i % w.length] })),
      ),
  ],
  [
    "rope q + k",
    1,
    () => [g.rope(qRow, positions, rope, { headDim: D }), g.rope(kRow, positions, rope, { headDim: D })],
  ],
  [
    "KV append (2 writeRows)",
    1,
    () => {
      g.writeRows(kCache, context - 1, kRow);
      g.writeRows(vCache, context - 1, kRow);
      return undefined;
    },
  ],
  [
    `attention (kv ${context})`,
    1,
    () =>
      g.attention(qRow, kCache, vCache, {
        numHeads: s.heads,
        numKvHeads: s.kvHeads,
        headDim: D,
        scale: 1 / Math.sqrt(D),
        queryPositions: positions,
        kvLength: context,
      }),
  ],
  ["o linear", 1, (i) => g.linear(x, q[i % q.length])],
  ["addRmsNorm", 1, () => g.addRmsNorm(x, x, norm, 1e-5).normed],
  ["gate/up linearGated", 1, (i) => g.linearGated(x, gate[i % gate.length], up[i % up.length], "silu")],
  ["down linear", 1, (i) => g.linear(h, down[i % down.length])],
  ["add", 1, () => g.add(x, x)],
  ["lm_head linear (once)", 0, (i) => g.linear(x, head[i % head.length])],
  ["topKRows 1 (once)", 0, () => g.topKRows(logits, 1)],
];
const bytes: Record<string, number> = {
  "q/k/v linearMany": (s.hidden + 2 * kvw) * s.hidden * 2,
  "o linear": s.hidden * s.hidden * 2,
  "gate/up linearGated": 2 * s.inter * s.hidden * 2,
  "down linear": s.inter * s.hidden * 2,
  "lm_head linear (once)": s.vocab * s.hidden * 2,
};
await g.sync();
let layerUs = 0;
let onceUs = 0;
const reps = 200;
for (const [label, perLayer, op] of ops) {
  for (let i = 0; i < 8; i++) op(i);
  await g.sync();
  await new Promise((r) => setTimeout(r, 50));
  const before = g.stats().gpuMs ?? 0;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const out = op(i);
    for (const t of Array.isArray(out) ? out : out ? [out] : []) t.dispose();
  }
  await g.sync();
  const wallUs = ((performance.now() - t0) * 1000) / reps;
  await new Promise((r) => setTimeout(r, 100));
  const gpuMs = g.stats().gpuMs;
  // GPU time from the timestamps; wall time (host recording included) where the adapter has none.
  const us = gpuMs === undefined ? wallUs : ((gpuMs - before) * 1000) / reps;
  if (perLayer) layerUs += us;
  else onceUs += us;
  const gbps = bytes[label] ? ` (${(bytes[label] / (us * 1e3)).toFixed(0)} GB/s)` : "";
  console.log(
    `${name} ${label.padEnd(26)} ${us.toFixed(1).padStart(8)} µs${gbps}, wall ${wallUs.toFixed(1)} µs`,
  );
}
console.log(
  `${name}: per layer ${layerUs.toFixed(0)} µs × ${s.layers} + ${onceUs.toFixed(0)} µs = ${((layerUs * s.layers + onceUs) / 1000).toFixed(2)} ms per decode step (ops alone)`,
);
await g.close();

/**
 * GPU time of decode attention (one query row) at the llama shapes over context lengths, for several ways of
 * cutting a call into workgroups (`tuneAttention`), and of one prefill attention call (2048 rows over 2048
 * keys, causal). Each case is recorded `reps` times into one pass with timestamp queries, so the figure
 * includes the barriers between dependent dispatches, as in a real step.
 *
 *   node attention-probe.js [--quick] [--json OUT]
 */
import { writeFileSync } from "node:fs";
import type { AttentionTuning } from "../../src/engine/backends/webgpu/attention-kernels.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";

const quick = process.argv.includes("--quick");
const jsonAt = process.argv.indexOf("--json");
const jsonOut = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
const log = (...parts: unknown[]) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...parts);

const shapes = quick
  ? { tiny: { heads: 8, kvHeads: 2, dim: 32 } }
  : { "1b": { heads: 32, kvHeads: 8, dim: 64 }, "8b": { heads: 32, kvHeads: 8, dim: 128 } };
const lengths = quick ? [8, 40] : [32, 64, 128, 256, 512, 1024, 4096];
const tunings: (AttentionTuning | undefined)[] = [
  undefined,
  { targetWorkgroups: 128, maxQueries: 8 },
  { targetWorkgroups: 32, maxQueries: 8 },
  { targetWorkgroups: 64, maxQueries: 8 },
  { targetWorkgroups: 256, maxQueries: 8 },
  { targetWorkgroups: 512, maxQueries: 8 },
  { targetWorkgroups: 128, maxQueries: 2 },
  { targetWorkgroups: 128, maxQueries: 1 },
  { targetWorkgroups: 256, maxQueries: 1 },
  { targetWorkgroups: 1, maxQueries: 1 },
];
const name = (t: AttentionTuning | undefined) => (t ? `wg${t.targetWorkgroups}/q${t.maxQueries}` : "default");
const reps = quick ? 4 : 200;

const g = await WebGpuBackend.create({ stats: true });
g.setSubmitEvery(0);
log(g.describe());
const result: Record<string, Record<string, Record<string, number>>> = {};

/** µs per call of `op` (GPU timestamps; wall time where the adapter has none). */
async function time(op: () => void, count: number): Promise<number> {
  op();
  await g.sync();
  await new Promise((r) => setTimeout(r, 50));
  const before = g.stats().gpuMs ?? 0;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) op();
  await g.sync();
  const wall = ((performance.now() - t0) * 1000) / count;
  await new Promise((r) => setTimeout(r, 100));
  const gpuMs = g.stats().gpuMs;
  return gpuMs === undefined ? wall : ((gpuMs - before) * 1000) / count;
}

for (const [shape, s] of Object.entries(shapes)) {
  const kvw = s.kvHeads * s.dim;
  const maxLen = Math.max(...lengths, quick ? 16 : 2048);
  const kCache = g.fromFloat32(new Float32Array(maxLen * kvw).fill(0.01), [maxLen, kvw]);
  const vCache = g.fromFloat32(new Float32Array(maxLen * kvw).fill(0.02), [maxLen, kvw]);
  const attend = (rows: number, kvLength: number) => {
    const q = g.fromFloat32(new Float32Array(rows * s.heads * s.dim).fill(0.01), [rows, s.heads * s.dim]);
    const positions = Int32Array.from({ length: rows }, (_, i) => kvLength - rows + i);
    return () =>
      g
        .attention(q, kCache, vCache, {
          numHeads: s.heads,
          numKvHeads: s.kvHeads,
          headDim: s.dim,
          scale: 1 / Math.sqrt(s.dim),
          queryPositions: positions,
          kvLength,
        })
        .dispose();
  };
  result[shape] = {};
  for (const t of tunings) {
    g.tuneAttention(t);
    const row: Record<string, number> = {};
    for (const len of lengths) row[len] = await time(attend(1, len), reps);
    result[shape][name(t)] = row;
    log(
      `${shape} decode ${name(t).padEnd(10)} ${lengths.map((l) => `${l}: ${row[l].toFixed(1)}`).join("  ")} µs`,
    );
  }
  g.tuneAttention(undefined);
  const prefillRows = quick ? 16 : 2048;
  const us = await time(attend(prefillRows, prefillRows), quick ? 1 : 3);
  result[shape].prefill = { [prefillRows]: us };
  log(`${shape} prefill attention ${prefillRows}×${prefillRows} (causal): ${(us / 1000).toFixed(2)} ms`);
  kCache.dispose();
  vCache.dispose();
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
await g.close();
process.exit(0);

/**
 * GPU time of decode attention (one query row) at the llama shapes over context lengths, for several ways of
 * cutting a call into workgroups (`tuneAttention`), and of one prefill attention call (2048 rows over 2048
 * keys, causal). Each case is recorded `reps` times into one pass with timestamp queries, so the figure
 * includes the barriers between dependent dispatches, as in a real step.
 *
 * Prefill runs on the tiled kernel (attention-prefill.ts); the probe then runs itself again with
 * OLLM_WEBGPU_PREFILL_ATTENTION=0 and `--prefill-only` to time the decode kernel on the same call, and reports
 * both with the largest difference between their outputs (relative to the largest output).
 *
 *   node attention-probe.js [--quick] [--json OUT] [--prefill-only --dump PREFIX]
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AttentionTuning } from "../../src/engine/backends/webgpu/attention-kernels.js";
import { prefillAttentionPlan } from "../../src/engine/backends/webgpu/attention-prefill.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";

const quick = process.argv.includes("--quick");
const jsonAt = process.argv.indexOf("--json");
const jsonOut = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
const prefillOnly = process.argv.includes("--prefill-only");
const dumpAt = process.argv.indexOf("--dump");
/** Where the child run writes its prefill outputs (PREFIX.SHAPE.f32). */
const dump = dumpAt >= 0 ? process.argv[dumpAt + 1] : undefined;
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
/** Each shape's prefill output, compared with the child run's. */
const prefillOut: Record<string, Float32Array> = {};

/** Deterministic values in [-1, 1) (the same in the child run). */
function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

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
  // Random values, so the two prefill paths' outputs differ where a kernel is wrong.
  const kCache = g.fromFloat32(random(maxLen * kvw, 1), [maxLen, kvw]);
  const vCache = g.fromFloat32(random(maxLen * kvw, 2), [maxLen, kvw]);
  const call = (rows: number, kvLength: number) => {
    const q = g.fromFloat32(random(rows * s.heads * s.dim, 3), [rows, s.heads * s.dim]);
    const positions = Int32Array.from({ length: rows }, (_, i) => kvLength - rows + i);
    return () =>
      g.attention(q, kCache, vCache, {
        numHeads: s.heads,
        numKvHeads: s.kvHeads,
        headDim: s.dim,
        scale: 1 / Math.sqrt(s.dim),
        queryPositions: positions,
        kvLength,
      });
  };
  const attend = (rows: number, kvLength: number) => {
    const op = call(rows, kvLength);
    return () => op().dispose();
  };
  result[shape] = {};
  for (const t of prefillOnly ? [] : tunings) {
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
  const tiled = prefillAttentionPlan(prefillRows, s.heads, s.kvHeads, s.dim, g.gpu.limits) !== undefined;
  log(
    `${shape} prefill attention ${prefillRows}×${prefillRows} (causal, ${tiled ? "tiled" : "decode"} kernel): ${(us / 1000).toFixed(2)} ms`,
  );
  const y = call(prefillRows, prefillRows)();
  prefillOut[shape] = await y.read();
  y.dispose();
  if (dump) writeFileSync(`${dump}.${shape}.f32`, prefillOut[shape]);
  kCache.dispose();
  vCache.dispose();
}
await g.close();
if (!prefillOnly && process.env.OLLM_WEBGPU_PREFILL_ATTENTION !== "0") {
  // The decode kernel on the same prefill calls, in a process of its own (the switch is read at load).
  const base = join(tmpdir(), `attention-probe-${process.pid}`);
  const args = [process.argv[1], "--prefill-only", "--json", `${base}.json`, "--dump", base];
  if (quick) args.push("--quick");
  const env = { ...process.env, OLLM_WEBGPU_PREFILL_ATTENTION: "0" };
  const child = spawnSync(process.execPath, args, { env, stdio: "inherit" });
  if (child.status !== 0) throw new Error(`the decode-kernel prefill run failed (${child.status})`);
  const previous = JSON.parse(readFileSync(`${base}.json`, "utf8")) as typeof result;
  rmSync(`${base}.json`);
  for (const shape of Object.keys(result)) {
    const [[rows, now]] = Object.entries(result[shape].prefill);
    const before = previous[shape].prefill[rows];
    const other = new Float32Array(new Uint8Array(readFileSync(`${base}.${shape}.f32`)).buffer);
    rmSync(`${base}.${shape}.f32`);
    let diff = 0;
    let top = 0;
    prefillOut[shape].forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - other[i]));
      top = Math.max(top, Math.abs(other[i]));
    });
    result[shape].prefillDecodeKernel = { [rows]: before };
    log(
      `${shape} prefill ${rows}×${rows}: tiled ${(now / 1000).toFixed(2)} ms, decode kernel ${(before / 1000).toFixed(2)} ms (${(before / now).toFixed(2)}×); max |Δ| / max |y| = ${(diff / top).toExponential(2)}`,
    );
  }
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
process.exit(0);

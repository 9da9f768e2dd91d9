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
 *   node attention-probe.js [--quick] [--json OUT] [--decode-only | --prefill-only --dump PREFIX]
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
/** Decode cases only (no prefill call, no child run). */
const decodeOnly = process.argv.includes("--decode-only");
const dumpAt = process.argv.indexOf("--dump");
/** Where the child run writes its prefill outputs (PREFIX.SHAPE.f32). */
const dump = dumpAt >= 0 ? process.argv[dumpAt + 1] : undefined;
const log = (...parts: unknown[]) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...parts);

const shapes = quick
  ? { tiny: { heads: 8, kvHeads: 2, dim: 32 } }
  : { "1b": { heads: 32, kvHeads: 8, dim: 64 }, "8b": { heads: 32, kvHeads: 8, dim: 128 } };
const lengths = process.env.OLLM_PROBE_LENGTHS
  ? process.env.OLLM_PROBE_LENGTHS.split(",").map(Number)
  : quick
    ? [8, 40]
    : [32, 64, 128, 256, 512, 1024, 4096];
/** Only these tunings (labels, comma-separated), for short experiments. */
const only = process.env.OLLM_PROBE_ONLY?.split(",");
/** Named ways to cut a call into workgroups (default: the backend's own for the head width). */
const tunings: [string, AttentionTuning | undefined][] = [
  ["default", undefined],
  ...[128, 32, 64, 256, 512].map((wg): [string, AttentionTuning] => [
    `wg${wg}/q8`,
    { targetWorkgroups: wg, maxQueries: 8 },
  ]),
  ...[2, 1].map((q): [string, AttentionTuning] => [`wg128/q${q}`, { targetWorkgroups: 128, maxQueries: q }]),
  ["wg256/q1", { targetWorkgroups: 256, maxQueries: 1 }],
  ["wg1/q1", { targetWorkgroups: 1, maxQueries: 1 }],
];
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

/** 128 MiB whose adds keep the GPU busy (untimed) right before a timed batch. */
const heatInput = g.fromFloat32(new Float32Array(quick ? 1 << 16 : 32 << 20), [
  32,
  quick ? 1 << 11 : 1 << 20,
]);

/** Queues ~10 ms of untimed work, so a timed batch after it does not start at idle clocks. */
function heat(): void {
  g.setTiming(false);
  for (let i = 0; i < (quick ? 2 : 100); i++) g.add(heatInput, heatInput).dispose();
  g.submitPending();
  g.setTiming(true);
}

/** Waits until the timestamps of what was submitted have been read back; the GPU time so far (ms). */
async function settled(): Promise<number | undefined> {
  let last = g.stats().gpuMs;
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const now = g.stats().gpuMs;
    if (now !== undefined && now === last && i > 0) return now;
    last = now;
  }
  return last;
}

/** GPU ms of `count` calls recorded into one pass after heating (wall ms where there are no timestamps). */
async function batch(op: () => void, count: number): Promise<number> {
  const before = (await settled()) ?? 0;
  heat();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) op();
  await g.sync();
  const wall = performance.now() - t0;
  const gpuMs = await settled();
  return gpuMs === undefined ? wall : gpuMs - before;
}

/**
 * µs per call of `op`: (time of 2n calls − time of n calls) / n, so what a batch pays once cancels — the
 * end of the heating work still running when the pass's first timestamp is written, a ramp of the clocks.
 * Measured as one batch of n, the same kernel gave 4.9 or 20 µs and a small add 2.3 or 7.2 µs depending on
 * what ran before (H200, results/h200-2026-11-29h-attention-debug.txt).
 */
async function time(op: () => void, count: number): Promise<number> {
  op();
  await g.sync();
  const once = await batch(op, count);
  const twice = await batch(op, 2 * count);
  return ((twice - once) * 1000) / count;
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
  if (!prefillOnly) {
    // The floor: a dependent dispatch that does almost nothing (an add of two 4096-wide rows).
    const a = g.fromFloat32(random(4096, 4), [1, 4096]);
    const floor = await time(() => g.add(a, a).dispose(), reps);
    a.dispose();
    result[shape].floor = { 1: floor };
    log(`${shape} floor (one small dependent dispatch): ${floor.toFixed(1)} µs`);
  }
  /** Each tuning's output at each length, against the first tuning's (the default). */
  const reference = new Map<number, Float32Array>();
  for (const [label, t] of prefillOnly ? [] : tunings.filter(([n]) => !only || only.includes(n))) {
    g.tuneAttention(t);
    const row: Record<string, number> = {};
    let worst = 0;
    for (const len of lengths) {
      row[len] = await time(attend(1, len), reps);
      const y = call(1, len)();
      const out = await y.read();
      y.dispose();
      const ref = reference.get(len);
      if (!ref) reference.set(len, out);
      else {
        let top = 0;
        let diff = 0;
        out.forEach((v, i) => {
          diff = Math.max(diff, Math.abs(v - ref[i]));
          top = Math.max(top, Math.abs(ref[i]));
        });
        worst = Math.max(worst, diff / top);
      }
    }
    row.maxRelDiff = worst;
    result[shape][label] = row;
    log(
      `${shape} decode ${label.padEnd(12)} ${lengths.map((l) => `${l}: ${row[l].toFixed(1)}`).join("  ")} µs; max |Δ| / max |y| vs default ${worst.toExponential(1)}`,
    );
  }
  g.tuneAttention(undefined);
  if (decodeOnly) continue;
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
if (!prefillOnly && !decodeOnly && process.env.OLLM_WEBGPU_PREFILL_ATTENTION !== "0") {
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

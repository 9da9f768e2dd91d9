#!/usr/bin/env node
// Offload bench: the ~3 GB random llama (tools/big-checkpoint/make.mjs) under a host memory budget
// (default 512 MiB) on the CPU backend. Each measurement runs in its own process so its peak RSS (VmHWM)
// is its own:
//   overhead      node + the library + the CPU backend's kernel threads, no weights: the fixed overhead
//   decode        plan (planResidency + selectKvStrategy) → load → 16-token prompt → N decoded tokens; bytes
//                 read per token, decode time, and in the same process the disk-read bound: the same bytes
//                 read serially through the same reader (page cache as the run saw it), plus O_DIRECT dd
//   compare       in one process, token by token in turn (so all three see the same machine load): a decode
//                 step of the streamed model, one of the same model fully resident (no budget: the compute
//                 bound), and a serial read of the streamed bytes (the read bound)
//   compare-cold  the same with the checkpoint's page cache dropped (dd iflag=nocache) before each streamed
//                 step and each read: a machine whose RAM cannot cache the model, reading from the disk
//   prefill-lm    a 2k-token prompt, layer-major (each streamed layer read once)
//   prefill-tm    the same prompt, token-major (each streamed layer read once per chunk)
// Build first: `npx tsc -p tsconfig.build.json --outDir /tmp/ollm-dist`, then
//   OLLM_DIST=/tmp/ollm-dist node tools/big-checkpoint/bench.mjs [--dir D] [--budget 512MiB] [--decode 8]
//        [--prompt 2048] [--chunk 256] [--only decode,prefill-lm,...] [--markdown out.md]
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = resolve(process.env.OLLM_DIST ?? join(root, "dist"));
const MiB = 2 ** 20;

const { values } = parseArgs({
  options: {
    dir: { type: "string", default: "/tmp/ollm-big-checkpoint/llama-3g" },
    budget: { type: "string", default: String(512 * MiB) },
    decode: { type: "string", default: "8" },
    prompt: { type: "string", default: "2048" },
    chunk: { type: "string", default: "128" },
    profile: { type: "string", default: "balanced" },
    only: { type: "string" },
    markdown: { type: "string" },
    child: { type: "string" },
    "logits-out": { type: "string" },
  },
});
const budget = Number.parseInt(values.budget, 10);

function status() {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

const mib = (b) => Number((b / MiB).toFixed(1));

// ------------------------------------------------------------------------------------------------ child

async function child(mode) {
  const lib = (p) => import(pathToFileURL(join(dist, p)).href);
  const { loadModel } = await lib("engine/model.js");
  const { CpuBackend } = await lib("engine/backends/cpu/cpu-backend.js");
  const { Checkpoint } = await lib("engine/weights/safetensors.js");
  const { planResidency, V8_GC_SLACK_BYTES } = await lib("engine/residency/policy.js");
  const { readOverlap } = await lib("engine/residency/streaming-store.js");
  const { selectKvStrategy } = await lib("engine/kv/strategies.js");

  // The backend's threads and WebAssembly instances: part of the fixed overhead in every mode.
  const probe = new CpuBackend();
  probe.linear(probe.fromFloat32(new Float32Array(64 * 256), [64, 256]), probe.upload(new Uint8Array(256 * 256 * 2), "bf16", [256, 256]));
  if (mode === "overhead") return { mode, ...status() };

  const config = JSON.parse(readFileSync(join(values.dir, "config.json"), "utf8"));
  const hidden = config.hidden_size;
  const inter = config.intermediate_size;
  const L = config.num_hidden_layers;
  const kvWidth = config.num_key_value_heads * (config.head_dim ?? hidden / config.num_attention_heads);
  const ckpt = await Checkpoint.open(values.dir);
  const layerBytes = Array(L).fill(0);
  let globalBytes = 0;
  for (const n of ckpt.names()) {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    if (m) layerBytes[Number(m[1])] += ckpt.info(n).byteLength;
    else globalBytes += ckpt.info(n).byteLength;
  }

  const decoding = mode === "decode" || mode.startsWith("compare");
  const dropCache = () =>
    spawnSync("dd", [`if=${join(values.dir, "model.safetensors")}`, "iflag=nocache", "count=0"], { stdio: "ignore" });
  const promptTokens = decoding ? 16 : Number(values.prompt);
  const decodeTokens = decoding ? Number(values.decode) : 0;
  const chunk = decoding ? promptTokens : Number(values.chunk);
  const context = promptTokens + decodeTokens + 1;
  // Activations of one chunk: residual/attention temporaries (~8 × hidden), MLP gate/up/product and the
  // kernels' output copies (~5 × intermediate), f32; layer-major keeps every chunk's hidden states; logits;
  // plus the garbage V8 lets accumulate before it collects.
  const activationBytes =
    chunk * 4 * (8 * hidden + 5 * inter) +
    (mode === "prefill-lm" ? 2 * promptTokens * hidden * 4 : 0) +
    2 * config.vocab_size * 4 +
    V8_GC_SLACK_BYTES;
  const maxLayer = Math.max(...layerBytes);
  const free = budget - globalBytes - 2 * maxLayer - activationBytes;
  const kv = selectKvStrategy({
    profile: values.profile,
    contextTokens: context,
    kvBytesPerToken: L * 2 * kvWidth * 4,
    numKvLayers: L,
    headDim: config.head_dim ?? hidden / config.num_attention_heads,
    memoryBudgetBytes: Math.max(0, free),
    prefillChunkTokens: chunk,
  });
  const plan = planResidency({
    layerBytes,
    globalBytes,
    hostBudgetBytes: budget,
    kvBytes: Math.ceil(kv.predicted.memoryBytes),
    activationBytes,
  });
  const kvCache = {
    strategy: kv.strategy,
    blockTokens: kv.blockTokens,
    hotBlocks: kv.hotBlocks,
    windowTokens: kv.windowTokens,
    cacheDir: "/tmp/ollm-big-checkpoint/kv-cache",
  };
  const t0 = performance.now();
  const model = await loadModel(values.dir, { backend: "cpu", residency: plan.residency, kvCache });
  const loadMs = performance.now() - t0;
  const afterLoad = status();
  const ids = Array.from({ length: promptTokens }, (_, i) => 1000 + ((i * 7919) % 30000));
  const seq = model.newSequence();
  const out = {
    mode,
    budget,
    residency: { host: plan.residency.filter((r) => r !== "disk").length, disk: plan.residency.filter((r) => r === "disk").length },
    kv: { strategy: kv.strategy, blockTokens: kv.blockTokens, hotBlocks: kv.hotBlocks, reason: kv.reason },
    predictedPeak: plan.predictedPeak.hostBytes,
    plannedBytesPerToken: plan.bytesReadPerToken,
    loadMs,
    afterLoad,
    promptTokens,
    chunk,
  };

  const streamedNames = ckpt.names().filter((n) => {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    return m && plan.residency[Number(m[1])] === "disk";
  });
  const staging = new Uint8Array(maxLayer + 64 * 64);
  const serialRead = async () => {
    let bytes = 0;
    const t = performance.now();
    for (const n of streamedNames) {
      await ckpt.readInto(n, staging);
      bytes += ckpt.info(n).byteLength;
    }
    return { bytes, ms: performance.now() - t };
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const argmax = (a) => a.reduce((b, v, i) => (v > a[b] ? i : b), 0);

  if (mode.startsWith("compare")) {
    const cold = mode === "compare-cold";
    const resident = await loadModel(values.dir, { backend: "cpu" });
    const rseq = resident.newSequence();
    let ls = await (await seq.forward(ids, { logits: "last" })).read();
    await rseq.forward(ids, { logits: "last" });
    const times = { streamed: [], resident: [], read: [] };
    for (let i = 0; i < decodeTokens; i++) {
      const id = argmax(ls);
      if (cold) dropCache();
      let t = performance.now();
      ls = await (await seq.forward([id], { logits: "last" })).read();
      times.streamed.push(performance.now() - t);
      t = performance.now();
      await (await rseq.forward([id], { logits: "last" })).read();
      times.resident.push(performance.now() - t);
      if (cold) dropCache();
      times.read.push((await serialRead()).ms);
    }
    out.compare = {
      streamedMs: median(times.streamed),
      residentMs: median(times.resident),
      readMs: median(times.read),
      times,
    };
    rseq.dispose();
    seq.dispose();
    await resident.close();
    await model.close();
    await ckpt.close();
    out.hwm = status().hwm;
    return out;
  }

  if (decoding) {
    let t = performance.now();
    let logits = await (await seq.forward(ids, { logits: "last" })).read();
    out.promptMs = performance.now() - t;
    const before = model.streamingStats();
    const times = [];
    for (let i = 0; i < decodeTokens; i++) {
      t = performance.now();
      logits = await (await seq.forward([argmax(logits)], { logits: "last" })).read();
      times.push(performance.now() - t);
    }
    const s = model.streamingStats();
    const delta = {
      bytesRead: s.bytesRead - before.bytesRead,
      waitMs: s.waitMs - before.waitMs,
      readMs: s.readMs - before.readMs,
      uploadMs: s.uploadMs - before.uploadMs,
    };
    out.decode = {
      tokens: decodeTokens,
      msPerToken: times.reduce((a, b) => a + b, 0) / times.length,
      medianMsPerToken: [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)],
      bytesReadPerToken: delta.bytesRead / decodeTokens,
      waitMsPerToken: delta.waitMs / decodeTokens,
      uploadMsPerToken: delta.uploadMs / decodeTokens,
    };
    out.kvUsage = seq.kvStore.usage();
    out.peakDuringRun = status();
    seq.dispose();
    await model.close();

    // Disk-read bound, same process, same files, same reader: every streamed tensor once, serially.
    const { bytes, ms: serialMs } = await serialRead();
    const bps = bytes / (serialMs / 1000);
    out.diskBound = { bytes, serialMs, bytesPerSecond: bps, msPerToken: (out.decode.bytesReadPerToken / bps) * 1000 };
    out.decode.overlap = readOverlap({ bytesRead: delta.bytesRead, waitMs: delta.waitMs }, bps);
    // Cold disk (O_DIRECT, bypassing the page cache) for reference.
    const dd = spawnSync("dd", [`if=${join(values.dir, "model.safetensors")}`, "of=/dev/null", "bs=16M", "count=64", "iflag=direct"], {
      encoding: "utf8",
    });
    const m = /(\d+) bytes .* copied, ([\d.]+) s/.exec(dd.stderr ?? "");
    if (m) out.coldDisk = { bytesPerSecond: Number(m[1]) / Number(m[2]), msPerToken: (out.decode.bytesReadPerToken / (Number(m[1]) / Number(m[2]))) * 1000 };
  } else {
    const order = mode === "prefill-lm" ? "layer-major" : "token-major";
    const t = performance.now();
    const logits = await (await seq.forward(ids, { logits: "last", chunkTokens: chunk, order })).read();
    out.prefill = { order, ms: performance.now() - t, ...model.streamingStats() };
    out.kvUsage = seq.kvStore.usage();
    if (values["logits-out"]) writeFileSync(values["logits-out"], Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
    seq.dispose();
    await model.close();
  }
  await ckpt.close();
  out.hwm = status().hwm;
  return out;
}

// ----------------------------------------------------------------------------------------------- driver

function runChild(mode, extra = []) {
  return new Promise((resolveRun, reject) => {
    const args = [fileURLToPath(import.meta.url), "--child", mode, "--dir", values.dir, "--budget", String(budget)];
    for (const k of ["decode", "prompt", "chunk", "profile"]) args.push(`--${k}`, values[k]);
    const p = spawn(process.execPath, [...args, ...extra], { stdio: ["ignore", "pipe", "inherit"], env: process.env });
    let stdout = "";
    p.stdout.on("data", (d) => {
      stdout += d;
    });
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`${mode} exited with ${code}`));
      resolveRun(JSON.parse(stdout.trim().split("\n").pop()));
    });
  });
}

if (values.child) {
  console.log(JSON.stringify(await child(values.child)));
  process.exit(0);
}

const modes = values.only
  ? values.only.split(",")
  : ["overhead", "decode", "compare", "compare-cold", "prefill-lm", "prefill-tm"];
const results = {};
for (const mode of modes) {
  console.error(`— ${mode}`);
  const extra = mode.startsWith("prefill") ? ["--logits-out", `/tmp/ollm-big-checkpoint/${mode}.f32`] : [];
  results[mode] = await runChild(mode, extra);
  console.error(JSON.stringify(results[mode]));
}
const overhead = results.overhead?.hwm ?? 0;
const lines = [];
const row = (k, v) => lines.push(`| ${k} | ${v} |`);
lines.push(`| measure (budget ${mib(budget)} MiB, ${modes.join(", ")}) | value |`, "|---|---|");
if (results.overhead) row("fixed overhead: node + library + CPU kernel threads, no weights (VmHWM)", `${mib(overhead)} MiB`);
const d = results.decode;
if (d) {
  row("placement", `${d.residency.host} layers resident, ${d.residency.disk} streamed; KV ${d.kv.strategy} (blocks of ${d.kv.blockTokens})`);
  row("predicted peak (planner)", `${mib(d.predictedPeak)} MiB`);
  row(
    "decode: peak RSS (VmHWM)",
    results.overhead
      ? `${mib(d.hwm)} MiB = budget + ${mib(d.hwm - budget)} MiB, ${d.hwm <= budget + overhead ? "≤" : "EXCEEDS"} budget + overhead (${mib(budget + overhead)} MiB)`
      : `${mib(d.hwm)} MiB (overhead not measured in this run)`,
  );
  row("decode: bytes read per token", `${mib(d.decode.bytesReadPerToken)} MiB (planned ${mib(d.plannedBytesPerToken)} MiB)`);
  row("decode: time per token (mean / median)", `${d.decode.msPerToken.toFixed(0)} / ${d.decode.medianMsPerToken.toFixed(0)} ms`);
  row("disk-read bound, same run (page cache, serial reads)", `${d.diskBound.msPerToken.toFixed(0)} ms/token (${mib(d.diskBound.bytesPerSecond)} MiB/s)`);
  if (d.coldDisk) row("cold-disk bound (O_DIRECT dd)", `${d.coldDisk.msPerToken.toFixed(0)} ms/token (${mib(d.coldDisk.bytesPerSecond)} MiB/s)`);
  row("decode: blocked on reads / read overlap achieved", `${d.decode.waitMsPerToken.toFixed(0)} ms/token / ${(100 * d.decode.overlap).toFixed(0)}%`);
}
for (const [k, label] of [
  ["compare", "page cache"],
  ["compare-cold", "cold: page cache dropped before each step"],
]) {
  const c = results[k]?.compare;
  if (!c) continue;
  // Wall-clock overlap: how much of the shorter of compute and reading the streamed bytes the decode hid.
  const hidden = Math.max(0, Math.min(1, (c.residentMs + c.readMs - c.streamedMs) / Math.min(c.residentMs, c.readMs)));
  row(
    `${label}: streamed decode / resident decode (compute bound) / serial read of the streamed bytes (read bound), interleaved medians`,
    `${c.streamedMs.toFixed(0)} / ${c.residentMs.toFixed(0)} / ${c.readMs.toFixed(0)} ms per token; overlap (compute + read − streamed) / min = ${(100 * hidden).toFixed(0)}%`,
  );
}
for (const k of ["prefill-lm", "prefill-tm"]) {
  const p = results[k];
  if (!p) continue;
  row(
    `prefill ${p.promptTokens} tokens, ${p.prefill.order} (chunks of ${p.chunk})`,
    `${(p.prefill.ms / 1000).toFixed(1)} s, ${mib(p.prefill.bytesRead)} MiB read, waited ${(p.prefill.waitMs / 1000).toFixed(1)} s, VmHWM ${mib(p.hwm)} MiB`,
  );
}
if (results["prefill-lm"] && results["prefill-tm"]) {
  const a = new Float32Array(readFileSync("/tmp/ollm-big-checkpoint/prefill-lm.f32").buffer.slice(0));
  const b = new Float32Array(readFileSync("/tmp/ollm-big-checkpoint/prefill-tm.f32").buffer.slice(0));
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
  row("layer-major vs token-major last logits", `max |Δ| = ${diff}`);
}
const table = lines.join("\n");
console.log(table);
if (values.markdown) writeFileSync(values.markdown, `${table}\n\n\`\`\`json\n${JSON.stringify(results, null, 2)}\n\`\`\`\n`);

/**
 * `ollm bench` as a library: measures this machine's read bandwidth and the WASM GEMV throughput, then
 * runs our engine (and llama.cpp on the same weights, when given) over prompt/output sweeps and a
 * session-growth run, with 1..N threads. Each engine configuration runs in its own process by default,
 * so peak RSS is per configuration. Results are plain JSON (appendable to a JSONL history).
 */
import { spawn } from "node:child_process";
import { appendFile, mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Checkpoint } from "../engine/weights/safetensors.js";
import { OllmError } from "../errors.js";
import { RESULT_MARKER } from "./child.js";
import { type EngineJob, type EngineRun, runEngine, type SessionSpec } from "./engines.js";
import { type BandwidthResult, type GemvResult, measureGemv, measureReadBandwidth } from "./kernels.js";
import { type MachineInfo, machineInfo } from "./machine.js";

export const BENCH_SCHEMA = "ollm-bench/1";

export interface BenchOptions {
  /** Model directory (config.json + safetensors). */
  model: string;
  /** The same weights as GGUF, for the llama.cpp peer. */
  gguf?: string;
  /** Directory whose node_modules holds node-llama-cpp; without it (or gguf) the peer is skipped. */
  peerDir?: string;
  /** Thread counts to run (default: 1 and every core). */
  threads?: number[];
  promptLengths?: number[];
  outputLengths?: number[];
  repeats?: number;
  /** Multi-turn run on one growing context (default 4 turns of 64 + 16 tokens); false: none. */
  session?: SessionSpec | false;
  /** Weight dtypes for the GEMV measurement (default bf16); empty: none. */
  gemvDtypes?: GemvResult["dtype"][];
  /** Bytes of the buffer the bandwidth kernel streams (default 1 GiB). */
  bandwidthBytes?: number;
  /** Weight bytes the GEMV measurement cycles through (default 512 MiB). */
  gemvBytes?: number;
  /** Run each engine configuration in a child process (default true; peak RSS is then its own). */
  isolate?: boolean;
  /** Append the result as one JSON line to this file. */
  historyFile?: string;
  /** Free text stored with the result (e.g. a commit). */
  label?: string;
  onProgress?: (message: string) => void;
}

export interface ModelSummary {
  dir: string;
  parameters: number;
  weightBytes: number;
  /** Weight bytes a decode step reads: every matrix but the embedding table (unless tied to the head). */
  decodeBytesPerToken: number;
  dtypes: string[];
}

export interface BenchResult {
  schema: typeof BENCH_SCHEMA;
  timestamp: string;
  label?: string;
  machine: MachineInfo;
  model: ModelSummary;
  gguf?: string;
  bandwidth: BandwidthResult[];
  gemv: GemvResult[];
  engines: EngineRun[];
  /** Load average when the run ended. */
  loadAverageAfter: number;
}

const ELEMENT_BYTES: Record<string, number> = { BF16: 2, F16: 2, F32: 4, I8: 1, U8: 1, I32: 4 };

/** Sizes of a checkpoint from its safetensors headers. */
export async function summarizeModel(dir: string): Promise<ModelSummary> {
  const ckpt = await Checkpoint.open(dir);
  try {
    let parameters = 0;
    let weightBytes = 0;
    let embedBytes = 0;
    const dtypes = new Set<string>();
    const names = ckpt.names();
    for (const name of names) {
      const info = ckpt.info(name);
      parameters += info.byteLength / (ELEMENT_BYTES[info.dtype] ?? 1);
      weightBytes += info.byteLength;
      dtypes.add(info.dtype);
      if (name.endsWith("embed_tokens.weight")) embedBytes += info.byteLength;
    }
    const tied = !names.some((n) => n === "lm_head.weight" || n.endsWith(".lm_head.weight"));
    return {
      dir,
      parameters,
      weightBytes,
      decodeBytesPerToken: weightBytes - (tied ? 0 : embedBytes),
      dtypes: [...dtypes],
    };
  } finally {
    await ckpt.close();
  }
}

function childScript(): string {
  return fileURLToPath(new URL("./child.js", import.meta.url));
}

async function runIsolated(job: EngineJob, log: (m: string) => void): Promise<EngineRun> {
  const script = childScript();
  if (script.endsWith(".ts"))
    throw new OllmError(
      "INVALID_ARGUMENT",
      "isolated bench runs need the built package (dist/); use isolate: false",
    );
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, JSON.stringify(job)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: process.env,
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      for (const line of d.split("\n")) if (line.trim()) log(line);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith(RESULT_MARKER));
      if (code === 0 && line) resolve(JSON.parse(line.slice(RESULT_MARKER.length)) as EngineRun);
      else
        reject(
          new OllmError("INTERNAL", `bench run ${job.engine} (${job.threads} threads) exited with ${code}`, {
            hint: err.trim().split("\n").slice(-5).join("\n"),
          }),
        );
    });
  });
}

/** Runs the whole benchmark; see BenchOptions. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.onProgress ?? (() => {});
  const machine = machineInfo();
  const threads = options.threads ?? [...new Set([1, availableParallelism()])];
  const model = await summarizeModel(options.model);
  log(
    `model ${model.dir}: ${(model.parameters / 1e9).toFixed(3)}B parameters, ` +
      `${(model.decodeBytesPerToken / 1e9).toFixed(2)} GB read per decoded token`,
  );

  const bandwidth: BandwidthResult[] = [];
  for (const t of threads) {
    const b = measureReadBandwidth(t, options.bandwidthBytes ?? 1 << 30);
    bandwidth.push(b);
    log(`read bandwidth, ${t} thread(s): ${(b.bytesPerSecond / 1e9).toFixed(1)} GB/s`);
  }
  const gemv: GemvResult[] = [];
  for (const dtype of options.gemvDtypes ?? ["bf16"]) {
    for (const t of threads) {
      const g = measureGemv(dtype, t, { totalBytes: options.gemvBytes });
      gemv.push(g);
      log(`GEMV ${dtype} [${g.n}x${g.k}], ${t} thread(s): ${(g.bytesPerSecond / 1e9).toFixed(1)} GB/s`);
    }
  }

  const base = {
    promptLengths: options.promptLengths ?? [128],
    outputLengths: options.outputLengths ?? [32],
    repeats: options.repeats ?? 2,
    session:
      options.session === false
        ? undefined
        : (options.session ?? { turns: 4, promptTokens: 64, outputTokens: 16 }),
    // Ids of ordinary tokens of the fixture tokenizers (below their added special tokens).
    tokenRange: 1000,
    seed: 1,
  };
  const jobs: EngineJob[] = [];
  for (const t of threads) {
    jobs.push({ ...base, engine: "ollm", model: options.model, threads: t });
    if (options.gguf && options.peerDir)
      jobs.push({ ...base, engine: "llama.cpp", model: options.gguf, threads: t, peerDir: options.peerDir });
  }
  const engines: EngineRun[] = [];
  for (const job of jobs) {
    log(`running ${job.engine} with ${job.threads} thread(s)`);
    engines.push(options.isolate === false ? await runEngine(job, log) : await runIsolated(job, log));
  }

  const result: BenchResult = {
    schema: BENCH_SCHEMA,
    timestamp: new Date().toISOString(),
    label: options.label,
    machine,
    model,
    gguf: options.gguf,
    bandwidth,
    gemv,
    engines,
    loadAverageAfter: machineInfo().loadAverage,
  };
  if (options.historyFile) await appendHistory(options.historyFile, result);
  return result;
}

/** Appends one result as a JSON line (the history file is append-only). */
export async function appendHistory(file: string, result: BenchResult): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await appendFile(file, `${JSON.stringify(result)}\n`);
}

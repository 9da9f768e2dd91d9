/**
 * The engines a benchmark drives, behind one small interface: our engine (loadModel on the CPU backend)
 * and llama.cpp through node-llama-cpp (the peer, imported at run time from a directory where it is
 * installed; it is not a dependency of this package). Both run greedy decoding on the same token ids.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadModel } from "../engine/model.js";
import type { Sequence } from "../engine/sequence.js";
import { OllmError } from "../errors.js";
import { mean, median, promptIds, quantile } from "./stats.js";

export type EngineName = "ollm" | "llama.cpp";

/** One engine configuration to measure. */
export interface EngineJob {
  engine: EngineName;
  /** Model directory (ollm) or GGUF file (llama.cpp). */
  model: string;
  threads: number;
  promptLengths: number[];
  outputLengths: number[];
  repeats: number;
  /** Multi-turn run on one growing context; omitted: none. */
  session?: SessionSpec;
  /** Prompt ids are drawn from [0, tokenRange). */
  tokenRange: number;
  seed: number;
  /** llama.cpp only: the directory whose node_modules holds node-llama-cpp. */
  peerDir?: string;
}

export interface SessionSpec {
  turns: number;
  /** New tokens each turn adds before generating. */
  promptTokens: number;
  outputTokens: number;
}

export interface RunMeasurement {
  promptTokens: number;
  outputTokens: number;
  repeats: number;
  /** Time to first token (prefill of the prompt + first greedy token), median over repeats. */
  ttftMs: number;
  prefillTokensPerSecond: number;
  /** Output tokens per second after the first (1 / mean inter-token latency). */
  decodeTokensPerSecond: number;
  itlP50Ms: number;
  itlP95Ms: number;
}

export interface SessionTurn {
  turn: number;
  /** Tokens in the context before this turn. */
  contextTokens: number;
  promptTokens: number;
  ttftMs: number;
  decodeTokensPerSecond: number;
  itlP50Ms: number;
}

export interface EngineRun {
  engine: EngineName;
  threads: number;
  /** What ran (e.g. "wasm kernels, bf16 weights" or "llama.cpp b1234 prebuilt CPU, F16"). */
  detail: string;
  loadSeconds: number;
  /** Peak resident set of the process that ran this engine (whole process when not isolated). */
  peakRssBytes: number;
  runs: RunMeasurement[];
  session?: SessionTurn[];
}

/** A loaded model that generates greedily on one growing context. */
interface Generator {
  readonly detail: string;
  /**
   * Feeds `prompt` after what the context holds and generates `count` tokens; returns each token's time
   * (ms since the call) and the last token, which is not yet in the context.
   */
  generate(prompt: number[], count: number): Promise<{ times: number[]; last: number }>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

async function openOllm(job: EngineJob): Promise<Generator> {
  // The CPU backend takes its thread count from OLLM_CPU_THREADS when it is created.
  const previous = process.env.OLLM_CPU_THREADS;
  process.env.OLLM_CPU_THREADS = String(job.threads);
  let model: Awaited<ReturnType<typeof loadModel>>;
  try {
    model = await loadModel(job.model, { backend: "cpu" });
  } finally {
    if (previous === undefined) delete process.env.OLLM_CPU_THREADS;
    else process.env.OLLM_CPU_THREADS = previous;
  }
  let seq: Sequence = model.newSequence();
  const kernels = process.env.OLLM_CPU_KERNELS === "reference" ? "TypeScript reference" : "WASM SIMD kernels";
  const dtype = String(model.config.torch_dtype ?? model.config.dtype ?? "");
  return {
    detail: `ollm ${kernels}${dtype ? `, ${dtype} weights` : ""}`,
    async generate(prompt, count) {
      const times: number[] = [];
      const t0 = performance.now();
      let logits = await (await seq.forward(prompt, { logits: "last" })).read();
      let token = argmax(logits);
      times.push(performance.now() - t0);
      for (let i = 1; i < count; i++) {
        logits = await (await seq.forward([token], { logits: "last" })).read();
        token = argmax(logits);
        times.push(performance.now() - t0);
      }
      return { times, last: token };
    },
    async reset() {
      seq.dispose();
      seq = model.newSequence();
    },
    async close() {
      seq.dispose();
      await model.close();
    },
  };
}

/** The part of node-llama-cpp's API the benchmark uses. */
interface NlcSequence {
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, void>;
  clearHistory(): Promise<void>;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  createContext(options: { contextSize: number; threads: number; batchSize?: number }): Promise<NlcContext>;
  dispose(): Promise<void>;
}
interface NlcLlama {
  buildType?: string;
  cpuMathCores?: number;
  loadModel(options: { modelPath: string; gpuLayers?: number }): Promise<NlcModel>;
  dispose(): Promise<void>;
}
interface NlcModule {
  getLlama(options: Record<string, unknown>): Promise<NlcLlama>;
}

/** node-llama-cpp from `peerDir` (its node_modules), e.g. installed with `npm install node-llama-cpp` there. */
export async function importNodeLlamaCpp(peerDir: string): Promise<NlcModule> {
  const entry = join(peerDir, "node_modules", "node-llama-cpp", "dist", "index.js");
  try {
    return (await import(pathToFileURL(entry).href)) as NlcModule;
  } catch (error) {
    throw new OllmError(
      "BACKEND_UNAVAILABLE",
      `cannot load node-llama-cpp from ${peerDir}: ${(error as Error).message}`,
      {
        hint: `install it there: cd ${peerDir} && npm install node-llama-cpp`,
      },
    );
  }
}

async function openLlamaCpp(job: EngineJob, contextSize: number): Promise<Generator> {
  if (!job.peerDir) throw new OllmError("INVALID_ARGUMENT", "the llama.cpp peer needs peerDir");
  const nlc = await importNodeLlamaCpp(job.peerDir);
  const llama = await nlc.getLlama({
    gpu: false,
    build: "never",
    maxThreads: 0,
    logLevel: "error",
    progressLogs: false,
  });
  const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
  const context = await model.createContext({ contextSize, threads: job.threads, batchSize: 512 });
  const seq = context.getSequence();
  return {
    detail: `llama.cpp via node-llama-cpp (${llama.buildType ?? "?"} CPU build), GGUF`,
    async generate(prompt, count) {
      const times: number[] = [];
      const t0 = performance.now();
      let last = -1;
      for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
        times.push(performance.now() - t0);
        last = token;
        if (times.length >= count) break;
      }
      return { times, last };
    },
    async reset() {
      await seq.clearHistory();
    },
    async close() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

function contextNeeded(job: EngineJob): number {
  const sweep = Math.max(...job.promptLengths) + Math.max(...job.outputLengths);
  const session = job.session
    ? job.session.turns * (job.session.promptTokens + job.session.outputTokens + 1)
    : 0;
  return Math.max(sweep, session) + 16;
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]);
}

/** Loads the engine, warms it up, runs the prompt × output sweep and the session-growth run. */
export async function runEngine(
  job: EngineJob,
  log: (message: string) => void = () => {},
): Promise<EngineRun> {
  const t0 = performance.now();
  const gen = job.engine === "ollm" ? await openOllm(job) : await openLlamaCpp(job, contextNeeded(job));
  const loadSeconds = (performance.now() - t0) / 1000;
  log(
    `${job.engine} (${job.threads} thread${job.threads > 1 ? "s" : ""}) loaded in ${loadSeconds.toFixed(1)} s`,
  );
  try {
    // Warm-up: compiles the kernels' fast tier, faults in the weights.
    await gen.generate(promptIds(8, job.tokenRange, job.seed + 99), 4);
    await gen.reset();
    const runs: RunMeasurement[] = [];
    for (const promptTokens of job.promptLengths) {
      for (const outputTokens of job.outputLengths) {
        const ttfts: number[] = [];
        const itls: number[] = [];
        for (let r = 0; r < job.repeats; r++) {
          const { times } = await gen.generate(
            promptIds(promptTokens, job.tokenRange, job.seed + r),
            outputTokens,
          );
          await gen.reset();
          ttfts.push(times[0]);
          itls.push(...gaps(times));
        }
        const ttftMs = median(ttfts);
        const run: RunMeasurement = {
          promptTokens,
          outputTokens,
          repeats: job.repeats,
          ttftMs,
          prefillTokensPerSecond: (promptTokens / ttftMs) * 1000,
          decodeTokensPerSecond: itls.length ? 1000 / mean(itls) : Number.NaN,
          itlP50Ms: quantile(itls, 0.5),
          itlP95Ms: quantile(itls, 0.95),
        };
        runs.push(run);
        log(
          `${job.engine} t=${job.threads} prompt ${promptTokens} → ${outputTokens}: TTFT ${ttftMs.toFixed(0)} ms, ` +
            `prefill ${run.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${run.decodeTokensPerSecond.toFixed(2)} tok/s`,
        );
      }
    }
    let session: SessionTurn[] | undefined;
    if (job.session && job.session.turns > 0) {
      session = [];
      let context = 0;
      let carry: number[] = [];
      for (let turn = 0; turn < job.session.turns; turn++) {
        const prompt = carry.concat(
          promptIds(job.session.promptTokens, job.tokenRange, job.seed + 1000 + turn),
        );
        const { times, last } = await gen.generate(prompt, job.session.outputTokens);
        const itls = gaps(times);
        session.push({
          turn,
          contextTokens: context,
          promptTokens: prompt.length,
          ttftMs: times[0],
          decodeTokensPerSecond: itls.length ? 1000 / mean(itls) : Number.NaN,
          itlP50Ms: quantile(itls, 0.5),
        });
        // The last token is not yet in the context: it leads the next turn's input.
        context += prompt.length + times.length - 1;
        carry = [last];
      }
      await gen.reset();
    }
    return {
      engine: job.engine,
      threads: job.threads,
      detail: gen.detail,
      loadSeconds,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      runs,
      session,
    };
  } finally {
    await gen.close();
  }
}

import { resolve } from "node:path";
import type { BenchOptions } from "../../bench/index.js";
import type { CliContext } from "../context.js";
import { usageError } from "../errors.js";

export interface BenchFlags {
  model: string;
  gguf?: string;
  peerDir?: string;
  threads?: string;
  prompt: string;
  output: string;
  repeats: string;
  session: string;
  gemv: string;
  json?: boolean;
  history?: string;
  label?: string;
}

function integers(flag: string, value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(",").map((part) => Number(part.trim()));
  if (list.some((n) => !Number.isInteger(n) || n <= 0))
    throw usageError(`--${flag} expects positive integers separated by commas, got "${value}"`);
  return list;
}

function session(value: string): BenchOptions["session"] {
  if (value === "none") return false;
  const m = /^(\d+)x(\d+)\+(\d+)$/.exec(value);
  if (!m) throw usageError(`--session expects TURNSxPROMPT+OUTPUT (e.g. 4x64+16) or none, got "${value}"`);
  return { turns: Number(m[1]), promptTokens: Number(m[2]), outputTokens: Number(m[3]) };
}

/** `ollm bench`: the benchmark library's run, as a table (or JSON) on stdout. */
export async function runBenchCommand(ctx: CliContext, flags: BenchFlags): Promise<number> {
  const gemv = flags.gemv === "none" ? [] : flags.gemv.split(",").map((d) => d.trim());
  for (const dtype of gemv)
    if (!["bf16", "f16", "f32"].includes(dtype))
      throw usageError(`--gemv expects bf16, f16, f32 or none, got "${dtype}"`);
  const repeats = integers("repeats", flags.repeats)?.[0];
  const { runBench, formatBenchTable } = await import("../../bench/index.js");
  const result = await runBench({
    model: resolve(flags.model),
    gguf: flags.gguf && resolve(flags.gguf),
    peerDir: flags.peerDir && resolve(flags.peerDir),
    threads: integers("threads", flags.threads),
    promptLengths: integers("prompt", flags.prompt),
    outputLengths: integers("output", flags.output),
    repeats,
    session: session(flags.session),
    gemvDtypes: gemv as BenchOptions["gemvDtypes"],
    historyFile: flags.history && resolve(flags.history),
    label: flags.label,
    onProgress: (message) => ctx.ui.info(message),
  });
  ctx.ui.out(flags.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatBenchTable(result)}\n`);
  return 0;
}

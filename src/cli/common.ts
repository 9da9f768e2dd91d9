/** Helpers shared by the commands that run prompts. */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { formatBytes } from "../config/memory.js";
import type { RuntimeConfig } from "../config/runtime-config.js";
import { OllmError } from "../errors.js";
import { type Message, MessageSchema, textPart, validateMessages } from "../messages.js";
import type { PromptResponse } from "../session.js";
import type { CliContext } from "./context.js";
import { usageError } from "./errors.js";
import type { Ui } from "./ui.js";

/** Reads all of a stream as UTF-8. */
export async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}

/** True for http(s) URLs and data: URIs, which are not checked on disk. */
function isRemote(ref: string): boolean {
  return /^(https?:|data:)/i.test(ref);
}

/** Checks that attachment paths exist (URLs and data: URIs pass); returns them resolved. */
export function checkAttachments(
  kind: "image" | "audio",
  refs: readonly string[],
  cwd: string,
  label = `--${kind}`,
): string[] {
  return refs.map((ref) => {
    if (isRemote(ref)) return ref;
    const path = resolve(cwd, ref);
    if (!existsSync(path))
      throw usageError(`${label} ${ref}: no such file`, `Give the path of an ${kind} file.`);
    return path;
  });
}

/**
 * A history file: a JSON array of messages (`{role, content}` with content a string or content parts),
 * or an object with `messages` (an `ollm chat` transcript, or an OpenAI-style request body).
 */
export async function readHistoryFile(path: string): Promise<Message[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new OllmError(
      code === "ENOENT" ? "INVALID_ARGUMENT" : "IO_ERROR",
      `--history-file ${path}: ${code === "ENOENT" ? "no such file" : String(cause)}`,
      {
        cause,
      },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw usageError(
      `--history-file ${path}: not valid JSON`,
      "The file holds a JSON array of {role, content} messages.",
    );
  }
  const list = Array.isArray(json)
    ? json
    : typeof json === "object" && json !== null && Array.isArray((json as { messages?: unknown }).messages)
      ? (json as { messages: unknown[]; systemPrompt?: unknown }).messages
      : undefined;
  if (!list)
    throw usageError(
      `--history-file ${path}: expected a JSON array of messages or an object with "messages"`,
      'Example: [{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]',
    );
  const normalized = list.map((m) =>
    typeof m === "object" && m !== null && typeof (m as { content?: unknown }).content === "string"
      ? { ...(m as object), content: [textPart((m as { content: string }).content)] }
      : m,
  );
  try {
    const messages = validateMessages(normalized);
    const system = (json as { systemPrompt?: unknown }).systemPrompt;
    if (!Array.isArray(json) && typeof system === "string" && system !== "")
      return [MessageSchema.parse({ role: "system", content: [textPart(system)] }), ...messages];
    return messages;
  } catch (error) {
    if (error instanceof OllmError)
      throw usageError(
        `--history-file ${path}: ${error.message}`,
        'A message is {"role": "user"|"assistant"|"system", "content": "text"}.',
      );
    throw error;
  }
}

/**
 * Calls `onInterrupt` on the first Ctrl-C (stop generating) and exits on the second. Returns a function
 * that removes the handler.
 */
export function onCtrlC(ui: Ui, onInterrupt: () => void): () => void {
  let count = 0;
  const handler = () => {
    count++;
    if (count === 1) {
      ui.clearTransient();
      onInterrupt();
      return;
    }
    ui.line("interrupted");
    process.exit(130);
  };
  process.on("SIGINT", handler);
  return () => process.off("SIGINT", handler);
}

/** Prints the plan description of a runtime config as JSON on stdout. */
export async function printPlan(ctx: CliContext, runtimeConfig: RuntimeConfig): Promise<void> {
  const description = await (await ctx.client()).describePlan(runtimeConfig);
  ctx.ui.out(`${JSON.stringify(description, null, 2)}\n`);
}

function ms(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

function perSecond(value: number | null): string {
  return value === null ? "–" : `${value.toFixed(1)} tok/s`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** `--stats`: token counts, timings and runtime statistics, on stderr. */
export function printStats(ui: Ui, response: PromptResponse): void {
  const u = response.usage;
  const t = response.timings;
  ui.line(
    ui.style(
      "dim",
      `stats: ${u.promptTokens} prompt tokens (${u.cachedPromptTokens} cached), ${u.completionTokens} generated, finish ${response.finishReason}`,
    ),
  );
  ui.line(
    ui.style(
      "dim",
      `       time to first token ${ms(t.timeToFirstTokenMs)}, prefill ${perSecond(t.prefillTokensPerSecond)}, decode ${perSecond(t.tokensPerSecond)}, total ${ms(t.totalMs)}`,
    ),
  );
  const s = response.stats;
  if (s)
    ui.line(
      ui.style(
        "dim",
        `       ${s.model} on ${s.backend}/${s.device}, KV ${s.kvCacheStrategy}, loaded in ${ms(s.loadMs)}, RSS ${mib(s.rssBytes)}, predicted peak ${mib(s.predictedPeakHostBytes)}${s.predictedPeakGpuBytes === undefined ? "" : ` host, ${mib(s.predictedPeakGpuBytes)} GPU`}`,
      ),
    );
  if (s?.gpu)
    ui.line(
      ui.style(
        "dim",
        `       GPU ${s.gpu.adapter}: ${s.gpu.dispatches} dispatches in ${s.gpu.submits} submissions${s.gpu.gpuMs === undefined ? "" : `, ${ms(s.gpu.gpuMs)} of GPU time`}`,
      ),
    );
  const w = s?.streaming;
  if (w) {
    const e = w.expertCache;
    const experts = w.expertBytesRead ? ` (experts ${formatBytes(w.expertBytesRead)})` : "";
    const lru = e.hits + e.misses > 0 ? `; expert cache ${e.hits} hits, ${e.misses} misses` : "";
    ui.line(
      ui.style(
        "dim",
        `       streaming: ${w.layerLoads} layer loads, ${formatBytes(w.bytesRead)} read${experts} in ${ms(w.readMs)}, blocked ${ms(w.waitMs)} (≤${percent(w.overlap)} hidden), upload ${ms(w.uploadMs)}${lru}`,
      ),
    );
  }
  const kv = s?.kv;
  if (kv)
    ui.line(
      ui.style(
        "dim",
        `       KV on disk: ${formatBytes(kv.bytesWritten)} written, ${formatBytes(kv.bytesRead)} read (blocked ${ms(kv.waitMs)}), ${kv.blocksEvicted} blocks evicted; holds ${formatBytes(kv.diskBytes)} on disk, ${formatBytes(kv.deviceBytes + kv.hostBytes)} in memory`,
      ),
    );
}

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

/** `--logprobs N` without --json: one line per generated token on stderr. */
export function printLogprobs(ui: Ui, response: PromptResponse): void {
  for (const token of response.logprobs ?? []) {
    const alternatives = (token.topLogprobs ?? [])
      .map((c) => `${JSON.stringify(c.text)} ${c.logprob.toFixed(3)}`)
      .join(", ");
    ui.line(
      ui.style(
        "dim",
        `${String(token.id).padStart(6)} ${JSON.stringify(token.text).padEnd(16)} ${token.logprob.toFixed(4)}${alternatives ? `  [${alternatives}]` : ""}`,
      ),
    );
  }
}

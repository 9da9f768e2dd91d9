/**
 * The JSON documents the CLI prints for scripts, as zod schemas (the source of truth) with their JSON
 * Schemas (`ollm schema NAME`; docs/cli.md shows them). Fields may be added in a version; none are
 * removed or change meaning without a new `schemaVersion`.
 */
import { z } from "zod";
import { planDescriptionJsonSchema } from "../runtime/plan.js";
import type { PromptResponse } from "../session.js";

const count = z.number().int().min(0);
const rate = z.number().min(0).nullable();
const ms = z.number().min(0);

/** One token's log-probability. */
export const TokenChoiceSchema = z
  .looseObject({
    id: z.number().int().min(0).describe("Token id"),
    text: z.string().describe("The token decoded alone (special tokens included)"),
    logprob: z.number().describe("Natural log of the token's probability"),
  })
  .meta({ title: "TokenChoice" });

/** `ollm prompt --json`. */
export const PromptResultSchema = z
  .looseObject({
    schemaVersion: z.literal(1).describe("Version of this document's shape"),
    model: z.string().describe("The model's display name"),
    text: z.string().describe("The reply"),
    finishReason: z
      .enum(["stop", "length", "cancelled"])
      .describe(
        "stop: a stop token or string; length: --max-new-tokens or the context ran out; cancelled: Ctrl-C",
      ),
    usage: z
      .looseObject({
        promptTokens: count.describe("Tokens of the whole prompt, chat template applied"),
        completionTokens: count.describe("Tokens generated (a stop token counts)"),
        totalTokens: count,
        cachedPromptTokens: count.describe("Prompt tokens reused from a KV cache"),
      })
      .describe("Token counts"),
    timings: z
      .looseObject({
        ttftMs: z.number().min(0).describe("Time to the first token: prefill plus the first decode step"),
        prefillTokensPerSecond: rate.describe("Prompt tokens computed per second (null when none were)"),
        decodeTokensPerSecond: rate.describe(
          "Tokens generated after the first per second (null with fewer than 2)",
        ),
        decodeMs: z.number().min(0).describe("From the first token to the end"),
        totalMs: z.number().min(0).describe("From the start of prefill to the end"),
      })
      .describe("Timings (the model load is not included)"),
    tokens: z
      .array(
        z
          .looseObject({
            id: z.number().int().min(0),
            text: z.string(),
            logprob: z.number(),
            topLogprobs: z
              .array(TokenChoiceSchema)
              .describe("The N most likely tokens at this step, most likely first (N = --logprobs)"),
          })
          .meta({ title: "GeneratedToken" }),
      )
      .optional()
      .describe("Per generated token, with --logprobs N (stop tokens excluded)"),
    stats: z
      .looseObject({
        backend: z.string(),
        device: z.string(),
        kvCacheStrategy: z.string(),
        loadMs: z.number().min(0),
        rssBytes: count,
        predictedPeakHostBytes: count,
        predictedPeakGpuBytes: count
          .optional()
          .describe("The plan's predicted peak GPU memory (only when it runs on the GPU)"),
        gpu: z
          .object({
            adapter: z.string(),
            dispatches: count,
            submits: count,
            gpuMs: z.number().min(0).optional(),
          })
          .optional()
          .describe("What the reply took on the GPU (WebGPU backend; GPU time from timestamp queries)"),
        streaming: z
          .looseObject({
            layerLoads: count.describe("Streamed layers read from disk"),
            bytesRead: count.describe("Bytes read from disk: layers plus routed experts"),
            layerBytesRead: count,
            expertBytesRead: count,
            readMs: ms.describe("Wall time reads were in flight (over-states reads that overlapped compute)"),
            waitMs: ms.describe("Time the runner was blocked waiting for reads"),
            uploadMs: ms.describe("Time copying read bytes into backend memory"),
            overlap: z
              .number()
              .min(0)
              .max(1)
              .describe("Share of read time hidden behind compute, 1 − waitMs/readMs (an upper bound)"),
            expertCache: z
              .looseObject({ hits: count, misses: count, evictions: count, bytes: count })
              .describe(
                "The streamed-expert LRU (--expert-cache): lookups, evictions, bytes held after the reply",
              ),
          })
          .optional()
          .describe("What streaming layers from disk did during this reply (only when layers stream)"),
        kv: z
          .looseObject({
            bytesRead: count.describe("Cold KV blocks read back from disk"),
            bytesWritten: count.describe("KV blocks written to disk"),
            readMs: ms,
            waitMs: ms.describe("Time the runner was blocked waiting for KV reads"),
            blocksEvicted: count.describe("Blocks moved from memory to disk"),
            deviceBytes: count.describe("Bytes the cache holds in backend memory after the reply"),
            hostBytes: count.describe("Bytes in host buffers after the reply"),
            diskBytes: count.describe("Bytes on disk after the reply"),
          })
          .optional()
          .describe("What the disk-backed KV cache did during this reply (only with a disk KV strategy)"),
      })
      .optional()
      .describe("Runtime statistics, with --stats"),
  })
  .meta({ title: "ollm prompt --json result" });
/** `ollm prompt --json`. */
export type PromptResult = z.infer<typeof PromptResultSchema>;

/** The --json document of a prompt response. */
export function promptResult(response: PromptResponse, withTokens: boolean): PromptResult {
  const t = response.timings;
  const result: PromptResult = {
    schemaVersion: 1,
    model: response.model,
    text: response.text,
    finishReason: response.finishReason,
    usage: {
      promptTokens: response.usage.promptTokens,
      completionTokens: response.usage.completionTokens,
      totalTokens: response.usage.totalTokens,
      cachedPromptTokens: response.usage.cachedPromptTokens,
    },
    timings: {
      ttftMs: t.timeToFirstTokenMs,
      prefillTokensPerSecond: t.prefillTokensPerSecond,
      decodeTokensPerSecond: t.tokensPerSecond,
      decodeMs: t.decodeMs,
      totalMs: t.totalMs,
    },
  };
  if (withTokens)
    result.tokens = (response.logprobs ?? []).map((token) => ({
      id: token.id,
      text: token.text,
      logprob: token.logprob,
      topLogprobs: (token.topLogprobs ?? []).map((c) => ({ id: c.id, text: c.text, logprob: c.logprob })),
    }));
  const w = response.stats?.streaming;
  if (response.stats)
    result.stats = {
      backend: response.stats.backend,
      device: response.stats.device,
      kvCacheStrategy: response.stats.kvCacheStrategy,
      loadMs: response.stats.loadMs,
      rssBytes: response.stats.rssBytes,
      predictedPeakHostBytes: response.stats.predictedPeakHostBytes,
      predictedPeakGpuBytes: response.stats.predictedPeakGpuBytes,
      gpu: response.stats.gpu,
      streaming: w && { ...w, expertCache: { ...w.expertCache } },
      kv: response.stats.kv && { ...response.stats.kv },
    };
  return result;
}

/** A doctor check's outcome. */
export const CHECK_STATUSES = ["ok", "warn", "fail"] as const;

/** `ollm doctor --json`. */
export const DoctorReportSchema = z
  .looseObject({
    schemaVersion: z.literal(1),
    ok: z.boolean().describe("No check failed"),
    summary: z.looseObject({ ok: count, warn: count, fail: count }),
    checks: z.array(
      z
        .looseObject({
          id: z.string().describe("Stable id: node, cpu, memory, disk, gpu, dirs, hub, config, model"),
          title: z.string(),
          status: z.enum(CHECK_STATUSES),
          message: z.string().describe("What was found"),
          hint: z.string().optional().describe("What to do about a warning or failure"),
          details: z.record(z.string(), z.unknown()).optional().describe("Measurements, for scripts"),
        })
        .meta({ title: "DoctorCheck" }),
    ),
  })
  .meta({ title: "ollm doctor --json report" });
/** `ollm doctor --json`. */
export type DoctorReport = z.infer<typeof DoctorReportSchema>;
export type DoctorCheck = DoctorReport["checks"][number];

/** The documents `ollm schema NAME` prints. */
export const SCHEMA_NAMES = ["prompt", "plan", "doctor"] as const;

/** The JSON Schema (draft 2020-12) of a CLI document. */
export function jsonSchema(name: (typeof SCHEMA_NAMES)[number]): Record<string, unknown> {
  switch (name) {
    case "prompt":
      return z.toJSONSchema(PromptResultSchema) as Record<string, unknown>;
    case "doctor":
      return z.toJSONSchema(DoctorReportSchema) as Record<string, unknown>;
    default:
      return planDescriptionJsonSchema();
  }
}

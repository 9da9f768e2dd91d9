/** Request and response schemas of the native API (/v1/plan, /v1/prompt, /v1/sessions). Unknown fields are refused. */
import { z } from "zod";
import { GenerationConfigSchema } from "../../config/generation-config.js";

/** A content part: text, or an image / audio as an http(s) URL or a data: URI (no local paths). */
export const NativePartSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text"), text: z.string() }),
  z.strictObject({ type: z.literal("image"), image: z.string().min(1).describe("http(s) URL or data: URI") }),
  z.strictObject({ type: z.literal("audio"), audio: z.string().min(1).describe("http(s) URL or data: URI") }),
]);
export type NativePart = z.infer<typeof NativePartSchema>;

/** A prompt: text, or content parts. */
export const NativePromptInputSchema = z.union([
  z.string(),
  z.array(NativePartSchema).min(1, "must hold at least one part"),
]);

export const NativeMessageSchema = z.strictObject({
  role: z.enum(["system", "user", "assistant"]),
  content: z.union([z.string(), z.array(NativePartSchema)]),
});
export type NativeMessage = z.infer<typeof NativeMessageSchema>;

const ModelField = z
  .string()
  .min(1)
  .optional()
  .describe("A model id of /v1/models or any model reference; default: the server's model");
const GenerationField = GenerationConfigSchema.optional().describe(
  "Generation settings over the server's defaults",
);
const SystemField = z
  .string()
  .optional()
  .describe('System prompt (default "You are a helpful assistant."; "" = none)');

export const PlanRequestSchema = z.strictObject({
  model: ModelField,
  runtimeConfig: z
    .record(z.string(), z.unknown())
    .optional()
    .describe("RuntimeConfig fields over the server's (not modelReference, modelsDir or cacheDir)"),
});

export const PromptRequestSchema = z.strictObject({
  model: ModelField,
  prompt: NativePromptInputSchema,
  system: SystemField,
  history: z.array(NativeMessageSchema).optional().describe("Messages before the prompt"),
  generation: GenerationField,
});
export type PromptRequest = z.infer<typeof PromptRequestSchema>;

const TokenSchema = z.object({ id: z.number().int(), text: z.string(), logprob: z.number() });

export const NativeResponseSchema = z.object({
  id: z.string(),
  model: z.string(),
  text: z.string(),
  finishReason: z.enum(["stop", "length", "cancelled"]),
  usage: z.object({
    promptTokens: z.number().int(),
    completionTokens: z.number().int(),
    totalTokens: z.number().int(),
    cachedPromptTokens: z.number().int(),
  }),
  timings: z.object({
    timeToFirstTokenMs: z.number(),
    decodeMs: z.number(),
    totalMs: z.number(),
    prefillTokensPerSecond: z.number().nullable(),
    tokensPerSecond: z.number().nullable(),
  }),
  logprobs: z.array(TokenSchema.extend({ topLogprobs: z.array(TokenSchema).optional() })).nullable(),
  stopped: z.enum(["timeout", "shutdown", "disconnect"]).nullable().describe("Why a cancelled reply was cut"),
});
export type NativeResponse = z.infer<typeof NativeResponseSchema>;

/** Events of /v1/prompt/stream and /v1/sessions/{id}/prompt/stream. */
export const NativeStreamEventSchema = z
  .union([
    z.object({ text: z.string(), token: TokenSchema.optional() }).describe("event: delta"),
    z
      .object({ type: z.string() })
      .loose()
      .describe("event: progress — {type: queued, position} or a runtime event"),
    NativeResponseSchema.describe("event: done"),
    z
      .object({
        error: z.object({ message: z.string(), type: z.string(), code: z.string().nullable() }).loose(),
        status: z.number(),
      })
      .describe("event: error"),
  ])
  .describe("delta / progress / done / error events");

export const SessionCreateRequestSchema = z.strictObject({
  model: ModelField,
  name: z.string().min(1).max(200).optional(),
  system: SystemField,
  messages: z.array(NativeMessageSchema).optional().describe("Initial transcript"),
  generation: GenerationField,
});

export const SessionPromptRequestSchema = z.strictObject({
  prompt: NativePromptInputSchema,
  generation: GenerationField.describe("Settings for this turn, over the session's"),
});

export const SessionSchema = z.object({
  id: z.string(),
  object: z.literal("session"),
  name: z.string(),
  model: z.string(),
  systemPrompt: z.string(),
  messages: z.array(
    z.object({ role: z.string(), content: z.array(z.object({ type: z.string() }).loose()) }).loose(),
  ),
  busy: z.boolean(),
  createdAt: z.string(),
});

export const SessionPromptResponseSchema = NativeResponseSchema.extend({ session: SessionSchema });
export const SessionDeletedSchema = z.object({
  id: z.string(),
  object: z.literal("session"),
  deleted: z.literal(true),
});

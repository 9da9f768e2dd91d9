import { z } from "zod";
import { OllmError } from "./errors.js";

/** The system prompt used when none is given (as in oLLM). An empty string means no system message. */
export const DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant.";

/** Text content. */
export const TextPartSchema = z.strictObject({ type: z.literal("text"), text: z.string() });
/** An image: a file path, an http(s) URL or a data: URI. */
export const ImagePartSchema = z.strictObject({ type: z.literal("image"), image: z.string().min(1) });
/** Audio: a file path, an http(s) URL or a data: URI. */
export const AudioPartSchema = z.strictObject({ type: z.literal("audio"), audio: z.string().min(1) });

/** One part of a message's content. */
export const ContentPartSchema = z.discriminatedUnion("type", [
  TextPartSchema,
  ImagePartSchema,
  AudioPartSchema,
]);
/** One part of a message's content: text, image or audio. */
export type ContentPart = z.infer<typeof ContentPartSchema>;
/** The kind of a content part. */
export type ContentKind = ContentPart["type"];

/** Who wrote a message (`tool`: the result of a tool call, with `toolCallId`). */
export const MESSAGE_ROLES = ["system", "user", "assistant", "tool"] as const;
/** Who wrote a message. */
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/** A function call an assistant message asks for: `arguments` is the JSON text the model wrote. */
export const ToolCallSchema = z.strictObject({
  id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
});
/** A function call of an assistant message. */
export type ToolCall = z.infer<typeof ToolCallSchema>;

/**
 * A chat message: a role and its content parts, in order. Assistant messages may carry `toolCalls`; tool
 * messages name the call they answer with `toolCallId`.
 */
export const MessageSchema = z.strictObject({
  role: z.enum(MESSAGE_ROLES),
  content: z.array(ContentPartSchema),
  toolCalls: z.array(ToolCallSchema).optional(),
  toolCallId: z.string().optional(),
});
/** A chat message. */
export type Message = z.infer<typeof MessageSchema>;

/** A text part. */
export function textPart(text: string): ContentPart {
  return { type: "text", text };
}

/** An image part (a file path, an http(s) URL or a data: URI). */
export function imagePart(image: string): ContentPart {
  return { type: "image", image };
}

/** An audio part (a file path, an http(s) URL or a data: URI). */
export function audioPart(audio: string): ContentPart {
  return { type: "audio", audio };
}

/** A system message of text. */
export function systemMessage(text: string): Message {
  return { role: "system", content: [textPart(text)] };
}

/** A user message of text, or of parts. */
export function userMessage(content: string | ContentPart[]): Message {
  return { role: "user", content: typeof content === "string" ? [textPart(content)] : [...content] };
}

/** An assistant message of text. */
export function assistantMessage(text: string): Message {
  return { role: "assistant", content: [textPart(text)] };
}

/** The text of a message: its text parts joined. */
export function messageText(message: Message): string {
  return message.content.map((p) => (p.type === "text" ? p.text : "")).join("");
}

/** The kinds of non-text content in some messages. */
export function nonTextKinds(messages: readonly Message[]): ("image" | "audio")[] {
  const kinds = new Set<"image" | "audio">();
  for (const m of messages) for (const p of m.content) if (p.type !== "text") kinds.add(p.type);
  return [...kinds];
}

/** Checks content parts (at least one, each well formed); throws INVALID_ARGUMENT otherwise. */
export function validateParts(parts: readonly unknown[]): ContentPart[] {
  if (parts.length === 0)
    throw new OllmError("INVALID_ARGUMENT", "A prompt requires at least one content part");
  const result = z.array(ContentPartSchema).safeParse(parts);
  if (!result.success)
    throw new OllmError(
      "INVALID_ARGUMENT",
      `Invalid content part: ${result.error.issues.map((i) => `parts.${i.path.join(".")}: ${i.message}`).join("; ")}`,
      { hint: 'A part is {type:"text",text}, {type:"image",image} or {type:"audio",audio}.' },
    );
  return result.data;
}

/** Checks messages; throws INVALID_ARGUMENT naming each problem. */
export function validateMessages(messages: readonly unknown[]): Message[] {
  const result = z.array(MessageSchema).safeParse(messages);
  if (!result.success)
    throw new OllmError(
      "INVALID_ARGUMENT",
      `Invalid messages: ${result.error.issues.map((i) => `messages.${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  return result.data;
}

/** Version of the transcript format {@link TranscriptSchema} describes. */
export const TRANSCRIPT_VERSION = 1;

/** A saved chat session: its name, model, system prompt and messages. */
export const TranscriptSchema = z.object({
  format: z.literal("ollm-transcript"),
  version: z.literal(TRANSCRIPT_VERSION),
  sessionName: z.string(),
  modelReference: z.string(),
  systemPrompt: z.string(),
  messages: z.array(MessageSchema),
  /** ISO time of the save. */
  savedAt: z.string(),
});
/** A saved chat session. */
export type Transcript = z.infer<typeof TranscriptSchema>;

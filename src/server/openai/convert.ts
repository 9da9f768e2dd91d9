import type { GeneratedToken } from "../../runtime/executor.js";
import {
  audioPart,
  type ContentPart,
  imagePart,
  type Message,
  messageText,
  textPart,
} from "../../messages.js";
import type { PromptResponse } from "../../session.js";
import { ApiError } from "../errors.js";
import type { ChatMessageInput, ChatTool, ResponseInputItem } from "./schemas.js";

/**
 * Media a request may carry: data: URIs and http(s) URLs. A local path would let a remote client make
 * the server read its files, so paths are refused.
 */
export function mediaUrl(url: string, param: string): string {
  if (/^data:/i.test(url) || /^https?:\/\//i.test(url)) return url;
  throw new ApiError(400, `${param}: must be an http(s) URL or a data: URI`, {
    code: "invalid_request",
    param,
  });
}

/** Audio as a data: URI. */
export function audioDataUri(data: string, format: string): string {
  return `data:audio/${format};base64,${data}`;
}

function textOf(content: string | { text?: string; refusal?: string }[] | null | undefined): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content.map((p) => p.text ?? p.refusal ?? "").join("");
}

/** Chat completion messages as the client's messages (system/developer → system; tool results keep their call id). */
export function chatMessages(messages: ChatMessageInput[]): Message[] {
  return messages.map((m, i): Message => {
    switch (m.role) {
      case "system":
      case "developer":
        return { role: "system", content: [textPart(textOf(m.content))] };
      case "user": {
        if (typeof m.content === "string") return { role: "user", content: [textPart(m.content)] };
        const parts = m.content.map((p, j): ContentPart => {
          const param = `messages[${i}].content[${j}]`;
          if (p.type === "text") return textPart(p.text);
          if (p.type === "image_url")
            return imagePart(
              mediaUrl(typeof p.image_url === "string" ? p.image_url : p.image_url.url, `${param}.image_url`),
            );
          return audioPart(audioDataUri(p.input_audio.data, p.input_audio.format));
        });
        return { role: "user", content: parts.length ? parts : [textPart("")] };
      }
      case "assistant": {
        const message: Message = { role: "assistant", content: [textPart(textOf(m.content))] };
        if (m.tool_calls?.length)
          message.toolCalls = m.tool_calls.map((c) => ({
            id: c.id,
            name: c.function.name,
            arguments: c.function.arguments,
          }));
        return message;
      }
      default:
        return { role: "tool", content: [textPart(textOf(m.content))], toolCallId: m.tool_call_id };
    }
  });
}

/** Responses API input items as the client's messages. */
export function responseMessages(input: string | ResponseInputItem[]): Message[] {
  if (typeof input === "string") return [{ role: "user", content: [textPart(input)] }];
  const out: Message[] = [];
  input.forEach((item, i) => {
    if (item.type === "reasoning") return;
    if (item.type === "function_call") {
      const call = { id: item.call_id, name: item.name, arguments: item.arguments };
      // Calls of one turn join the assistant message before them.
      const last = out.at(-1);
      if (last?.role === "assistant") last.toolCalls = [...(last.toolCalls ?? []), call];
      else out.push({ role: "assistant", content: [textPart("")], toolCalls: [call] });
      return;
    }
    if (item.type === "function_call_output") {
      out.push({ role: "tool", content: [textPart(textOf(item.output))], toolCallId: item.call_id });
      return;
    }
    const role = item.role === "developer" ? "system" : item.role;
    if (typeof item.content === "string") {
      out.push({ role, content: [textPart(item.content)] });
      return;
    }
    const parts = item.content.map((p, j): ContentPart => {
      const param = `input[${i}].content[${j}]`;
      switch (p.type) {
        case "input_text":
        case "output_text":
          return textPart(p.text);
        case "refusal":
          return textPart(p.refusal);
        case "input_image":
          if (!p.image_url)
            throw new ApiError(400, `${param}.image_url: required (file ids are not supported)`, {
              code: "invalid_request",
              param: `${param}.image_url`,
            });
          return imagePart(mediaUrl(p.image_url, `${param}.image_url`));
        default:
          return audioPart(audioDataUri(p.input_audio.data, p.input_audio.format));
      }
    });
    out.push({ role, content: parts.length ? parts : [textPart("")] });
  });
  return out;
}

/** Tool definitions in the shape chat templates take (OpenAI's `{type: "function", function: {...}}`). */
export function templateTools(tools: ChatTool[]): unknown[] {
  return tools.map((t) => ({
    type: "function",
    function: {
      name: t.function.name,
      ...(t.function.description !== undefined ? { description: t.function.description } : {}),
      parameters: t.function.parameters ?? { type: "object", properties: {} },
    },
  }));
}

/** UTF-8 bytes of a token's text. */
function bytesOf(text: string): number[] {
  return [...Buffer.from(text, "utf8")];
}

/** The response's per-token log-probabilities in OpenAI's `logprobs.content` shape. */
export function logprobContent(tokens: readonly GeneratedToken[]) {
  return tokens.map((t) => ({
    token: t.text,
    logprob: t.logprob,
    bytes: bytesOf(t.text),
    top_logprobs: (t.topLogprobs ?? []).map((c) => ({
      token: c.text,
      logprob: c.logprob,
      bytes: bytesOf(c.text),
    })),
  }));
}

/** OpenAI usage counts of a response. */
export function chatUsage(response: PromptResponse) {
  return {
    prompt_tokens: response.usage.promptTokens,
    completion_tokens: response.usage.completionTokens,
    total_tokens: response.usage.totalTokens,
    prompt_tokens_details: { cached_tokens: response.usage.cachedPromptTokens },
  };
}

/** Whether a text holds one JSON value (response_format json_object). */
export function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** 400 unless some message holds the word "json", which OpenAI requires for json_object output. */
export function requireJsonMention(messages: Message[], subject: string, param: string): void {
  if (!messages.some((m) => /json/i.test(messageText(m))))
    throw new ApiError(
      400,
      `${subject} must contain the word 'json' in some form, to use '${param}' of type 'json_object'`,
      { code: "invalid_request", param },
    );
}

/** The 422 of a reply that was asked to be JSON and does not parse (undefined when it parses). */
export function invalidJsonReply(content: string, param: string): ApiError | undefined {
  const problem = jsonError(content);
  return problem === null
    ? undefined
    : new ApiError(422, `The model's reply is not valid JSON (${problem})`, {
        code: "invalid_json_output",
        param,
      });
}

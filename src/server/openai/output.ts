import type { PromptResponse } from "../../session.js";
import type { Generation } from "../generation.js";
import { newToolCallId } from "../ids.js";
import { parseToolCalls } from "../tool-calls.js";

/** A tool call as returned to clients. */
export interface OutputToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A finished reply as the OpenAI routes return it. */
export interface FinalOutput {
  content: string;
  reasoning: string | null;
  toolCalls: OutputToolCall[];
  /** OpenAI finish reason: a time limit or shutdown that cut the reply counts as `length`. */
  finishReason: "stop" | "length" | "tool_calls";
}

/** Whether a model writes the harmony format (gpt-oss): its content is the `final` channel. */
export function isHarmony(gen: Generation): boolean {
  return gen.runtime?.model.family === "gpt-oss";
}

/**
 * Content, reasoning and tool calls of a finished generation: with tools on, calls are parsed from the
 * raw output (special tokens included); gpt-oss replies are split into their channels.
 */
export function finalOutput(gen: Generation, response: PromptResponse, parseTools: boolean): FinalOutput {
  let content = response.text;
  let reasoning: string | null = null;
  let toolCalls: OutputToolCall[] = [];
  if (parseTools || isHarmony(gen)) {
    const parsed = parseToolCalls(gen.rawText());
    if (parseTools && parsed.toolCalls.length > 0) {
      const family = gen.runtime?.model.family;
      toolCalls = parsed.toolCalls.map((c) => ({ id: newToolCallId(family), ...c }));
      content = parsed.content;
      reasoning = parsed.reasoning;
    } else if (isHarmony(gen)) {
      content = parsed.content;
      reasoning = parsed.reasoning;
    }
  }
  const finishReason =
    toolCalls.length > 0 ? "tool_calls" : response.finishReason === "stop" ? "stop" : "length";
  return { content, reasoning, toolCalls, finishReason };
}

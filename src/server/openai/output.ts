import type { Message } from "../../messages.js";
import type { LoadedRuntime } from "../../runtime/loader.js";
import type { ChatOptions } from "../../client.js";
import type { PromptResponse } from "../../session.js";
import { ApiError } from "../errors.js";
import { type Generation, type ServerContext, startGeneration } from "../generation.js";
import type { Job } from "../jobs.js";
import type { ModelTarget } from "../models.js";
import { newToolCallId } from "../ids.js";
import { parseToolCalls } from "../tool-calls.js";
import { toolCallPrefix } from "../tool-prefix.js";

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
 * raw output (special tokens included, the generation prefix first); gpt-oss replies are split into
 * their channels. `oneCall` (`parallel_tool_calls: false`) keeps the first call only.
 */
export function finalOutput(
  gen: Generation,
  response: PromptResponse,
  parseTools: boolean,
  oneCall = false,
): FinalOutput {
  let content = response.text;
  let reasoning: string | null = null;
  let toolCalls: OutputToolCall[] = [];
  if (parseTools || isHarmony(gen)) {
    const parsed = parseToolCalls(gen.rawText());
    if (parseTools && parsed.toolCalls.length > 0) {
      const family = gen.runtime?.model.family;
      const calls = oneCall ? parsed.toolCalls.slice(0, 1) : parsed.toolCalls;
      toolCalls = calls.map((c) => ({ id: newToolCallId(family), ...c }));
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

/**
 * What `tool_choice` "required" or a named function demands of a reply: at least one call, each of one
 * of `names` (the offered tools, or the named function alone) with a JSON object as arguments.
 */
export interface ToolDemand {
  names: string[];
  /** True for a named function (the messages name it). */
  named: boolean;
}

/** The demand of a tool_choice over the tools offered to the template (none for "auto" / "none"). */
export function toolDemand(choice: unknown, offered: string[]): ToolDemand | undefined {
  if (offered.length === 0) return undefined;
  if (choice === "required") return { names: offered, named: false };
  if (typeof choice === "object" && choice !== null) return { names: offered, named: true };
  return undefined;
}

/**
 * The text to start the reply with for a demand: the opening of a call in the syntax the model's chat
 * template renders (see tool-prefix.ts); none without a demand or where the syntax is not known.
 */
export function demandPrefix(
  runtime: LoadedRuntime,
  tools: unknown[] | undefined,
  demand: ToolDemand | undefined,
): string | undefined {
  if (!demand || !tools) return undefined;
  const { tokenizer } = runtime;
  const stops = runtime.stopTokenIds.map((id) => tokenizer.decode([id], { skipSpecialTokens: false }));
  return toolCallPrefix(tokenizer, tools, stops, demand.named ? demand.names[0] : undefined);
}

/**
 * A chat generation of `messages` offering `tools` (chat completions and the Responses API), its reply
 * started with the opening of the call `demand` asks for (see demandPrefix).
 */
export function startChatGeneration(
  ctx: ServerContext,
  job: Job,
  target: ModelTarget,
  messages: Message[],
  options: Pick<ChatOptions, "generationConfig" | "tools"> & { demand: ToolDemand | undefined },
): Promise<Generation> {
  const { generationConfig, tools, demand } = options;
  return startGeneration(
    ctx,
    job,
    target,
    (signal, assistantPrefix) =>
      ctx.client.chat(messages, {
        runtimeConfig: target.runtimeConfig,
        generationConfig,
        tools,
        signal,
        assistantPrefix,
      }),
    (runtime) => demandPrefix(runtime, tools, demand),
  );
}

/**
 * The 422 of a reply that does not honour `tool_choice` (undefined when it does). The engine has no
 * constrained decoding, so a model may still answer in text: that is refused, not passed off as a reply.
 */
export function toolChoiceViolation(out: FinalOutput, demand: ToolDemand | undefined): ApiError | undefined {
  if (!demand) return undefined;
  const wanted = demand.named ? `names the function "${demand.names[0]}"` : 'is "required"';
  let problem: string | undefined;
  if (out.toolCalls.length === 0)
    problem =
      "the model answered with text instead of a tool call" +
      (out.finishReason === "length" ? " (its reply was cut at the token limit)" : "");
  else
    for (const call of out.toolCalls) {
      if (!demand.names.includes(call.name)) {
        problem = demand.named
          ? `the model called "${call.name}" instead`
          : `the model called "${call.name}", which is not among tools`;
        break;
      }
      if (!isJsonObject(call.arguments)) {
        problem = `the arguments of the model's call of "${call.name}" are not a JSON object`;
        break;
      }
    }
  if (!problem) return undefined;
  return new ApiError(422, `tool_choice ${wanted}, but ${problem}`, {
    code: "tool_choice_unsatisfied",
    param: "tool_choice",
    hint: 'The server steers the prompt and starts the reply with the call syntax where it knows it, but does not constrain decoding: retry (another seed or temperature), raise the token limit, or use tool_choice "auto" and handle text replies.',
  });
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

import type { FastifyInstance } from "fastify";
import { type GenerationConfigInput, validateGenerationConfig } from "../../config/generation-config.js";
import { type Message, textPart } from "../../messages.js";
import type { PromptResponse } from "../../session.js";
import { ApiError, parseBody, toApiError } from "../errors.js";
import { definedFields, type Generation, releaseOnClose, type ServerContext } from "../generation.js";
import { newId, unixSeconds } from "../ids.js";
import { Job } from "../jobs.js";
import type { RouteCatalog } from "../openapi.js";
import { sendSse, sseEvent } from "../sse.js";
import { ContentHoldback } from "../tool-calls.js";
import { logGeneration, toolsRequested } from "./chat.js";
import { jsonError, requireJsonMention, invalidJsonReply, responseMessages } from "./convert.js";
import {
  startChatGeneration,
  type FinalOutput,
  finalOutput,
  isHarmony,
  type ToolDemand,
  toolChoiceViolation,
  toolDemand,
} from "./output.js";
import {
  ResponseCreateRequestSchema,
  type ResponseCreateRequest,
  ResponseDeletedSchema,
  type ResponseObject,
  ResponseObjectSchema,
  type ResponseOutputItem,
  ResponseStreamEventSchema,
} from "./schemas.js";

interface Stored {
  response: ResponseObject;
  /** The conversation up to and including this response's output (instructions excluded), for chaining. */
  context: Message[];
}

/** Stored responses (store: true), oldest dropped beyond `capacity`. */
export class ResponseStore {
  readonly #items = new Map<string, Stored>();

  constructor(private readonly capacity: number) {}

  get(id: string): Stored | undefined {
    return this.#items.get(id);
  }

  put(id: string, item: Stored): void {
    this.#items.delete(id);
    this.#items.set(id, item);
    while (this.#items.size > this.capacity) this.#items.delete(this.#items.keys().next().value!);
  }

  delete(id: string): boolean {
    return this.#items.delete(id);
  }
}

function notFound(id: string, param: string | null = null): ApiError {
  return new ApiError(404, `No response with id '${id}' (it was not stored, was deleted, or expired)`, {
    code: "response_not_found",
    param,
  });
}

const FIELD_NAMES: Record<string, string> = {
  maxNewTokens: "max_output_tokens",
  temperature: "temperature",
  topP: "top_p",
  seed: "seed",
};

export function registerResponseRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  catalog: RouteCatalog,
  store: ResponseStore,
): void {
  catalog.add({
    method: "POST",
    url: "/v1/responses",
    operationId: "createResponse",
    tag: "OpenAI",
    summary: "Create a response (Responses API subset), streamed with stream: true",
    description:
      "input (text or message / function_call / function_call_output items), instructions, previous_response_id " +
      "chaining, store (default true), function tools and tool_choice (required/named: the reply is started on a call where the syntax is known, and checked: 422 tool_choice_unsatisfied), parallel_tool_calls, max_output_tokens, temperature, top_p, " +
      "text.format json_object. Streaming sends typed events (response.created … response.completed).",
    body: ResponseCreateRequestSchema,
    response: ResponseObjectSchema,
    events: { description: "Responses API stream events", schema: ResponseStreamEventSchema },
    errors: [404, 422, 429, 503],
  });
  catalog.add({
    method: "GET",
    url: "/v1/responses/:id",
    operationId: "getResponse",
    tag: "OpenAI",
    summary: "A stored response",
    response: ResponseObjectSchema,
    errors: [404],
  });
  catalog.add({
    method: "DELETE",
    url: "/v1/responses/:id",
    operationId: "deleteResponse",
    tag: "OpenAI",
    summary: "Delete a stored response",
    response: ResponseDeletedSchema,
    errors: [404],
  });

  app.get("/v1/responses/:id", async (request) => {
    const { id } = request.params as { id: string };
    const stored = store.get(id);
    if (!stored) throw notFound(id);
    return stored.response;
  });

  app.delete("/v1/responses/:id", async (request) => {
    const { id } = request.params as { id: string };
    if (!store.delete(id)) throw notFound(id);
    return { id, object: "response", deleted: true };
  });

  app.post("/v1/responses", async (request, reply) => {
    const body = parseBody(ResponseCreateRequestSchema, request.body);
    const target = await ctx.models.target(body.model);
    let context: Message[] = [];
    if (body.previous_response_id) {
      const previous = store.get(body.previous_response_id);
      if (!previous) throw notFound(body.previous_response_id, "previous_response_id");
      context = previous.context;
    }
    const input = responseMessages(body.input);
    const conversation = [...context, ...input];
    const messages: Message[] = [
      ...(body.instructions ? [{ role: "system" as const, content: [textPart(body.instructions)] }] : []),
      ...conversation,
    ];
    if (messages.length === 0)
      throw new ApiError(400, "input: must hold at least one item", {
        code: "invalid_request",
        param: "input",
      });
    const format = body.text?.format?.type ?? "text";
    const wantJson = format === "json_object" || format === "json_schema";
    if (format === "json_object") requireJsonMention(messages, "The input", "text.format");
    const choice = body.tool_choice ?? "auto";
    const toolsOn = await toolsRequested(ctx, target, body.tools, choice);
    // A named choice offers the template that function alone (steering the model toward it).
    const offered =
      toolsOn && body.tools
        ? body.tools.filter((t) => typeof choice !== "object" || t.name === choice.name)
        : [];
    const tools = offered.length
      ? offered.map((t) => ({
          type: "function",
          function: {
            name: t.name,
            ...(t.description ? { description: t.description } : {}),
            parameters: t.parameters ?? { type: "object", properties: {} },
          },
        }))
      : undefined;
    const demand = toolDemand(
      choice,
      offered.map((t) => t.name),
    );
    const oneCall = body.parallel_tool_calls === false;
    const generationConfig: GenerationConfigInput = {
      ...ctx.generationDefaults,
      ...definedFields({
        maxNewTokens: body.max_output_tokens ?? undefined,
        temperature: body.temperature,
        topP: body.top_p,
        seed: body.seed,
      }),
    };
    try {
      validateGenerationConfig(generationConfig);
    } catch (error) {
      throw toApiError(error, FIELD_NAMES);
    }

    const id = newId("resp_");
    const shell = responseShell(id, target.id, body);
    const save = (response: ResponseObject, out: FinalOutput) => {
      if (body.store === false) return;
      const reply: Message = { role: "assistant", content: [textPart(out.content)] };
      if (out.toolCalls.length)
        reply.toolCalls = out.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments }));
      store.put(id, { response, context: [...conversation, reply] });
    };

    const job = new Job(request, reply, ctx.config.requestTimeoutMs, ctx.shutdown);
    let gen: Generation | undefined;
    let handedOff = false;
    try {
      gen = await startChatGeneration(ctx, job, target, messages, { generationConfig, tools, demand });
      if (body.stream) {
        const first = await gen.next();
        handedOff = true;
        releaseOnClose(reply, gen);
        return sendSse(reply, streamEvents(gen, first, shell, { toolsOn, oneCall, demand, wantJson, save }));
      }
      const response = await gen.collect();
      const out = finalOutput(gen, response, toolsOn, oneCall);
      logGeneration(job, target.id, response.usage, out.finishReason);
      const violation = toolChoiceViolation(out, demand);
      if (violation) throw violation;
      if (wantJson && out.toolCalls.length === 0) {
        const invalid = invalidJsonReply(out.content, "text.format");
        if (invalid) throw invalid;
      }
      const result = completeResponse(shell, out, response);
      save(result, out);
      return reply.send(result);
    } finally {
      if (!handedOff) {
        await gen?.cancel();
        job.finish();
      }
    }
  });
}

/** The response object before output (status in_progress). */
function responseShell(id: string, model: string, body: ResponseCreateRequest): ResponseObject {
  return {
    id,
    object: "response",
    created_at: unixSeconds(),
    status: "in_progress",
    model,
    output: [],
    output_text: "",
    instructions: body.instructions ?? null,
    previous_response_id: body.previous_response_id ?? null,
    store: body.store !== false,
    temperature: body.temperature ?? null,
    top_p: body.top_p ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    tools: body.tools ?? [],
    tool_choice: body.tool_choice ?? "auto",
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    text: { format: body.text?.format ?? { type: "text" } },
    metadata: body.metadata ?? {},
    incomplete_details: null,
    error: null,
    truncation: "disabled",
    reasoning: { effort: null, summary: null },
    user: body.user ?? null,
    usage: null,
  };
}

/** Output items of a finished reply, with stable ids. */
function outputItems(
  out: FinalOutput,
  ids: { message: string; reasoning: string; calls: string[] },
  incomplete: boolean,
) {
  const items: ResponseOutputItem[] = [];
  if (out.reasoning)
    items.push({
      type: "reasoning",
      id: ids.reasoning,
      summary: [],
      content: [{ type: "reasoning_text", text: out.reasoning }],
    });
  if (out.content !== "" || out.toolCalls.length === 0)
    items.push({
      type: "message",
      id: ids.message,
      status: incomplete ? "incomplete" : "completed",
      role: "assistant",
      content: [{ type: "output_text", text: out.content, annotations: [] }],
    });
  out.toolCalls.forEach((c, i) => {
    items.push({
      type: "function_call",
      id: ids.calls[i],
      call_id: c.id,
      name: c.name,
      arguments: c.arguments,
      status: "completed",
    });
  });
  return items;
}

function usageOf(response: PromptResponse): ResponseObject["usage"] {
  return {
    input_tokens: response.usage.promptTokens,
    input_tokens_details: { cached_tokens: response.usage.cachedPromptTokens },
    output_tokens: response.usage.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: response.usage.totalTokens,
  };
}

function completeResponse(
  shell: ResponseObject,
  out: FinalOutput,
  response: PromptResponse,
  ids = { message: newId("msg_"), reasoning: newId("rs_"), calls: out.toolCalls.map(() => newId("fc_")) },
): ResponseObject {
  const incomplete = out.finishReason === "length";
  return {
    ...shell,
    status: incomplete ? "incomplete" : "completed",
    incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
    output: outputItems(out, ids, incomplete),
    output_text: out.content,
    usage: usageOf(response),
  };
}

async function* streamEvents(
  gen: Generation,
  first: Awaited<ReturnType<Generation["next"]>>,
  shell: ResponseObject,
  o: {
    toolsOn: boolean;
    oneCall: boolean;
    demand: ToolDemand | undefined;
    wantJson: boolean;
    save: (response: ResponseObject, out: FinalOutput) => void;
  },
): AsyncGenerator<string> {
  let seq = 0;
  const event = (type: string, fields: Record<string, unknown>) =>
    sseEvent({ type, sequence_number: seq++, ...fields }, type);
  const messageId = newId("msg_");
  let messageOpen = false;
  let text = "";
  const openMessage = function* (index: number) {
    if (messageOpen) return;
    messageOpen = true;
    yield event("response.output_item.added", {
      output_index: index,
      item: { type: "message", id: messageId, status: "in_progress", role: "assistant", content: [] },
    });
    yield event("response.content_part.added", {
      item_id: messageId,
      output_index: index,
      content_index: 0,
      part: { type: "output_text", text: "", annotations: [] },
    });
  };
  const deltaEvent = (delta: string, index: number) =>
    event("response.output_text.delta", {
      item_id: messageId,
      output_index: index,
      content_index: 0,
      delta,
      logprobs: [],
    });
  try {
    yield event("response.created", { response: shell });
    yield event("response.in_progress", { response: shell });
    // gpt-oss: everything is held (its channels are split at the end), so no item opens before the end;
    // so is a reply that must be a tool call (text would be refused).
    const holdAll = isHarmony(gen) || o.demand !== undefined;
    const holdback = o.toolsOn || holdAll ? new ContentHoldback(holdAll) : undefined;
    for (let d = first; d; d = await gen.next()) {
      const piece = holdback ? holdback.push(d.text) : d.text;
      if (!piece) continue;
      yield* openMessage(0);
      text += piece;
      yield deltaEvent(piece, 0);
    }
    const response = await gen.stream.response;
    const out = finalOutput(gen, response, o.toolsOn, o.oneCall);
    logGeneration(gen.job, shell.model, response.usage, out.finishReason);
    const violation = toolChoiceViolation(out, o.demand);
    if (violation) {
      const error = { code: violation.code ?? "tool_choice_unsatisfied", message: violation.message };
      yield event("response.failed", {
        response: { ...shell, status: "failed", error, usage: usageOf(response) },
      });
      return;
    }
    // With calls, the text already streamed is the message (all of it, when none was streamed); without,
    // the whole content (it extends the streamed text).
    const final: FinalOutput = out.toolCalls.length ? { ...out, content: text || out.content } : out;
    const calls = out.toolCalls.map(() => newId("fc_"));
    const result = completeResponse(shell, final, response, {
      message: messageId,
      reasoning: newId("rs_"),
      calls,
    });
    let index = 0;
    for (const item of result.output) {
      if (item.type === "message") {
        const part = item.content[0];
        yield* openMessage(index);
        const missing = part.text.startsWith(text) ? part.text.slice(text.length) : "";
        if (missing) yield deltaEvent(missing, index);
        yield event("response.output_text.done", {
          item_id: item.id,
          output_index: index,
          content_index: 0,
          text: part.text,
          logprobs: [],
        });
        yield event("response.content_part.done", {
          item_id: item.id,
          output_index: index,
          content_index: 0,
          part,
        });
        yield event("response.output_item.done", { output_index: index, item });
      } else if (item.type === "function_call") {
        yield event("response.output_item.added", {
          output_index: index,
          item: { ...item, arguments: "", status: "in_progress" },
        });
        yield event("response.function_call_arguments.delta", {
          item_id: item.id,
          output_index: index,
          delta: item.arguments,
        });
        yield event("response.function_call_arguments.done", {
          item_id: item.id,
          output_index: index,
          name: item.name,
          arguments: item.arguments,
        });
        yield event("response.output_item.done", { output_index: index, item });
      } else {
        yield event("response.output_item.added", { output_index: index, item });
        yield event("response.output_item.done", { output_index: index, item });
      }
      index++;
    }
    if (o.wantJson && out.toolCalls.length === 0) {
      const problem = jsonError(final.content);
      if (problem) {
        const failed: ResponseObject = {
          ...result,
          status: "failed",
          error: { code: "invalid_json_output", message: `The model's reply is not valid JSON (${problem})` },
        };
        yield event("response.failed", { response: failed });
        return;
      }
    }
    o.save(result, final);
    yield event(result.status === "incomplete" ? "response.incomplete" : "response.completed", {
      response: result,
    });
  } catch (error) {
    const e = toApiError(error);
    if (e.status >= 500) gen.job.request.log.error({ err: error }, "stream failed");
    yield event("error", { code: e.code, message: e.message, param: e.param });
  } finally {
    await gen.cancel();
    gen.job.finish();
  }
}

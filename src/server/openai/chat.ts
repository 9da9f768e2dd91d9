import type { FastifyInstance } from "fastify";
import { type GenerationConfigInput, validateGenerationConfig } from "../../config/generation-config.js";
import type { GeneratedToken } from "../../runtime/executor.js";
import { ApiError, parseBody, toApiError } from "../errors.js";
import {
  definedFields,
  type Generation,
  releaseOnClose,
  OPENAI_FIELD_NAMES,
  type ServerContext,
} from "../generation.js";
import { newId, unixSeconds } from "../ids.js";
import { Job } from "../jobs.js";
import type { ModelTarget } from "../models.js";
import type { RouteCatalog } from "../openapi.js";
import { sendSse, sseEvent } from "../sse.js";
import { ContentHoldback } from "../tool-calls.js";
import {
  chatMessages,
  chatUsage,
  invalidJsonReply,
  logprobContent,
  requireJsonMention,
  templateTools,
} from "./convert.js";
import {
  startChatGeneration,
  finalOutput,
  isHarmony,
  type ToolDemand,
  toolChoiceViolation,
  toolDemand,
} from "./output.js";
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  ChatCompletionChunkSchema,
  type ChatCompletionRequest,
  ChatCompletionRequestSchema,
  ChatCompletionSchema,
} from "./schemas.js";

/** Generation settings of a chat completion request over the server's defaults (400 naming the field). */
export function chatGenerationConfig(ctx: ServerContext, body: ChatCompletionRequest): GenerationConfigInput {
  const config: GenerationConfigInput = {
    ...ctx.generationDefaults,
    ...definedFields({
      maxNewTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
      temperature: body.temperature,
      topP: body.top_p,
      seed: body.seed,
      stop: typeof body.stop === "string" ? [body.stop] : body.stop,
      logprobs: body.logprobs,
      topLogprobs: body.top_logprobs,
    }),
  };
  try {
    validateGenerationConfig(config);
  } catch (error) {
    throw toApiError(error, OPENAI_FIELD_NAMES);
  }
  return config;
}

/**
 * Whether a request turns tools on (some given, tool_choice not "none"); 400 when it does and the
 * model's chat template cannot render them.
 */
export async function toolsRequested(
  ctx: ServerContext,
  target: ModelTarget,
  tools: readonly unknown[] | null | undefined,
  choice: unknown,
): Promise<boolean> {
  const on = (tools?.length ?? 0) > 0 && choice !== "none";
  if (on && target.resolved.materialized && !(await ctx.models.templateHasTools(target.resolved)))
    throw new ApiError(
      400,
      `The chat template of ${target.id} does not render tools, so the model cannot call them`,
      {
        code: "tools_not_supported",
        param: "tools",
        hint: "Use a model whose chat template supports tools, or leave `tools` out.",
      },
    );
  return on;
}

export function registerChatRoutes(app: FastifyInstance, ctx: ServerContext, catalog: RouteCatalog): void {
  catalog.add({
    method: "POST",
    url: "/v1/chat/completions",
    operationId: "createChatCompletion",
    tag: "OpenAI",
    summary: "Chat completion (OpenAI-compatible), streamed with stream: true",
    description:
      "Messages with text, image_url and input_audio parts; max_tokens/max_completion_tokens, temperature, top_p, " +
      "seed, stop, logprobs/top_logprobs, tools/tool_choice (calls parsed from the model's output; " +
      '"required" / a named function start the reply with the template\'s call syntax where it is known, and ' +
      "a reply that does not honour them is 422 tool_choice_unsatisfied), parallel_tool_calls (false: the first call only), " +
      "response_format json_object (the reply is checked to be JSON; 422 otherwise). frequency_penalty and " +
      "presence_penalty are accepted and ignored. Streaming sends chat.completion.chunk events then `data: [DONE]`.",
    body: ChatCompletionRequestSchema,
    response: ChatCompletionSchema,
    events: { description: "chat.completion.chunk objects, then [DONE]", schema: ChatCompletionChunkSchema },
    errors: [404, 422, 429, 503],
  });

  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(ChatCompletionRequestSchema, request.body);
    const target = await ctx.models.target(body.model);
    const messages = chatMessages(body.messages);
    if (body.response_format?.type === "json_object")
      requireJsonMention(messages, "'messages'", "response_format");
    const choice = body.tool_choice ?? "auto";
    const toolsOn = await toolsRequested(ctx, target, body.tools, choice);
    // A named choice offers the template that function alone (steering the model toward it).
    const offered =
      toolsOn && body.tools
        ? typeof choice === "object"
          ? body.tools.filter((t) => t.function.name === choice.function.name)
          : body.tools
        : [];
    const tools = offered.length ? templateTools(offered) : undefined;
    const demand = toolDemand(
      choice,
      offered.map((t) => t.function.name),
    );
    const oneCall = body.parallel_tool_calls === false;
    const generationConfig = chatGenerationConfig(ctx, body);
    const wantJson =
      body.response_format?.type === "json_object" || body.response_format?.type === "json_schema";

    const job = new Job(request, reply, ctx.config.requestTimeoutMs, ctx.shutdown);
    let gen: Generation | undefined;
    let handedOff = false;
    try {
      gen = await startChatGeneration(ctx, job, target, messages, { generationConfig, tools, demand });
      const id = newId("chatcmpl-");
      const created = unixSeconds();
      if (body.stream) {
        // The first token comes before the headers: errors until then are plain HTTP errors.
        const first = await gen.next();
        handedOff = true;
        releaseOnClose(reply, gen);
        return sendSse(
          reply,
          streamChunks(gen, first, {
            id,
            created,
            model: target.id,
            toolsOn,
            oneCall,
            demand,
            wantJson,
            body,
          }),
        );
      }
      const response = await gen.collect();
      const out = finalOutput(gen, response, toolsOn, oneCall);
      logGeneration(job, target.id, response.usage, out.finishReason);
      const violation = toolChoiceViolation(out, demand);
      if (violation) throw violation;
      if (wantJson && out.toolCalls.length === 0) {
        const invalid = invalidJsonReply(out.content, "response_format");
        if (invalid) throw invalid;
      }
      const completion: ChatCompletion = {
        id,
        object: "chat.completion",
        created,
        model: target.id,
        system_fingerprint: null,
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: out.toolCalls.length > 0 && out.content === "" ? null : out.content,
              refusal: null,
              ...(out.toolCalls.length
                ? {
                    tool_calls: out.toolCalls.map((c) => ({
                      id: c.id,
                      type: "function" as const,
                      function: { name: c.name, arguments: c.arguments },
                    })),
                  }
                : {}),
              ...(out.reasoning ? { reasoning_content: out.reasoning } : {}),
            },
            logprobs: response.logprobs
              ? { content: logprobContent(response.logprobs), refusal: null }
              : null,
            finish_reason: out.finishReason,
          },
        ],
        usage: chatUsage(response),
      };
      return reply.send(completion);
    } finally {
      if (!handedOff) {
        await gen?.cancel();
        job.finish();
      }
    }
  });
}

/** Logs one finished generation (structured, with the request's id). */
export function logGeneration(
  job: Job,
  model: string,
  usage: { promptTokens: number; completionTokens: number },
  finishReason: string,
): void {
  job.request.log.info(
    {
      model,
      queueMs: Math.round(job.queueMs),
      ms: Math.round(performance.now() - job.startedAt),
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      finishReason,
      stopped: job.reason,
    },
    "generation finished",
  );
}

interface ChunkOptions {
  id: string;
  created: number;
  model: string;
  toolsOn: boolean;
  /** parallel_tool_calls: false — the first call only. */
  oneCall: boolean;
  /** tool_choice "required" / named: the reply is held whole, and refused unless it is such a call. */
  demand: ToolDemand | undefined;
  wantJson: boolean;
  body: ChatCompletionRequest;
}

async function* streamChunks(
  gen: Generation,
  first: Awaited<ReturnType<Generation["next"]>>,
  o: ChunkOptions,
): AsyncGenerator<string> {
  const includeUsage = o.body.stream_options?.include_usage === true;
  const wantLogprobs = o.body.logprobs === true;
  const chunk = (
    delta: ChatCompletionChunk["choices"][number]["delta"],
    finish: ChatCompletionChunk["choices"][number]["finish_reason"] = null,
    logprobs: GeneratedToken[] = [],
  ): string => {
    const value: ChatCompletionChunk = {
      id: o.id,
      object: "chat.completion.chunk",
      created: o.created,
      model: o.model,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          delta,
          logprobs:
            wantLogprobs && logprobs.length ? { content: logprobContent(logprobs), refusal: null } : null,
          finish_reason: finish,
        },
      ],
      ...(includeUsage ? { usage: null } : {}),
    };
    return sseEvent(value);
  };
  try {
    yield chunk({ role: "assistant", content: "" });
    const holdAll = isHarmony(gen) || o.demand !== undefined;
    const holdback = o.toolsOn || holdAll ? new ContentHoldback(holdAll) : undefined;
    let pending: GeneratedToken[] = [];
    for (let d = first; d; d = await gen.next()) {
      const text = holdback ? holdback.push(d.text) : d.text;
      if (wantLogprobs && d.token) pending.push(d.token);
      if (text || (pending.length && !holdback?.holding)) {
        yield chunk({ content: text }, null, pending);
        pending = [];
      }
    }
    const response = await gen.stream.response;
    const out = finalOutput(gen, response, o.toolsOn, o.oneCall);
    logGeneration(gen.job, o.model, response.usage, out.finishReason);
    const violation = toolChoiceViolation(out, o.demand);
    if (violation) throw violation;
    // Text before the calls that was held back (a held-whole reply) goes out first, as without streaming.
    if (out.toolCalls.length > 0 && out.content && holdback?.sent === "")
      yield chunk({ content: out.content });
    if (out.toolCalls.length > 0)
      yield chunk({
        tool_calls: out.toolCalls.map((c, index) => ({
          index,
          id: c.id,
          type: "function" as const,
          function: { name: c.name, arguments: c.arguments },
        })),
      });
    else if (holdback) {
      // Nothing was a tool call: the held text is content (for gpt-oss, the final channel).
      const rest = isHarmony(gen) ? out.content : holdback.held;
      if (rest || pending.length) yield chunk({ content: rest }, null, pending);
    }
    if (o.wantJson && out.toolCalls.length === 0) {
      const invalid = invalidJsonReply(out.content, "response_format");
      if (invalid) yield sseEvent(invalid.body());
    }
    yield chunk({}, out.finishReason);
    if (includeUsage)
      yield sseEvent({
        id: o.id,
        object: "chat.completion.chunk",
        created: o.created,
        model: o.model,
        system_fingerprint: null,
        choices: [],
        usage: chatUsage(response),
      });
    yield sseEvent("[DONE]");
  } catch (error) {
    const apiError = toApiError(error);
    if (apiError.status >= 500) gen.job.request.log.error({ err: error }, "stream failed");
    yield sseEvent(apiError.body());
  } finally {
    await gen.cancel();
    gen.job.finish();
  }
}

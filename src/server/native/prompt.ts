import type { FastifyInstance } from "fastify";
import type { GenerationConfigInput } from "../../config/generation-config.js";
import { ConfigError } from "../../config/validation.js";
import { DEFAULT_SYSTEM_PROMPT, type Message, systemMessage, userMessage } from "../../messages.js";
import { PlanDescriptionSchema } from "../../runtime/plan.js";
import { ApiError, parseBody, toApiError } from "../errors.js";
import type { ServerContext } from "../generation.js";
import type { RouteCatalog } from "../openapi.js";
import { nativeMessages, nativeParts, runNative } from "./run.js";
import {
  NativeResponseSchema,
  NativeStreamEventSchema,
  PlanRequestSchema,
  PromptRequestSchema,
} from "./schemas.js";

/** Runtime config fields a request may not set: where files are read and written stays the server's. */
const SERVER_ONLY_FIELDS = ["modelReference", "modelsDir", "cacheDir"];

/** The request's own generation fields (validated by its schema) over the server's defaults. */
export function mergeGeneration(
  ctx: ServerContext,
  raw: unknown,
  base: GenerationConfigInput = ctx.generationDefaults,
): GenerationConfigInput {
  const own = (raw as { generation?: GenerationConfigInput } | null)?.generation;
  return { ...base, ...(own ?? {}) };
}

export function registerNativePromptRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  catalog: RouteCatalog,
): void {
  catalog.add({
    method: "POST",
    url: "/v1/plan",
    operationId: "describePlan",
    tag: "Native",
    summary:
      "How a model would run here (describePlan): normalized config, resolved model, plan with reasons",
    body: PlanRequestSchema,
    response: PlanDescriptionSchema,
    errors: [404, 422, 501, 503],
  });
  app.post("/v1/plan", async (request) => {
    const body = parseBody(PlanRequestSchema, request.body);
    for (const field of SERVER_ONLY_FIELDS)
      if (body.runtimeConfig && field in body.runtimeConfig)
        throw new ApiError(
          400,
          `runtimeConfig.${field}: set by the server (use \`model\` to pick the model)`,
          {
            code: "invalid_request",
            param: `runtimeConfig.${field}`,
          },
        );
    const target = await ctx.models.target(body.model);
    try {
      return await ctx.client.describePlan({ ...target.runtimeConfig, ...body.runtimeConfig });
    } catch (error) {
      if (error instanceof ConfigError) {
        const field = error.violations[0]?.field;
        throw new ApiError(400, error.message, {
          code: "invalid_config",
          param: field ? `runtimeConfig.${field}` : "runtimeConfig",
          hint: error.hint,
        });
      }
      throw toApiError(error);
    }
  });

  const promptDoc = {
    tag: "Native",
    body: PromptRequestSchema,
    errors: [404, 422, 429, 503],
  };
  catalog.add({
    ...promptDoc,
    method: "POST",
    url: "/v1/prompt",
    operationId: "prompt",
    summary: "One prompt (with optional system prompt and history), whole reply",
    response: NativeResponseSchema,
  });
  catalog.add({
    ...promptDoc,
    method: "POST",
    url: "/v1/prompt/stream",
    operationId: "promptStream",
    summary: "One prompt, streamed as server-sent events: progress, delta, done, error",
    description:
      "`event: progress` ({type: queued, position} and runtime events: load-start, load-done, prefill, first-token, " +
      "status, download), `event: delta` ({text}, plus `token` when logprobs are asked for), `event: done` (the " +
      "whole response), `event: error` ({error, status}). A full queue answers 429 before the stream starts.",
    events: { description: "progress / delta / done / error", schema: NativeStreamEventSchema },
  });

  const prompt =
    (stream: boolean) =>
    async (request: import("fastify").FastifyRequest, reply: import("fastify").FastifyReply) => {
      const body = parseBody(PromptRequestSchema, request.body);
      const target = await ctx.models.target(body.model);
      const system = body.system ?? DEFAULT_SYSTEM_PROMPT;
      const messages: Message[] = [
        ...(system ? [systemMessage(system)] : []),
        ...nativeMessages(body.history ?? [], "history"),
        userMessage(nativeParts(body.prompt, "prompt")),
      ];
      const generationConfig = mergeGeneration(ctx, request.body);
      return runNative(ctx, request, reply, {
        target,
        stream,
        tokens: generationConfig.logprobs === true,
        start: (signal, sink) =>
          ctx.client.chat(messages, { runtimeConfig: target.runtimeConfig, generationConfig, signal, sink }),
      });
    };
  app.post("/v1/prompt", prompt(false));
  app.post("/v1/prompt/stream", prompt(true));
}

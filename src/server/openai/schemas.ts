/**
 * OpenAI-compatible request and response schemas (the subset this server implements). Requests are
 * loose objects — fields of the OpenAI API this server does not use are accepted and ignored — but every
 * field it reads is validated, and a violation names the field.
 */
import { z } from "zod";
import { MAX_TOP_LOGPROBS } from "../../config/generation-config.js";

// ---- shared ---------------------------------------------------------------------------------------------

/** `stop`: one string or up to 16. */
export const StopSchema = z
  .union([
    z.string().min(1, "cannot be empty"),
    z.array(z.string().min(1, "cannot be empty")).max(16, "at most 16 stop strings"),
  ])
  .nullish();

/** A function tool definition (chat completions). */
export const ChatToolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1–64 letters, digits, underscores, dots or dashes"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});
export type ChatTool = z.infer<typeof ChatToolSchema>;

/** `tool_choice` of chat completions. */
export const ChatToolChoiceSchema = z
  .union([
    z.enum(["none", "auto", "required"]),
    z.object({ type: z.literal("function"), function: z.object({ name: z.string().min(1) }) }),
  ])
  .nullish();

const TemperatureSchema = z.number().min(0, "must be in [0, 2]").max(2, "must be in [0, 2]").nullish();
const TopPSchema = z.number().gt(0, "must be in (0, 1]").max(1, "must be in (0, 1]").nullish();
const MaxTokensSchema = z.number().int("must be an integer").min(1, "must be an integer ≥ 1").nullish();
const SeedSchema = z.number().int("must be an integer").nullish();

// ---- chat completions: request --------------------------------------------------------------------------

export const ChatTextPartSchema = z.object({ type: z.literal("text"), text: z.string() });
export const ChatImagePartSchema = z.object({
  type: z.literal("image_url"),
  image_url: z.union([
    z.string().min(1),
    z.object({ url: z.string().min(1), detail: z.enum(["auto", "low", "high"]).optional() }),
  ]),
});
export const ChatAudioPartSchema = z.object({
  type: z.literal("input_audio"),
  input_audio: z.object({ data: z.string().min(1), format: z.string().min(1) }),
});
const RefusalPartSchema = z.object({ type: z.literal("refusal"), refusal: z.string() });

export const ChatContentPartSchema = z.discriminatedUnion("type", [
  ChatTextPartSchema,
  ChatImagePartSchema,
  ChatAudioPartSchema,
]);

const TextContentSchema = z.union([z.string(), z.array(ChatTextPartSchema)]);

export const ChatToolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
});

export const ChatMessageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: TextContentSchema, name: z.string().optional() }),
  z.object({ role: z.literal("developer"), content: TextContentSchema, name: z.string().optional() }),
  z.object({
    role: z.literal("user"),
    content: z.union([z.string(), z.array(ChatContentPartSchema)]),
    name: z.string().optional(),
  }),
  z.object({
    role: z.literal("assistant"),
    content: z.union([z.string(), z.array(z.union([ChatTextPartSchema, RefusalPartSchema]))]).nullish(),
    tool_calls: z.array(ChatToolCallSchema).nullish(),
    refusal: z.string().nullish(),
    name: z.string().optional(),
  }),
  z.object({ role: z.literal("tool"), content: TextContentSchema, tool_call_id: z.string().min(1) }),
]);
export type ChatMessageInput = z.infer<typeof ChatMessageSchema>;

export const ResponseFormatSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: z.string().min(1),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullish(),
        description: z.string().optional(),
      }),
    }),
  ])
  .nullish();

export const ChatCompletionRequestSchema = z
  .object({
    model: z
      .string()
      .optional()
      .describe("A model id of /v1/models or any model reference; default: the server's model"),
    messages: z.array(ChatMessageSchema).min(1, "must hold at least one message"),
    max_tokens: MaxTokensSchema,
    max_completion_tokens: MaxTokensSchema,
    temperature: TemperatureSchema,
    top_p: TopPSchema,
    seed: SeedSchema,
    stop: StopSchema,
    n: z.number().int().min(1).max(1, "only n = 1 is supported").nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z
      .number()
      .int("must be an integer")
      .min(0, `must be in [0, ${MAX_TOP_LOGPROBS}]`)
      .max(MAX_TOP_LOGPROBS, `must be in [0, ${MAX_TOP_LOGPROBS}]`)
      .nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
    tools: z.array(ChatToolSchema).max(128, "at most 128 tools").nullish(),
    tool_choice: ChatToolChoiceSchema,
    parallel_tool_calls: z.boolean().nullish(),
    response_format: ResponseFormatSchema,
    frequency_penalty: z.number().min(-2).max(2).nullish().describe("Accepted and ignored"),
    presence_penalty: z.number().min(-2).max(2).nullish().describe("Accepted and ignored"),
    user: z.string().nullish(),
  })
  .superRefine((body, ctx) => {
    if (body.top_logprobs && !body.logprobs)
      ctx.addIssue({ code: "custom", path: ["top_logprobs"], message: "needs logprobs: true" });
    const choice = body.tool_choice;
    if (choice && typeof choice === "object") {
      if (!body.tools?.some((t) => t.function.name === choice.function.name))
        ctx.addIssue({
          code: "custom",
          path: ["tool_choice"],
          message: `names the function "${choice.function.name}", which is not among tools`,
        });
    } else if (choice === "required" && !body.tools?.length)
      ctx.addIssue({ code: "custom", path: ["tool_choice"], message: '"required" needs tools' });
  });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

// ---- chat completions: response -------------------------------------------------------------------------

const TopLogprobSchema = z.object({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.number()).nullable(),
});
export const LogprobContentSchema = TopLogprobSchema.extend({ top_logprobs: z.array(TopLogprobSchema) });

export const UsageSchema = z.object({
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int(),
  prompt_tokens_details: z.object({ cached_tokens: z.number().int() }),
});

export const FinishReasonSchema = z.enum(["stop", "length", "tool_calls"]);

const ToolCallOutSchema = z.object({
  id: z.string(),
  type: z.literal("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export const ChatCompletionSchema = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({
        role: z.literal("assistant"),
        content: z.string().nullable(),
        refusal: z.null(),
        tool_calls: z.array(ToolCallOutSchema).optional(),
        reasoning_content: z.string().optional(),
      }),
      logprobs: z.object({ content: z.array(LogprobContentSchema), refusal: z.null() }).nullable(),
      finish_reason: FinishReasonSchema,
    }),
  ),
  usage: UsageSchema,
});
export type ChatCompletion = z.infer<typeof ChatCompletionSchema>;

export const ChatCompletionChunkSchema = z.object({
  id: z.string(),
  object: z.literal("chat.completion.chunk"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      delta: z.object({
        role: z.literal("assistant").optional(),
        content: z.string().nullable().optional(),
        tool_calls: z.array(ToolCallOutSchema.extend({ index: z.number().int() })).optional(),
      }),
      logprobs: z.object({ content: z.array(LogprobContentSchema), refusal: z.null() }).nullable(),
      finish_reason: FinishReasonSchema.nullable(),
    }),
  ),
  usage: UsageSchema.nullable().optional(),
});
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunkSchema>;

// ---- models ---------------------------------------------------------------------------------------------

export const ModelObjectSchema = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.number().int(),
  owned_by: z.string(),
});
export const ModelListSchema = z.object({ object: z.literal("list"), data: z.array(ModelObjectSchema) });

// ---- errors ---------------------------------------------------------------------------------------------

export const ErrorBodySchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
    hint: z.string().optional(),
  }),
});

// ---- responses API: request ----------------------------------------------------------------------------

const InputTextSchema = z.object({ type: z.literal("input_text"), text: z.string() });
const OutputTextSchema = z.object({ type: z.literal("output_text"), text: z.string() });
const InputImageSchema = z.object({
  type: z.literal("input_image"),
  image_url: z.string().min(1).nullish(),
  file_id: z.string().nullish(),
  detail: z.enum(["auto", "low", "high"]).optional(),
});
const InputAudioSchema = z.object({
  type: z.literal("input_audio"),
  input_audio: z.object({ data: z.string().min(1), format: z.string().min(1) }),
});

export const ResponseInputItemSchema = z.union([
  z.object({
    type: z.literal("message").optional(),
    role: z.enum(["user", "system", "developer", "assistant"]),
    content: z.union([
      z.string(),
      z.array(
        z.discriminatedUnion("type", [
          InputTextSchema,
          OutputTextSchema,
          InputImageSchema,
          InputAudioSchema,
          RefusalPartSchema,
        ]),
      ),
    ]),
    id: z.string().optional(),
    status: z.string().optional(),
  }),
  z.object({
    type: z.literal("function_call"),
    call_id: z.string().min(1),
    name: z.string().min(1),
    arguments: z.string(),
    id: z.string().optional(),
    status: z.string().optional(),
  }),
  z.object({
    type: z.literal("function_call_output"),
    call_id: z.string().min(1),
    output: z.union([z.string(), z.array(InputTextSchema)]),
    id: z.string().optional(),
    status: z.string().optional(),
  }),
  z.object({ type: z.literal("reasoning") }).loose(),
]);
export type ResponseInputItem = z.infer<typeof ResponseInputItemSchema>;

export const ResponseToolSchema = z.object({
  type: z.literal("function"),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1–64 letters, digits, underscores, dots or dashes"),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

export const ResponseToolChoiceSchema = z
  .union([
    z.enum(["none", "auto", "required"]),
    z.object({ type: z.literal("function"), name: z.string().min(1) }),
  ])
  .nullish();

export const ResponseCreateRequestSchema = z
  .object({
    model: z.string().optional(),
    input: z.union([z.string(), z.array(ResponseInputItemSchema)]),
    instructions: z.string().nullish(),
    previous_response_id: z.string().nullish(),
    store: z.boolean().nullish(),
    stream: z.boolean().nullish(),
    tools: z.array(ResponseToolSchema).max(128, "at most 128 tools").nullish(),
    tool_choice: ResponseToolChoiceSchema,
    parallel_tool_calls: z.boolean().nullish(),
    max_output_tokens: MaxTokensSchema,
    temperature: TemperatureSchema,
    top_p: TopPSchema,
    seed: SeedSchema,
    metadata: z.record(z.string(), z.string()).nullish(),
    text: z
      .object({
        format: z
          .discriminatedUnion("type", [
            z.object({ type: z.literal("text") }),
            z.object({ type: z.literal("json_object") }),
            z.object({
              type: z.literal("json_schema"),
              name: z.string().optional(),
              schema: z.record(z.string(), z.unknown()).optional(),
              strict: z.boolean().nullish(),
            }),
          ])
          .optional(),
      })
      .nullish(),
    user: z.string().nullish(),
  })
  .superRefine((body, ctx) => {
    const choice = body.tool_choice;
    if (choice && typeof choice === "object" && !body.tools?.some((t) => t.name === choice.name))
      ctx.addIssue({
        code: "custom",
        path: ["tool_choice"],
        message: `names the function "${choice.name}", which is not among tools`,
      });
    else if (choice === "required" && !body.tools?.length)
      ctx.addIssue({ code: "custom", path: ["tool_choice"], message: '"required" needs tools' });
    if (Array.isArray(body.input) && body.input.length === 0 && !body.previous_response_id)
      ctx.addIssue({ code: "custom", path: ["input"], message: "must hold at least one item" });
  });
export type ResponseCreateRequest = z.infer<typeof ResponseCreateRequestSchema>;

// ---- responses API: response ---------------------------------------------------------------------------

export const ResponseOutputTextSchema = z.object({
  type: z.literal("output_text"),
  text: z.string(),
  annotations: z.array(z.unknown()),
  logprobs: z.array(z.unknown()).optional(),
});

export const ResponseOutputMessageSchema = z.object({
  type: z.literal("message"),
  id: z.string(),
  status: z.enum(["in_progress", "completed", "incomplete"]),
  role: z.literal("assistant"),
  content: z.array(ResponseOutputTextSchema),
});

export const ResponseFunctionCallSchema = z.object({
  type: z.literal("function_call"),
  id: z.string(),
  call_id: z.string(),
  name: z.string(),
  arguments: z.string(),
  status: z.enum(["in_progress", "completed", "incomplete"]),
});

export const ResponseReasoningSchema = z.object({
  type: z.literal("reasoning"),
  id: z.string(),
  summary: z.array(z.unknown()),
  content: z.array(z.object({ type: z.literal("reasoning_text"), text: z.string() })),
});

export const ResponseOutputItemSchema = z.discriminatedUnion("type", [
  ResponseOutputMessageSchema,
  ResponseFunctionCallSchema,
  ResponseReasoningSchema,
]);
export type ResponseOutputItem = z.infer<typeof ResponseOutputItemSchema>;

export const ResponseUsageSchema = z.object({
  input_tokens: z.number().int(),
  input_tokens_details: z.object({ cached_tokens: z.number().int() }),
  output_tokens: z.number().int(),
  output_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
  total_tokens: z.number().int(),
});

export const ResponseObjectSchema = z.object({
  id: z.string(),
  object: z.literal("response"),
  created_at: z.number().int(),
  status: z.enum(["completed", "incomplete", "in_progress", "failed", "cancelled"]),
  model: z.string(),
  output: z.array(ResponseOutputItemSchema),
  output_text: z.string(),
  instructions: z.string().nullable(),
  previous_response_id: z.string().nullable(),
  store: z.boolean(),
  temperature: z.number().nullable(),
  top_p: z.number().nullable(),
  max_output_tokens: z.number().int().nullable(),
  tools: z.array(ResponseToolSchema),
  tool_choice: z.unknown(),
  parallel_tool_calls: z.boolean(),
  text: z.object({ format: z.object({ type: z.string() }).loose() }),
  metadata: z.record(z.string(), z.string()),
  incomplete_details: z.object({ reason: z.string() }).nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  truncation: z.literal("disabled"),
  reasoning: z.object({ effort: z.null(), summary: z.null() }),
  user: z.string().nullable(),
  usage: ResponseUsageSchema.nullable(),
});
export type ResponseObject = z.infer<typeof ResponseObjectSchema>;

export const ResponseDeletedSchema = z.object({
  id: z.string(),
  object: z.literal("response"),
  deleted: z.literal(true),
});

/** A streamed Responses API event (every event has `type` and `sequence_number`). */
export const ResponseStreamEventSchema = z
  .object({ type: z.string(), sequence_number: z.number().int() })
  .loose()
  .describe(
    "response.created, response.in_progress, response.output_item.added, response.content_part.added, " +
      "response.output_text.delta, response.output_text.done, response.content_part.done, " +
      "response.function_call_arguments.delta, response.function_call_arguments.done, " +
      "response.output_item.done, response.completed (or response.incomplete / response.failed, error)",
  );

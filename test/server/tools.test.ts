import { join } from "node:path";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type ChatTokenizer,
  defaultTokenizerLoader,
  type TokenizerLoader,
} from "../../src/runtime/tokenizer.js";
import { removeDir, startTestServer, type TestServer, tempDir } from "./helpers.js";
import {
  buildCallFollowingModel,
  buildTextToolsModel,
  buildToolModel,
  buildTwoCallsModel,
  NAMED_PREFIX,
  OPAQUE_CALLS_TEMPLATE,
  REQUIRED_PREFIX,
  TEXT_REPLY,
  WEATHER_CALL,
} from "./steered-model.js";

/** Records every prompt the chat template renders, and every text encoded (the last one: the prompt run). */
function renderingSpy(): { loader: TokenizerLoader; rendered: string[]; encoded: string[] } {
  const rendered: string[] = [];
  const encoded: string[] = [];
  const loader: TokenizerLoader = async (dir) => {
    const real = await defaultTokenizerLoader(dir);
    const spy: ChatTokenizer = Object.create(real);
    spy.applyChatTemplate = (messages, options) => {
      const text = real.applyChatTemplate(messages, options);
      rendered.push(text);
      return text;
    };
    spy.encode = (text, options) => {
      encoded.push(text);
      return real.encode(text, options);
    };
    return spy;
  };
  return { loader, rendered, encoded };
}

let dir: string;
let model: string;
/** Renders tools but always answers in text. */
let textModel: string;
/** Answers in text, but continues a call it was started on (the generation prefix). */
let followingModel: string;
/** Always calls get_weather, under a template whose call syntax the server does not know (no prefix). */
let opaqueModel: string;
/** Always makes two calls. */
let twoCallsModel: string;
let server: TestServer;
let ai: OpenAI;
let rendered: string[];
let encoded: string[];

const weatherTool: OpenAI.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const ask: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Paris?" }];

beforeAll(async () => {
  dir = await tempDir("ollm-tools-");
  model = await buildToolModel(join(dir, "tool-model"));
  textModel = await buildTextToolsModel(join(dir, "text-model"));
  followingModel = await buildCallFollowingModel(join(dir, "following-model"));
  twoCallsModel = await buildTwoCallsModel(join(dir, "two-calls-model"));
  opaqueModel = await buildToolModel(join(dir, "opaque-model"), OPAQUE_CALLS_TEMPLATE);
  const spy = renderingSpy();
  rendered = spy.rendered;
  encoded = spy.encoded;
  server = await startTestServer(
    { runtimeConfig: { modelReference: model }, generationConfig: { maxNewTokens: 16 } },
    { tokenizerLoader: spy.loader },
  );
  ai = server.openai();
});
afterAll(async () => {
  await server.close();
  await removeDir(dir);
});

describe("chat completions with tools", () => {
  test("tools reach the chat template; the model's <tool_call> comes back as tool_calls", async () => {
    const r = await ai.chat.completions.create({ model, messages: ask, tools: [weatherTool] });
    const prompt = rendered.at(-1)!;
    expect(prompt).toContain("# Tools");
    expect(prompt).toContain('"name": "get_weather"');
    expect(prompt).toContain('"description": "Current weather of a city"');
    const choice = r.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });
  });

  test("round trip: the assistant's call and the tool's result are rendered into the next prompt", async () => {
    const first = await ai.chat.completions.create({ model, messages: ask, tools: [weatherTool] });
    const call = first.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    const second = await ai.chat.completions.create({
      model,
      messages: [
        ...ask,
        first.choices[0].message as OpenAI.ChatCompletionMessageParam,
        { role: "tool", tool_call_id: call.id, content: '{"temperature": 21, "sky": "clear"}' },
      ],
      tools: [weatherTool],
    });
    const prompt = rendered.at(-1)!;
    // The call renders back exactly as the model wrote it (the template's tojson spaces like Python's).
    expect(prompt).toContain(`<|im_start|>assistant\n${WEATHER_CALL}<|im_end|>`);
    expect(prompt).toContain(
      '<|im_start|>user\n<tool_response>\n{"temperature": 21, "sky": "clear"}\n</tool_response><|im_end|>',
    );
    expect(prompt.endsWith("<|im_start|>assistant\n")).toBe(true);
    expect(second.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
    expect(second.choices[0].finish_reason).toBe("tool_calls"); // this steered model always calls
  });

  test("streamed: no markup leaks as content; the call arrives as a tool_calls delta", async () => {
    const stream = await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [weatherTool],
      stream: true,
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(content).toBe("");
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ index: 0, type: "function", function: { name: "get_weather" } });
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe("tool_calls");
    // The SDK's stream helper assembles the same call.
    const final = await ai.chat.completions
      .stream({ model, messages: ask, tools: [weatherTool] })
      .finalChatCompletion();
    const call = final.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });
  });

  test('tool_choice "none": tools stay out of the prompt and nothing is parsed', async () => {
    const r = await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [weatherTool],
      tool_choice: "none",
    });
    expect(rendered.at(-1)).not.toContain("# Tools");
    expect(r.choices[0].message.content).toBe(WEATHER_CALL);
    expect(r.choices[0].message.tool_calls).toBeUndefined();
    expect(r.choices[0].finish_reason).toBe("stop");
  });

  test("a named tool_choice sends only that tool; one not among tools is 400", async () => {
    const other: OpenAI.ChatCompletionTool = {
      type: "function",
      function: { name: "get_time", parameters: { type: "object" } },
    };
    await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [weatherTool, other],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    expect(rendered.at(-1)).not.toContain("get_time");
    await expect(
      ai.chat.completions.create({
        model,
        messages: ask,
        tools: [other],
        tool_choice: { type: "function", function: { name: "nope" } },
      }),
    ).rejects.toMatchObject({ status: 400, param: "tool_choice" });
  });

  test("tools for a model whose template cannot render them are 400 tools_not_supported", async () => {
    await expect(
      ai.chat.completions.create({ model: "tiny-llama", messages: ask, tools: [weatherTool] }),
    ).rejects.toMatchObject({
      status: 400,
      code: "tools_not_supported",
      param: "tools",
    });
  });
});

describe("responses API with function tools", () => {
  const tools: OpenAI.Responses.FunctionTool[] = [
    {
      type: "function",
      name: "get_weather",
      parameters: { type: "object", properties: { city: { type: "string" } } },
      strict: false,
    },
  ];

  test("a function_call item, then function_call_output chained with previous_response_id", async () => {
    const first = await ai.responses.create({ input: "Weather in Paris?", tools });
    expect(first.status).toBe("completed");
    const call = first.output.find(
      (i) => i.type === "function_call",
    ) as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ name: "get_weather", status: "completed" });
    expect(JSON.parse(call.arguments)).toEqual({ city: "Paris" });
    expect(first.output.some((i) => i.type === "message")).toBe(false);

    await ai.responses.create({
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 24°C" }],
      tools,
    });
    const prompt = rendered.at(-1)!;
    expect(prompt).toContain("<|im_start|>user\nWeather in Paris?<|im_end|>");
    expect(prompt).toContain(`<|im_start|>assistant\n${WEATHER_CALL}<|im_end|>`);
    expect(prompt).toContain("<tool_response>\nsunny, 24°C\n</tool_response>");
  });

  test("streamed: function call events, and the SDK assembles the call", async () => {
    const stream = await ai.responses.create({ input: "Weather in Paris?", tools, stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types).toContain("response.function_call_arguments.done");
    expect(types.at(-1)).toBe("response.completed");
    expect(types).not.toContain("response.output_text.delta");
    const final = await ai.responses.stream({ input: "Weather in Paris?", tools }).finalResponse();
    const call = final.output.find(
      (i) => i.type === "function_call",
    ) as OpenAI.Responses.ResponseFunctionToolCall;
    expect(JSON.parse(call.arguments)).toEqual({ city: "Paris" });
  });
});

describe("tool_choice enforcement", () => {
  const timeTool: OpenAI.ChatCompletionTool = {
    type: "function",
    function: { name: "get_time", parameters: { type: "object", properties: {} } },
  };
  const unsatisfied = (message: RegExp) => ({
    status: 422,
    code: "tool_choice_unsatisfied",
    param: "tool_choice",
    type: "invalid_request_error",
    message: expect.stringMatching(message),
  });

  test('"required": the model\'s call comes back (whole and streamed)', async () => {
    const r = await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [weatherTool, timeTool],
      tool_choice: "required",
    });
    expect(rendered.at(-1)).toContain("get_time"); // every tool is offered
    expect(r.choices[0].finish_reason).toBe("tool_calls");
    const call = r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    const final = await ai.chat.completions
      .stream({ model, messages: ask, tools: [weatherTool], tool_choice: "required" })
      .finalChatCompletion();
    expect(final.choices[0].message.tool_calls).toHaveLength(1);
    expect(final.choices[0].message.content ?? "").toBe("");
  });

  test('"required" with a model that answers in text: 422 tool_choice_unsatisfied, no text passed off as a reply', async () => {
    // The same model answers in text when tools are optional.
    const auto = await ai.chat.completions.create({ model: textModel, messages: ask, tools: [weatherTool] });
    expect(auto.choices[0].message.content).toBe(TEXT_REPLY);
    const required = {
      model: textModel,
      messages: ask,
      tools: [weatherTool],
      tool_choice: "required" as const,
    };
    await expect(ai.chat.completions.create(required)).rejects.toMatchObject(
      unsatisfied(/tool_choice is "required", but the model answered with text instead of a tool call$/),
    );
    // Streamed: no content delta, then the error event (the SDK throws it).
    const stream = await ai.chat.completions.create({ ...required, stream: true });
    const content: string[] = [];
    const failure = await (async () => {
      try {
        for await (const chunk of stream) content.push(chunk.choices[0]?.delta.content ?? "");
      } catch (error) {
        return error;
      }
    })();
    expect(content.join("")).toBe("");
    expect(failure).toMatchObject({
      error: { code: "tool_choice_unsatisfied", param: "tool_choice" },
      message: expect.stringContaining("answered with text"),
    });
  });

  test("a reply cut at the token limit says so", async () => {
    await expect(
      ai.chat.completions.create({
        model: textModel,
        messages: ask,
        tools: [weatherTool],
        tool_choice: "required",
        max_tokens: 1,
      }),
    ).rejects.toMatchObject(
      unsatisfied(/answered with text instead of a tool call \(its reply was cut at the token limit\)$/),
    );
  });

  test("named: only that tool is offered and the prefix names it; without one, a call of another function is 422", async () => {
    const r = await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [timeTool, weatherTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const call = r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });

    // Started on a call of get_time (the prefix names it), the steered model completes that call.
    const time = await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [weatherTool, timeTool],
      tool_choice: { type: "function", function: { name: "get_time" } },
    });
    expect(encoded.at(-1)!.endsWith('<tool_call>\n{"name": "get_time", "arguments": {')).toBe(true);
    const timeCall = time.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(timeCall.function.name).toBe("get_time");

    // Where the template's call syntax is unknown there is no prefix: the model calls get_weather whatever
    // it is offered (here only get_time), and that is refused.
    await expect(
      ai.chat.completions.create({
        model: opaqueModel,
        messages: ask,
        tools: [weatherTool, timeTool],
        tool_choice: { type: "function", function: { name: "get_time" } },
      }),
    ).rejects.toMatchObject(
      unsatisfied(/tool_choice names the function "get_time", but the model called "get_weather" instead$/),
    );
    expect(rendered.at(-1)).toContain('"name": "get_time"');
    expect(rendered.at(-1)).not.toContain("get_weather");
    expect(encoded.at(-1)).toBe(rendered.at(-1));
    await expect(
      ai.chat.completions.create({
        model: textModel,
        messages: ask,
        tools: [weatherTool],
        tool_choice: { type: "function", function: { name: "get_weather" } },
      }),
    ).rejects.toMatchObject(
      unsatisfied(/names the function "get_weather", but the model answered with text/),
    );
  });

  test("bad choices are 400 naming tool_choice: a named tool not in tools, required without tools", async () => {
    for (const body of [
      { tools: [weatherTool], tool_choice: { type: "function", function: { name: "get_time" } } },
      { tool_choice: "required" },
    ])
      await expect(
        ai.chat.completions.create({
          model,
          messages: ask,
          ...body,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      ).rejects.toMatchObject({ status: 400, code: "invalid_request", param: "tool_choice" });
  });

  describe("responses API", () => {
    const tools: OpenAI.Responses.FunctionTool[] = [
      { type: "function", name: "get_weather", parameters: { type: "object" }, strict: false },
      { type: "function", name: "get_time", parameters: { type: "object" }, strict: false },
    ];

    test("required / named: the call, or 422 (whole) and response.failed (streamed)", async () => {
      const ok = await ai.responses.create({ input: "Weather?", tools, tool_choice: "required" });
      expect(ok.output.map((i) => i.type)).toEqual(["function_call"]);
      await expect(
        ai.responses.create({
          model: opaqueModel,
          input: "Time?",
          tools,
          tool_choice: { type: "function", name: "get_time" },
        }),
      ).rejects.toMatchObject(unsatisfied(/"get_time", but the model called "get_weather" instead/));
      await expect(
        ai.responses.create({ model: textModel, input: "Weather?", tools, tool_choice: "required" }),
      ).rejects.toMatchObject(unsatisfied(/answered with text/));

      const stream = await ai.responses.create({
        model: textModel,
        input: "Weather?",
        tools,
        tool_choice: "required",
        stream: true,
      });
      const events: OpenAI.Responses.ResponseStreamEvent[] = [];
      for await (const event of stream) events.push(event);
      expect(events.map((e) => e.type)).not.toContain("response.output_text.delta");
      const last = events.at(-1) as OpenAI.Responses.ResponseFailedEvent;
      expect(last.type).toBe("response.failed");
      expect(last.response.status).toBe("failed");
      expect(last.response.error).toMatchObject({
        code: "tool_choice_unsatisfied",
        message: expect.stringContaining("answered with text"),
      });
    });

    test("bad choices are 400 naming tool_choice", async () => {
      await expect(
        ai.responses.create({ input: "x", tools, tool_choice: { type: "function", name: "nope" } }),
      ).rejects.toMatchObject({ status: 400, param: "tool_choice" });
      await expect(ai.responses.create({ input: "x", tool_choice: "required" })).rejects.toMatchObject({
        status: 400,
        param: "tool_choice",
      });
    });
  });
});

describe("generation prefix for required / named tool_choice", () => {
  const named = { type: "function" as const, function: { name: "get_weather" } };
  let tokenizer: ChatTokenizer;
  beforeAll(async () => {
    tokenizer = await defaultTokenizerLoader(followingModel);
  });
  const promptTokens = (text: string) => tokenizer.encode(text, { addSpecialTokens: false }).length;

  test("named: the reply starts with the call up to its arguments; a model that answers in text now calls", async () => {
    // Without a demand the model answers in text, and the prompt ends with the generation prompt.
    const auto = await ai.chat.completions.create({
      model: followingModel,
      messages: ask,
      tools: [weatherTool],
    });
    expect(auto.choices[0].message.content).toBe(TEXT_REPLY);
    expect(encoded.at(-1)!.endsWith("<|im_start|>assistant\n")).toBe(true);

    const r = await ai.chat.completions.create({
      model: followingModel,
      messages: ask,
      tools: [weatherTool],
      tool_choice: named,
    });
    // The prompt the model ran on is the rendered template followed by the prefix.
    const prompt = encoded.at(-1)!;
    expect(prompt).toBe(`${rendered.at(-1)}${NAMED_PREFIX}`);
    // The call comes back whole: the prefix is part of what is parsed.
    const choice = r.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });
    // The prefix's tokens are prompt tokens; the model generated two (the rest of the call, the stop token).
    expect(r.usage!.prompt_tokens).toBe(promptTokens(prompt));
    expect(r.usage!.prompt_tokens).toBe(auto.usage!.prompt_tokens + promptTokens(NAMED_PREFIX));
    expect(r.usage!.completion_tokens).toBe(2);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + 2);
  });

  test('"required": the reply starts with the call syntax up to the name', async () => {
    const r = await ai.chat.completions.create({
      model: followingModel,
      messages: ask,
      tools: [weatherTool],
      tool_choice: "required",
    });
    expect(encoded.at(-1)).toBe(`${rendered.at(-1)}${REQUIRED_PREFIX}`);
    const call = r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });
    expect(r.usage!.completion_tokens).toBe(2);
  });

  test("streamed: no content delta (the prefix is not sent as generated text), one whole call, honest usage", async () => {
    const whole = await ai.chat.completions.create({
      model: followingModel,
      messages: ask,
      tools: [weatherTool],
      tool_choice: named,
    });
    const stream = await ai.chat.completions.create({
      model: followingModel,
      messages: ask,
      tools: [weatherTool],
      tool_choice: named,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("");
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0].function?.name).toBe("get_weather");
    expect(JSON.parse(calls[0].function!.arguments!)).toEqual({ city: "Paris" });
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe("tool_calls");
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
  });

  test("responses API: named and required yield the call; input_tokens include the prefix", async () => {
    const tools: OpenAI.Responses.FunctionTool[] = [
      { type: "function", name: "get_weather", parameters: { type: "object" }, strict: false },
    ];
    const plain = await ai.responses.create({ model: followingModel, input: "Weather?", tools });
    expect(plain.output_text).toBe(TEXT_REPLY);
    for (const tool_choice of ["required", { type: "function", name: "get_weather" }] as const) {
      const r = await ai.responses.create({ model: followingModel, input: "Weather?", tools, tool_choice });
      const prefix = tool_choice === "required" ? REQUIRED_PREFIX : NAMED_PREFIX;
      expect(encoded.at(-1)!.endsWith(prefix)).toBe(true);
      expect(r.output.map((i) => i.type)).toEqual(["function_call"]);
      const call = r.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
      expect(call.name).toBe("get_weather");
      expect(JSON.parse(call.arguments)).toEqual({ city: "Paris" });
      expect(r.usage!.input_tokens).toBe(plain.usage!.input_tokens + promptTokens(prefix));
      expect(r.usage!.output_tokens).toBe(2);
    }
    const streamed = await ai.responses
      .stream({ model: followingModel, input: "Weather?", tools, tool_choice: "required" })
      .finalResponse();
    expect(JSON.parse((streamed.output[0] as OpenAI.Responses.ResponseFunctionToolCall).arguments)).toEqual({
      city: "Paris",
    });
  });

  test('"auto" adds no prefix', async () => {
    await ai.chat.completions.create({ model, messages: ask, tools: [weatherTool] });
    expect(encoded.at(-1)).toBe(rendered.at(-1));
  });
});

describe("parallel_tool_calls", () => {
  const timeTool: OpenAI.ChatCompletionTool = {
    type: "function",
    function: { name: "get_time", parameters: { type: "object", properties: {} } },
  };
  const tools = [weatherTool, timeTool];
  const names = (calls: readonly { function?: { name?: string } }[] | undefined) =>
    (calls ?? []).map((c) => c.function?.name);

  test("false keeps the first call only (whole, streamed, responses API)", async () => {
    const both = await ai.chat.completions.create({ model: twoCallsModel, messages: ask, tools });
    expect(
      names(both.choices[0].message.tool_calls as OpenAI.ChatCompletionMessageFunctionToolCall[]),
    ).toEqual(["get_weather", "get_time"]);
    const one = await ai.chat.completions.create({
      model: twoCallsModel,
      messages: ask,
      tools,
      parallel_tool_calls: false,
    });
    const calls = one.choices[0].message.tool_calls as OpenAI.ChatCompletionMessageFunctionToolCall[];
    expect(names(calls)).toEqual(["get_weather"]);
    expect(JSON.parse(calls[0].function.arguments)).toEqual({ city: "Paris" });
    expect(one.choices[0].finish_reason).toBe("tool_calls");
    expect(one.choices[0].message.content).toBeNull();

    const stream = await ai.chat.completions.create({
      model: twoCallsModel,
      messages: ask,
      tools,
      parallel_tool_calls: false,
      stream: true,
    });
    const streamed: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.delta.tool_calls ?? []));
    expect(names(streamed)).toEqual(["get_weather"]);

    const responseTools: OpenAI.Responses.FunctionTool[] = tools.map((t) => ({
      type: "function",
      name: t.function.name,
      parameters: { type: "object" },
      strict: false,
    }));
    const r = await ai.responses.create({
      model: twoCallsModel,
      input: "Weather?",
      tools: responseTools,
      parallel_tool_calls: false,
    });
    expect(r.parallel_tool_calls).toBe(false);
    expect(r.output.map((i) => (i as OpenAI.Responses.ResponseFunctionToolCall).name)).toEqual([
      "get_weather",
    ]);
    const all = await ai.responses.create({ model: twoCallsModel, input: "Weather?", tools: responseTools });
    expect(all.output.map((i) => (i as OpenAI.Responses.ResponseFunctionToolCall).name)).toEqual([
      "get_weather",
      "get_time",
    ]);
  });
});

import { join } from "node:path";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type ChatTokenizer,
  defaultTokenizerLoader,
  type TokenizerLoader,
} from "../../src/runtime/tokenizer.js";
import { removeDir, startTestServer, type TestServer, tempDir } from "./helpers.js";
import { buildTextToolsModel, buildToolModel, TEXT_REPLY, WEATHER_CALL } from "./steered-model.js";

/** Records every prompt the chat template renders. */
function renderingSpy(): { loader: TokenizerLoader; rendered: string[] } {
  const rendered: string[] = [];
  const loader: TokenizerLoader = async (dir) => {
    const real = await defaultTokenizerLoader(dir);
    const spy: ChatTokenizer = Object.create(real);
    spy.applyChatTemplate = (messages, options) => {
      const text = real.applyChatTemplate(messages, options);
      rendered.push(text);
      return text;
    };
    return spy;
  };
  return { loader, rendered };
}

let dir: string;
let model: string;
/** Renders tools but always answers in text. */
let textModel: string;
let server: TestServer;
let ai: OpenAI;
let rendered: string[];

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
  const spy = renderingSpy();
  rendered = spy.rendered;
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

  test("named: only that tool is offered, and a call of another function is 422 naming both", async () => {
    const r = await ai.chat.completions.create({
      model,
      messages: ask,
      tools: [timeTool, weatherTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const call = r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });

    // The steered model calls get_weather whatever it is offered: here only get_time.
    await expect(
      ai.chat.completions.create({
        model,
        messages: ask,
        tools: [weatherTool, timeTool],
        tool_choice: { type: "function", function: { name: "get_time" } },
      }),
    ).rejects.toMatchObject(
      unsatisfied(/tool_choice names the function "get_time", but the model called "get_weather" instead$/),
    );
    expect(rendered.at(-1)).toContain('"name": "get_time"');
    expect(rendered.at(-1)).not.toContain("get_weather");
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
        ai.responses.create({ input: "Time?", tools, tool_choice: { type: "function", name: "get_time" } }),
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

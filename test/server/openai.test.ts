import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  ResponseObjectSchema,
} from "../../src/server/openai/schemas.js";
import { DEFAULT_MODEL, jsonOf, postJson, startTestServer, type TestServer } from "./helpers.js";

let server: TestServer;
let ai: OpenAI;
/** The server's default model (the SDK insists on a model; a request without one gets it: see "model echoed"). */
const M = DEFAULT_MODEL;
const hello: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Hello there" }];

beforeAll(async () => {
  server = await startTestServer();
  ai = server.openai();
});
afterAll(() => server.close());

describe("models", () => {
  test("the default model first, then the local models; retrieve by id (ids may hold slashes)", async () => {
    const list = await ai.models.list();
    const ids = list.data.map((m) => m.id);
    expect(ids[0]).toBe(DEFAULT_MODEL);
    expect(ids).toEqual(expect.arrayContaining(["tiny-llama", "tiny-mistral", "tiny-qwen3"]));
    expect(ids).not.toContain("tiny-qwen2"); // the default model is listed once, by its reference
    for (const m of list.data) expect(m).toMatchObject({ object: "model", owned_by: "ollm" });
    expect((await ai.models.retrieve("tiny-llama")).id).toBe("tiny-llama");
    expect((await ai.models.retrieve(DEFAULT_MODEL)).id).toBe(DEFAULT_MODEL);
  });

  test("unknown models are 404 model_not_found", async () => {
    await expect(ai.models.retrieve("no-such-model")).rejects.toMatchObject({
      status: 404,
      code: "model_not_found",
    });
    await expect(ai.models.retrieve("./nowhere/at-all")).rejects.toMatchObject({ status: 404 });
    await expect(
      ai.chat.completions.create({ model: "no-such-model", messages: hello }),
    ).rejects.toMatchObject({
      status: 404,
      code: "model_not_found",
      param: "model",
    });
  });
});

describe("chat completions", () => {
  test("non-streaming: OpenAI shape, usage, deterministic greedy output, model echoed", async () => {
    const a = await ai.chat.completions.create({ model: "tiny-qwen2", messages: hello });
    expect(() => ChatCompletionSchema.parse(a)).not.toThrow();
    expect(a.object).toBe("chat.completion");
    expect(a.model).toBe("tiny-qwen2");
    expect(a.choices[0].message.role).toBe("assistant");
    expect(a.choices[0].message.content?.length).toBeGreaterThan(0);
    expect(a.choices[0].finish_reason).toBe("length");
    expect(a.usage).toMatchObject({ completion_tokens: 8 });
    expect(a.usage!.prompt_tokens + a.usage!.completion_tokens).toBe(a.usage!.total_tokens);
    const b = await jsonOf(await postJson(`${server.url}/v1/chat/completions`, { messages: hello }));
    expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
    expect(b.model).toBe(DEFAULT_MODEL);
  });

  test("max_tokens / max_completion_tokens, system/developer and multi-turn messages", async () => {
    const short = await ai.chat.completions.create({ model: M, messages: hello, max_tokens: 3 });
    expect(short.usage?.completion_tokens).toBe(3);
    const shorter = await ai.chat.completions.create({ model: M, messages: hello, max_completion_tokens: 2 });
    expect(shorter.usage?.completion_tokens).toBe(2);
    const turns = await ai.chat.completions.create({
      model: M,
      messages: [
        { role: "developer", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: "Hi" }] },
        { role: "assistant", content: "Hello!" },
        { role: "user", content: "Again?" },
      ],
    });
    expect(turns.usage!.prompt_tokens).toBeGreaterThan(short.usage!.prompt_tokens);
  });

  test("streaming: chunks add up to the whole reply; include_usage sends a final usage chunk; [DONE] ends it", async () => {
    const whole = await ai.chat.completions.create({ model: M, messages: hello });
    const stream = await ai.chat.completions.create({
      model: M,
      messages: hello,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks) expect(() => ChatCompletionChunkSchema.parse(chunk)).not.toThrow();
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(whole.choices[0].message.content);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0].finish_reason)).toEqual(["length"]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    const raw = await (
      await postJson(`${server.url}/v1/chat/completions`, { messages: hello, stream: true })
    ).text();
    expect(raw.trimEnd().endsWith("data: [DONE]")).toBe(true);
    expect(raw).not.toContain('"usage"');
  });

  test("logprobs with top_logprobs, whole and streamed", async () => {
    const r = await ai.chat.completions.create({
      model: M,
      messages: hello,
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(5);
    expect(content.map((t) => t.token).join("")).toBe(r.choices[0].message.content);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.bytes).toEqual([...Buffer.from(t.token)]);
      expect(t.top_logprobs).toHaveLength(3);
      expect(t.top_logprobs[0]).toMatchObject({ token: t.token, logprob: t.logprob }); // greedy: the top choice
      const lps = t.top_logprobs.map((x) => x.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
    }
    const stream = await ai.chat.completions.create({
      model: M,
      messages: hello,
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 3,
      stream: true,
    });
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    const plain = await ai.chat.completions.create({ model: M, messages: hello, max_tokens: 2 });
    expect(plain.choices[0].logprobs).toBeNull();
  });

  test("stop strings cut the reply (finish_reason stop); a seed makes sampling repeatable", async () => {
    const r = await ai.chat.completions.create({ model: M, messages: hello, max_tokens: 6, logprobs: true });
    const tokens = r.choices[0].logprobs!.content!.map((t) => t.token);
    const stop = tokens[2];
    const cut = await ai.chat.completions.create({ model: M, messages: hello, max_tokens: 6, stop });
    expect(cut.choices[0].finish_reason).toBe("stop");
    expect(cut.choices[0].message.content).toBe(
      r.choices[0].message.content!.slice(0, r.choices[0].message.content!.indexOf(stop)),
    );
    const sample = () =>
      ai.chat.completions.create({
        model: M,
        messages: hello,
        temperature: 1.2,
        top_p: 0.95,
        seed: 7,
        max_tokens: 8,
      });
    expect((await sample()).choices[0].message.content).toBe((await sample()).choices[0].message.content);
  });

  test("bad input is 400 naming the field (never 500)", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ messages: hello, temperature: 3 }, "temperature"],
      [{ messages: hello, top_logprobs: 2 }, "top_logprobs"],
      [{ messages: hello, n: 2 }, "n"],
      [{ messages: [] }, "messages"],
      [{ messages: [{ role: "user" }] }, "messages[0].content"],
      [{ messages: hello, max_tokens: 0 }, "max_tokens"],
      [{ messages: hello, stop: ["", "x"] }, "stop[0]"],
      [
        { messages: hello, tools: [{ type: "function", function: { name: "bad name!" } }] },
        "tools[0].function.name",
      ],
      [{ messages: hello, tool_choice: "required" }, "tool_choice"],
      [
        { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "/etc/passwd" } }] }] },
        "messages[0].content[0].image_url",
      ],
      [{ messages: hello, response_format: { type: "json_object" } }, "response_format"],
    ];
    for (const [body, param] of cases) {
      const error = await ai.chat.completions.create(body as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.APIError>).param, JSON.stringify(body)).toBe(param);
      expect((error as InstanceType<typeof OpenAI.APIError>).type).toBe("invalid_request_error");
    }
  });

  test("an image on a text-only model is 400 unsupported_modality", async () => {
    const pixel =
      "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    await expect(
      ai.chat.completions.create({
        model: M,
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What is it?" },
              { type: "image_url", image_url: { url: pixel } },
            ],
          },
        ],
      }),
    ).rejects.toMatchObject({ status: 400, code: "unsupported_modality" });
  });

  test("response_format json_object: a reply that is not JSON is 422 (whole) or an error event (streamed)", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Answer in JSON." }];
    await expect(
      ai.chat.completions.create({ model: M, messages, response_format: { type: "json_object" } }),
    ).rejects.toMatchObject({ status: 422, code: "invalid_json_output" });
    const raw = await (
      await postJson(`${server.url}/v1/chat/completions`, {
        messages,
        response_format: { type: "json_object" },
        stream: true,
      })
    ).text();
    expect(raw).toContain('"code":"invalid_json_output"');
  });
});

describe("responses API", () => {
  test("create, retrieve, chain with previous_response_id, delete", async () => {
    const first = await ai.responses.create({ input: "Hello there", max_output_tokens: 6 });
    expect(() => ResponseObjectSchema.parse(first)).not.toThrow();
    expect(first.status).toBe("incomplete");
    expect(first.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(first.output_text.length).toBeGreaterThan(0);
    expect(first.usage).toMatchObject({ output_tokens: 6 });
    const message = first.output[0] as OpenAI.Responses.ResponseOutputMessage;
    expect(message).toMatchObject({ type: "message", role: "assistant" });
    expect((message.content[0] as OpenAI.Responses.ResponseOutputText).text).toBe(first.output_text);

    const again = await ai.responses.retrieve(first.id);
    expect(again).toEqual({ ...first, output_text: again.output_text });

    const chat = await ai.chat.completions.create({ model: M, messages: hello, max_tokens: 6 });
    expect(first.output_text).toBe(chat.choices[0].message.content); // the same prompt through both APIs

    const second = await ai.responses.create({
      input: [{ role: "user", content: "And then?" }],
      previous_response_id: first.id,
      instructions: "Be brief.",
      max_output_tokens: 4,
    });
    expect(second.previous_response_id).toBe(first.id);
    const alone = await ai.responses.create({
      input: "And then?",
      instructions: "Be brief.",
      max_output_tokens: 4,
      store: false,
    });
    expect(second.usage!.input_tokens).toBeGreaterThan(
      alone.usage!.input_tokens + first.usage!.output_tokens,
    );

    await expect(ai.responses.retrieve(alone.id)).rejects.toMatchObject({ status: 404 });
    expect(await ai.responses.delete(first.id)).toEqual({ id: first.id, object: "response", deleted: true });
    await expect(ai.responses.retrieve(first.id)).rejects.toMatchObject({
      status: 404,
      code: "response_not_found",
    });
    await expect(ai.responses.create({ input: "x", previous_response_id: first.id })).rejects.toMatchObject({
      status: 404,
      param: "previous_response_id",
    });
  });

  test("streaming events in order, with the same text as the whole reply", async () => {
    const whole = await ai.responses.create({ input: "Hello there", max_output_tokens: 6, store: false });
    const stream = await ai.responses.create({ input: "Hello there", max_output_tokens: 6, stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const types = events.map((e) => e.type);
    expect(types.slice(0, 4)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
    ]);
    expect(types.slice(-4)).toEqual([
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.incomplete",
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const text = events.flatMap((e) => (e.type === "response.output_text.delta" ? [e.delta] : [])).join("");
    expect(text).toBe(whole.output_text);
    // The SDK's stream helper checks the event sequence and assembles the final response.
    const final = await ai.responses.stream({ input: "Hello there", max_output_tokens: 6 }).finalResponse();
    expect(final.output_text).toBe(whole.output_text);
  });

  test("bad input is 400 naming the field", async () => {
    await expect(ai.responses.create({ input: "x", temperature: 9 })).rejects.toMatchObject({
      status: 400,
      param: "temperature",
    });
    await expect(ai.responses.create({ input: [] })).rejects.toMatchObject({ status: 400, param: "input" });
    await expect(ai.responses.create({ input: "x", max_output_tokens: -1 })).rejects.toMatchObject({
      status: 400,
      param: "max_output_tokens",
    });
  });
});

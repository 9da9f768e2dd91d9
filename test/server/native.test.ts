import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { NativeResponseSchema, SessionSchema } from "../../src/server/native/schemas.js";
import {
  DEFAULT_MODEL,
  iterateSse,
  type Json,
  jsonOf,
  postJson,
  readSse,
  removeDir,
  startTestServer,
  type TestServer,
  tempDir,
} from "./helpers.js";
import { buildEndlessModel, ENDLESS_TOKEN_TEXT } from "./steered-model.js";

let server: TestServer;
let dir: string;
let endless: string;
const url = (path: string) => `${server.url}${path}`;
const json = async (response: Response): Promise<{ status: number; body: Json }> => ({
  status: response.status,
  body: await response.json(),
});

beforeAll(async () => {
  dir = await tempDir("ollm-native-");
  endless = await buildEndlessModel(join(dir, "endless"));
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
  await removeDir(dir);
});

describe("POST /v1/plan", () => {
  test("describePlan of the default model, with runtime config overrides", async () => {
    const { status, body } = await json(await postJson(url("/v1/plan"), {}));
    expect(status).toBe(200);
    expect(body.schemaVersion).toBe(1);
    expect(body.resolvedModel.path).toBe(DEFAULT_MODEL);
    expect(body.plan.backend).toBe("cpu");
    const small = await json(
      await postJson(url("/v1/plan"), { model: "tiny-llama", runtimeConfig: { contextTokens: 256 } }),
    );
    expect(small.body.resolvedModel.name).toBe("tiny-llama");
    expect(small.body.plan.kvCache.contextTokens).toBe(256);
  });

  test("bad configs are 400 naming the field; server-only fields are refused; unknown models 404", async () => {
    const bad = await json(
      await postJson(url("/v1/plan"), { runtimeConfig: { backend: "cuda", offloadCpuLayers: -1 } }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("runtimeConfig.backend");
    expect(bad.body.error.message).toMatch(/offloadCpuLayers/);
    const dirField = await json(await postJson(url("/v1/plan"), { runtimeConfig: { modelsDir: "/" } }));
    expect(dirField).toMatchObject({ status: 400, body: { error: { param: "runtimeConfig.modelsDir" } } });
    const typo = await json(await postJson(url("/v1/plan"), { modle: "x" }));
    expect(typo).toMatchObject({
      status: 400,
      body: { error: { message: expect.stringMatching(/unknown field "modle"/) } },
    });
    expect((await postJson(url("/v1/plan"), { model: "./missing-model" })).status).toBe(404);
    const budget = await json(
      await postJson(url("/v1/plan"), { runtimeConfig: { hostMemoryBudget: "1KiB" } }),
    );
    expect(budget).toMatchObject({ status: 422, body: { error: { code: "out_of_memory_budget" } } });
  });
});

describe("POST /v1/prompt", () => {
  test("the whole reply; the same text as the OpenAI route for the same conversation", async () => {
    const { status, body } = await json(await postJson(url("/v1/prompt"), { prompt: "Hello there" }));
    expect(status).toBe(200);
    expect(() => NativeResponseSchema.parse(body)).not.toThrow();
    expect(body).toMatchObject({
      model: DEFAULT_MODEL,
      finishReason: "length",
      stopped: null,
      logprobs: null,
    });
    expect(body.usage.completionTokens).toBe(8);
    // tiny-qwen2's template adds the default system prompt when none is given, as /v1/prompt does.
    const chat = await server.openai().chat.completions.create({
      model: DEFAULT_MODEL,
      messages: [{ role: "user", content: "Hello there" }],
    });
    expect(body.text).toBe(chat.choices[0].message.content);
  });

  test("system, history, content parts and generation settings", async () => {
    const { body } = await json(
      await postJson(url("/v1/prompt"), {
        model: "tiny-llama",
        system: "",
        history: [
          { role: "user", content: "Hi" },
          { role: "assistant", content: [{ type: "text", text: "Hello!" }] },
        ],
        prompt: [{ type: "text", text: "Again" }],
        generation: { maxNewTokens: 3, logprobs: true, topLogprobs: 2 },
      }),
    );
    expect(body.usage.completionTokens).toBe(3);
    expect(body.logprobs).toHaveLength(3);
    expect(body.logprobs[0].topLogprobs).toHaveLength(2);
  });

  test("bad input is 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{}, "prompt"],
      [{ prompt: [] }, "prompt"],
      [{ prompt: "x", generation: { maxNewTokens: 0 } }, "generation.maxNewTokens"],
      [{ prompt: "x", generation: { topLogprobs: 2 } }, "generation.topLogprobs"],
      [{ prompt: "x", generation: { typo: true } }, "generation"],
      [{ prompt: [{ type: "image", image: "./secret.png" }] }, "prompt[0].image"],
      [{ prompt: "x", history: [{ role: "tool", content: "x" }] }, "history[0].role"],
    ];
    for (const [body, param] of cases) {
      const r = await json(await postJson(url("/v1/prompt"), body));
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.param, JSON.stringify(body)).toBe(param);
    }
  });
});

describe("POST /v1/prompt/stream", () => {
  test("progress, delta and done events; the deltas add up to the reply", async () => {
    const response = await postJson(url("/v1/prompt/stream"), {
      model: endless,
      prompt: "go",
      generation: { maxNewTokens: 6 },
    });
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = await readSse(response);
    const kinds = events.map((e) => e.event);
    expect(kinds.at(-1)).toBe("done");
    const progress = events.filter((e) => e.event === "progress").map((e) => JSON.parse(e.data).type);
    expect(progress).toEqual(expect.arrayContaining(["load-start", "load-done", "prefill", "first-token"]));
    const deltas = events.filter((e) => e.event === "delta").map((e) => JSON.parse(e.data));
    expect(deltas.map((d) => d.text).join("")).toBe(ENDLESS_TOKEN_TEXT.repeat(6));
    const done = JSON.parse(events.at(-1)!.data);
    expect(done).toMatchObject({
      text: ENDLESS_TOKEN_TEXT.repeat(6),
      finishReason: "length",
      usage: { completionTokens: 6 },
    });
  });

  test("with logprobs each delta carries its token; errors after the start are error events", async () => {
    const events = await readSse(
      await postJson(url("/v1/prompt/stream"), {
        model: endless,
        prompt: "go",
        generation: { maxNewTokens: 2, logprobs: true },
      }),
    );
    const delta = JSON.parse(events.find((e) => e.event === "delta")!.data);
    expect(delta.token).toMatchObject({ text: ENDLESS_TOKEN_TEXT, id: 1027 });
    expect(delta.token.logprob).toBeLessThan(0);
    const tooLong = await readSse(
      await postJson(url("/v1/prompt/stream"), {
        model: "tiny-llama",
        prompt: "word ".repeat(2000),
        generation: { maxNewTokens: 2 },
      }),
    );
    const error = tooLong.find((e) => e.event === "error")!;
    expect(JSON.parse(error.data)).toMatchObject({ status: 400, error: { code: "invalid_argument" } });
  });

  test("validation errors come before the stream, as plain 400s", async () => {
    const r = await postJson(url("/v1/prompt/stream"), { prompt: 5 });
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toMatch(/json/);
  });
});

describe("sessions", () => {
  test("create, prompt (KV cache reused), stream a turn, read, delete", async () => {
    const created = await json(
      await postJson(url("/v1/sessions"), {
        name: "demo",
        system: "Be terse.",
        generation: { maxNewTokens: 4 },
      }),
    );
    expect(created.status).toBe(201);
    expect(() => SessionSchema.parse(created.body)).not.toThrow();
    expect(created.body).toMatchObject({
      object: "session",
      name: "demo",
      systemPrompt: "Be terse.",
      messages: [],
      busy: false,
    });
    const id = created.body.id;

    const first = await json(await postJson(url(`/v1/sessions/${id}/prompt`), { prompt: "Hello" }));
    expect(first.status).toBe(200);
    expect(first.body.usage.completionTokens).toBe(4);
    expect(first.body.session.messages).toHaveLength(2);
    expect(first.body.session.busy).toBe(false);

    const second = await json(
      await postJson(url(`/v1/sessions/${id}/prompt`), { prompt: "More", generation: { maxNewTokens: 2 } }),
    );
    expect(second.body.usage.completionTokens).toBe(2);
    expect(second.body.usage.cachedPromptTokens).toBeGreaterThan(0);

    const events = await readSse(
      await postJson(url(`/v1/sessions/${id}/prompt/stream`), { prompt: "Stream it" }),
    );
    const done = JSON.parse(events.at(-1)!.data);
    expect(events.at(-1)!.event).toBe("done");
    expect(done.session.messages).toHaveLength(6);
    expect(
      events
        .filter((e) => e.event === "delta")
        .map((e) => JSON.parse(e.data).text)
        .join(""),
    ).toBe(done.text);

    const read = await json(await fetch(url(`/v1/sessions/${id}`)));
    expect(read.body.messages.map((m: { role: string }) => m.role)).toEqual([
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
      "assistant",
    ]);

    const deleted = await json(await fetch(url(`/v1/sessions/${id}`), { method: "DELETE" }));
    expect(deleted.body).toEqual({ id, object: "session", deleted: true });
    expect((await fetch(url(`/v1/sessions/${id}`))).status).toBe(404);
    expect((await postJson(url(`/v1/sessions/${id}/prompt`), { prompt: "x" })).status).toBe(404);
    expect((await fetch(url(`/v1/sessions/${id}`), { method: "DELETE" })).status).toBe(404);
  });

  test("a second turn while one runs is 409; closing the stream cancels the turn", async () => {
    const { body } = await json(
      await postJson(url("/v1/sessions"), {
        model: endless,
        messages: [
          { role: "user", content: "earlier" },
          { role: "assistant", content: "ok" },
        ],
      }),
    );
    expect(body.messages).toHaveLength(2);
    const controller = new AbortController();
    const running = await fetch(url(`/v1/sessions/${body.id}/prompt/stream`), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "go on", generation: { maxNewTokens: 3000 } }),
      signal: controller.signal,
    });
    for await (const event of iterateSse(running)) if (event.event === "delta") break;
    const busy = await json(await postJson(url(`/v1/sessions/${body.id}/prompt`), { prompt: "now" }));
    expect(busy).toMatchObject({ status: 409, body: { error: { code: "session_busy" } } });
    controller.abort();
    let session = body;
    for (let i = 0; i < 200 && (session.busy || session.messages.length < 4); i++) {
      await new Promise((r) => setTimeout(r, 10));
      session = (await json(await fetch(url(`/v1/sessions/${body.id}`)))).body;
    }
    // The cancelled turn joined the history, cut short.
    expect(session.busy).toBe(false);
    expect(session.messages).toHaveLength(4);
    const reply = session.messages[3].content[0].text as string;
    expect(reply.length).toBeGreaterThan(0);
    expect(reply.length).toBeLessThan(ENDLESS_TOKEN_TEXT.length * 3000);
  });

  test("bad requests", async () => {
    expect((await postJson(url("/v1/sessions"), { model: "no-such" })).status).toBe(404);
    const r = await json(await postJson(url("/v1/sessions"), { messages: [{ role: "user" }] }));
    expect(r).toMatchObject({ status: 400, body: { error: { param: "messages[0].content" } } });
    expect((await fetch(url("/v1/sessions/sess_nope"))).status).toBe(404);
  });
});

describe("listing and documents", () => {
  test("/v1/ollm/models: installed, loaded, capabilities, sizes", async () => {
    await postJson(url("/v1/prompt"), { prompt: "load me" });
    const { body } = await json(await fetch(url("/v1/ollm/models")));
    expect(body.default).toBe(DEFAULT_MODEL);
    const first = body.data[0];
    expect(first).toMatchObject({ id: DEFAULT_MODEL, default: true, loaded: true, installed: true });
    expect(first.capabilities).toEqual({
      chat: true,
      tools: false,
      image: false,
      audio: false,
      runnable: true,
    });
    expect(first.sizes.parameters).toBeGreaterThan(0);
    expect(first.sizes.diskBytes).toBeGreaterThan(first.sizes.weightBytes);
    const mm = body.data.find((m: { id: string }) => m.id === "tiny-gemma3-mm");
    expect(mm.capabilities.image).toBe(true);
  });

  test("/openapi.json lists every route with schemas generated from zod; /docs renders it", async () => {
    const doc = await jsonOf(await fetch(url("/openapi.json")));
    expect(doc.openapi).toBe("3.1.0");
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        "GET /v1/health",
        "GET /v1/models",
        "GET /v1/models/{id}",
        "GET /v1/ollm/models",
        "POST /v1/chat/completions",
        "POST /v1/responses",
        "GET /v1/responses/{id}",
        "DELETE /v1/responses/{id}",
        "POST /v1/plan",
        "POST /v1/prompt",
        "POST /v1/prompt/stream",
        "POST /v1/sessions",
        "GET /v1/sessions/{id}",
        "DELETE /v1/sessions/{id}",
        "POST /v1/sessions/{id}/prompt",
        "POST /v1/sessions/{id}/prompt/stream",
        "GET /openapi.json",
        "GET /docs",
      ].sort(),
    );
    const chat = doc.components.schemas.CreateChatCompletionRequest;
    expect(chat.required).toContain("messages");
    expect(Object.keys(chat.properties)).toEqual(
      expect.arrayContaining(["model", "messages", "tools", "logprobs", "stream"]),
    );
    expect(doc.paths["/v1/chat/completions"].post.responses["200"].content).toHaveProperty(
      "text/event-stream",
    );
    expect(doc.paths["/v1/health"].get.security).toEqual([]);
    const page = await fetch(url("/docs"));
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(await page.text()).toContain("oLLM server API");
  });

  test("unknown routes are 404 in the OpenAI error shape; health answers", async () => {
    const r = await json(await fetch(url("/v1/nothing")));
    expect(r).toMatchObject({ status: 404, body: { error: { type: "not_found_error", code: "not_found" } } });
    const health = await json(await fetch(url("/v1/health")));
    expect(health.body).toMatchObject({ status: "ok", running: 0, waiting: 0 });
  });
});

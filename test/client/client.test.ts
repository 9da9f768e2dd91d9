import { cp, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import type { ConfigError } from "../../src/config/validation.js";
import { OllmError } from "../../src/errors.js";
import { HubModelMaterializer } from "../../src/hub/index.js";
import {
  DEFAULT_SYSTEM_PROMPT,
  imagePart,
  textPart,
  userMessage,
  assistantMessage,
} from "../../src/messages.js";
import type { RuntimeEvent } from "../../src/runtime/events.js";
import type { Materializer } from "../../src/runtime/materializer.js";
import { PlanDescriptionSchema } from "../../src/runtime/plan.js";
import type { PromptDelta } from "../../src/session.js";
import { buildCallFollowingModel, NAMED_PREFIX, TEXT_REPLY, WEATHER_CALL } from "../server/steered-model.js";
import { fixture, golden, rejectsWith, removeDir, spyingTokenizerLoader, tempDir } from "./helpers.js";

const llama = { modelReference: fixture("tiny-llama") };

describe("RuntimeClient", () => {
  const events: RuntimeEvent[] = [];
  const spy = spyingTokenizerLoader();
  const client = new RuntimeClient({ onEvent: (e) => events.push(e), tokenizerLoader: spy.loader });
  let root: string;

  beforeAll(async () => {
    root = await tempDir();
  });
  afterAll(async () => {
    await client.close();
    await removeDir(root);
  });

  it("prompt reproduces transformers' greedy reply to the golden conversation", async () => {
    const g = golden("tiny-llama");
    const r = await client.prompt(g.conversation[1].content, {
      runtimeConfig: llama,
      systemPrompt: g.conversation[0].content,
      generationConfig: { maxNewTokens: 8, logprobs: true },
    });
    expect(r.usage).toEqual({
      promptTokens: g.prompt_ids.length,
      completionTokens: 8,
      totalTokens: g.prompt_ids.length + 8,
      cachedPromptTokens: 0,
    });
    expect(r.logprobs?.map((t) => t.id)).toEqual(g.greedy_ids.slice(0, 8));
    expect(r.finishReason).toBe("length");
    expect(r.message).toEqual({ role: "assistant", content: [{ type: "text", text: r.text }] });
    expect(r.model).toBe("tiny-llama");
    expect(r.timings.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(r.timings.tokensPerSecond).toBeGreaterThan(0);
    expect(r.timings.prefillTokensPerSecond).toBeGreaterThan(0);
    expect(r.timings.totalMs).toBeGreaterThanOrEqual(r.timings.timeToFirstTokenMs);
    for (const t of r.logprobs ?? []) expect(t.logprob).toBeLessThanOrEqual(0);
    expect(r.stats).toBeUndefined();
  });

  it("runs every fixture family", async () => {
    for (const name of [
      "tiny-qwen2",
      "tiny-qwen3",
      "tiny-mistral",
      "tiny-gemma3",
      "tiny-gemma3-mm",
      "tiny-gpt_oss",
      "tiny-gpt_oss-mxfp4",
      "tiny-qwen3_next",
    ]) {
      const g = golden(name);
      const r = await client.prompt(g.conversation.at(-1)!.content, {
        runtimeConfig: { modelReference: fixture(name) },
        systemPrompt: g.conversation[0].role === "system" ? g.conversation[0].content : "",
        generationConfig: { maxNewTokens: 4, logprobs: true },
      });
      expect(r.usage.promptTokens, name).toBe(g.prompt_ids.length);
      const ids = r.logprobs!.map((t) => t.id);
      expect(ids, name).toEqual(g.greedy_ids.slice(0, ids.length));
    }
  });

  it("streams deltas that add up to the response, through the sink as well", async () => {
    const texts: string[] = [];
    const statuses: string[] = [];
    let completed: unknown;
    const stream = client.stream("Hello there", {
      runtimeConfig: { ...llama, stats: true },
      generationConfig: { maxNewTokens: 6 },
      sink: {
        onText: (t) => texts.push(t),
        onStatus: (s) => statuses.push(s),
        onComplete: (r) => {
          completed = r;
        },
      },
    });
    const deltas: PromptDelta[] = [];
    for await (const d of stream) deltas.push(d);
    const response = await stream.response;
    expect(deltas.map((d) => d.text).join("")).toBe(response.text);
    expect(texts.join("")).toBe(response.text);
    expect(deltas.filter((d) => d.token).length).toBe(response.usage.completionTokens);
    expect(completed).toBe(response);
    expect(response.stats).toMatchObject({
      model: "tiny-llama",
      backend: "cpu",
      device: "cpu",
      kvCacheStrategy: "resident",
    });
    expect(response.stats!.rssBytes).toBeGreaterThan(0);
    await rejectsWith(async () => {
      for await (const _ of stream);
    }, "INVALID_ARGUMENT");
  });

  it("loads once per config and reuses the runtime until unloaded", async () => {
    await client.load(llama);
    events.length = 0;
    const a = await client.load(llama);
    const b = await client.load({ ...llama, modelsDir: "models", stats: true });
    expect(b).toBe(a);
    expect(events.filter((e) => e.type === "load-done")).toEqual([
      expect.objectContaining({ cached: true }),
      expect.objectContaining({ cached: true }),
    ]);
    expect(await client.loadedRuntimes()).toContain(a);
    await client.prompt("hi", { runtimeConfig: llama, generationConfig: { maxNewTokens: 1 } });
    expect(events.some((e) => e.type === "load-start")).toBe(false);
    expect(events.some((e) => e.type === "prefill")).toBe(true);
    expect(events.some((e) => e.type === "first-token")).toBe(true);

    expect(await client.unload(llama)).toBe(true);
    expect(a.closed).toBe(true);
    expect(await client.unload(llama)).toBe(false);
    expect(await client.loadedRuntimes()).not.toContain(a);
    const c = await client.load(llama);
    expect(c).not.toBe(a);
    expect(events.some((e) => e.type === "load-start")).toBe(true);
    expect(events.some((e) => e.type === "unload")).toBe(true);
    await client.close();
    expect(c.closed).toBe(true);
    expect(await client.loadedRuntimes()).toEqual([]);
  });

  it("runs concurrent prompts on one runtime with the same results as one at a time", async () => {
    for (const name of ["tiny-llama", "tiny-qwen3_next"]) {
      const options = {
        runtimeConfig: { modelReference: fixture(name) },
        generationConfig: { maxNewTokens: 8 },
      };
      const one = await client.prompt("first prompt here", options);
      const two = await client.prompt("a different second prompt", options);
      const both = await Promise.all([
        client.prompt("first prompt here", options),
        client.prompt("a different second prompt", options),
      ]);
      expect(both.map((r) => r.text)).toEqual([one.text, two.text]);
    }
  });

  it("reports the plan's reasons as status lines when verbose", async () => {
    const statuses: string[] = [];
    const verbose = new RuntimeClient();
    await verbose.prompt("hi", {
      runtimeConfig: { ...llama, verbose: true },
      generationConfig: { maxNewTokens: 1 },
      sink: { onStatus: (s) => statuses.push(s) },
    });
    expect(statuses).toContainEqual(expect.stringMatching(/^plan: backend = cpu/));
    expect(statuses).toContainEqual(expect.stringMatching(/^Loading tiny-llama/));
    await verbose.close();
  });

  it("concurrent loads of one config share one load", async () => {
    const [a, b] = await Promise.all([client.load(llama), client.load(llama)]);
    expect(a).toBe(b);
  });

  it("returns logprobs with the top alternatives, and cuts at stop strings", async () => {
    const r = await client.prompt("Tell me a story", {
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 8, logprobs: true, topLogprobs: 3 },
    });
    for (const t of r.logprobs!) {
      expect(t.topLogprobs).toHaveLength(3);
      expect(t.topLogprobs![0]).toEqual({ id: t.id, text: t.text, logprob: t.logprob });
    }
    const cut = Math.floor(r.text.length / 2);
    const stop = r.text.slice(cut, cut + 2);
    const stopped = await client.prompt("Tell me a story", {
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 8, stop: [stop] },
    });
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.text).toBe(r.text.slice(0, r.text.indexOf(stop)));
  });

  it("samples reproducibly with a seed", async () => {
    const options = {
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 8, temperature: 1.5, seed: 7 },
    };
    const a = await client.prompt("Pick words", options);
    const b = await client.prompt("Pick words", options);
    expect(b.text).toBe(a.text);
  });

  it("sends the system prompt (default, custom, none) and the history in order", async () => {
    spy.templated.length = 0;
    const gen = { maxNewTokens: 1 };
    await client.prompt("one", { runtimeConfig: llama, generationConfig: gen });
    await client.prompt("two", { runtimeConfig: llama, generationConfig: gen, systemPrompt: "Be brief." });
    await client.prompt("three", { runtimeConfig: llama, generationConfig: gen, systemPrompt: "" });
    await client.promptParts([textPart("four"), textPart(" and more")], {
      runtimeConfig: llama,
      generationConfig: gen,
      history: [userMessage("earlier"), assistantMessage("reply")],
    });
    expect(spy.templated).toEqual([
      [
        { role: "system", content: DEFAULT_SYSTEM_PROMPT },
        { role: "user", content: "one" },
      ],
      [
        { role: "system", content: "Be brief." },
        { role: "user", content: "two" },
      ],
      [{ role: "user", content: "three" }],
      [
        { role: "system", content: DEFAULT_SYSTEM_PROMPT },
        { role: "user", content: "earlier" },
        { role: "assistant", content: "reply" },
        { role: "user", content: "four and more" },
      ],
    ]);
  });

  it("cancels with an AbortSignal, and when the consumer leaves the stream", async () => {
    const before = new AbortController();
    before.abort();
    const none = await client.prompt("hi", { runtimeConfig: llama, signal: before.signal });
    expect(none).toMatchObject({ finishReason: "cancelled", text: "" });
    expect(none.usage.completionTokens).toBe(0);

    const during = new AbortController();
    const some = await client.prompt("hi", {
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 50 },
      signal: during.signal,
      sink: { onText: () => during.abort() },
    });
    expect(some.finishReason).toBe("cancelled");
    expect(some.usage.completionTokens).toBeGreaterThan(0);
    expect(some.usage.completionTokens).toBeLessThan(50);

    const stream = client.stream("hi", { runtimeConfig: llama, generationConfig: { maxNewTokens: 50 } });
    let n = 0;
    for await (const _ of stream) if (++n === 2) break;
    const left = await stream.response;
    expect(left.finishReason).toBe("cancelled");
    expect(left.usage.completionTokens).toBeLessThan(50);

    const cancelled = client.stream("hi", { runtimeConfig: llama, generationConfig: { maxNewTokens: 50 } });
    cancelled.cancel();
    expect((await cancelled.collect()).finishReason).toBe("cancelled");
  });

  it("keeps prompt and reply within the planned context", async () => {
    const small = { ...llama, contextTokens: 16 };
    const error = await rejectsWith(
      client.prompt("a long enough prompt for sixteen tokens", { runtimeConfig: small }),
      "INVALID_ARGUMENT",
    );
    expect(error.hint).toMatch(/contextTokens/);
    const fit = await client.prompt("x", {
      runtimeConfig: llama,
      systemPrompt: "",
      generationConfig: { maxNewTokens: 1 },
    });
    const tight = { ...llama, contextTokens: fit.usage.promptTokens + 3 };
    const r = await client.prompt("x", {
      runtimeConfig: tight,
      systemPrompt: "",
      generationConfig: { maxNewTokens: 10 },
    });
    expect(r.usage.completionTokens).toBeLessThanOrEqual(3);
  });

  it("refuses invalid prompts and configs with stable codes", async () => {
    const empty = await rejectsWith(client.promptParts([], { runtimeConfig: llama }), "INVALID_ARGUMENT");
    expect(empty.message).toBe("A prompt requires at least one content part");
    await rejectsWith(
      client.promptParts([{ type: "video", url: "x" } as never], { runtimeConfig: llama }),
      "INVALID_ARGUMENT",
    );
    const gen = await rejectsWith(
      client.prompt("hi", { runtimeConfig: llama, generationConfig: { maxNewTokens: 0, temperature: -1 } }),
      "INVALID_CONFIG",
    );
    expect((gen as ConfigError).violations.map((v) => v.field)).toEqual(["maxNewTokens", "temperature"]);
    await rejectsWith(client.prompt("hi", { runtimeConfig: { modelReference: "" } }), "INVALID_CONFIG");
    await rejectsWith(
      client.prompt("hi", { runtimeConfig: { ...llama, hostMemoryBudget: "1KiB" } }),
      "OUT_OF_MEMORY_BUDGET",
    );
    await rejectsWith(
      client.prompt("hi", { runtimeConfig: { modelReference: "no-such-model", modelsDir: root } }),
      "MODEL_NOT_FOUND",
    );
  });

  it("streams layers under a small host budget and gives the resident plan's greedy text", async () => {
    const base = { ...llama, kvCacheStrategy: "resident" as const, contextTokens: 128 };
    const gen = { maxNewTokens: 8, temperature: 0 };
    const resident = await client.describePlan(base);
    expect(resident.plan.layers.every((l) => l.residency === "host")).toBe(true);
    const budget = resident.plan.memory.predictedPeak.host.total - 1;
    const streamed = { ...base, hostMemoryBudget: budget };
    const plan = (await client.describePlan(streamed)).plan;
    expect(plan.layers.some((l) => l.residency === "disk")).toBe(true);
    const offload = { ...base, offloadCpuLayers: 1 };
    expect((await client.describePlan(offload)).plan.layers.map((l) => l.residency)).toEqual([
      "disk",
      "host",
      "disk",
    ]);
    const want = await client.prompt("Hello there", { runtimeConfig: base, generationConfig: gen });
    for (const config of [streamed, offload]) {
      const got = await client.prompt("Hello there", { runtimeConfig: config, generationConfig: gen });
      expect(got.text).toBe(want.text);
      await client.unload(config);
    }
  });

  it("runs explicit KV strategies through the client with the resident plan's greedy text", async () => {
    const dir = await tempDir();
    try {
      const base = { ...llama, contextTokens: 128, cacheDir: dir };
      const gen = { maxNewTokens: 8, temperature: 0 };
      const want = await client.prompt("Hello there", {
        runtimeConfig: { ...base, kvCacheStrategy: "resident" },
        generationConfig: gen,
      });
      for (const kv of [
        { kvCacheStrategy: "paged" },
        { kvCacheStrategy: "chunked" },
        { kvCacheStrategy: "sliding-window-ring-buffer", kvCacheWindowTokens: 100 },
        { kvCacheStrategy: "streamed-segmented" },
        { kvCacheStrategy: "log-structured-journal" },
        { kvCacheStrategy: "tiered-write-back" },
      ] as const) {
        const config = { ...base, ...kv };
        const described = await client.describePlan(config);
        expect(described.plan.kvCache.applied).toBe(kv.kvCacheStrategy);
        const got = await client.prompt("Hello there", { runtimeConfig: config, generationConfig: gen });
        expect(got.text, kv.kvCacheStrategy).toBe(want.text);
        await client.unload(config);
      }
    } finally {
      await removeDir(dir);
    }
  });

  it("turns multimodal on for image and audio parts, and fails clearly when they cannot be used", async () => {
    const textOnly = await rejectsWith(
      client.prompt("What is this?", { runtimeConfig: llama, images: ["cat.png"] }),
      "UNSUPPORTED_MODALITY",
    );
    expect(textOnly.message).toMatch(/tiny-llama cannot take image input/);
    const mm = { modelReference: fixture("tiny-gemma3-mm") };
    await rejectsWith(
      client.prompt("Listen", { runtimeConfig: mm, audio: ["a.wav"] }),
      "UNSUPPORTED_MODALITY",
    );
    const engine = await rejectsWith(
      client.promptParts([textPart("Look"), imagePart("cat.png")], { runtimeConfig: mm }),
      "UNSUPPORTED_MODALITY",
    );
    expect(engine.message).toMatch(/not implemented by the engine yet/);
    await rejectsWith(
      client.prompt("again", { runtimeConfig: mm, history: [userMessage([imagePart("old.png")])] }),
      "UNSUPPORTED_MODALITY",
    );
  });

  it("reports unexpected failures as INTERNAL OllmErrors, keeping the cause", async () => {
    const broken = new RuntimeClient({
      tokenizerLoader: async () => {
        throw new TypeError("boom");
      },
    });
    const error = await rejectsWith(broken.prompt("hi", { runtimeConfig: llama }), "INTERNAL");
    expect(error.cause).toBeInstanceOf(TypeError);
    await rejectsWith(broken.load(llama), "INTERNAL");
    // The model loaded next to the failing tokenizer was closed again, and nothing stayed cached.
    expect(await broken.loadedRuntimes()).toEqual([]);
    await broken.close();
  });

  it("fails on a hub model that is not downloaded, with the download command", async () => {
    const error = await rejectsWith(
      client.prompt("hi", { runtimeConfig: { modelReference: "acme/tiny-chat", modelsDir: root } }),
      "MODEL_NOT_FOUND",
    );
    expect(error.hint).toBe("Download it with: ollm models download acme/tiny-chat");
    expect(await client.resolve("acme/tiny-chat", { modelsDir: root })).toMatchObject({
      materialized: false,
    });
    await rejectsWith(client.load({ modelReference: "llama3-1B-chat", modelsDir: root }), "MODEL_NOT_FOUND");
  });

  it("materializes through an injected Materializer, once", async () => {
    const calls: string[] = [];
    const materializer: Materializer = {
      async materialize(model, options) {
        calls.push(model.reference);
        options.onEvent?.({ type: "download", file: "model.safetensors", bytes: 1, totalBytes: 1 });
        await cp(fixture("tiny-qwen3"), model.downloadPath!, { recursive: true });
        return model.downloadPath!;
      },
    };
    const seen: RuntimeEvent[] = [];
    const hubClient = new RuntimeClient({ materializer, onEvent: (e) => seen.push(e) });
    const models = join(root, "hub-models");
    await mkdir(models);
    const config = { modelReference: "acme/tiny-qwen3", modelsDir: models };
    const r = await hubClient.prompt("hi", { runtimeConfig: config, generationConfig: { maxNewTokens: 2 } });
    expect(r.model).toBe("acme/tiny-qwen3");
    await hubClient.prompt("again", { runtimeConfig: config, generationConfig: { maxNewTokens: 2 } });
    expect(calls).toEqual(["acme/tiny-qwen3"]);
    expect(seen.some((e) => e.type === "download")).toBe(true);
    const runtime = await hubClient.load(config);
    expect(runtime.model).toMatchObject({
      materialized: true,
      repoId: "acme/tiny-qwen3",
      path: join(models, "acme--tiny-qwen3"),
    });
    await hubClient.close();
  });

  it("takes the hub's materializer through the same seam (offline: no network)", async () => {
    const materializer: Materializer = new HubModelMaterializer({
      offline: true,
      hfCacheDir: join(root, "no-cache"),
    });
    const offline = new RuntimeClient({ materializer });
    const error = await offline
      .prompt("hi", { runtimeConfig: { modelReference: "acme/never-downloaded", modelsDir: root } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OllmError);
    expect((error as OllmError).code).toBe("OFFLINE");
    await offline.close();
  });

  it("resolves, discovers, plans and describes plans as JSON", async () => {
    const models = join(root, "discover");
    await cp(fixture("tiny-qwen3"), join(models, "q"), { recursive: true });
    expect((await client.discoverLocalModels(models)).map((m) => m.name)).toEqual(["q"]);
    expect((await client.resolve("q", { modelsDir: models })).family).toBe("qwen3");
    // A fixed budget: the default one follows the free memory measured at each call.
    const fixed = { ...llama, hostMemoryBudget: "1GiB" };
    const plan = await client.plan(fixed);
    expect(plan.backend).toBe("cpu");
    const description = await client.describePlan(fixed);
    expect(PlanDescriptionSchema.parse(JSON.parse(JSON.stringify(description)))).toEqual(description);
    expect(description.plan).toEqual(plan);
    expect(description.runtimeConfig.modelsDir).toBe(join(process.cwd(), "models"));
    expect((await client.describePlan({ ...llama, backend: "webgpu" })).plan.backend).toBe("webgpu");
    await rejectsWith(client.describePlan({ ...llama, offloadGpuLayers: 1 }), "BACKEND_UNAVAILABLE");
  });
});

describe("assistantPrefix", () => {
  const client = new RuntimeClient();
  let root: string;
  let runtimeConfig: { modelReference: string };
  beforeAll(async () => {
    root = await tempDir();
    // Answers in text, but completes a <tool_call> it is started on (test/server/steered-model.ts).
    runtimeConfig = { modelReference: await buildCallFollowingModel(join(root, "following")) };
  });
  afterAll(async () => {
    await client.close();
    await removeDir(root);
  });

  it("starts the reply with the prefix: the model continues it; text, deltas and completion tokens are only what it generated", async () => {
    const messages = [userMessage("Weather in Paris?")];
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
    const plain = await client.chat(messages, { runtimeConfig, tools }).collect();
    expect(plain.text).toBe(TEXT_REPLY);

    const stream = client.chat(messages, { runtimeConfig, tools, assistantPrefix: NAMED_PREFIX });
    const deltas: PromptDelta[] = [];
    for await (const d of stream) deltas.push(d);
    const r = await stream.response;
    const rest = WEATHER_CALL.slice(NAMED_PREFIX.length);
    expect(r.text).toBe(rest);
    expect(deltas.map((d) => d.text).join("")).toBe(rest);
    expect(r.message).toEqual({ role: "assistant", content: [{ type: "text", text: rest }] });
    // The prefix's tokens are prompt tokens.
    const runtime = await client.load(runtimeConfig);
    const prefixTokens = runtime.tokenizer.encode(NAMED_PREFIX, { addSpecialTokens: false }).length;
    expect(r.usage).toEqual({
      promptTokens: plain.usage.promptTokens + prefixTokens,
      completionTokens: 2,
      totalTokens: plain.usage.promptTokens + prefixTokens + 2,
      cachedPromptTokens: 0,
    });
  });
});

import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import { DEFAULT_SYSTEM_PROMPT, imagePart, TranscriptSchema, textPart } from "../../src/messages.js";
import { readTranscript } from "../../src/session.js";
import { fixture, rejectsWith, removeDir, tempDir } from "./helpers.js";

const llama = { modelReference: fixture("tiny-llama") };
const qwen = { modelReference: fixture("tiny-qwen3") };

describe("ChatSession", () => {
  const client = new RuntimeClient();
  let root: string;
  beforeAll(async () => {
    root = await tempDir();
  });
  afterAll(async () => {
    await client.close();
    await removeDir(root);
  });

  it("holds the conversation across turns and autosaves after each one", async () => {
    const path = join(root, "chat.json");
    const session = client.session({
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 4 },
      name: "demo",
      autosavePath: path,
    });
    const first = await session.prompt("Hello");
    expect(session.messages).toEqual([
      { role: "user", content: [textPart("Hello")] },
      { role: "assistant", content: [textPart(first.text)] },
    ]);
    expect((await readTranscript(path)).messages).toHaveLength(2);
    const second = await session.prompt("And then?");
    expect(second.usage.promptTokens).toBeGreaterThan(first.usage.promptTokens);
    const saved = TranscriptSchema.parse(JSON.parse(await readFile(path, "utf8")));
    expect(saved).toMatchObject({
      sessionName: "demo",
      modelReference: llama.modelReference,
      systemPrompt: DEFAULT_SYSTEM_PROMPT,
    });
    expect(saved.messages).toEqual(session.messages);
    expect(saved.messages).toHaveLength(4);
    session.close();
  });

  it("reuses the KV cache when the next prompt extends it, with the same output as a fresh run", async () => {
    for (const runtimeConfig of [llama, qwen]) {
      const session = client.session({ runtimeConfig, generationConfig: { maxNewTokens: 1 } });
      const first = await session.prompt("Name a colour");
      const second = await session.prompt("Another one", {
        generationConfig: { maxNewTokens: 6, logprobs: true },
      });
      expect(second.usage.cachedPromptTokens).toBe(first.usage.promptTokens);
      const fresh = await client.prompt("Another one", {
        runtimeConfig,
        history: session.messages.slice(0, 2),
        generationConfig: { maxNewTokens: 6, logprobs: true },
      });
      expect(fresh.usage.cachedPromptTokens).toBe(0);
      expect(second.logprobs!.map((t) => t.id)).toEqual(fresh.logprobs!.map((t) => t.id));
      expect(second.text).toBe(fresh.text);
      expect(second.usage.promptTokens).toBe(fresh.usage.promptTokens);
      for (let i = 0; i < fresh.logprobs!.length; i++)
        expect(second.logprobs![i].logprob).toBeCloseTo(fresh.logprobs![i].logprob, 4);

      // A changed system prompt does not extend the cache: everything is recomputed.
      await session.setSystemPrompt("Be brief.");
      const third = await session.prompt("More");
      expect(third.usage.cachedPromptTokens).toBe(0);
      // The repetition penalty needs the whole prompt, so it turns reuse off.
      const fourth = await session.prompt("Again", { generationConfig: { repetitionPenalty: 1.3 } });
      expect(fourth.usage.cachedPromptTokens).toBe(0);
      session.close();
    }
  });

  it("streams a turn; the exchange joins the history when the stream ends", async () => {
    const session = client.session({ runtimeConfig: llama, generationConfig: { maxNewTokens: 5 } });
    const stream = session.stream("Stream please");
    expect(session.messages).toHaveLength(0);
    let text = "";
    for await (const d of stream) text += d.text;
    const response = await stream.response;
    expect(text).toBe(response.text);
    expect(session.messages.at(-1)).toEqual(response.message);

    const cancelled = session.stream([textPart("and stop")], { generationConfig: { maxNewTokens: 40 } });
    for await (const _ of cancelled) break;
    expect((await cancelled.response).finishReason).toBe("cancelled");
    expect(session.messages).toHaveLength(4);
  });

  it("runs one turn at a time, and leaves the history unchanged when a turn fails", async () => {
    const session = client.session({ runtimeConfig: llama, generationConfig: { maxNewTokens: 3 } });
    const a = session.prompt("one");
    await rejectsWith(session.prompt("two"), "INVALID_ARGUMENT");
    await a;
    expect(session.messages).toHaveLength(2);
    await rejectsWith(session.promptParts([textPart("look"), imagePart("x.png")]), "UNSUPPORTED_MODALITY");
    await rejectsWith(session.promptParts([]), "INVALID_ARGUMENT");
    expect(session.messages).toHaveLength(2);
    expect(session.runtimeConfig.multimodal).toBe(false);
    await session.prompt("three");
    expect(session.messages).toHaveLength(4);
  });

  it("retries and undoes the last exchange", async () => {
    const session = client.session({
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 3, temperature: 1, seed: 1 },
    });
    await rejectsWith(session.undoLastExchange(), "INVALID_ARGUMENT");
    await rejectsWith(session.retryLast(), "INVALID_ARGUMENT");
    await session.prompt("first");
    await session.prompt("second");
    const retried = await session.retryLast({ generationConfig: { seed: 2 } });
    expect(session.messages).toHaveLength(4);
    expect(session.messages[2].content).toEqual([textPart("second")]);
    expect(session.messages[3]).toEqual(retried.message);
    await session.undoLastExchange();
    expect(session.messages).toHaveLength(2);
  });

  it("forks, clears and resets", async () => {
    const session = client.session({
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 2 },
      systemPrompt: "Custom.",
      name: "main",
    });
    await session.prompt("hello");
    const fork = session.fork();
    expect(fork.name).toBe("main-fork");
    expect(fork.messages).toEqual(session.messages);
    expect(fork.systemPrompt).toBe("Custom.");
    await fork.prompt("only in the fork");
    expect(fork.messages).toHaveLength(4);
    expect(session.messages).toHaveLength(2);
    await session.clear();
    expect(session.messages).toEqual([]);
    expect(session.systemPrompt).toBe("Custom.");
    await session.reset();
    expect(session.systemPrompt).toBe(DEFAULT_SYSTEM_PROMPT);
    expect(fork.messages).toHaveLength(4);
  });

  it("saves and loads transcripts", async () => {
    const path = join(root, "saved", "t.json");
    const session = client.session({
      runtimeConfig: llama,
      generationConfig: { maxNewTokens: 2 },
      name: "keep",
      systemPrompt: "",
    });
    await session.prompt("remember this");
    await session.save(path);
    expect(session.autosavePath).toBe(path);
    const restored = await client.loadSession(path, { runtimeConfig: qwen });
    expect(restored).toMatchObject({
      name: "keep",
      systemPrompt: "",
      messages: session.messages,
      autosavePath: path,
    });
    expect(restored.runtimeConfig.modelReference).toBe(llama.modelReference);
    const next = await restored.prompt("and continue");
    expect(next.model).toBe("tiny-llama");
    expect((await readTranscript(path)).messages).toHaveLength(4);
  });

  it("refuses transcripts that are missing, malformed or of another version", async () => {
    const session = client.session({ runtimeConfig: llama });
    await rejectsWith(session.load(join(root, "nope.json")), "INVALID_ARGUMENT");
    const bad = join(root, "bad.json");
    await writeFile(bad, "{not json");
    await rejectsWith(session.load(bad), "INVALID_ARGUMENT");
    await writeFile(bad, JSON.stringify({ ...session.toTranscript(), version: 99 }));
    expect((await rejectsWith(session.load(bad), "INVALID_ARGUMENT")).message).toMatch(/version 99/);
    await writeFile(
      bad,
      JSON.stringify({ ...session.toTranscript(), messages: [{ role: "robot", content: [] }] }),
    );
    expect((await rejectsWith(session.load(bad), "INVALID_ARGUMENT")).message).toMatch(/messages\.0\.role/);
  });

  it("validates configs and messages when the session is created", () => {
    expect(() => client.session({ runtimeConfig: { modelReference: "" } })).toThrow(/modelReference/);
    expect(() => client.session({ runtimeConfig: llama, generationConfig: { topP: 2 } })).toThrow(/topP/);
    expect(() => client.session({ runtimeConfig: llama, messages: [{ role: "x" } as never] })).toThrow(
      /messages/,
    );
  });
});

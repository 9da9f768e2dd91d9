import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GenerationChunk, type GenerationSummary, generate } from "../../src/engine/generate.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { loadTokenizer, type Tokenizer } from "../../src/text/index.js";
import { comparableSteps, relativeError } from "../engine/oracle.js";

/** The bundled demo model (models/demo) against what transformers computed on it (tools/demo-model/oracle.py). */
const DEMO = join(import.meta.dirname, "..", "..", "models", "demo");

interface DemoCase {
  messages: { role: string; content: string }[];
  prompt_text: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_steps: { id: number; margin: number }[];
  greedy_ids_with_cache: number[];
  last_logits_top: { ids: number[]; logits: number[] };
}

interface DemoGolden {
  vocab_size: number;
  eos_token_ids: number[];
  cases: DemoCase[];
  encode: { text: string; ids: number[]; ids_no_special: number[] }[];
  readme: { question: string; answer: string; tokens: number; stopped: boolean };
}

const golden = JSON.parse(readFileSync(join(import.meta.dirname, "golden.json"), "utf8")) as DemoGolden;

async function collect(run: AsyncGenerator<GenerationChunk, GenerationSummary>) {
  const chunks: GenerationChunk[] = [];
  for (;;) {
    const r = await run.next();
    if (r.done) return { chunks, summary: r.value, text: chunks.map((c) => c.text).join("") };
    chunks.push(r.value);
  }
}

function topK(row: Float32Array, k: number): number[] {
  return Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k);
}

describe("demo model (models/demo)", () => {
  let model: Model;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    [model, tokenizer] = await Promise.all([loadModel(DEMO, { backend: "cpu" }), loadTokenizer(DEMO)]);
  });
  afterAll(() => model?.close());

  it("is a llama checkpoint of at most 25 MB with its own 8k tokenizer", () => {
    expect(statSync(join(DEMO, "model.safetensors")).size).toBeLessThanOrEqual(25_000_000);
    expect(model.config.architectures).toEqual(["LlamaForCausalLM"]);
    expect(model.vocabSize).toBe(golden.vocab_size);
    expect(tokenizer.vocabSize).toBe(golden.vocab_size);
    expect(model.generation.eosTokenIds).toEqual(golden.eos_token_ids);
    expect(tokenizer.eosTokenIds).toContain(golden.eos_token_ids[0]);
  });

  it("encodes and decodes like transformers", () => {
    for (const e of golden.encode) {
      expect(tokenizer.encode(e.text), e.text).toEqual(e.ids);
      expect(tokenizer.encode(e.text, { addSpecialTokens: false }), e.text).toEqual(e.ids_no_special);
      expect(tokenizer.decode(e.ids_no_special)).toBe(e.text);
    }
  });

  describe.each(golden.cases.map((c, i) => [i, c] as const))("held-out conversation %i", (_, c) => {
    it("chat template renders and encodes to transformers' prompt ids", () => {
      const text = tokenizer.applyChatTemplate(c.messages, { addGenerationPrompt: true });
      expect(text).toBe(c.prompt_text);
      expect(tokenizer.encode(text, { addSpecialTokens: false })).toEqual(c.prompt_ids);
    });

    it("last-position top-10 logits match transformers", async () => {
      const logits = await model.logits(c.prompt_ids);
      const last = logits.subarray(logits.length - golden.vocab_size);
      const ids = topK(last, 10);
      expect(ids).toEqual(c.last_logits_top.ids);
      const err = relativeError(
        ids.map((id) => last[id]),
        c.last_logits_top.logits,
      );
      expect(err).toBeLessThan(1e-4);
    });

    it("greedy generation through the KV cache reproduces transformers' tokens", async () => {
      expect(c.greedy_ids_with_cache).toEqual(c.greedy_ids);
      const steps = comparableSteps(c.greedy_steps);
      const { chunks } = await collect(
        generate(model.newSequence(), tokenizer, c.prompt_ids, { maxNewTokens: steps, temperature: 0 }),
      );
      const ids = chunks.flatMap((ch) => (ch.token ? [ch.token.id] : []));
      expect(ids).toEqual(c.greedy_ids.slice(0, steps));
    });
  });

  it("answers the README's question, streamed, and stops at <|eot_id|>", async () => {
    const { readme } = golden;
    const text = tokenizer.applyChatTemplate([{ role: "user", content: readme.question }], {
      addGenerationPrompt: true,
    });
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    const {
      chunks,
      summary,
      text: answer,
    } = await collect(
      generate(model.newSequence(), tokenizer, ids, {
        maxNewTokens: 128,
        stopTokenIds: model.generation.eosTokenIds,
      }),
    );
    expect(answer).toBe(readme.answer);
    expect(summary.finishReason).toBe("stop");
    expect(summary.completionTokens).toBe(readme.tokens);
    expect(chunks.filter((ch) => ch.text.length > 0).length).toBeGreaterThan(10);
  });
});

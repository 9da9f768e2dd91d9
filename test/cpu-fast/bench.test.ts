import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatBenchTable, runBench, summarizeModel } from "../../src/bench/index.js";
import { quantile } from "../../src/bench/stats.js";
import { readGgufHeader } from "../../src/bench/gguf.js";
import {
  bf16Bits,
  bf16ToF16Bits,
  llamaParameters,
  writeRandomLlama,
} from "../../src/bench/random-checkpoint.js";
import { loadModel } from "../../src/engine/model.js";

const TOKENIZER = join(import.meta.dirname, "..", "fixtures", "tokenizers", "bytelevel-llama3");
const SHAPE = { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 1100 };

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ollm-bench-test-"));
  await writeRandomLlama({ shape: SHAPE, dir, tokenizerDir: TOKENIZER, seed: 3 });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("random checkpoint", () => {
  it("loads in the engine and gives finite logits", async () => {
    const model = await loadModel(dir, { backend: "cpu" });
    try {
      expect(model.vocabSize).toBe(SHAPE.vocab);
      const logits = await model.logits([1, 2, 3]);
      expect(logits.length).toBe(3 * SHAPE.vocab);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      await model.close();
    }
  });

  it("pads the fixture tokenizer to the vocabulary", () => {
    const tok = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    const ids = new Set<number>([
      ...(Object.values(tok.model.vocab) as number[]),
      ...tok.added_tokens.map((a: { id: number }) => a.id),
    ]);
    expect(ids.size).toBe(SHAPE.vocab);
    expect(Math.max(...ids)).toBe(SHAPE.vocab - 1);
  });

  it("writes the same weights as GGUF (q/k rows in llama.cpp's rotary order)", async () => {
    const gguf = await readGgufHeader(join(dir, "model-f16.gguf"));
    expect(gguf.version).toBe(3);
    expect(gguf.metadata.get("general.architecture")).toBe("llama");
    expect(gguf.metadata.get("llama.block_count")).toBe(SHAPE.layers);
    expect((gguf.metadata.get("tokenizer.ggml.tokens") as string[]).length).toBe(SHAPE.vocab);
    expect(gguf.tensors.length).toBe(2 + 9 * SHAPE.layers + 1);
    const q = gguf.tensors.find((t) => t.name === "blk.0.attn_q.weight")!;
    expect(q.shape).toEqual([SHAPE.hidden, SHAPE.hidden]);
    expect(q.type).toBe(1);
    const summary = await summarizeModel(dir);
    expect(summary.parameters).toBe(llamaParameters(SHAPE));

    // Row 1 of head 0 in GGUF is HF's row headDim/2 (the first row of the second half), as f16.
    const st = readFileSync(join(dir, "model.safetensors"));
    const header = JSON.parse(st.toString("utf8", 8, 8 + Number(st.readBigUInt64LE(0))));
    const info = header["model.layers.0.self_attn.q_proj.weight"];
    const stData = 8 + Number(st.readBigUInt64LE(0)) + info.data_offsets[0];
    const g = readFileSync(join(dir, "model-f16.gguf"));
    const gData = gguf.dataStart + q.offset;
    const half = SHAPE.hidden / SHAPE.heads / 2;
    for (let c = 0; c < SHAPE.hidden; c++) {
      const hfRow = st.readUInt16LE(stData + (half * SHAPE.hidden + c) * 2);
      const ggRow = g.readUInt16LE(gData + (1 * SHAPE.hidden + c) * 2);
      expect(ggRow).toBe(bf16ToF16Bits(hfRow));
    }
  });

  it("converts bf16 to f16 exactly where f16 can hold the value", () => {
    const f16 = (h: number) => {
      const e = (h >> 10) & 31;
      const f = h & 1023;
      const s = h & 0x8000 ? -1 : 1;
      return e === 0 ? s * f * 2 ** -24 : s * (1 + f / 1024) * 2 ** (e - 15);
    };
    const bf = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0];
    for (const v of [1, -2.5, 0.02, 1e-3, 6.1e-5, 3e-6, 1e-8, 60000]) {
      const b = bf16Bits(v);
      const got = f16(bf16ToF16Bits(b));
      // Normal f16 range: exact; subnormal: within half an f16 ulp (2^-25).
      expect(Math.abs(got - bf(b))).toBeLessThanOrEqual(Math.abs(bf(b)) >= 2 ** -14 ? 0 : 2 ** -25);
    }
  });
});

describe("runBench", () => {
  it("measures the engine in-process and formats a table", async () => {
    const result = await runBench({
      model: dir,
      threads: [1, 2],
      promptLengths: [8],
      outputLengths: [4],
      repeats: 1,
      session: { turns: 2, promptTokens: 4, outputTokens: 3 },
      gemvDtypes: ["bf16", "f16", "f32"],
      bandwidthBytes: 32 << 20,
      gemvBytes: 8 << 20,
      isolate: false,
    });
    expect(result.bandwidth.map((b) => b.threads)).toEqual([1, 2]);
    expect(result.gemv).toHaveLength(6);
    for (const g of result.gemv) expect(g.bytesPerSecond).toBeGreaterThan(0);
    expect(result.engines.map((e) => [e.engine, e.threads])).toEqual([
      ["ollm", 1],
      ["ollm", 2],
    ]);
    const run = result.engines[0].runs[0];
    expect(run.promptTokens).toBe(8);
    expect(run.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(result.engines[0].session?.map((t) => t.contextTokens)).toEqual([0, 4 + 2]);
    const text = formatBenchTable(result);
    expect(text).toContain("Memory bandwidth");
    expect(text).toContain("Session growth");
    expect(text).not.toContain("NaN");
  });
});

describe("quantile", () => {
  it("interpolates", () => {
    expect(quantile([3, 1, 2], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.95)).toBeCloseTo(3.85);
    expect(Number.isNaN(quantile([], 0.5))).toBe(true);
  });
});

#!/usr/bin/env node
// Writes a random-weight llama checkpoint (bf16 safetensors + config + fixture tokenizer) and the same
// weights as GGUF for llama.cpp. A thin shell over src/bench/random-checkpoint.ts: build first
// (`npm run build`; or set OLLM_DIST to another tsc output directory).
//
//   node tools/make-checkpoint/make-checkpoint.mjs OUT_DIR [--shape 1b|tiny] [--hidden N --intermediate N
//        --layers N --heads N --kv-heads N --vocab N] [--gguf f16|bf16|none] [--seed N]
//        [--tokenizer test/fixtures/tokenizers/bytelevel-llama3]
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = resolve(process.env.OLLM_DIST ?? join(root, "dist"));
const { writeRandomLlama, LLAMA_1B } = await import(pathToFileURL(join(dist, "bench", "random-checkpoint.js")).href);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    shape: { type: "string", default: "1b" },
    hidden: { type: "string" },
    intermediate: { type: "string" },
    layers: { type: "string" },
    heads: { type: "string" },
    "kv-heads": { type: "string" },
    vocab: { type: "string" },
    gguf: { type: "string", default: "f16" },
    seed: { type: "string", default: "0" },
    tokenizer: { type: "string", default: join(root, "test", "fixtures", "tokenizers", "bytelevel-llama3") },
  },
});
if (positionals.length !== 1) {
  console.error("usage: make-checkpoint.mjs OUT_DIR [--shape 1b|tiny] [--hidden N ...] [--gguf f16|bf16|none]");
  process.exit(2);
}
const TINY = { hidden: 256, intermediate: 768, layers: 4, heads: 8, kvHeads: 2, vocab: 2048 };
const base = values.shape === "tiny" ? TINY : LLAMA_1B;
const int = (v, d) => (v === undefined ? d : Number.parseInt(v, 10));
const shape = {
  hidden: int(values.hidden, base.hidden),
  intermediate: int(values.intermediate, base.intermediate),
  layers: int(values.layers, base.layers),
  heads: int(values.heads, base.heads),
  kvHeads: int(values["kv-heads"], base.kvHeads),
  vocab: int(values.vocab, base.vocab),
};
const t0 = performance.now();
const out = await writeRandomLlama({
  shape,
  dir: resolve(positionals[0]),
  tokenizerDir: resolve(values.tokenizer),
  seed: int(values.seed, 0),
  gguf: values.gguf === "none" ? false : values.gguf,
  onProgress: (m) => console.error(m),
});
console.log(
  JSON.stringify({ ...out, shape, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)) }, null, 2),
);

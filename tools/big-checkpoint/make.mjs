#!/usr/bin/env node
// Writes the ~3 GB random-weight llama checkpoint of the offload bench (bf16 safetensors + config + a padded
// fixture tokenizer) to /tmp, streaming it to disk piece by piece (the values repeat a 16M-value random
// pool, so memory stays ~100 MB). A thin shell over src/bench/random-checkpoint.ts (tools/make-checkpoint's
// writer): build first (`npm run build`, or `npx tsc -p tsconfig.build.json --outDir /tmp/ollm-dist` and
// OLLM_DIST=/tmp/ollm-dist).
//
//   node tools/big-checkpoint/make.mjs [OUT_DIR=/tmp/ollm-big-checkpoint/llama-3g] [--layers 28 --hidden 1024
//        --intermediate 16384 --heads 8 --kv-heads 2 --vocab 32000] [--force]
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = resolve(process.env.OLLM_DIST ?? join(root, "dist"));
const { writeRandomLlama } = await import(pathToFileURL(join(dist, "bench", "random-checkpoint.js")).href);

/**
 * ~3.0 GB: 28 blocks of 105.6 MB (hidden 1024, MLP 16384, 8 heads of 128, 2 KV heads) + 131 MB of
 * embeddings and LM head. A narrow residual stream keeps attention cheap for the 2k-token prefill on 2
 * cores, while the layers are as large as those of a 3B model's MLP.
 */
export const BIG_SHAPE = { hidden: 1024, intermediate: 16384, layers: 28, heads: 8, kvHeads: 2, vocab: 32000 };
export const DEFAULT_DIR = "/tmp/ollm-big-checkpoint/llama-3g";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    hidden: { type: "string" },
    intermediate: { type: "string" },
    layers: { type: "string" },
    heads: { type: "string" },
    "kv-heads": { type: "string" },
    vocab: { type: "string" },
    force: { type: "boolean", default: false },
  },
});
const int = (v, d) => (v === undefined ? d : Number.parseInt(v, 10));
const shape = {
  hidden: int(values.hidden, BIG_SHAPE.hidden),
  intermediate: int(values.intermediate, BIG_SHAPE.intermediate),
  layers: int(values.layers, BIG_SHAPE.layers),
  heads: int(values.heads, BIG_SHAPE.heads),
  kvHeads: int(values["kv-heads"], BIG_SHAPE.kvHeads),
  vocab: int(values.vocab, BIG_SHAPE.vocab),
  maxPositions: 8192,
};
const dir = resolve(positionals[0] ?? DEFAULT_DIR);
if (dir.startsWith(`${root}/`)) {
  console.error(`refusing to write a multi-GB checkpoint inside the repository (${dir}); use /tmp`);
  process.exit(2);
}
const config = join(dir, "config.json");
if (!values.force && existsSync(config) && existsSync(join(dir, "model.safetensors"))) {
  const c = JSON.parse(readFileSync(config, "utf8"));
  if (c.hidden_size === shape.hidden && c.num_hidden_layers === shape.layers && c.intermediate_size === shape.intermediate) {
    console.log(JSON.stringify({ dir, reused: true, bytes: statSync(join(dir, "model.safetensors")).size }));
    process.exit(0);
  }
}
const t0 = performance.now();
const out = await writeRandomLlama({
  shape,
  dir,
  tokenizerDir: join(root, "test", "fixtures", "tokenizers", "bytelevel-llama3"),
  seed: 0,
  gguf: false,
  onProgress: (m) => console.error(m),
});
console.log(JSON.stringify({ ...out, shape, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)) }));

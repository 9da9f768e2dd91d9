/**
 * Writes a random-weight llama checkpoint (bf16 safetensors + config.json) of a named shape, with the
 * vocabulary of a fixture tokenizer so llama.cpp can be given the same shape as GGUF
 * (../shared/device/write_gguf.py). Weights are N(0, 0.02) from a 32 MiB block reused, norms are 1.
 *
 *   node make-checkpoint.js OUT_DIR 1b|8b|tiny [TOKENIZER_JSON]
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface LlamaShape {
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export const SHAPES: Record<string, LlamaShape> = {
  "1b": { hidden: 2048, inter: 8192, layers: 16, heads: 32, kvHeads: 8 },
  "8b": { hidden: 4096, inter: 14336, layers: 32, heads: 32, kvHeads: 8 },
  small: { hidden: 512, inter: 2048, layers: 8, heads: 8, kvHeads: 2 },
  tiny: { hidden: 256, inter: 512, layers: 2, heads: 8, kvHeads: 2 },
  // The 1B shape's layer count and head grouping at a small width: its decode steps record the same dispatches.
  tiny16: { hidden: 256, inter: 512, layers: 16, heads: 32, kvHeads: 8 },
};

export function vocabSize(tokenizerJson: string): number {
  const t = JSON.parse(readFileSync(tokenizerJson, "utf8")) as {
    model: { vocab: Record<string, number> };
    added_tokens: { id: number }[];
  };
  const ids = [...Object.values(t.model.vocab), ...t.added_tokens.map((a) => a.id)];
  return Math.max(...ids) + 1;
}

function tensors(s: LlamaShape, vocab: number): [string, number[]][] {
  const kv = (s.kvHeads * s.hidden) / s.heads;
  const list: [string, number[]][] = [["model.embed_tokens.weight", [vocab, s.hidden]]];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    list.push(
      [`${p}input_layernorm.weight`, [s.hidden]],
      [`${p}self_attn.q_proj.weight`, [s.hidden, s.hidden]],
      [`${p}self_attn.k_proj.weight`, [kv, s.hidden]],
      [`${p}self_attn.v_proj.weight`, [kv, s.hidden]],
      [`${p}self_attn.o_proj.weight`, [s.hidden, s.hidden]],
      [`${p}post_attention_layernorm.weight`, [s.hidden]],
      [`${p}mlp.gate_proj.weight`, [s.inter, s.hidden]],
      [`${p}mlp.up_proj.weight`, [s.inter, s.hidden]],
      [`${p}mlp.down_proj.weight`, [s.hidden, s.inter]],
    );
  }
  list.push(["model.norm.weight", [s.hidden]], ["lm_head.weight", [vocab, s.hidden]]);
  return list;
}

/** A block of N(0, 0.02) bf16 values (Box-Muller over a xorshift stream). */
function randomBlock(bytes: number): Uint8Array {
  const n = bytes / 2;
  const out = new Uint16Array(n);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  let s = 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
  for (let i = 0; i < n; i++) {
    f[0] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next()) * 0.02;
    out[i] = bits[0] >>> 16;
  }
  return new Uint8Array(out.buffer);
}

export function writeCheckpoint(dir: string, shape: LlamaShape, vocab: number): number {
  mkdirSync(dir, { recursive: true });
  const list = tensors(shape, vocab);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, dims] of list) {
    const bytes = dims.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: "BF16", shape: dims, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const block = randomBlock(32 << 20);
  const one = new Uint8Array(new Uint16Array(Math.max(...list.map(([, d]) => d[0]))).fill(0x3f80).buffer);
  const fd = openSync(join(dir, "model.safetensors"), "w");
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, size);
  writeSync(fd, Buffer.from(json));
  for (const [name, dims] of list) {
    let bytes = dims.reduce((a, b) => a * b, 1) * 2;
    if (dims.length === 1) {
      writeSync(fd, one.subarray(0, bytes));
      continue;
    }
    while (bytes > 0) {
      const n = Math.min(bytes, block.byteLength);
      writeSync(fd, block.subarray(0, n));
      bytes -= n;
    }
    void name;
  }
  closeSync(fd);
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: shape.hidden,
    intermediate_size: shape.inter,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    head_dim: shape.hidden / shape.heads,
    hidden_act: "silu",
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 500000.0,
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    vocab_size: vocab,
    bos_token_id: vocab - 5,
    eos_token_id: vocab - 1,
    torch_dtype: "bfloat16",
  };
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  return offset;
}

if (process.argv[1]?.endsWith("make-checkpoint.js")) {
  const [dir, name, tokenizer] = process.argv.slice(2);
  const shape = SHAPES[name];
  if (!dir || !shape) {
    console.error("usage: make-checkpoint.js OUT_DIR 1b|8b|tiny [TOKENIZER_JSON]");
    process.exit(2);
  }
  const vocab = tokenizer ? vocabSize(tokenizer) : 1029;
  const t0 = performance.now();
  const bytes = writeCheckpoint(dir, shape, vocab);
  console.log(
    `${dir}: ${name} shape, vocab ${vocab}, ${(bytes / 1e9).toFixed(2)} GB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

/**
 * Random-weight llama checkpoints of any shape, for benchmarks: a Hugging Face directory (config.json,
 * bf16 model.safetensors, a fixture byte-level BPE tokenizer padded to the vocabulary size) and, from the
 * same values, a GGUF file (F16 or BF16) that llama.cpp runs. Weights repeat a 16M-value pool of
 * N(0, std²) draws from a seeded generator, each tensor starting at its own offset, so writing 1B
 * parameters takes seconds and the bytes are reproducible.
 */
import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GGML_TYPE, type GgufTensor, type GgufValue, writeGguf } from "./gguf.js";
import { seededRandom } from "./stats.js";

export interface LlamaShape {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  maxPositions?: number;
  ropeTheta?: number;
}

/** The ~1B llama of the benchmarks (Llama 3.2 1B's blocks, a 32k vocabulary). */
export const LLAMA_1B: LlamaShape = {
  hidden: 2048,
  intermediate: 8192,
  layers: 16,
  heads: 32,
  kvHeads: 8,
  vocab: 32000,
};

export interface RandomCheckpointOptions {
  shape: LlamaShape;
  /** Output directory (created). */
  dir: string;
  /** A directory with tokenizer.json (byte-level BPE) and tokenizer_config.json, e.g. a test fixture. */
  tokenizerDir: string;
  seed?: number;
  /** Standard deviation of the weights (default 0.02). */
  std?: number;
  /** Also write `model.gguf` (default "f16"), or not (false). */
  gguf?: "f16" | "bf16" | false;
  onProgress?: (message: string) => void;
}

export interface RandomCheckpoint {
  dir: string;
  ggufPath?: string;
  parameters: number;
  /** Bytes of the bf16 weights. */
  weightBytes: number;
}

const POOL_SIZE = 1 << 24;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → bf16 bits, round to nearest even. */
export function bf16Bits(v: number): number {
  f32[0] = v;
  const u = u32[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bf16 bits → f16 bits, round to nearest even (finite inputs; overflow saturates to ±Inf). */
export function bf16ToF16Bits(h: number): number {
  const sign = (h & 0x8000) >>> 0;
  const exp = (h >>> 7) & 0xff;
  const mant = h & 0x7f;
  if (exp === 0) return sign; // bf16 subnormals are far below f16's range
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e >= 1) return sign | (e << 10) | (mant << 3);
  // f16 subnormal m × 2^-24 with m = (0x80 | mant) × 2^(e + 2) = ((0x80 | mant) << 3) >> (1 - e), rounded.
  const shift = 1 - e; // ≥ 1
  const full = (0x80 | mant) << 3; // 11-bit significand aligned to f16's mantissa
  if (shift > 11) return sign;
  const q = full >>> shift;
  const rem = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  const rounded = rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
  return sign | rounded;
}

/** 32-bit FNV-1a of a string: each tensor's start in the pool. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

interface TensorSpec {
  name: string;
  ggufName: string;
  shape: number[];
  /** Norm weights are ones; matrices come from the pool. */
  ones: boolean;
  /** llama.cpp's rotary layout for q/k (rows of each head interleaved): heads to permute over. */
  permuteHeads?: number;
}

function tensorSpecs(s: LlamaShape): TensorSpec[] {
  const headDim = s.hidden / s.heads;
  const kvDim = s.kvHeads * headDim;
  const specs: TensorSpec[] = [
    {
      name: "model.embed_tokens.weight",
      ggufName: "token_embd.weight",
      shape: [s.vocab, s.hidden],
      ones: false,
    },
  ];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    const g = `blk.${l}.`;
    specs.push(
      { name: `${p}input_layernorm.weight`, ggufName: `${g}attn_norm.weight`, shape: [s.hidden], ones: true },
      {
        name: `${p}self_attn.q_proj.weight`,
        ggufName: `${g}attn_q.weight`,
        shape: [s.hidden, s.hidden],
        ones: false,
        permuteHeads: s.heads,
      },
      {
        name: `${p}self_attn.k_proj.weight`,
        ggufName: `${g}attn_k.weight`,
        shape: [kvDim, s.hidden],
        ones: false,
        permuteHeads: s.kvHeads,
      },
      {
        name: `${p}self_attn.v_proj.weight`,
        ggufName: `${g}attn_v.weight`,
        shape: [kvDim, s.hidden],
        ones: false,
      },
      {
        name: `${p}self_attn.o_proj.weight`,
        ggufName: `${g}attn_output.weight`,
        shape: [s.hidden, s.hidden],
        ones: false,
      },
      {
        name: `${p}post_attention_layernorm.weight`,
        ggufName: `${g}ffn_norm.weight`,
        shape: [s.hidden],
        ones: true,
      },
      {
        name: `${p}mlp.gate_proj.weight`,
        ggufName: `${g}ffn_gate.weight`,
        shape: [s.intermediate, s.hidden],
        ones: false,
      },
      {
        name: `${p}mlp.up_proj.weight`,
        ggufName: `${g}ffn_up.weight`,
        shape: [s.intermediate, s.hidden],
        ones: false,
      },
      {
        name: `${p}mlp.down_proj.weight`,
        ggufName: `${g}ffn_down.weight`,
        shape: [s.hidden, s.intermediate],
        ones: false,
      },
    );
  }
  specs.push(
    { name: "model.norm.weight", ggufName: "output_norm.weight", shape: [s.hidden], ones: true },
    { name: "lm_head.weight", ggufName: "output.weight", shape: [s.vocab, s.hidden], ones: false },
  );
  return specs;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parameters of a llama of this shape (untied head). */
export function llamaParameters(s: LlamaShape): number {
  return tensorSpecs(s).reduce((n, t) => n + numel(t.shape), 0);
}

/** The pool of bf16 values and its f16 twin. */
function makePool(seed: number, std: number): { bf16: Uint16Array; f16: Uint16Array } {
  const next = seededRandom(seed);
  const bf16 = new Uint16Array(POOL_SIZE);
  const f16 = new Uint16Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i += 2) {
    const u = Math.max(next(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const t = 2 * Math.PI * next();
    bf16[i] = bf16Bits(r * Math.cos(t));
    bf16[i + 1] = bf16Bits(r * Math.sin(t));
  }
  for (let i = 0; i < POOL_SIZE; i++) f16[i] = bf16ToF16Bits(bf16[i]);
  return { bf16, f16 };
}

/** The tensor's 16-bit values as pieces of the pool (views, no copies). */
function* poolPieces(pool: Uint16Array, name: string, count: number): Generator<Uint16Array> {
  let at = hashName(name) % POOL_SIZE;
  let left = count;
  while (left > 0) {
    const n = Math.min(left, POOL_SIZE - at);
    yield pool.subarray(at, at + n);
    left -= n;
    at = 0;
  }
}

function materialize(pool: Uint16Array, name: string, count: number): Uint16Array {
  const out = new Uint16Array(count);
  let o = 0;
  for (const piece of poolPieces(pool, name, count)) {
    out.set(piece, o);
    o += piece.length;
  }
  return out;
}

/**
 * llama.cpp's q/k row order: within each head, HF's [2, d/2] halves become [d/2, 2] pairs
 * (convert_hf_to_gguf.py's permute), so its interleaved rope equals HF's rotate-half rope.
 */
function permuteRows(data: Uint16Array, rows: number, cols: number, heads: number): Uint16Array {
  const out = new Uint16Array(data.length);
  const headDim = rows / heads;
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * headDim + j * half + i;
        const dst = h * headDim + i * 2 + j;
        out.set(data.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

function bytesOf(a: Uint16Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

interface TokenizerFiles {
  json: Record<string, unknown>;
  config: Record<string, unknown>;
  /** Tokens by id (0..vocab-1) and whether each is special. */
  tokens: string[];
  special: boolean[];
  merges: string[];
  bos: number;
  eos: number;
}

async function paddedTokenizer(tokenizerDir: string, vocab: number): Promise<TokenizerFiles> {
  const json = JSON.parse(await readFile(join(tokenizerDir, "tokenizer.json"), "utf8"));
  const config = JSON.parse(await readFile(join(tokenizerDir, "tokenizer_config.json"), "utf8"));
  const model = json.model as { type: string; vocab: Record<string, number>; merges: (string | string[])[] };
  if (model.type !== "BPE") throw new Error(`${tokenizerDir}: need a BPE tokenizer, found ${model.type}`);
  const added = json.added_tokens as Record<string, unknown>[] &
    { id: number; content: string; special: boolean }[];
  const byId = new Map<number, { content: string; special: boolean }>();
  for (const [content, id] of Object.entries(model.vocab)) byId.set(id, { content, special: false });
  for (const a of added) byId.set(a.id, { content: a.content, special: true });
  const base = Math.max(...byId.keys()) + 1;
  if (vocab < base) throw new Error(`vocabulary ${vocab} is smaller than the tokenizer's ${base} tokens`);
  for (let id = base; id < vocab; id++) {
    const content = `<|reserved_special_token_${id - base}|>`;
    byId.set(id, { content, special: true });
    added.push({
      id,
      content,
      special: true,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
    });
  }
  const tokens: string[] = [];
  const special: boolean[] = [];
  for (let id = 0; id < vocab; id++) {
    const t = byId.get(id);
    if (!t) throw new Error(`${tokenizerDir}: token id ${id} is missing`);
    tokens.push(t.content);
    special.push(t.special);
  }
  const idOf = (content: unknown) => {
    const i = typeof content === "string" ? tokens.indexOf(content) : -1;
    if (i < 0) throw new Error(`${tokenizerDir}: special token ${String(content)} not in the vocabulary`);
    return i;
  };
  return {
    json,
    config,
    tokens,
    special,
    merges: model.merges.map((m) => (typeof m === "string" ? m : m.join(" "))),
    bos: idOf(config.bos_token),
    eos: idOf(config.eos_token),
  };
}

async function writeSafetensors(path: string, specs: TensorSpec[], pool: Uint16Array): Promise<number> {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of specs) {
    const bytes = numel(t.shape) * 2;
    header[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((json.length + 8) % 8)) % 8);
  const head = Buffer.alloc(8 + json.length);
  head.writeBigUInt64LE(BigInt(json.length));
  head.write(json, 8, "utf8");
  const ones = new Uint16Array(Math.max(...specs.map((t) => (t.ones ? numel(t.shape) : 0)))).fill(0x3f80);
  const file = await open(path, "w");
  try {
    await file.write(head);
    for (const t of specs) {
      const n = numel(t.shape);
      if (t.ones) await file.write(bytesOf(ones.subarray(0, n)));
      else for (const piece of poolPieces(pool, t.name, n)) await file.write(bytesOf(piece));
    }
  } finally {
    await file.close();
  }
  return offset;
}

async function writeLlamaGguf(
  path: string,
  s: LlamaShape,
  specs: TensorSpec[],
  pool: Uint16Array,
  type: "f16" | "bf16",
  tok: TokenizerFiles,
): Promise<void> {
  const meta = new Map<string, GgufValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: "random-llama" }],
    ["general.file_type", { type: "u32", value: type === "f16" ? 1 : 32 }],
    ["llama.context_length", { type: "u32", value: s.maxPositions ?? 4096 }],
    ["llama.embedding_length", { type: "u32", value: s.hidden }],
    ["llama.block_count", { type: "u32", value: s.layers }],
    ["llama.feed_forward_length", { type: "u32", value: s.intermediate }],
    ["llama.attention.head_count", { type: "u32", value: s.heads }],
    ["llama.attention.head_count_kv", { type: "u32", value: s.kvHeads }],
    ["llama.rope.freq_base", { type: "f32", value: s.ropeTheta ?? 500000 }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ["llama.vocab_size", { type: "u32", value: s.vocab }],
    ["llama.rope.dimension_count", { type: "u32", value: s.hidden / s.heads }],
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: "string", value: "llama-bpe" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: tok.tokens }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: tok.special.map((sp) => (sp ? 3 : 1)) }],
    ["tokenizer.ggml.merges", { type: "string[]", value: tok.merges }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: tok.bos }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: tok.eos }],
  ]);
  const ggmlType = type === "f16" ? GGML_TYPE.F16 : GGML_TYPE.BF16;
  const tensors: GgufTensor[] = specs.map((t) => {
    const n = numel(t.shape);
    if (t.ones) {
      return {
        name: t.ggufName,
        shape: t.shape,
        type: GGML_TYPE.F32,
        data: () => [bytesOf(new Float32Array(n).fill(1))],
      };
    }
    return {
      name: t.ggufName,
      shape: t.shape,
      type: ggmlType,
      data: function* () {
        if (t.permuteHeads) {
          const rows = t.shape[0];
          yield bytesOf(permuteRows(materialize(pool, t.name, n), rows, n / rows, t.permuteHeads));
        } else for (const piece of poolPieces(pool, t.name, n)) yield bytesOf(piece);
      },
    };
  });
  await writeGguf(path, meta, tensors);
}

/** Writes the checkpoint directory (and GGUF twin); returns what was written. */
export async function writeRandomLlama(options: RandomCheckpointOptions): Promise<RandomCheckpoint> {
  const s = options.shape;
  if (s.hidden % s.heads !== 0 || s.heads % s.kvHeads !== 0 || (s.hidden / s.heads) % 2 !== 0)
    throw new Error(`inconsistent llama shape ${JSON.stringify(s)}`);
  const log = options.onProgress ?? (() => {});
  await mkdir(options.dir, { recursive: true });
  const tok = await paddedTokenizer(options.tokenizerDir, s.vocab);
  const specs = tensorSpecs(s);
  const parameters = specs.reduce((n, t) => n + numel(t.shape), 0);
  log(`pool of ${POOL_SIZE} random values (seed ${options.seed ?? 0})`);
  const pool = makePool(options.seed ?? 0, options.std ?? 0.02);

  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
    hidden_act: "silu",
    max_position_embeddings: s.maxPositions ?? 4096,
    rms_norm_eps: 1e-5,
    rope_theta: s.ropeTheta ?? 500000,
    vocab_size: s.vocab,
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: tok.bos,
    eos_token_id: tok.eos,
    torch_dtype: "bfloat16",
  };
  await writeFile(join(options.dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  await writeFile(
    join(options.dir, "generation_config.json"),
    `${JSON.stringify({ bos_token_id: tok.bos, eos_token_id: tok.eos, do_sample: false }, null, 2)}\n`,
  );
  await writeFile(join(options.dir, "tokenizer.json"), JSON.stringify(tok.json));
  await writeFile(join(options.dir, "tokenizer_config.json"), `${JSON.stringify(tok.config, null, 2)}\n`);

  log(`model.safetensors: ${(parameters / 1e9).toFixed(3)}B parameters in bf16`);
  const weightBytes = await writeSafetensors(join(options.dir, "model.safetensors"), specs, pool.bf16);
  let ggufPath: string | undefined;
  const gguf = options.gguf ?? "f16";
  if (gguf) {
    ggufPath = join(options.dir, `model-${gguf}.gguf`);
    log(`${ggufPath}: the same weights in ${gguf.toUpperCase()}`);
    await writeLlamaGguf(ggufPath, s, specs, gguf === "f16" ? pool.f16 : pool.bf16, gguf, tok);
  }
  return { dir: options.dir, ggufPath, parameters, weightBytes };
}

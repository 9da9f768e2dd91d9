/**
 * Tiny qwen2 checkpoints whose greedy output is chosen by the test: the decoder layer is zeroed (the
 * residual stream is the current token's embedding), embeddings have a constant dimension plus one-hot
 * dimensions for a few "source" tokens, and lm_head rows are set so that
 *   - after a source token u, the next token is next(u);
 *   - after any other token, the next token is `defaultToken`.
 * Added (non-special) tokens let one token carry a whole string, e.g. a `<tool_call>…</tool_call>` block.
 */
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadTokenizer } from "../../src/text/index.js";
import { fixture } from "../runtime/helpers.js";

const HIDDEN = 64;
const BASE_VOCAB = 1027;
/** `<|im_end|>` of the tiny-qwen2 tokenizer (its eos). */
export const IM_END = 1026;

/** A ChatML template that renders tools, assistant tool calls and tool results the way Qwen 2.5's does. */
export const QWEN_TOOLS_TEMPLATE = `{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}
{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}
{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}
{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
`;

export interface SteerOptions {
  /** Strings added as single (non-special) tokens; they get ids 1027, 1028, … */
  addedTokens?: string[];
  /** The token generated after any token not in `next` (an id, or an index into addedTokens as `{added: i}`). */
  defaultToken: number | { added: number };
  /** Successors: [token, next token] pairs (ids or added-token indexes). */
  next?: [number | { added: number }, number | { added: number }][];
  /** Chat template (default: the fixture's ChatML template). */
  chatTemplate?: string;
  maxPositions?: number;
}

function f32(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function safetensors(tensors: { name: string; shape: number[]; data: Float32Array }[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let text = JSON.stringify(header);
  text += " ".repeat((8 - (text.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const t of tensors) {
    out.set(f32(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes a steered model into `dir` (created) and returns `dir`. */
export async function buildSteeredModel(dir: string, options: SteerOptions): Promise<string> {
  await mkdir(dir, { recursive: true });
  const src = fixture("tiny-qwen2");
  const added = options.addedTokens ?? [];
  const vocab = BASE_VOCAB + added.length;
  const id = (t: number | { added: number }) => (typeof t === "number" ? t : BASE_VOCAB + t.added);

  const tokenizer = JSON.parse(await readFile(join(src, "tokenizer.json"), "utf8"));
  added.forEach((content, i) => {
    tokenizer.added_tokens.push({
      id: BASE_VOCAB + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: false,
    });
  });
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  const tokenizerConfig = JSON.parse(await readFile(join(src, "tokenizer_config.json"), "utf8"));
  if (options.chatTemplate) tokenizerConfig.chat_template = options.chatTemplate;
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));
  await copyFile(join(src, "generation_config.json"), join(dir, "generation_config.json"));

  const config = JSON.parse(await readFile(join(src, "config.json"), "utf8"));
  Object.assign(config, {
    num_hidden_layers: 1,
    layer_types: ["full_attention"],
    tie_word_embeddings: false,
    vocab_size: vocab,
    max_position_embeddings: options.maxPositions ?? 4096,
  });
  await writeFile(join(dir, "config.json"), JSON.stringify(config));

  const next = (options.next ?? []).map(([a, b]) => [id(a), id(b)] as const);
  if (next.length + 1 > HIDDEN) throw new Error("test bug: too many successors");
  const embed = new Float32Array(vocab * HIDDEN);
  for (let t = 0; t < vocab; t++) embed[t * HIDDEN] = 1;
  next.forEach(([from], k) => {
    embed[from * HIDDEN + 1 + k] = 1;
  });
  const head = new Float32Array(vocab * HIDDEN);
  head[id(options.defaultToken) * HIDDEN] = 1;
  next.forEach(([, to], k) => {
    head[to * HIDDEN + 1 + k] = 10;
  });
  const zeros = (...shape: number[]) => new Float32Array(shape.reduce((a, b) => a * b, 1));
  const ones = (n: number) => new Float32Array(n).fill(1);
  const heads = config.num_attention_heads as number;
  const kvHeads = config.num_key_value_heads as number;
  const headDim = config.head_dim as number;
  const inter = config.intermediate_size as number;
  const L = "model.layers.0";
  const tensors = [
    { name: "model.embed_tokens.weight", shape: [vocab, HIDDEN], data: embed },
    { name: "lm_head.weight", shape: [vocab, HIDDEN], data: head },
    { name: "model.norm.weight", shape: [HIDDEN], data: ones(HIDDEN) },
    { name: `${L}.input_layernorm.weight`, shape: [HIDDEN], data: ones(HIDDEN) },
    { name: `${L}.post_attention_layernorm.weight`, shape: [HIDDEN], data: ones(HIDDEN) },
    {
      name: `${L}.self_attn.q_proj.weight`,
      shape: [heads * headDim, HIDDEN],
      data: zeros(heads * headDim, HIDDEN),
    },
    { name: `${L}.self_attn.q_proj.bias`, shape: [heads * headDim], data: zeros(heads * headDim) },
    {
      name: `${L}.self_attn.k_proj.weight`,
      shape: [kvHeads * headDim, HIDDEN],
      data: zeros(kvHeads * headDim, HIDDEN),
    },
    { name: `${L}.self_attn.k_proj.bias`, shape: [kvHeads * headDim], data: zeros(kvHeads * headDim) },
    {
      name: `${L}.self_attn.v_proj.weight`,
      shape: [kvHeads * headDim, HIDDEN],
      data: zeros(kvHeads * headDim, HIDDEN),
    },
    { name: `${L}.self_attn.v_proj.bias`, shape: [kvHeads * headDim], data: zeros(kvHeads * headDim) },
    {
      name: `${L}.self_attn.o_proj.weight`,
      shape: [HIDDEN, heads * headDim],
      data: zeros(HIDDEN, heads * headDim),
    },
    { name: `${L}.mlp.gate_proj.weight`, shape: [inter, HIDDEN], data: zeros(inter, HIDDEN) },
    { name: `${L}.mlp.up_proj.weight`, shape: [inter, HIDDEN], data: zeros(inter, HIDDEN) },
    { name: `${L}.mlp.down_proj.weight`, shape: [HIDDEN, inter], data: zeros(HIDDEN, inter) },
  ];
  await writeFile(join(dir, "model.safetensors"), safetensors(tensors));
  return dir;
}

/** The tool call the tool model always makes first. */
export const WEATHER_CALL =
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';

/**
 * A model that answers every prompt with {@link WEATHER_CALL}, then stops (its template renders tools);
 * started on the opening of a call (the generation prefix of tool_choice "required" / named), it writes
 * the rest of that call instead.
 */
export function buildToolModel(dir: string, chatTemplate = QWEN_TOOLS_TEMPLATE): Promise<string> {
  return buildPrefixFollowingModel(dir, WEATHER_CALL, chatTemplate);
}

/**
 * {@link QWEN_TOOLS_TEMPLATE} rendering the assistant's calls in a syntax the server does not read
 * (`CALL name {…}`): it knows no prefix for it, so required / named are only checked.
 */
export const OPAQUE_CALLS_TEMPLATE = QWEN_TOOLS_TEMPLATE.replace(
  `{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}`,
  `{{- '\\nCALL ' + tool_call.name + ' ' }}{{- tool_call.arguments | tojson }}`,
);

/** The text the endless model repeats. */
export const ENDLESS_TOKEN_TEXT = " tick";

/** A model that never stops on its own (one added token, repeated): generations run until their limit. */
export function buildEndlessModel(dir: string, maxPositions = 8192): Promise<string> {
  return buildSteeredModel(dir, {
    addedTokens: [ENDLESS_TOKEN_TEXT],
    defaultToken: { added: 0 },
    maxPositions,
  });
}

/** What the text model answers. */
export const TEXT_REPLY = "It is sunny in Paris.";

/** A model whose template renders tools but that answers every prompt with {@link TEXT_REPLY} (never a call). */
export function buildTextToolsModel(dir: string): Promise<string> {
  return buildSteeredModel(dir, {
    addedTokens: [TEXT_REPLY],
    defaultToken: { added: 0 },
    next: [[{ added: 0 }, IM_END]],
    chatTemplate: QWEN_TOOLS_TEMPLATE,
  });
}

/** The generation prefix the server derives from {@link QWEN_TOOLS_TEMPLATE} for tool_choice "required". */
export const REQUIRED_PREFIX = '<tool_call>\n{"name": "';
/**
 * …and for a named `get_weather` (the tiny tokenizer has no ` {"` token, so the brace is cut with the
 * prefix; a real Qwen tokenizer ends it at `"arguments":`).
 */
export const NAMED_PREFIX = '<tool_call>\n{"name": "get_weather", "arguments": {';

/** Two calls in one reply (for parallel_tool_calls). */
export const TIME_CALL = '\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';

/**
 * A model that answers `answer` in one token, then stops, unless its reply was started with the opening
 * of a call — {@link REQUIRED_PREFIX} or {@link NAMED_PREFIX}: after the prefix's last token it writes the
 * rest of {@link WEATHER_CALL} (in one token), then stops. (A named prefix of another function ends on the
 * same token, so that call gets Paris's arguments too.)
 */
async function buildPrefixFollowingModel(dir: string, answer: string, chatTemplate: string): Promise<string> {
  const tokenizer = await loadTokenizer(fixture("tiny-qwen2"));
  const last = (text: string) => tokenizer.encode(text, { addSpecialTokens: false }).at(-1)!;
  return buildSteeredModel(dir, {
    addedTokens: [
      answer,
      WEATHER_CALL.slice(REQUIRED_PREFIX.length),
      WEATHER_CALL.slice(NAMED_PREFIX.length),
    ],
    defaultToken: { added: 0 },
    next: [
      [{ added: 0 }, IM_END],
      [last(REQUIRED_PREFIX), { added: 1 }],
      [{ added: 1 }, IM_END],
      [last(NAMED_PREFIX), { added: 2 }],
      [{ added: 2 }, IM_END],
    ],
    chatTemplate,
  });
}

/** A model that answers {@link TEXT_REPLY}, unless its reply was started on a call (it then completes it). */
export function buildCallFollowingModel(dir: string): Promise<string> {
  return buildPrefixFollowingModel(dir, TEXT_REPLY, QWEN_TOOLS_TEMPLATE);
}

/** A model that answers every prompt with two calls, {@link WEATHER_CALL} then {@link TIME_CALL}. */
export function buildTwoCallsModel(dir: string): Promise<string> {
  return buildSteeredModel(dir, {
    addedTokens: [WEATHER_CALL, TIME_CALL],
    defaultToken: { added: 0 },
    next: [
      [{ added: 0 }, { added: 1 }],
      [{ added: 1 }, IM_END],
    ],
    chatTemplate: QWEN_TOOLS_TEMPLATE,
  });
}

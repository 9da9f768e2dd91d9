import { z } from "zod";
import { OllmError } from "../../errors.js";
import type { RawConfig } from "./family.js";

const positiveInt = z.number().int().positive();

/** The config.json fields every llama-like decoder shares. Family schemas extend it. */
export const decoderConfigSchema = z
  .object({
    vocab_size: positiveInt,
    hidden_size: positiveInt,
    intermediate_size: positiveInt,
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt.optional(),
    head_dim: positiveInt.nullish(),
    rms_norm_eps: z.number().positive().default(1e-6),
    max_position_embeddings: positiveInt.default(4096),
    tie_word_embeddings: z.boolean().default(false),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    hidden_act: z.string().default("silu"),
    sliding_window: positiveInt.nullish(),
  })
  .loose();

export type DecoderConfig = z.infer<typeof decoderConfigSchema>;

/** Parses config.json against a schema; every violation is reported at once, named by field. */
export function parseConfig<T extends z.ZodType>(
  schema: T,
  raw: RawConfig,
  architecture: string,
): z.infer<T> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
  throw new OllmError("INVALID_CONFIG", `config.json is not a valid ${architecture} config: ${problems}`);
}

/** Attention geometry derived from a decoder config, with transformers' defaults. */
export function attentionGeometry(c: DecoderConfig) {
  const numHeads = c.num_attention_heads;
  const numKvHeads = c.num_key_value_heads ?? numHeads;
  const headDim = c.head_dim ?? c.hidden_size / numHeads;
  if (numHeads % numKvHeads !== 0)
    throw new OllmError(
      "INVALID_CONFIG",
      `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  if (!Number.isInteger(headDim))
    throw new OllmError(
      "INVALID_CONFIG",
      "hidden_size must be divisible by num_attention_heads when head_dim is unset",
    );
  return { numHeads, numKvHeads, headDim };
}

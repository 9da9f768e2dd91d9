import { z } from "zod";
import { type ConfigViolation, parseWithSchema } from "./validation.js";

/** Upper bound on generated tokens when a config does not set one (as in oLLM). */
export const DEFAULT_MAX_NEW_TOKENS = 500;
/** Largest `topLogprobs` a request may ask for. */
export const MAX_TOP_LOGPROBS = 20;

/**
 * How tokens are generated. Sampling fields left unset fall back to the model's generation_config.json
 * (top-k, top-p, min-p, repetition penalty); `temperature` unset means 0: greedy, deterministic.
 */
export const GenerationConfigSchema = z
  .strictObject({
    maxNewTokens: z
      .number()
      .int("must be an integer")
      .min(1, "must be an integer ≥ 1")
      .default(DEFAULT_MAX_NEW_TOKENS)
      .describe("Upper bound on generated tokens"),
    temperature: z.number().min(0, "must be ≥ 0").optional().describe("0 = greedy (the default)"),
    topP: z.number().gt(0, "must be in (0, 1]").max(1, "must be in (0, 1]").optional(),
    topK: z.number().int("must be an integer").min(0, "must be an integer ≥ 0 (0 = off)").optional(),
    minP: z.number().min(0, "must be in [0, 1]").max(1, "must be in [0, 1]").optional(),
    repetitionPenalty: z.number().gt(0, "must be > 0").optional().describe("1 = off"),
    seed: z
      .number()
      .int("must be an integer")
      .optional()
      .describe("Seed of the sampler (same seed, same output)"),
    stop: z.array(z.string().min(1, "stop strings cannot be empty")).default([]).describe("Stop strings"),
    logprobs: z.boolean().default(false).describe("Return the log-probability of each generated token"),
    topLogprobs: z
      .number()
      .int("must be an integer")
      .min(0, `must be an integer in [0, ${MAX_TOP_LOGPROBS}]`)
      .max(MAX_TOP_LOGPROBS, `must be an integer in [0, ${MAX_TOP_LOGPROBS}]`)
      .default(0)
      .describe("Also return the N most likely tokens at each step (needs logprobs)"),
    stream: z.boolean().default(true).describe("Surfaces stream text as it is generated"),
  })
  // Cross-field rules run even when single fields failed (`when`), so every violation is reported at once.
  .superRefine((value, ctx) => {
    for (const v of generationConfigRules(value))
      ctx.addIssue({ code: "custom", path: [v.field], message: v.message });
  });

/** Rules between fields of a generation config (absent fields count as their defaults). */
export function generationConfigRules(value: unknown): ConfigViolation[] {
  const c = (typeof value === "object" && value !== null ? value : {}) as Partial<Record<string, unknown>>;
  if (typeof c.topLogprobs === "number" && c.topLogprobs > 0 && c.logprobs !== true)
    return [{ field: "topLogprobs", message: "needs logprobs: true" }];
  return [];
}

/** A generation configuration as a caller writes it: every field is optional. */
export type GenerationConfigInput = z.input<typeof GenerationConfigSchema>;
/** A validated generation configuration, with defaults applied. */
export type GenerationConfig = z.output<typeof GenerationConfigSchema>;

/**
 * Validates a generation configuration and applies defaults. Throws one `INVALID_CONFIG`
 * {@link ConfigError} naming every violation at once.
 */
export function validateGenerationConfig(input: unknown = {}): GenerationConfig {
  return parseWithSchema(GenerationConfigSchema, input ?? {}, "generation config", generationConfigRules);
}

import { z } from "zod";
import { decoderConfigSchema, parseConfig } from "./config.js";
import { PreNormDecoder, windowsFromLayerTypes } from "./decoder.js";
import type { ModelFamily } from "./family.js";

export const qwenConfigSchema = decoderConfigSchema.extend({
  use_sliding_window: z.boolean().default(false),
  max_window_layers: z.number().int().nonnegative().optional(),
});

/** Sliding window per layer as Qwen configs describe it: layer_types, or use_sliding_window + max_window_layers. */
export function qwenWindows(raw: Record<string, unknown>, c: z.infer<typeof qwenConfigSchema>) {
  if (!c.use_sliding_window || !c.sliding_window) return () => undefined;
  if (Array.isArray(raw.layer_types)) return windowsFromLayerTypes(raw, c.sliding_window);
  const from = c.max_window_layers ?? 0;
  return (layer: number) => (layer >= from ? (c.sliding_window ?? undefined) : undefined);
}

/** Qwen2 / Qwen2.5: q/k/v projections carry biases (read from the checkpoint), embeddings often tied. */
export const qwen2: ModelFamily = {
  name: "qwen2",
  architectures: ["Qwen2ForCausalLM"],
  create(raw) {
    const config = parseConfig(qwenConfigSchema, raw, "qwen2");
    return new PreNormDecoder(config, raw, {
      architecture: "Qwen2ForCausalLM",
      windowOf: qwenWindows(raw, config),
    });
  },
};

import { decoderConfigSchema, parseConfig } from "./config.js";
import { PreNormDecoder } from "./decoder.js";
import type { ModelFamily } from "./family.js";

/** Mistral: llama with sliding-window attention on every layer when `sliding_window` is set. */
export const mistral: ModelFamily = {
  name: "mistral",
  architectures: ["MistralForCausalLM"],
  create(raw) {
    const config = parseConfig(decoderConfigSchema, raw, "mistral");
    const window = config.sliding_window ?? undefined;
    return new PreNormDecoder(config, raw, { architecture: "MistralForCausalLM", windowOf: () => window });
  },
};

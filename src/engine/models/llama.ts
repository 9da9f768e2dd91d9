import { decoderConfigSchema, parseConfig } from "./config.js";
import { PreNormDecoder } from "./decoder.js";
import type { ModelFamily } from "./family.js";

/** Llama 2/3.x: the plain pre-norm decoder; llama3 rope scaling comes from the config. */
export const llama: ModelFamily = {
  name: "llama",
  architectures: ["LlamaForCausalLM"],
  create(raw) {
    const config = parseConfig(decoderConfigSchema, raw, "llama");
    return new PreNormDecoder(config, raw, { architecture: "LlamaForCausalLM" });
  },
};

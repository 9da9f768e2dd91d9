import { parseConfig } from "./config.js";
import { PreNormDecoder } from "./decoder.js";
import type { ModelFamily } from "./family.js";
import { qwenConfigSchema, qwenWindows } from "./qwen2.js";

/** Qwen3 (dense): qwen2 without biases, plus per-head RMSNorm of q and k before rope. */
export const qwen3: ModelFamily = {
  name: "qwen3",
  architectures: ["Qwen3ForCausalLM"],
  create(raw) {
    const config = parseConfig(qwenConfigSchema, raw, "qwen3");
    return new PreNormDecoder(config, raw, {
      architecture: "Qwen3ForCausalLM",
      windowOf: qwenWindows(raw, config),
      qkNorm: true,
    });
  },
};

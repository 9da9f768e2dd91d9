import { OllmError } from "../../errors.js";
import type { ModelFamily, RawConfig } from "./family.js";
import { gemma3 } from "./gemma3.js";
import { gptOss } from "./gpt-oss.js";
import { llama } from "./llama.js";
import { mistral } from "./mistral.js";
import { qwen2 } from "./qwen2.js";
import { qwen3 } from "./qwen3.js";
import { qwen3Next } from "./qwen3-next.js";

/** Every family the engine can run. */
export const FAMILIES: readonly ModelFamily[] = [llama, mistral, qwen2, qwen3, gemma3, gptOss, qwen3Next];

export function supportedArchitectures(): string[] {
  return FAMILIES.flatMap((f) => f.architectures);
}

/** The family for a config.json, by its `architectures` list. */
export function familyFor(config: RawConfig): ModelFamily {
  const archs = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
  for (const arch of archs) {
    const family = FAMILIES.find((f) => f.architectures.includes(String(arch)));
    if (family) return family;
  }
  const named =
    archs.length > 0 ? archs.join(", ") : `model_type "${String(config.model_type ?? "unknown")}"`;
  throw new OllmError("UNSUPPORTED_ARCHITECTURE", `Unsupported architecture: ${named}`, {
    hint: `supported architectures: ${supportedArchitectures().join(", ")}`,
  });
}

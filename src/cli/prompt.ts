import { OllmError } from "../errors.js";
import { generate } from "../engine/generate.js";
import { loadModel } from "../engine/model.js";
import { loadTokenizer } from "../text/index.js";

interface PromptFlags {
  model: string;
  system?: string;
  maxNewTokens: string;
  temperature: string;
  seed?: string;
}

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new OllmError("INVALID_ARGUMENT", `--${name} expects a number, got "${value}"`);
  return n;
}

/** `ollm prompt`: template the message, stream the reply to stdout. */
export async function runPrompt(text: string, flags: PromptFlags): Promise<void> {
  const [tokenizer, model] = await Promise.all([loadTokenizer(flags.model), loadModel(flags.model)]);
  try {
    const messages = [
      ...(flags.system ? [{ role: "system", content: flags.system }] : []),
      { role: "user", content: text },
    ];
    const ids = tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    });
    const run = generate(model.newSequence(), tokenizer, ids, {
      maxNewTokens: numberFlag("max-new-tokens", flags.maxNewTokens),
      temperature: numberFlag("temperature", flags.temperature),
      seed: numberFlag("seed", flags.seed),
      stopTokenIds: [...new Set([...model.generation.eosTokenIds, ...tokenizer.eosTokenIds])],
    });
    for await (const chunk of run) process.stdout.write(chunk.text);
    process.stdout.write("\n");
  } finally {
    await model.close();
  }
}

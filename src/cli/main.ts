#!/usr/bin/env node
import { Command } from "commander";
import { isOllmError } from "../errors.js";
import { runPrompt } from "./prompt.js";

const program = new Command()
  .name("ollm")
  .description("Run Hugging Face LLMs from safetensors checkpoints on a TypeScript engine")
  .showHelpAfterError()
  .exitOverride();

program
  .command("prompt")
  .description("Generate a reply to one prompt, streamed to stdout")
  .argument("<text>", "the user message")
  .requiredOption("-m, --model <dir>", "a local model directory (config.json + safetensors + tokenizer)")
  .option("--system <text>", "system prompt")
  .option("--max-new-tokens <n>", "upper bound on generated tokens", "128")
  .option("--temperature <t>", "sampling temperature (0 = greedy)", "0")
  .option("--seed <n>", "random seed for sampling")
  .action(runPrompt);

try {
  await program.parseAsync();
} catch (error) {
  if (isOllmError(error)) {
    process.stderr.write(`error: ${error.message}${error.hint ? `\nhint: ${error.hint}` : ""}\n`);
    process.exitCode = error.code === "INVALID_ARGUMENT" ? 2 : 1;
  } else if (error && typeof error === "object" && "exitCode" in error) {
    // commander already printed its message (usage errors, --help).
    process.exitCode = (error as { exitCode: number }).exitCode === 0 ? 0 : 2;
  } else {
    process.stderr.write(`error: ${(error as Error).message ?? String(error)}\n`);
    process.exitCode = 1;
  }
}

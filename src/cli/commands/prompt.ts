/** `ollm prompt [TEXT...]`: one prompt, the reply streamed to stdout (or one JSON result with --json). */
import {
  audioPart,
  type ContentPart,
  DEFAULT_SYSTEM_PROMPT,
  imagePart,
  type Message,
  textPart,
} from "../../messages.js";
import {
  checkAttachments,
  onCtrlC,
  printLogprobs,
  printPlan,
  printStats,
  readHistoryFile,
  readStream,
} from "../common.js";
import type { CliContext } from "../context.js";
import { EXIT, usageError } from "../errors.js";
import { promptResult } from "../schemas.js";

export interface PromptOptions {
  stdin?: boolean;
  system?: string;
  image?: string[];
  audio?: string[];
  historyFile?: string;
  json?: boolean;
  planJson?: boolean;
  logprobs?: number;
}

export async function runPrompt(ctx: CliContext, words: string[], options: PromptOptions): Promise<number> {
  const { ui } = ctx;
  const images = checkAttachments("image", options.image ?? [], ctx.cwd);
  const audio = checkAttachments("audio", options.audio ?? [], ctx.cwd);
  const runtimeConfig = ctx.settings.runtimeConfig();
  if (images.length > 0 || audio.length > 0) runtimeConfig.multimodal = true;
  const generationConfig = ctx.settings.generationConfig();
  if (options.planJson) {
    await printPlan(ctx, runtimeConfig);
    return EXIT.OK;
  }

  let text = words.join(" ");
  if (options.stdin) {
    const input = (await readStream(process.stdin)).replace(/\s+$/, "");
    text = text && input ? `${text}\n\n${input}` : text || input;
  }
  if (text === "" && images.length === 0 && audio.length === 0)
    throw usageError(
      options.stdin ? "--stdin read an empty prompt" : "ollm prompt needs a prompt",
      'Give it as an argument (ollm prompt "Hello"), or pipe it with --stdin.',
    );
  const parts: ContentPart[] = [
    ...(text ? [textPart(text)] : []),
    ...images.map(imagePart),
    ...audio.map(audioPart),
  ];

  let history: Message[] | undefined;
  let systemPrompt = options.system ?? DEFAULT_SYSTEM_PROMPT;
  if (options.historyFile) {
    history = await readHistoryFile(options.historyFile);
    if (options.system !== undefined) history = history.filter((m) => m.role !== "system");
    else if (history.some((m) => m.role === "system")) systemPrompt = "";
  }

  const controller = new AbortController();
  const removeHandler = onCtrlC(ui, () => controller.abort());
  try {
    const stream = (await ctx.client()).stream(parts, {
      runtimeConfig,
      generationConfig,
      systemPrompt,
      history,
      signal: controller.signal,
    });
    const streaming = !options.json && generationConfig.stream;
    let last = "";
    for await (const delta of stream) {
      if (streaming && delta.text) {
        ui.out(delta.text);
        last = delta.text;
      }
    }
    const response = await stream.response;
    if (options.json) {
      ui.out(`${JSON.stringify(promptResult(response, options.logprobs !== undefined), null, 2)}\n`);
    } else {
      if (!streaming) {
        ui.out(response.text);
        last = response.text;
      }
      if (!last.endsWith("\n")) ui.out("\n");
      if (options.logprobs !== undefined) printLogprobs(ui, response);
      if (runtimeConfig.stats) printStats(ui, response);
    }
    if (response.finishReason === "cancelled") {
      ui.line(ui.style("dim", "(stopped)"));
      return EXIT.INTERRUPTED;
    }
    return EXIT.OK;
  } finally {
    removeHandler();
  }
}

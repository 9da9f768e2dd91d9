/**
 * `ollm chat`: an interactive chat over a ChatSession — streaming replies, history, slash commands.
 * Reads lines from stdin; on a terminal it shows a prompt, from a pipe it prints only the replies (and
 * what /history and /help print), so a script can drive it.
 */
import { existsSync } from "node:fs";
import { createInterface, type Interface } from "node:readline";
import {
  audioPart,
  type ContentPart,
  imagePart,
  type Message,
  messageText,
  textPart,
} from "../../messages.js";
import type { ChatSession, PromptStream } from "../../session.js";
import { checkAttachments, printPlan, printStats, readHistoryFile } from "../common.js";
import type { CliContext } from "../context.js";
import { EXIT, exitCodeFor, printError, usageError as usage } from "../errors.js";

export interface ChatOptions {
  sessionName?: string;
  autosave?: string;
  system?: string;
  historyFile?: string;
  planJson?: boolean;
}

/** The slash commands and what they do (for /help). */
export const SLASH_COMMANDS: readonly [string, string][] = [
  ["/image PATH", "attach an image to the next message"],
  ["/audio PATH", "attach an audio file to the next message"],
  ["/send [TEXT]", "send the attachments (with TEXT, if given)"],
  ["/system [TEXT]", "set the system prompt (without TEXT: show it)"],
  ["/reset", "forget the conversation and restore the default system prompt"],
  ["/clear", "forget the conversation, keep the system prompt"],
  ["/undo", "remove the last exchange"],
  ["/retry", "generate the last reply again"],
  ["/save PATH", "save the conversation (it is then autosaved there)"],
  ["/load PATH", "load a saved conversation"],
  ["/history", "show the conversation"],
  ["/help", "show this help"],
  ["/exit", "leave (also /quit, Ctrl-D)"],
];

/** Lines from stdin, one at a time, in order (lines typed while a reply streams wait their turn). */
class LineQueue {
  readonly #lines: string[] = [];
  #closed = false;
  #wake: (() => void) | undefined;

  push(line: string): void {
    this.#lines.push(line);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  async next(): Promise<string | undefined> {
    for (;;) {
      const line = this.#lines.shift();
      if (line !== undefined) return line;
      if (this.#closed) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

export async function runChat(ctx: CliContext, options: ChatOptions): Promise<number> {
  const { ui } = ctx;
  const runtimeConfig = ctx.settings.runtimeConfig();
  const generationConfig = ctx.settings.generationConfig();
  if (options.planJson) {
    await printPlan(ctx, runtimeConfig);
    return EXIT.OK;
  }
  const client = await ctx.client();
  const session = client.session({
    runtimeConfig,
    generationConfig,
    name: options.sessionName,
    systemPrompt: options.system,
    messages: options.historyFile ? await readHistoryFile(options.historyFile) : undefined,
  });
  if (options.autosave) {
    if (existsSync(options.autosave)) {
      await session.load(options.autosave);
      if (ctx.settings.get("runtime.modelReference")?.source.kind === "flag")
        session.runtimeConfig = runtimeConfig;
      if (options.sessionName) session.name = options.sessionName;
      ui.info(`Resumed "${session.name}" (${session.messages.length} messages) from ${session.autosavePath}`);
    } else {
      await session.save(options.autosave);
    }
  }

  const interactive = process.stdin.isTTY === true;
  const repl = new ChatRepl(ctx, session, interactive);
  return repl.run();
}

class ChatRepl {
  readonly #ctx: CliContext;
  readonly #session: ChatSession;
  readonly #interactive: boolean;
  readonly #queue = new LineQueue();
  readonly #pending: ContentPart[] = [];
  #rl: Interface | undefined;
  #current: PromptStream | undefined;
  #idleInterrupts = 0;
  #exitCode: number = EXIT.OK;

  constructor(ctx: CliContext, session: ChatSession, interactive: boolean) {
    this.#ctx = ctx;
    this.#session = session;
    this.#interactive = interactive;
  }

  get #ui() {
    return this.#ctx.ui;
  }

  async run(): Promise<number> {
    const rl = createInterface({
      input: process.stdin,
      output: this.#interactive ? (process.stdout.isTTY ? process.stdout : process.stderr) : undefined,
      terminal: this.#interactive,
      prompt: this.#interactive ? this.#ui.style("bold", "> ") : "",
    });
    this.#rl = rl;
    rl.on("line", (line) => this.#queue.push(line));
    rl.on("close", () => this.#queue.close());
    rl.on("SIGINT", () => this.#interrupt());
    const onSignal = () => this.#interrupt();
    process.on("SIGINT", onSignal);
    try {
      if (this.#interactive) {
        this.#ui.info(
          this.#ui.style(
            "dim",
            `Chatting with ${this.#session.runtimeConfig.modelReference}. Type /help for commands, /exit to leave.`,
          ),
        );
        rl.prompt();
      }
      for (;;) {
        const line = await this.#nextMessageLine();
        if (line === undefined) break;
        const keepGoing = await this.#handle(line);
        if (!keepGoing) break;
        if (this.#interactive) rl.prompt();
      }
    } finally {
      process.off("SIGINT", onSignal);
      rl.close();
      this.#session.close();
    }
    return this.#exitCode;
  }

  /** The next input, joining lines that end with a backslash. */
  async #nextMessageLine(): Promise<string | undefined> {
    let text = await this.#queue.next();
    while (text?.endsWith("\\")) {
      const more = await this.#queue.next();
      if (more === undefined) return text.slice(0, -1);
      text = `${text.slice(0, -1)}\n${more}`;
    }
    return text;
  }

  #interrupt(): void {
    if (this.#current) {
      this.#current.cancel();
      return;
    }
    if (!this.#interactive) process.exit(EXIT.INTERRUPTED);
    this.#idleInterrupts++;
    if (this.#idleInterrupts >= 2) {
      this.#ui.out("\n");
      this.#rl?.close();
      return;
    }
    this.#ui.out("\n");
    this.#ui.info(this.#ui.style("dim", "(press Ctrl-C again or type /exit to leave)"));
    this.#rl?.prompt();
  }

  /** Handles one input line; false ends the chat. */
  async #handle(raw: string): Promise<boolean> {
    const line = raw.trim();
    if (line === "") return true;
    this.#idleInterrupts = 0;
    if (line.startsWith("/") && !line.startsWith("//")) {
      try {
        return await this.#command(line);
      } catch (error) {
        this.#fail(error);
        return true;
      }
    }
    await this.#send(line.startsWith("//") ? raw.trimStart().slice(1) : raw);
    return true;
  }

  #fail(error: unknown): void {
    printError(this.#ui, error);
    const code = exitCodeFor(error);
    if (!this.#interactive && code > this.#exitCode) this.#exitCode = code;
  }

  async #command(line: string): Promise<boolean> {
    const space = line.search(/\s/);
    const name = (space < 0 ? line : line.slice(0, space)).toLowerCase();
    const arg = space < 0 ? "" : line.slice(space + 1).trim();
    const ui = this.#ui;
    const session = this.#session;
    const needArg = (what: string) => {
      if (!arg) throw usage(`${name} needs ${what}`);
    };
    switch (name) {
      case "/exit":
      case "/quit":
        return false;
      case "/help":
        ui.out(`${SLASH_COMMANDS.map(([c, d]) => `${c.padEnd(16)} ${d}`).join("\n")}\n`);
        ui.out(
          "End a line with \\ to continue the message on the next line; start it with // to send a leading /.\n",
        );
        return true;
      case "/image":
      case "/audio": {
        needArg("a file path");
        const kind = name === "/image" ? "image" : "audio";
        const [path] = checkAttachments(kind, [arg], this.#ctx.cwd, name);
        this.#pending.push(kind === "image" ? imagePart(path) : audioPart(path));
        ui.info(
          `attached ${kind} ${arg} (${this.#pending.length} pending; sent with your next message or /send)`,
        );
        return true;
      }
      case "/send":
        if (!arg && this.#pending.length === 0)
          throw usage(
            "/send: nothing to send",
            "Attach with /image or /audio first, or give text: /send TEXT",
          );
        await this.#send(arg);
        return true;
      case "/system":
        if (!arg) {
          ui.out(`${session.systemPrompt || "(no system prompt)"}\n`);
          return true;
        }
        await session.setSystemPrompt(arg);
        ui.info("system prompt set");
        return true;
      case "/reset":
        this.#pending.length = 0;
        await session.reset();
        ui.info("conversation reset");
        return true;
      case "/clear":
        this.#pending.length = 0;
        await session.clear();
        ui.info("conversation cleared");
        return true;
      case "/undo":
        await session.undoLastExchange();
        ui.info(`removed the last exchange (${session.messages.length} messages left)`);
        return true;
      case "/retry":
        await this.#turn(() => this.#streamRetry());
        return true;
      case "/save":
        needArg("a file path");
        await session.save(arg);
        ui.info(
          `saved ${session.messages.length} messages to ${session.autosavePath} (autosaved there from now on)`,
        );
        return true;
      case "/load":
        needArg("a file path");
        await session.load(arg);
        this.#pending.length = 0;
        ui.info(
          `loaded "${session.name}" (${session.messages.length} messages) from ${session.autosavePath}`,
        );
        return true;
      case "/history":
        ui.out(formatHistory(session.systemPrompt, session.messages));
        return true;
      default:
        throw usage(`unknown command ${name}`, "Type /help for the list of commands.");
    }
  }

  async #send(text: string): Promise<void> {
    const parts: ContentPart[] = [...(text ? [textPart(text)] : []), ...this.#pending];
    this.#pending.length = 0;
    await this.#turn(() => this.#session.stream(parts));
  }

  #streamRetry(): PromptStream {
    // retryLast() takes the last exchange off and sends its message again.
    const session = this.#session;
    const n = session.messages.length;
    if (n < 2 || session.messages[n - 1].role !== "assistant")
      throw usage("/retry: there is no reply to retry");
    const user = session.messages[n - 2];
    session.messages.splice(n - 2, 2);
    const stream = session.stream(user.content);
    stream.response.catch(() => {
      session.messages.push(user);
    });
    return stream;
  }

  async #turn(start: () => PromptStream): Promise<void> {
    const ui = this.#ui;
    let stream: PromptStream;
    try {
      stream = start();
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.#current = stream;
    let last = "";
    try {
      for await (const delta of stream) {
        if (delta.text) {
          ui.out(delta.text);
          last = delta.text;
        }
      }
      const response = await stream.response;
      if (!last.endsWith("\n")) ui.out("\n");
      if (response.finishReason === "cancelled") ui.info(ui.style("dim", "(stopped)"));
      if (this.#session.runtimeConfig.stats) printStats(ui, response);
    } catch (error) {
      if (last && !last.endsWith("\n")) ui.out("\n");
      this.#fail(error);
    } finally {
      this.#current = undefined;
    }
  }
}

/** The conversation as text: one block per message. */
export function formatHistory(systemPrompt: string, messages: readonly Message[]): string {
  const lines: string[] = [];
  if (systemPrompt) lines.push(`system: ${systemPrompt}`);
  for (const m of messages) {
    const attachments = m.content
      .filter((p) => p.type !== "text")
      .map((p) =>
        p.type === "image" ? `[image ${p.image}]` : p.type === "audio" ? `[audio ${p.audio}]` : "",
      );
    lines.push(`${m.role}: ${[messageText(m), ...attachments].filter(Boolean).join(" ")}`);
  }
  if (lines.length === 0) lines.push("(no messages yet)");
  return `${lines.join("\n")}\n`;
}

/**
 * The `ollm` command tree (commander). Each command parses its flags, layers them over the
 * configuration ({@link CliContext}) and calls its implementation in ./commands/, loaded on first use
 * so `ollm --help` and completion stay fast.
 */
import { readFileSync } from "node:fs";
import { Argument, type Command, Command as CommanderCommand, Option } from "commander";
import { Catalog } from "../runtime/catalog.js";
import { SHELLS } from "./completion.js";
import { CliContext } from "./context.js";
import { exitCodeFor, printError } from "./errors.js";
import {
  addFlags,
  type ConfigFlag,
  collect,
  generationFlags,
  globalFlags,
  IO_GROUP,
  logprobsFlag,
  runtimeFlags,
  serverFlags,
  statsFlag,
} from "./options.js";

/** The package version (package.json is two levels above both src/cli and dist/cli). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

const IO = IO_GROUP;

/**
 * Wraps a command implementation: builds its context (terminal, layered settings), runs it, prints any
 * error as one line with its hint, and sets the exit status.
 */
function action(
  flags: readonly ConfigFlag[],
  run: (ctx: CliContext, args: unknown[], options: Record<string, unknown>) => Promise<number>,
  /**
   * `check`: the whole configuration must be valid first (exit 2 otherwise); `report`: the command
   * reports problems itself (config show, doctor); `none`: the command reads no configuration.
   */
  config: "check" | "report" | "none" = "check",
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const options = args[args.length - 2] as Record<string, unknown>;
    const positional = args.slice(0, -2);
    const ui = CliContext.ui(command);
    let ctx: CliContext | undefined;
    try {
      ctx = CliContext.create(command, flags, ui);
      if (config === "check") ctx.settings.check();
      process.exitCode = await run(ctx, positional, options);
    } catch (error) {
      ctx?.progress.close();
      printError(ui, error);
      process.exitCode = exitCodeFor(error);
    } finally {
      await ctx?.close().catch(() => {});
    }
  };
}

function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}\n`;
}

/** Builds the `ollm` program. */
export function buildProgram(): Command {
  const program = new CommanderCommand("ollm")
    .description(
      "Run large Hugging Face LLMs on small machines: prompts, chats, plans, model downloads and an OpenAI-compatible server.",
    )
    .version(packageVersion(), "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .showHelpAfterError("(add --help for usage)");
  addFlags(program, globalFlags());
  program.addHelpText(
    "after",
    `${examples([
      'ollm prompt "What does os.path.join do?"',
      'cat notes.txt | ollm prompt --stdin --model llama3-1B-chat "Summarise:"',
      "ollm chat --model Qwen/Qwen3-0.6B --autosave chat.json",
      "ollm models download llama3-1B-chat",
      "ollm doctor",
      "ollm serve --port 8000",
    ])}
Configuration, lowest to highest precedence: built-in defaults < ./ollm.toml (or $OLLM_CONFIG_FILE,
or --config) < OLLM_* environment variables (OLLM_RUNTIME__MODEL_REFERENCE, OLLM_GENERATION__TEMPERATURE,
OLLM_SERVER__PORT, …) < flags. "ollm config show" prints the effective values and their sources.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error, 130 interrupted.`,
  );

  // prompt
  const promptFlags = [...runtimeFlags(), ...generationFlags(), logprobsFlag(), statsFlag()];
  const prompt = program
    .command("prompt")
    .description("Generate a reply to one prompt: the text streams to stdout, everything else goes to stderr")
    .argument("[text...]", "the prompt (words are joined with spaces)")
    .addOption(
      new Option("--stdin", "read the prompt from stdin (appended after TEXT, if given)").helpGroup(IO),
    )
    .addOption(
      new Option(
        "--system <text>",
        'system prompt (default: "You are a helpful assistant."; "" for none)',
      ).helpGroup(IO),
    )
    .addOption(
      new Option("--image <path>", "attach an image (repeatable; implies --multimodal)")
        .argParser(collect)
        .helpGroup(IO),
    )
    .addOption(
      new Option("--audio <path>", "attach an audio file (repeatable; implies --multimodal)")
        .argParser(collect)
        .helpGroup(IO),
    )
    .addOption(
      new Option(
        "--history-file <path>",
        'prior messages, JSON: [{"role":"user","content":"…"}, …] or a chat transcript',
      ).helpGroup(IO),
    )
    .addOption(
      new Option(
        "--json",
        "print one JSON result (model, text, finishReason, usage, timings; tokens with --logprobs)",
      ).helpGroup(IO),
    )
    .addOption(
      new Option("--plan-json", "print the runtime plan as JSON and exit (nothing is loaded)").helpGroup(IO),
    );
  addFlags(prompt, promptFlags);
  prompt.addHelpText(
    "after",
    `${examples([
      'ollm prompt "What does os.path.join do?"',
      'ollm prompt -m ./models/my-model --temperature 0.7 --seed 1 "Write a haiku"',
      'git diff | ollm prompt --stdin "Review this change:"',
      'ollm prompt --json --logprobs 3 "Hi" | jq .tokens',
      'ollm prompt --multimodal -m gemma3-12B --image cat.png "What is this?"',
      "ollm prompt --plan-json -m llama3-8B-chat --kv-cache-strategy resident",
    ])}\nThe --json document is described by "ollm schema prompt" (JSON Schema).\n`,
  );
  prompt.action(
    action(promptFlags, async (ctx, args, options) => {
      const { runPrompt } = await import("./commands/prompt.js");
      return runPrompt(ctx, (args[0] as string[] | undefined) ?? [], options);
    }),
  );

  // chat
  const chatFlags = [...runtimeFlags(), ...generationFlags(), statsFlag()];
  const chat = program
    .command("chat")
    .description("Chat interactively: streamed replies, history, slash commands; also driven by piped stdin")
    .addOption(
      new Option(
        "--session-name <name>",
        'name of the session (saved in transcripts; default "default")',
      ).helpGroup(IO),
    )
    .addOption(
      new Option(
        "--autosave <path>",
        "save the transcript here after every turn (resumed when the file exists)",
      ).helpGroup(IO),
    )
    .addOption(new Option("--system <text>", "system prompt of the session").helpGroup(IO))
    .addOption(
      new Option("--history-file <path>", "start from these messages (JSON, as for prompt)").helpGroup(IO),
    )
    .addOption(new Option("--plan-json", "print the runtime plan as JSON and exit").helpGroup(IO));
  addFlags(chat, chatFlags);
  chat.addHelpText(
    "after",
    `
Slash commands:
  /image PATH, /audio PATH   attach to the next message      /send [TEXT]    send attachments
  /system [TEXT]             set (or show) the system prompt /reset, /clear  forget the conversation
  /undo, /retry              drop / regenerate the last reply /history       show the conversation
  /save PATH, /load PATH     save / load a transcript         /help, /exit
A line ending with \\ continues on the next line. Ctrl-C stops the reply being generated; Ctrl-C twice
(or /exit, Ctrl-D) leaves. From a pipe, each line is a message and only replies are printed.
${examples([
  "ollm chat --model llama3-1B-chat --autosave ~/chats/today.json",
  'printf "Hi\\n/history\\n" | ollm chat -m ./models/my-model',
])}`,
  );
  chat.action(
    action(chatFlags, async (ctx, _args, options) => {
      const { runChat } = await import("./commands/chat.js");
      return runChat(ctx, options);
    }),
  );

  // plan
  const planFlags = runtimeFlags();
  const plan = program
    .command("plan")
    .description(
      "Print the runtime plan (backend, residency, KV cache, memory, reasons) as JSON; nothing is loaded",
    );
  addFlags(plan, planFlags);
  plan.addHelpText(
    "after",
    examples(["ollm plan -m llama3-8B-chat --host-memory-budget 8GiB | jq .plan.reasons"]),
  );
  plan.action(
    action(planFlags, async (ctx) => {
      const { printPlan } = await import("./common.js");
      await printPlan(ctx, ctx.settings.runtimeConfig());
      return 0;
    }),
  );

  // doctor
  const doctorFlags = runtimeFlags();
  const doctor = program
    .command("doctor")
    .description(
      "Check Node.js, CPU, memory, disk, GPUs, directories, the hub, the configuration and the model",
    )
    .addOption(new Option("--json", 'print the report as JSON ("ollm schema doctor")').helpGroup(IO))
    .addOption(new Option("--no-gpu", "skip the WebGPU adapter probe").helpGroup(IO));
  addFlags(doctor, doctorFlags);
  doctor.addHelpText("after", "\nExit status 1 when a check fails (warnings do not).\n");
  doctor.action(
    action(
      doctorFlags,
      async (ctx, _args, options) => {
        const { runDoctor } = await import("./commands/doctor.js");
        return runDoctor(ctx, options);
      },
      "report",
    ),
  );

  // models
  const models = program.command("models").description("List, inspect, download and locate models");
  const refArgument = () =>
    new Argument("<ref>", "built-in alias, Hugging Face repo id (org/name[@rev]) or path");
  models
    .command("list")
    .description("Built-in aliases and the models found under the models directory")
    .option("--installed", "only models that are on disk")
    .option("--json", "print JSON")
    .action(
      action([], async (ctx, _args, options) => {
        const { runModelsList } = await import("./commands/models.js");
        return runModelsList(ctx, options);
      }),
    );
  models
    .command("info")
    .description("What a model is (architecture, size, modalities) and where it is, without loading it")
    .addArgument(refArgument())
    .option("--json", "print the resolved model as JSON")
    .action(
      action([], async (ctx, args, options) => {
        const { runModelsInfo } = await import("./commands/models.js");
        return runModelsInfo(ctx, args[0] as string, options);
      }),
    );
  models
    .command("download")
    .description("Download a model from the Hugging Face Hub (safetensors only; resumable, verified)")
    .addArgument(refArgument())
    .addHelpText(
      "after",
      "\nUses HF_ENDPOINT, HF_TOKEN (or `hf auth login`), HF_HUB_CACHE; --offline or HF_HUB_OFFLINE=1 only checks local copies.\n" +
        examples([
          "ollm models download llama3-1B-chat",
          "ollm models download Qwen/Qwen3-0.6B@main --models-dir ~/models",
        ]),
    )
    .action(
      action([], async (ctx, args) => {
        const { runModelsDownload } = await import("./commands/models.js");
        return runModelsDownload(ctx, args[0] as string);
      }),
    );
  models
    .command("path")
    .description("Print the directory of a downloaded model (exit 1 when it is not on disk)")
    .addArgument(refArgument())
    .action(
      action([], async (ctx, args) => {
        const { runModelsPath } = await import("./commands/models.js");
        return runModelsPath(ctx, args[0] as string);
      }),
    );

  // serve
  const serveFlags = [...serverFlags(), ...runtimeFlags(), ...generationFlags()];
  const serve = program
    .command("serve")
    .description(
      "Start the OpenAI-compatible HTTP server (runtime and generation flags are request defaults)",
    );
  addFlags(serve, serveFlags);
  serve.addHelpText(
    "after",
    "\nBinds 127.0.0.1:8000 by default. A non-loopback --host needs --api-key (or --allow-insecure-public).\nSIGINT/SIGTERM stop it (exit 0).\n" +
      examples([
        "ollm serve -m llama3-1B-chat --port 8080",
        "OLLM_SERVER__API_KEY=secret ollm serve --host 0.0.0.0",
      ]),
  );
  serve.action(
    action(serveFlags, async (ctx) => {
      const { runServe } = await import("./commands/serve.js");
      return runServe(ctx);
    }),
  );

  // config
  const config = program.command("config").description("Inspect the configuration");
  const configFlags = [...runtimeFlags(), ...generationFlags(), ...serverFlags()];
  const show = config
    .command("show")
    .description("Print the effective configuration (as ollm.toml) and where each value came from")
    .addOption(new Option("--json", "print values, sources and problems as JSON").helpGroup(IO));
  addFlags(show, configFlags);
  show.addHelpText(
    "after",
    `
Layers, lowest to highest: built-in defaults < ./ollm.toml (or $OLLM_CONFIG_FILE, or --config FILE)
< OLLM_<SECTION>__<KEY> environment variables < flags. Sections: [runtime], [generation], [server].
${examples(["OLLM_GENERATION__TEMPERATURE=0.7 ollm config show --top-k 40", "ollm config show --json | jq .sources"])}`,
  );
  show.action(
    action(
      configFlags,
      async (ctx, _args, options) => {
        const { runConfigShow } = await import("./commands/config.js");
        return runConfigShow(ctx, options);
      },
      "report",
    ),
  );

  // bench
  program
    .command("bench")
    .description(
      "Measure TTFT, prefill and decode speed, memory bandwidth and GEMV throughput on this machine",
    )
    .requiredOption("--model <dir>", "model directory (config.json + safetensors)")
    .option("--gguf <file>", "the same weights as GGUF, for the llama.cpp peer")
    .option("--peer-dir <dir>", "directory whose node_modules holds node-llama-cpp (peer skipped without it)")
    .option("--threads <list>", "thread counts to run, e.g. 1,2 (default: 1 and every core)")
    .option("--prompt <list>", "prompt lengths in tokens", "128")
    .option("--output <list>", "output lengths in tokens", "32")
    .option("--repeats <n>", "runs of each configuration", "2")
    .option("--session <spec>", "growing-context run TURNSxPROMPT+OUTPUT, or none", "4x64+16")
    .option("--gemv <list>", "weight dtypes for the GEMV measurement (bf16,f16,f32) or none", "bf16")
    .option("--json", "print the result as JSON")
    .option("--history <file>", "append the result as one JSON line to this file")
    .option("--label <text>", "free text stored with the result")
    .addHelpText("after", examples(["ollm bench --model /tmp/llama-1b --threads 1,2 --history bench.jsonl"]))
    .action(
      action(
        [],
        async (ctx, _args, options) => {
          const { runBenchCommand } = await import("./commands/bench.js");
          return runBenchCommand(ctx, options as unknown as import("./commands/bench.js").BenchFlags);
        },
        "none",
      ),
    );

  // completion
  program
    .command("completion")
    .description("Print a shell completion script")
    .addArgument(new Argument("<shell>", "the shell").choices(SHELLS))
    .addHelpText(
      "after",
      examples([
        "source <(ollm completion bash)",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a zsh variable, shown as typed
        'ollm completion zsh > "${fpath[1]}/_ollm"',
        "ollm completion fish > ~/.config/fish/completions/ollm.fish",
      ]),
    )
    .action(
      action(
        [],
        async (ctx, args) => {
          const { completionScript } = await import("./completion.js");
          ctx.ui.out(
            completionScript(program, args[0] as (typeof SHELLS)[number], Catalog.builtin().aliases()),
          );
          return 0;
        },
        "none",
      ),
    );

  // schema
  program
    .command("schema")
    .description("Print the JSON Schema of a JSON document the CLI prints")
    .addArgument(
      new Argument(
        "<name>",
        "prompt (prompt --json), plan (plan / --plan-json), doctor (doctor --json)",
      ).choices(["prompt", "plan", "doctor"]),
    )
    .action(
      action(
        [],
        async (ctx, args) => {
          const { jsonSchema } = await import("./schemas.js");
          ctx.ui.out(`${JSON.stringify(jsonSchema(args[0] as "prompt" | "plan" | "doctor"), null, 2)}\n`);
          return 0;
        },
        "none",
      ),
    );

  // Every command: a short pointer to --help after a usage error, and the same error handling.
  const visit = (command: Command) => {
    command.showHelpAfterError(`(run "${commandPath(command)} --help" for usage)`);
    for (const sub of command.commands) visit(sub);
  };
  visit(program);
  return program;
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * What a command runs with: the terminal ({@link Ui}), the layered {@link Settings}, and a
 * {@link RuntimeClient} that downloads through the Hugging Face materializer and reports progress.
 */
import type { Command } from "commander";
import type { RuntimeClient } from "../client.js";
import type { WebGpuProbe } from "../runtime/machine.js";
import type { ResolvedModel } from "../runtime/resolved-model.js";
import type { MaterializeOptions, Materializer } from "../runtime/materializer.js";
import { type ConfigFlag, flagSettings, globalFlags } from "./options.js";
import { ProgressRenderer } from "./progress.js";
import { Settings } from "./settings.js";
import { Ui } from "./ui.js";

/** The global options every command accepts. */
export interface GlobalOptions {
  config?: string;
  modelsDir?: string;
  offline?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
}

const TRUE_VALUES = new Set(["1", "true", "yes", "on", "y"]);

export class CliContext {
  readonly ui: Ui;
  readonly globals: GlobalOptions;
  readonly env: Record<string, string | undefined>;
  readonly cwd: string;
  readonly progress: ProgressRenderer;
  readonly #command: Command;
  readonly #flags: readonly ConfigFlag[];
  #settings: Settings | undefined;
  #client: RuntimeClient | undefined;
  /**
   * The WebGPU probe of `--backend auto` for the client (default: the runtime's, once per process); set
   * before the client is first used (ollm doctor shares its own probe, or none with --no-gpu).
   */
  gpuProbe: (() => Promise<WebGpuProbe>) | undefined;

  private constructor(ui: Ui, command: Command, flags: readonly ConfigFlag[]) {
    this.ui = ui;
    this.#command = command;
    this.#flags = flags;
    this.globals = command.optsWithGlobals() as GlobalOptions;
    this.env = process.env;
    this.cwd = process.cwd();
    this.progress = new ProgressRenderer(ui);
  }

  /**
   * The configuration layers with the command's own flags on top, read on first use (commands that
   * need no configuration, like completion, work with a broken config file).
   */
  get settings(): Settings {
    this.#settings ??= Settings.load({
      cwd: this.cwd,
      env: this.env,
      configFile: this.globals.config,
      flags: flagSettings(this.#command, [...globalFlags(), ...this.#flags]),
    });
    return this.#settings;
  }

  /** The terminal for a command, before any configuration is read (errors of reading it go here). */
  static ui(command: Command): Ui {
    const globals = command.optsWithGlobals() as GlobalOptions;
    return new Ui({
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
      color: globals.color,
      quiet: globals.quiet,
      verbose: globals.verbose,
    });
  }

  /** The context of a command whose configuration flags are `flags`. */
  static create(command: Command, flags: readonly ConfigFlag[], ui = CliContext.ui(command)): CliContext {
    return new CliContext(ui, command, flags);
  }

  /** Offline: --offline or HF_HUB_OFFLINE. */
  get offline(): boolean {
    const env = this.env.HF_HUB_OFFLINE;
    return this.globals.offline === true || (env !== undefined && TRUE_VALUES.has(env.trim().toLowerCase()));
  }

  /** The client of this command (created once; the library is loaded on first use, so help stays fast). */
  async client(): Promise<RuntimeClient> {
    if (!this.#client) {
      const { RuntimeClient } = await import("../client.js");
      this.#client = new RuntimeClient({
        materializer: this.materializer(),
        onEvent: this.progress.onEvent,
        gpuProbe: this.gpuProbe,
      });
    }
    return this.#client;
  }

  /**
   * Downloads from the Hugging Face Hub (src/hub, loaded on first use), with the environment's hub
   * settings, --offline, and a progress bar.
   */
  materializer(): Materializer {
    return {
      materialize: async (model: ResolvedModel, options: MaterializeOptions) => {
        const { HubModelMaterializer, hubSettingsFromEnv } = await import("../hub/index.js");
        const settings = hubSettingsFromEnv(this.env);
        const hub = new HubModelMaterializer({
          ...settings,
          offline: settings.offline || this.offline,
          onProgress: this.progress.onDownload,
        });
        return hub.materialize(model, options);
      },
    };
  }

  /** Frees the client's runtimes and stops progress output. */
  async close(): Promise<void> {
    this.progress.close();
    await this.#client?.close();
  }
}

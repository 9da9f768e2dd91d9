/**
 * Terminal output of the CLI: colours (respecting NO_COLOR / FORCE_COLOR / --no-color), message lines on
 * stderr, and one transient status line (progress bars, spinners) that is drawn only when stderr is a
 * terminal and --quiet is off. stdout is left to the commands (generated text, JSON).
 */

/** A writable stream as far as the CLI uses it. */
export interface OutStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

export interface UiOptions {
  stdout: OutStream;
  stderr: OutStream;
  env: Record<string, string | undefined>;
  /** false: --no-color. */
  color?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

const ANSI = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
} as const;

type Style = keyof typeof ANSI;

/** Whether to colour a stream: NO_COLOR (non-empty) and --no-color win; FORCE_COLOR forces; else a TTY. */
export function colorEnabled(stream: OutStream, env: UiOptions["env"], flag: boolean | undefined): boolean {
  if (flag === false) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== "") return force !== "0" && force !== "false";
  if (env.TERM === "dumb") return false;
  return stream.isTTY === true;
}

function paint(style: Style, text: string): string {
  const [open, close] = ANSI[style];
  return `\x1b[${open}m${text}\x1b[${close}m`;
}

/** Output helpers shared by every command. */
export class Ui {
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  /** Colours on stderr. */
  readonly color: boolean;
  /** Colours on stdout (for tables a command prints there). */
  readonly outColor: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  /** Transient lines (bars, spinners) are drawn: stderr is a terminal and not --quiet. */
  readonly live: boolean;
  #transient = "";

  constructor(options: UiOptions) {
    this.stdout = options.stdout;
    this.stderr = options.stderr;
    this.color = colorEnabled(options.stderr, options.env, options.color);
    this.outColor = colorEnabled(options.stdout, options.env, options.color);
    this.quiet = options.quiet === true;
    this.verbose = options.verbose === true;
    this.live = options.stderr.isTTY === true && !this.quiet;
  }

  /** Text styled for stderr (unstyled without colours). */
  style(style: Style, text: string): string {
    return this.color ? paint(style, text) : text;
  }

  /** Text styled for stdout. */
  styleOut(style: Style, text: string): string {
    return this.outColor ? paint(style, text) : text;
  }

  /** A line on stderr (kept under the transient line). */
  line(text: string): void {
    this.clearTransient();
    this.stderr.write(`${text}\n`);
  }

  /** A line for people that --quiet suppresses. */
  info(text: string): void {
    if (!this.quiet) this.line(text);
  }

  /** A detail shown only with --verbose. */
  detail(text: string): void {
    if (this.verbose) this.line(this.style("dim", text));
  }

  warn(text: string, hint?: string): void {
    this.line(`${this.style("yellow", "warning:")} ${text}`);
    if (hint) this.line(`${this.style("dim", "hint:")} ${hint}`);
  }

  /** Replaces the transient status line (drawn only when live). */
  transient(text: string): void {
    if (!this.live) return;
    const columns = this.stderr.columns;
    const width = columns !== undefined && columns >= 20 ? columns - 1 : 100;
    const shown = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    this.stderr.write(`\r\x1b[2K${shown}`);
    this.#transient = shown;
  }

  /** Removes the transient line, if one is drawn. */
  clearTransient(): void {
    if (!this.#transient) return;
    this.stderr.write("\r\x1b[2K");
    this.#transient = "";
  }

  /** Writes to stdout (clearing the transient line first, so text never lands inside a bar). */
  out(text: string): void {
    if (text === "") return;
    this.clearTransient();
    this.stdout.write(text);
  }
}

/**
 * `ollm completion bash|zsh|fish`: completion scripts generated from the command tree, so they always
 * match the flags: subcommands, options, option values with a fixed set of choices, files and
 * directories for path options, built-in aliases for model references.
 */
import type { Command, Option } from "commander";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

const FILE_OPTIONS = new Set(["--image", "--audio", "--history-file", "--autosave", "--config"]);
const DIR_OPTIONS = new Set(["--models-dir", "--cache-dir"]);

interface OptionInfo {
  long: string;
  short?: string;
  description: string;
  takesValue: boolean;
  choices?: readonly string[];
  kind: "none" | "file" | "dir" | "choices" | "text";
}

interface CommandInfo {
  /** Space-separated path below the program ("" for the program, "models list"). */
  path: string;
  name: string;
  description: string;
  subcommands: CommandInfo[];
  options: OptionInfo[];
  /** Words for the positional argument, if it has a fixed set. */
  argumentWords: string[];
  /** The positional argument is a path. */
  argumentFiles: boolean;
}

function optionInfo(option: Option): OptionInfo | undefined {
  if (!option.long || option.hidden) return undefined;
  const takesValue = option.required || option.optional;
  const choices = option.argChoices;
  const kind: OptionInfo["kind"] = !takesValue
    ? "none"
    : choices
      ? "choices"
      : FILE_OPTIONS.has(option.long)
        ? "file"
        : DIR_OPTIONS.has(option.long)
          ? "dir"
          : "text";
  return {
    long: option.long,
    short: option.short,
    description: option.description,
    takesValue,
    choices,
    kind,
  };
}

function describe(
  command: Command,
  path: string,
  inherited: OptionInfo[],
  modelWords: readonly string[],
): CommandInfo {
  const own = command.options.map(optionInfo).filter((o): o is OptionInfo => o !== undefined);
  const options = [
    ...own,
    ...inherited,
    { long: "--help", short: "-h", description: "show help", takesValue: false, kind: "none" as const },
  ];
  const arg = command.registeredArguments[0];
  const argName = arg?.name() ?? "";
  const argumentWords = arg?.argChoices ? [...arg.argChoices] : argName === "ref" ? [...modelWords] : [];
  return {
    path,
    name: command.name(),
    description: command.description(),
    options,
    argumentWords,
    argumentFiles: argName === "ref",
    subcommands: command.commands
      .filter((c) => !(c as unknown as { _hidden?: boolean })._hidden)
      .map((c) =>
        describe(
          c,
          path ? `${path} ${c.name()}` : c.name(),
          path === "" ? own.filter((o) => o.long !== "--version") : inherited,
          modelWords,
        ),
      ),
  };
}

function flatten(info: CommandInfo): CommandInfo[] {
  return [info, ...info.subcommands.flatMap(flatten)];
}

function allOptions(commands: CommandInfo[]): OptionInfo[] {
  const byName = new Map<string, OptionInfo>();
  for (const c of commands) for (const o of c.options) byName.set(o.long, o);
  return [...byName.values()];
}

/** The arms of the `case "$cmd/$w"` that walks the words: parent path and word → the subcommand's path. */
function transitionCases(commands: CommandInfo[]): string[] {
  return commands
    .filter((c) => c.path !== "")
    .map((c) => {
      const parent = c.path.includes(" ") ? c.path.slice(0, c.path.lastIndexOf(" ")) : "";
      return `      "${parent}/${c.name}") cmd="${c.path}" ;;`;
    });
}

/** An option's names: the long one, then the short one if any. */
function optionNames(o: OptionInfo): string[] {
  return [o.long, ...(o.short ? [o.short] : [])];
}

function quoteShell(words: readonly string[]): string {
  return words.map((w) => w.replace(/[^A-Za-z0-9_.:@/+-]/g, "")).join(" ");
}

function bash(program: CommandInfo): string {
  const commands = flatten(program);
  const options = allOptions(commands);
  const transitions = transitionCases(commands);
  const valueCases: string[] = [];
  for (const kind of ["file", "dir", "text"] as const) {
    const names = options.filter((o) => o.kind === kind).flatMap(optionNames);
    if (names.length === 0) continue;
    const action =
      kind === "file"
        ? 'COMPREPLY=($(compgen -f -- "$cur"))'
        : kind === "dir"
          ? 'COMPREPLY=($(compgen -d -- "$cur"))'
          : "COMPREPLY=()";
    valueCases.push(`    ${names.join("|")}) ${action}; return 0 ;;`);
  }
  for (const o of options.filter((o) => o.kind === "choices"))
    valueCases.push(
      `    ${optionNames(o).join("|")}) COMPREPLY=($(compgen -W "${quoteShell(o.choices ?? [])}" -- "$cur")); return 0 ;;`,
    );
  const wordCases = commands.map((c) => {
    const words = [
      ...c.subcommands.map((s) => s.name),
      ...c.options.map((o) => o.long),
      ...(c.subcommands.length === 0 ? c.argumentWords : []),
    ];
    return `    "${c.path}") words="${quoteShell(words)}" ;;`;
  });
  return `# bash completion for ollm (generated by \`ollm completion bash\`)
# Load it now:      source <(ollm completion bash)
# Or permanently:   ollm completion bash > ~/.local/share/bash-completion/completions/ollm
_ollm() {
  local cur prev cmd words i w
  COMPREPLY=()
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev=""
  if [ "$COMP_CWORD" -gt 0 ]; then prev="\${COMP_WORDS[COMP_CWORD-1]}"; fi
  cmd=""
  for ((i=1; i<COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$cmd/$w" in
${transitions.join("\n")}
    esac
  done
  case "$prev" in
${valueCases.join("\n")}
  esac
  case "$cmd" in
${wordCases.join("\n")}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _ollm ollm
`;
}

function zshEscape(text: string): string {
  return text
    .replace(/\\/g, "\\\\")
    .replace(/'/g, "'\\''")
    .replace(/:/g, "\\:")
    .replace(/\[/g, "\\[")
    .replace(/]/g, "\\]");
}

function zsh(program: CommandInfo): string {
  const commands = flatten(program);
  const options = allOptions(commands);
  const transitions = transitionCases(commands);
  const valueCases: string[] = [];
  for (const o of options.filter((o) => o.takesValue)) {
    const names = optionNames(o).join("|");
    const action =
      o.kind === "file"
        ? "_files"
        : o.kind === "dir"
          ? "_files -/"
          : o.kind === "choices"
            ? `compadd -- ${quoteShell(o.choices ?? [])}`
            : ":";
    valueCases.push(`    ${names}) ${action}; return ;;`);
  }
  const wordCases = commands.map((c) => {
    const subs = c.subcommands.map((s) => `'${zshEscape(s.name)}:${zshEscape(s.description)}'`);
    const opts = c.options.map((o) => `'${zshEscape(o.long)}:${zshEscape(o.description)}'`);
    const args =
      c.subcommands.length === 0 && c.argumentWords.length > 0
        ? `compadd -- ${quoteShell(c.argumentWords)}; `
        : "";
    const files = c.subcommands.length === 0 && c.argumentFiles ? "_files; " : "";
    return `    "${c.path}")
      subs=(${subs.join(" ")})
      opts=(${opts.join(" ")})
      ${args}${files};;`;
  });
  return `#compdef ollm
# zsh completion for ollm (generated by \`ollm completion zsh\`)
# Load it now:      source <(ollm completion zsh)
# Or permanently:   ollm completion zsh > "\${fpath[1]}/_ollm"
_ollm() {
  local cmd="" w i prev
  local -a subs opts
  prev="\${words[CURRENT-1]}"
  for ((i=2; i<CURRENT; i++)); do
    w="\${words[i]}"
    case "$cmd/$w" in
${transitions.join("\n")}
    esac
  done
  case "$prev" in
${valueCases.join("\n")}
  esac
  case "$cmd" in
${wordCases.join("\n")}
  esac
  if [[ "\${words[CURRENT]}" == -* ]]; then
    _describe -t options 'option' opts
  else
    (( \${#subs} )) && _describe -t commands 'command' subs
  fi
}
if [ "$funcstack[1]" = "_ollm" ]; then
  _ollm "$@"
else
  compdef _ollm ollm
fi
`;
}

function fishEscape(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/'/g, "\\'");
}

function fish(program: CommandInfo): string {
  const commands = flatten(program);
  const lines = [
    "# fish completion for ollm (generated by `ollm completion fish`)",
    "# Load it now:      ollm completion fish | source",
    "# Or permanently:   ollm completion fish > ~/.config/fish/completions/ollm.fish",
    "complete -c ollm -f",
  ];
  const condition = (c: CommandInfo): string => {
    if (c.path === "") return "__fish_use_subcommand";
    const seen = c.path.split(" ").map((p) => `__fish_seen_subcommand_from ${p}`);
    const subs = c.subcommands.map((s) => s.name);
    if (subs.length) seen.push(`not __fish_seen_subcommand_from ${subs.join(" ")}`);
    return seen.join("; and ");
  };
  for (const c of commands) {
    const cond = condition(c);
    for (const s of c.subcommands)
      lines.push(`complete -c ollm -n '${cond}' -a ${s.name} -d '${fishEscape(s.description)}'`);
    if (c.subcommands.length === 0 && c.argumentWords.length > 0)
      lines.push(`complete -c ollm -n '${cond}' -a '${quoteShell(c.argumentWords)}'`);
    if (c.subcommands.length === 0 && c.argumentFiles) lines.push(`complete -c ollm -n '${cond}' -F`);
    for (const o of c.options) {
      if (o.long === "--help" && c.path !== "") continue;
      let line = `complete -c ollm -n '${cond}' -l ${o.long.slice(2)}`;
      if (o.short) line += ` -s ${o.short.slice(1)}`;
      if (o.kind === "choices") line += ` -x -a '${quoteShell(o.choices ?? [])}'`;
      else if (o.kind === "file") line += " -r -F";
      else if (o.kind === "dir") line += " -x -a '(__fish_complete_directories)'";
      else if (o.kind === "text") line += " -x";
      line += ` -d '${fishEscape(o.description)}'`;
      lines.push(line);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The completion script of a shell for a program. */
export function completionScript(program: Command, shell: Shell, modelWords: readonly string[] = []): string {
  const info = describe(program, "", [], modelWords);
  switch (shell) {
    case "bash":
      return bash(info);
    case "zsh":
      return zsh(info);
    default:
      return fish(info);
  }
}

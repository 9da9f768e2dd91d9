import { CommanderError } from "commander";
import { isOllmError, OllmError } from "../errors.js";
import type { Ui } from "./ui.js";

/** Exit statuses of `ollm`. */
export const EXIT = {
  OK: 0,
  /** A runtime failure: a model that cannot load, a download that failed, a failed doctor check. */
  FAILURE: 1,
  /** The command line or the configuration is wrong. */
  USAGE: 2,
  /** Interrupted by Ctrl-C (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;

/** A mistake on the command line (exit 2), e.g. a prompt command without a prompt. */
export function usageError(message: string, hint?: string): OllmError {
  return new OllmError("INVALID_ARGUMENT", message, { hint });
}

const USAGE_CODES = new Set(["INVALID_ARGUMENT", "INVALID_CONFIG"]);

/** The exit status of an error: usage and configuration errors 2, everything else 1. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (isOllmError(error)) {
    if (error.code === "CANCELLED") return EXIT.INTERRUPTED;
    return USAGE_CODES.has(error.code) ? EXIT.USAGE : EXIT.FAILURE;
  }
  return EXIT.FAILURE;
}

/**
 * Prints an error as one line (plus a hint line): `error: <message> [CODE]`. The stack and the cause
 * chain only with --verbose.
 */
export function printError(ui: Ui, error: unknown): void {
  if (isOllmError(error)) {
    ui.line(
      `${ui.style("red", ui.style("bold", "error:"))} ${error.message} ${ui.style("dim", `[${error.code}]`)}`,
    );
    if (error.hint) ui.line(`${ui.style("dim", "hint:")} ${error.hint}`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    ui.line(`${ui.style("red", ui.style("bold", "error:"))} ${message}`);
    if (!ui.verbose) ui.line(`${ui.style("dim", "hint:")} run again with --verbose for details`);
  }
  if (ui.verbose) {
    let cause: unknown = error;
    let depth = 0;
    while (cause instanceof Error && depth < 5) {
      if (cause.stack) ui.line(ui.style("dim", depth === 0 ? cause.stack : `caused by: ${cause.stack}`));
      cause = cause.cause;
      depth++;
    }
  }
}

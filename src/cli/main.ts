#!/usr/bin/env node
/**
 * The `ollm` command: a thin shell over RuntimeClient. Parses the command line (./program.ts), runs the
 * command, and exits 0 (ok), 1 (runtime failure), 2 (usage or configuration error) or 130 (Ctrl-C).
 */
import { CommanderError } from "commander";
import { EXIT, exitCodeFor } from "./errors.js";
import { buildProgram } from "./program.js";

// A reader that goes away (`ollm … | head`) is not an error: stop quietly, as Unix tools do.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const args = process.argv.slice(2);
// Bare `ollm` on a terminal starts a chat, as in oLLM; elsewhere it prints the help.
if (args.length === 0 && process.stdin.isTTY && process.stdout.isTTY) args.push("chat");

try {
  await buildProgram().parseAsync(args, { from: "user" });
} catch (error) {
  if (error instanceof CommanderError) {
    // commander has printed the message (or the help / version).
    process.exitCode = exitCodeFor(error);
  } else {
    process.stderr.write(
      `error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = EXIT.FAILURE;
  }
}

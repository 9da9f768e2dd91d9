/**
 * Runs one engine job in its own process (so its peak RSS is its own) and prints the result on stdout
 * after RESULT_MARKER. Started by runBench: node dist/bench/child.js '<EngineJob JSON>'.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type EngineJob, runEngine } from "./engines.js";

export const RESULT_MARKER = "OLLM_BENCH_RESULT ";

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "") as EngineJob;
  const run = await runEngine(job, (m) => process.stderr.write(`${m}\n`));
  process.stdout.write(`${RESULT_MARKER}${JSON.stringify(run)}\n`);
}

function isEntry(): boolean {
  try {
    return realpathSync(process.argv[1] ?? "") === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  main().then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}

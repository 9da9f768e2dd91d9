#!/usr/bin/env node
// Runs the benchmark library (src/bench) from the built package until `ollm bench` is wired in the CLI.
// Build first (`npm run build`, or set OLLM_DIST to another tsc output directory).
//
//   node tools/bench/run-bench.mjs --model DIR [--gguf FILE --peer-dir DIR] [--threads 1,2]
//        [--prompt 128,512] [--output 32] [--repeats 2] [--session 4x64+16|none] [--gemv bf16,f16,f32]
//        [--json] [--history bench/history.jsonl] [--label TEXT] [--in-process]
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = resolve(process.env.OLLM_DIST ?? join(root, "dist"));
const { runBench, formatBenchTable } = await import(pathToFileURL(join(dist, "bench", "index.js")).href);

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    gguf: { type: "string" },
    "peer-dir": { type: "string" },
    threads: { type: "string" },
    prompt: { type: "string", default: "128" },
    output: { type: "string", default: "32" },
    repeats: { type: "string", default: "2" },
    session: { type: "string", default: "4x64+16" },
    gemv: { type: "string", default: "bf16" },
    "bandwidth-mib": { type: "string", default: "1024" },
    json: { type: "boolean", default: false },
    history: { type: "string" },
    label: { type: "string" },
    "in-process": { type: "boolean", default: false },
  },
});
if (!values.model) {
  console.error("usage: run-bench.mjs --model DIR [--gguf FILE --peer-dir DIR] [--threads 1,2] ...");
  process.exit(2);
}
const list = (s) => (s ? s.split(",").filter(Boolean).map((x) => x.trim()) : undefined);
const ints = (s) => list(s)?.map((x) => Number.parseInt(x, 10));
let session = false;
if (values.session !== "none") {
  const m = /^(\d+)x(\d+)\+(\d+)$/.exec(values.session);
  if (!m) throw new Error(`--session ${values.session}: expected TURNSxPROMPT+OUTPUT, e.g. 4x64+16`);
  session = { turns: +m[1], promptTokens: +m[2], outputTokens: +m[3] };
}
const result = await runBench({
  model: resolve(values.model),
  gguf: values.gguf && resolve(values.gguf),
  peerDir: values["peer-dir"] && resolve(values["peer-dir"]),
  threads: ints(values.threads),
  promptLengths: ints(values.prompt),
  outputLengths: ints(values.output),
  repeats: Number.parseInt(values.repeats, 10),
  session,
  gemvDtypes: list(values.gemv === "none" ? "" : values.gemv),
  bandwidthBytes: Number.parseInt(values["bandwidth-mib"], 10) * 2 ** 20,
  isolate: !values["in-process"],
  historyFile: values.history && resolve(values.history),
  label: values.label,
  onProgress: (m) => console.error(m),
});
console.log(values.json ? JSON.stringify(result, null, 2) : formatBenchTable(result));

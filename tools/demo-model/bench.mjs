#!/usr/bin/env node
// CPU speed of the bundled demo model on our engine, from the built library:
//   npm run build && node tools/demo-model/bench.mjs [distDir] [modelDir]
// Prints load time, time to first token and decode tokens/s (median of 5 runs of 64 greedy tokens,
// generated past <|eot_id|> so every run decodes the same number of tokens; the first run warms up),
// then the README answer. BACKEND=cpu|webgpu|auto picks the backend (default cpu).
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = resolve(import.meta.dirname, "..", "..");
const dist = resolve(process.argv[2] ?? join(root, "dist"));
const dir = resolve(process.argv[3] ?? join(root, "models", "demo"));
const lib = (p) => import(pathToFileURL(join(dist, p)).href);
const { loadModel } = await lib("engine/model.js");
const { generate } = await lib("engine/generate.js");
const { loadTokenizer } = await lib("text/index.js");

const question = "What does os.path.join do?";
let t = performance.now();
const [tokenizer, model] = await Promise.all([loadTokenizer(dir), loadModel(dir, { backend: process.env.BACKEND ?? "cpu" })]);
const loadMs = performance.now() - t;
const prompt = tokenizer.encode(
  tokenizer.applyChatTemplate([{ role: "user", content: question }], { addGenerationPrompt: true }),
  { addSpecialTokens: false },
);

async function run(options) {
  const it = generate(model.newSequence(), tokenizer, prompt, options);
  let text = "";
  for (;;) {
    const r = await it.next();
    if (r.done) return { text, summary: r.value };
    text += r.value.text;
  }
}

const runs = [];
await run({ maxNewTokens: 16, temperature: 0 }); // warm-up
const cpu0 = process.cpuUsage();
for (let i = 0; i < 5; i++) {
  const { summary } = await run({ maxNewTokens: 64, temperature: 0 });
  runs.push(summary);
}
const cpu = process.cpuUsage(cpu0);
const cpuMsPerToken = (cpu.user + cpu.system) / 1000 / runs.reduce((n, s) => n + s.completionTokens, 0);
const rates = runs.map((s) => (s.completionTokens - 1) / (s.decodeMs / 1000)).sort((a, b) => a - b);
const ttft = runs.map((s) => s.timeToFirstTokenMs).sort((a, b) => a - b);
t = performance.now();
const answer = await run({ maxNewTokens: 256, stopTokenIds: model.generation.eosTokenIds });
const answerMs = performance.now() - t;
await model.close();
console.log(
  JSON.stringify(
    {
      model: dir,
      promptTokens: prompt.length,
      loadMs: Math.round(loadMs),
      backend: process.env.BACKEND ?? "cpu",
      timeToFirstTokenMs: Math.round(ttft[2]),
      decodeTokensPerSecond: Number(rates[2].toFixed(1)),
      decodeTokensPerSecondRuns: rates.map((r) => Number(r.toFixed(1))),
      // CPU time of all threads per generated token (prefill included): what a busy machine does not hide.
      cpuMsPerToken: Number(cpuMsPerToken.toFixed(1)),
      threads: process.env.OLLM_CPU_THREADS ?? "default",
      readmeAnswer: { tokens: answer.summary.completionTokens, ms: Math.round(answerMs) },
    },
    null,
    1,
  ),
);
console.log(`\n> ${question}\n${answer.text}`);

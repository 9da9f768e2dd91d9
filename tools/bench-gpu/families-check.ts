/**
 * Every fixture family on this machine's WebGPU adapter against the CPU backend and transformers' golden
 * outputs (test/fixtures/models): prompt logits at every position, a chunked long prompt then decode steps
 * with the KV cache, and greedy generate() ids (steps recorded ahead on the device). Run from the project
 * root; prints one line per check and exits 1 when one fails.
 *
 *   node families-check.js [OUT_TXT]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../src/engine/generate.js";
import { loadModel } from "../../src/engine/model.js";
import { chunkedPromptThenDecodeError, relErr, SILENT } from "./common.js";

const FAMILIES = [
  ...["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-mistral", "tiny-gemma3"],
  ...["tiny-gpt_oss", "tiny-gpt_oss-mxfp4", "tiny-qwen3_next"],
];
const TOL = 1e-3;
const lines: string[] = [];
let failed = 0;
const report = (ok: boolean, what: string) => {
  if (!ok) failed++;
  lines.push(`${ok ? "ok  " : "FAIL"} ${what}`);
  console.log(lines[lines.length - 1]);
};

for (const name of FAMILIES) {
  const dir = join("test/fixtures/models", name);
  const golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
  const raw = readFileSync(join(dir, golden.prompt_logits_file));
  const promptLogits = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const gpu = await loadModel(dir, { backend: "webgpu" });
  const cpu = await loadModel(dir, { backend: "cpu" });
  try {
    const got = await gpu.logits(golden.prompt_ids);
    const vsCpu = relErr(got, await cpu.logits(golden.prompt_ids));
    const vsGolden = relErr(got, promptLogits);
    report(
      vsCpu < TOL && vsGolden < TOL,
      `${name} prompt logits: vs CPU ${vsCpu.toExponential(2)}, vs transformers ${vsGolden.toExponential(2)}`,
    );

    const worst = await chunkedPromptThenDecodeError(gpu, cpu, golden.long_prompt_ids);
    report(
      worst < TOL,
      `${name} long prompt (chunks of 48) + 4 decode steps vs CPU: ${worst.toExponential(2)}`,
    );

    const steps: { margin: number }[] = golden.greedy_steps;
    const tight = steps.findIndex((s) => s.margin < 1e-3);
    const count = tight === -1 ? steps.length : tight + 1;
    const seq = gpu.newSequence();
    const ids: number[] = [];
    for await (const chunk of generate(seq, SILENT, golden.prompt_ids, { maxNewTokens: count }))
      if (chunk.token) ids.push(chunk.token.id);
    const want = golden.greedy_ids.slice(0, count);
    const same = ids.length === want.length && ids.every((id, i) => id === want[i]);
    report(
      same && seq.length === golden.prompt_ids.length + count - 1,
      `${name} greedy generate() ids (${count}) are transformers'`,
    );
    seq.dispose();
  } catch (error) {
    report(false, `${name}: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await gpu.close();
    await cpu.close();
  }
}
lines.push(failed === 0 ? `ALL OK (${lines.length} checks)` : `${failed} FAILED`);
console.log(lines[lines.length - 1]);
if (process.argv[2]) writeFileSync(process.argv[2], `${lines.join("\n")}\n`);
process.exit(failed === 0 ? 0 : 1);

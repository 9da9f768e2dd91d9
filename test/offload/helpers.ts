import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KvCacheOptions } from "../../src/engine/kv/strategies.js";
import type { Model } from "../../src/engine/model.js";
import type { ForwardOptions, Sequence } from "../../src/engine/sequence.js";
import { argmax, readGolden } from "../engine/oracle.js";

/** Fixtures covering every KV shape: full attention, sliding window, mixed windows + sinks + MoE, linear attention. */
export const KV_FIXTURES = ["tiny-llama", "tiny-mistral", "tiny-gemma3", "tiny-gpt_oss", "tiny-qwen3_next"];
/** Fixtures covering every weight layout: sharded, multimodal prefix, stacked bf16 / MXFP4 experts, per-expert tensors. */
export const WEIGHT_FIXTURES = [
  "tiny-llama",
  "tiny-mistral",
  "tiny-gemma3-mm",
  "tiny-gpt_oss",
  "tiny-gpt_oss-mxfp4",
  "tiny-qwen3_next",
];

export interface Script {
  prompt: number[];
  chunkTokens: number;
  /** Ids fed one at a time after the prompt (fixed, so lossy strategies walk the same path). */
  decode: number[];
  order?: ForwardOptions["order"];
}

/** The fixture's 160-token prompt in 48-token chunks, then `steps` greedy ids of the resident run. */
export async function scriptFor(model: Model, name: string, steps = 6): Promise<Script> {
  const { golden } = readGolden(name);
  const script: Script = { prompt: golden.long_prompt_ids, chunkTokens: 48, decode: [] };
  const seq = model.newSequence({ strategy: "resident" });
  try {
    let logits = await (await seq.forward(script.prompt, { logits: "last", chunkTokens: 48 })).read();
    for (let i = 0; i < steps; i++) {
      const id = argmax(logits);
      script.decode.push(id);
      logits = await (await seq.forward([id], { logits: "last" })).read();
    }
  } finally {
    seq.dispose();
  }
  return script;
}

/** Last-position logits after the prompt and after each decoded id. */
export async function runScript(seq: Sequence, script: Script): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  out.push(
    await (
      await seq.forward(script.prompt, {
        logits: "last",
        chunkTokens: script.chunkTokens,
        order: script.order,
      })
    ).read(),
  );
  for (const id of script.decode) out.push(await (await seq.forward([id], { logits: "last" })).read());
  return out;
}

export async function runWith(model: Model, script: Script, kv?: KvCacheOptions): Promise<Float32Array[]> {
  const seq = model.newSequence(kv);
  try {
    return await runScript(seq, script);
  } finally {
    seq.dispose();
  }
}

/** max over steps of max |a − b| / max |b|. */
export function maxRelativeError(got: Float32Array[], want: Float32Array[]): number {
  let worst = 0;
  for (let s = 0; s < want.length; s++) {
    let diff = 0;
    let ref = 0;
    for (let i = 0; i < want[s].length; i++) {
      diff = Math.max(diff, Math.abs(got[s][i] - want[s][i]));
      ref = Math.max(ref, Math.abs(want[s][i]));
    }
    worst = Math.max(worst, diff / ref);
  }
  return worst;
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Small helpers the GPU bench tools share. */
import type { Model } from "../../src/engine/model.js";

/** A detokenizer for generate() when only the token ids matter. */
export const SILENT = { createStreamDecoder: () => ({ push: () => "", flush: () => "" }) };

/** The linear layers of the 1B and 8B llama shapes the probes time: label, out (N), in (K). */
export const LLAMA_LINEAR_SHAPES: [string, number, number][] = [
  ["1B q/o", 2048, 2048],
  ["1B k/v", 512, 2048],
  ["1B gate/up", 8192, 2048],
  ["1B down", 2048, 8192],
  ["8B q/o", 4096, 4096],
  ["8B k/v", 1024, 4096],
  ["8B gate/up", 14336, 4096],
  ["8B down", 4096, 14336],
];

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** max |a − b| / max |b| (infinite when the lengths differ). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

/**
 * The worst relative error of `model` against `reference` over a prompt prefilled in chunks of
 * `chunkTokens`, then `steps` greedy decode steps (the reference's picks) with the KV cache: what the
 * WebGPU family test and families-check.ts compare.
 */
export async function chunkedPromptThenDecodeError(
  model: Model,
  reference: Model,
  ids: number[],
  chunkTokens = 48,
  steps = 4,
): Promise<number> {
  const g = model.newSequence();
  const c = reference.newSequence();
  try {
    let lg = await (await g.forward(ids, { logits: "last", chunkTokens })).read();
    let lc = await (await c.forward(ids, { logits: "last", chunkTokens })).read();
    let worst = relErr(lg, lc);
    for (let i = 0; i < steps; i++) {
      const id = argmax(lc);
      lg = await (await g.forward([id], { logits: "last" })).read();
      lc = await (await c.forward([id], { logits: "last" })).read();
      worst = Math.max(worst, relErr(lg, lc));
    }
    return worst;
  } finally {
    g.dispose();
    c.dispose();
  }
}

import { readFileSync } from "node:fs";
import { join } from "node:path";

/** golden.json of a fixture model (see test/fixtures/README.md). */
export interface Golden {
  vocab_size: number;
  prompt_ids: number[];
  prompt_text: string;
  conversation: { role: string; content: string }[];
  prompt_logits_file: string;
  prompt_logits_shape: [number, number];
  greedy_ids: number[];
  greedy_steps: { id: number; margin: number }[];
  long_prompt_ids: number[];
  long_last_logits_top: { ids: number[]; logits: number[] };
  long_greedy_ids: number[];
  long_greedy_steps: { id: number; margin: number }[];
}

export const FIXTURES = join(import.meta.dirname, "..", "fixtures", "models");

export function fixtureDir(name: string): string {
  return join(FIXTURES, name);
}

export function readGolden(name: string): { golden: Golden; promptLogits: Float32Array } {
  const dir = fixtureDir(name);
  const golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8")) as Golden;
  const buf = readFileSync(join(dir, golden.prompt_logits_file));
  const promptLogits = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return { golden, promptLogits };
}

/** max |a - b| and max |b| over two arrays of one length. */
export function errorBounds(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { maxDiff: number; maxRef: number } {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return { maxDiff, maxRef };
}

/** max |a - b| / max |b|: the relative error used against the fixtures. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  const { maxDiff, maxRef } = errorBounds(actual, expected);
  return maxDiff / maxRef;
}

/** Greedy ids to compare: up to (and including) the first step whose recorded margin is < 1e-3. */
export function comparableSteps(steps: { margin: number }[]): number {
  const firstTight = steps.findIndex((s) => s.margin < 1e-3);
  return firstTight === -1 ? steps.length : firstTight + 1;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

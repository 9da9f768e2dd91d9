import type { Backend } from "../backend.js";
import { rowsOf, type Tensor } from "../tensor.js";

/** The tokens (rows of the chunk) one expert serves, and the weight of its output in each. */
export interface ExpertRoute {
  expert: number;
  rows: Int32Array;
  weights: Float32Array;
}

const f = Math.fround;

/** Indices of the k largest values (ties go to the lower index). */
function topK(values: Float32Array, k: number): number[] {
  return Array.from(values.keys())
    .sort((a, b) => values[b] - values[a] || a - b)
    .slice(0, k);
}

/** softmax in f32, as torch computes it: exp(x - max) / Σ. */
function softmax(values: Float32Array): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) max = Math.max(max, v);
  const e = values.map((v) => f(Math.exp(f(v - max))));
  let sum = 0;
  for (const v of e) sum = f(sum + v);
  return e.map((v) => f(v / sum));
}

/** Groups (row, expert, weight) picks by expert, experts in ascending order, rows in order. */
function byExpert(picks: { row: number; expert: number; weight: number }[]): ExpertRoute[] {
  const experts = [...new Set(picks.map((p) => p.expert))].sort((a, b) => a - b);
  return experts.map((expert) => {
    const mine = picks.filter((p) => p.expert === expert);
    return {
      expert,
      rows: Int32Array.from(mine, (p) => p.row),
      weights: Float32Array.from(mine, (p) => p.weight),
    };
  });
}

/** gpt-oss routing: the top-k router logits of each token, softmax over those k. */
export function topKSoftmaxRoutes(logits: Float32Array, numExperts: number, k: number): ExpertRoute[] {
  const picks: { row: number; expert: number; weight: number }[] = [];
  for (let r = 0; r < logits.length / numExperts; r++) {
    const row = logits.subarray(r * numExperts, (r + 1) * numExperts);
    const top = topK(row, k);
    const weights = softmax(Float32Array.from(top, (e) => row[e]));
    for (let i = 0; i < top.length; i++) picks.push({ row: r, expert: top[i], weight: weights[i] });
  }
  return byExpert(picks);
}

/** Qwen-MoE routing: softmax over every expert, the top-k probabilities, renormalised to sum 1 when `normalize`. */
export function softmaxTopKRoutes(
  logits: Float32Array,
  numExperts: number,
  k: number,
  normalize: boolean,
): ExpertRoute[] {
  const picks: { row: number; expert: number; weight: number }[] = [];
  for (let r = 0; r < logits.length / numExperts; r++) {
    const probs = softmax(logits.subarray(r * numExperts, (r + 1) * numExperts));
    const top = topK(probs, k);
    let sum = 0;
    for (const e of top) sum = f(sum + probs[e]);
    for (const expert of top)
      picks.push({ row: r, expert, weight: normalize ? f(probs[expert] / sum) : probs[expert] });
  }
  return byExpert(picks);
}

/**
 * Σ over routed experts of weight · expert(x) per token. Each expert runs once, on just the tokens routed to it;
 * experts no token picked are neither run nor fetched.
 */
export async function mixExperts(
  b: Backend,
  x: Tensor,
  routes: ExpertRoute[],
  run: (expert: number, rows: Tensor) => Promise<Tensor>,
): Promise<Tensor> {
  const [rows, width] = rowsOf(x);
  const out = b.zeros([rows, width]);
  for (const route of routes) {
    const y = await run(route.expert, b.gatherRows(x, route.rows));
    b.scatterAddRows(out, route.rows, y, route.weights);
  }
  return out;
}

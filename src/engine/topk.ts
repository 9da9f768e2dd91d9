import { OllmError } from "../errors.js";
import { TOPK_MAX } from "./backend.js";

/** Checks k for `Backend.topKRows`. */
export function checkTopK(k: number, cols: number): void {
  if (!Number.isInteger(k) || k < 1 || k > TOPK_MAX || k > cols)
    throw new OllmError(
      "INTERNAL",
      `topKRows: k = ${k} must be an integer in 1..${Math.min(TOPK_MAX, cols)}`,
    );
}

/**
 * `Backend.topKRows` on host values: per row, the k largest (descending, ties → lower index) as
 * [indices…, values…, logSumExp]. The reference the device kernels are tested against.
 */
export function topKRowsHost(x: Float32Array, rows: number, cols: number, k: number): Float32Array {
  checkTopK(k, cols);
  const out = new Float32Array(rows * (2 * k + 1));
  const idx = new Int32Array(k);
  const val = new Float32Array(k);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let filled = 0;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < cols; c++) {
      const v = x[base + c];
      if (v > max) max = v;
      // Insertion into the sorted top-k; a later equal value never passes an earlier one.
      if (filled < k || v > val[k - 1]) {
        let at = filled < k ? filled++ : k - 1;
        while (at > 0 && val[at - 1] < v) {
          val[at] = val[at - 1];
          idx[at] = idx[at - 1];
          at--;
        }
        val[at] = v;
        idx[at] = c;
      }
    }
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[base + c] - max);
    const o = r * (2 * k + 1);
    for (let j = 0; j < k; j++) {
      out[o + j] = idx[j];
      out[o + k + j] = val[j];
    }
    out[o + 2 * k] = max + Math.log(sum);
  }
  return out;
}

/** Small helpers the GPU bench tools share. */

/** A detokenizer for generate() when only the token ids matter. */
export const SILENT = { createStreamDecoder: () => ({ push: () => "", flush: () => "" }) };

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

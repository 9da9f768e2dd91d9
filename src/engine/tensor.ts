/**
 * Tensors are handles owned by a backend. Ops record work against them; only `read()` brings numbers
 * back to JavaScript, asynchronously. The CPU backend executes eagerly behind this interface; a GPU
 * backend records into a command buffer and flushes on read.
 */

/** Element types a backend keeps in memory. Weights stay in their stored type; activations are f32. */
export type DType = "f32" | "bf16" | "f16" | "i8" | "u8" | "i32";

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i8: 1, u8: 1, i32: 4 };

export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Values widened to f32, row-major. */
  read(): Promise<Float32Array>;
  /** Frees the device memory now (tensors are also reclaimed when unreachable). */
  dispose(): void;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Rows × last dimension: how most ops see a tensor. */
export function rowsOf(t: { shape: readonly number[] }): [rows: number, cols: number] {
  const cols = t.shape[t.shape.length - 1] ?? 1;
  return [numel(t.shape) / cols, cols];
}

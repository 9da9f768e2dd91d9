/**
 * The tiled weight layout of the WASM kernels (see wasm/kernels.c), on the JavaScript side: where an
 * element of a tiled [n, k] matrix lives, and row reads out of tiles.
 *
 * Rows come in tiles of 4. Tile t (rows 4t..4t+3) is the 4·k elements from 4t·k on: for every block of 8
 * columns, the 8 elements of row 4t, then of 4t+1, 4t+2, 4t+3; then the k % 8 trailing elements of each of
 * the 4 rows in turn. The n % 4 rows after the last full tile stay row-major. A GEMV over a tile reads one
 * sequential stream instead of four.
 */
import { type WeightData, widenInto } from "../widen.js";

/** Columns per block: 16 bytes of bf16/f16, 32 of f32. */
export const TILE_BLOCK = 8;
/** Rows per tile. */
export const TILE_ROWS = 4;

/** Shape of a tiled matrix. */
export interface TiledLayout {
  n: number;
  k: number;
}

/** Whether an [n, k] matrix is worth tiling (at least one tile and one block). */
export function tileable(shape: readonly number[]): boolean {
  return shape.length === 2 && shape[0] >= TILE_ROWS && shape[1] >= TILE_BLOCK;
}

/** Index in the tiled data of row r's run of columns [c, c + 8) (c a multiple of 8 below k & ~7). */
function blockIndex(layout: TiledLayout, r: number, c: number): number {
  const { k } = layout;
  return (r & ~3) * k + c * TILE_ROWS + (r & 3) * TILE_BLOCK;
}

/** Index in the tiled data of row r's trailing columns (from k & ~7 on). */
function tailIndex(layout: TiledLayout, r: number): number {
  const { k } = layout;
  const k8 = k & ~7;
  return (r & ~3) * k + TILE_ROWS * k8 + (r & 3) * (k - k8);
}

/** Index in the tiled data of element (r, c). */
export function tiledIndex(layout: TiledLayout, r: number, c: number): number {
  const { n, k } = layout;
  if (r >= (n & ~3)) return r * k + c;
  const k8 = k & ~7;
  if (c >= k8) return tailIndex(layout, r) + (c - k8);
  return blockIndex(layout, r, c & ~7) + (c & 7);
}

/** Widens row r of a tiled matrix into dst (f32; dstBits is its Uint32Array view). */
export function widenTiledRow(
  dtype: string,
  data: WeightData,
  layout: TiledLayout,
  r: number,
  dst: Float32Array,
  dstBits: Uint32Array,
): void {
  const { n, k } = layout;
  if (r >= (n & ~3)) {
    widenInto(dtype, data, r * k, k, dst, dstBits);
    return;
  }
  const k8 = k & ~7;
  const step = TILE_ROWS * TILE_BLOCK;
  let at = blockIndex(layout, r, 0);
  for (let c = 0; c < k8; c += TILE_BLOCK, at += step)
    widenInto(dtype, data, at, TILE_BLOCK, dst.subarray(c), dstBits.subarray(c));
  if (k8 < k) widenInto(dtype, data, tailIndex(layout, r), k - k8, dst.subarray(k8), dstBits.subarray(k8));
}

/** A row-major copy of a tiled matrix's elements (same element type). */
export function untiledCopy<T extends Uint16Array | Float32Array>(data: T, layout: TiledLayout): T {
  const { n, k } = layout;
  const out = new (data.constructor as { new (length: number): T })(data.length);
  const k8 = k & ~7;
  const n4 = n & ~3;
  for (let r = 0; r < n4; r++) {
    let at = blockIndex(layout, r, 0);
    for (let c = 0; c < k8; c += TILE_BLOCK, at += TILE_ROWS * TILE_BLOCK)
      out.set(data.subarray(at, at + TILE_BLOCK), r * k + c);
    const tail = tailIndex(layout, r);
    out.set(data.subarray(tail, tail + k - k8), r * k + k8);
  }
  out.set(data.subarray(n4 * k), n4 * k);
  return out;
}

/**
 * MXFP4 (OCP microscaling FP4) weights as gpt-oss checkpoints store them: per output row, blocks of 32
 * values packed two a byte (FP4 e2m1, low nibble first) with one E8M0 scale byte each (2^(s-127)).
 * Rows are decoded into a scratch row inside the matmul; the weight is never expanded in memory.
 */
import { OllmError } from "../../../errors.js";
import { rowsOf } from "../../tensor.js";
import { expectDtype, f32Of, type HostTensor, hostF32 } from "./host.js";

/** The 16 FP4 e2m1 values by nibble (sign bit 3, exponent bits 2..1, mantissa bit 0). */
export const FP4_VALUES = Float32Array.of(0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6);

const BLOCK_BYTES = 16;
const BLOCK_VALUES = 32;

/** 2^(s-127) for every scale byte (255 would be NaN in E8M0; transformers yields 2^128 = inf as well). */
const SCALE_VALUES = Float64Array.from({ length: 256 }, (_, s) => 2 ** (s - 127));

/** Decodes row `row` ([groups] blocks) of an MXFP4 weight into `dst` (groups × 32 values). */
export function decodeMxfp4Row(
  blocks: Uint8Array,
  scales: Uint8Array,
  row: number,
  groups: number,
  dst: Float32Array,
): void {
  for (let g = 0; g < groups; g++) {
    const scale = SCALE_VALUES[scales[row * groups + g]];
    const src = (row * groups + g) * BLOCK_BYTES;
    const out = g * BLOCK_VALUES;
    for (let j = 0; j < BLOCK_BYTES; j++) {
      const byte = blocks[src + j];
      dst[out + 2 * j] = FP4_VALUES[byte & 0x0f] * scale;
      dst[out + 2 * j + 1] = FP4_VALUES[byte >> 4] * scale;
    }
  }
}

/** x [rows, in] @ wᵀ (+ bias) with w [out, in] given as MXFP4 blocks [out, in/32, 16] and scales [out, in/32]. */
export function linearMxfp4(
  x: HostTensor,
  blocks: HostTensor,
  scales: HostTensor,
  bias?: HostTensor,
): HostTensor {
  expectDtype(blocks, "u8", "linearMxfp4", "blocks");
  expectDtype(scales, "u8", "linearMxfp4", "scales");
  const [rows, inDim] = rowsOf(x);
  const [outDim, groups] = rowsOf(scales);
  if (blocks.shape.length < 2 || blocks.shape[blocks.shape.length - 1] !== BLOCK_BYTES)
    throw new OllmError("INTERNAL", `linearMxfp4: blocks [${blocks.shape}] must end in ${BLOCK_BYTES} bytes`);
  if (blocks.data.length !== outDim * groups * BLOCK_BYTES || groups * BLOCK_VALUES !== inDim)
    throw new OllmError(
      "INTERNAL",
      `linearMxfp4: input width ${inDim} vs blocks [${blocks.shape}] and scales [${scales.shape}]`,
    );
  const xs = f32Of(x);
  const b = bias ? f32Of(bias) : undefined;
  const blockData = blocks.data as Uint8Array;
  const scaleData = scales.data as Uint8Array;
  const out = new Float32Array(rows * outDim);
  const row = new Float32Array(inDim);
  for (let o = 0; o < outDim; o++) {
    decodeMxfp4Row(blockData, scaleData, o, groups, row);
    for (let r = 0; r < rows; r++) {
      const xo = r * inDim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let k = 0;
      for (; k + 3 < inDim; k += 4) {
        s0 += xs[xo + k] * row[k];
        s1 += xs[xo + k + 1] * row[k + 1];
        s2 += xs[xo + k + 2] * row[k + 2];
        s3 += xs[xo + k + 3] * row[k + 3];
      }
      for (; k < inDim; k++) s0 += xs[xo + k] * row[k];
      out[r * outDim + o] = Math.fround(s0 + s1 + s2 + s3) + (b ? b[o] : 0);
    }
  }
  return hostF32([rows, outDim], out);
}

import { DTYPE_BYTES, type DType } from "../../tensor.js";

/** Conversions of stored weight types to f32, row by row into a scratch buffer. */

const f16Table = buildF16Table();

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return table;
}

export type WeightData = Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array;

/** Widens `count` elements of `src` from `offset` into `dst` (f32). bf16 is the top half of an f32. */
export function widenInto(
  dtype: string,
  src: WeightData,
  offset: number,
  count: number,
  dst: Float32Array,
  dstBits: Uint32Array,
): void {
  switch (dtype) {
    case "f32":
      dst.set((src as Float32Array).subarray(offset, offset + count));
      return;
    case "bf16": {
      const s = src as Uint16Array;
      for (let i = 0; i < count; i++) dstBits[i] = s[offset + i] << 16;
      return;
    }
    case "f16": {
      const s = src as Uint16Array;
      for (let i = 0; i < count; i++) dst[i] = f16Table[s[offset + i]];
      return;
    }
    default:
      for (let i = 0; i < count; i++) dst[i] = src[offset + i];
  }
}

export function widenAll(dtype: string, src: WeightData): Float32Array {
  if (dtype === "f32") return src as Float32Array;
  const out = new Float32Array(src.length);
  widenInto(dtype, src, 0, src.length, out, new Uint32Array(out.buffer));
  return out;
}

/** A typed-array view of little-endian bytes in `dtype`; copies when the bytes are not aligned for it. */
export function typedView(bytes: Uint8Array, dtype: DType): WeightData {
  const size = DTYPE_BYTES[dtype];
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset, byteLength } = aligned;
  switch (dtype) {
    case "f32":
      return new Float32Array(buffer, byteOffset, byteLength / 4);
    case "bf16":
    case "f16":
      return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case "i8":
      return new Int8Array(buffer, byteOffset, byteLength);
    case "u8":
      return new Uint8Array(buffer, byteOffset, byteLength);
    case "i32":
      return new Int32Array(buffer, byteOffset, byteLength / 4);
  }
}

/** Element types a safetensors header may declare (the names are the format's own). */
export type SafetensorsDType =
  | "BF16"
  | "F16"
  | "F32"
  | "F64"
  | "I8"
  | "U8"
  | "I16"
  | "U16"
  | "I32"
  | "U32"
  | "I64"
  | "U64"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

const BYTE_SIZES: Readonly<Record<SafetensorsDType, number>> = {
  BF16: 2,
  F16: 2,
  F32: 4,
  F64: 8,
  I8: 1,
  U8: 1,
  I16: 2,
  U16: 2,
  I32: 4,
  U32: 4,
  I64: 8,
  U64: 8,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export function dtypeByteSize(d: SafetensorsDType): number {
  return BYTE_SIZES[d];
}

export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  // Object.hasOwn so that "toString" or "__proto__" are not mistaken for dtypes.
  return typeof value === "string" && Object.hasOwn(BYTE_SIZES, value);
}

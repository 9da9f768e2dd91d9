import { OllmError } from "../../../errors.js";
import { type DType, numel } from "../../tensor.js";
import { type WeightData, widenAll } from "./widen.js";

/** What a CPU kernel sees of a tensor: shape, stored type and data (a CpuTensor is one). */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data: WeightData;
}

/** The values widened to f32 (the data itself when already f32). */
export function f32Of(t: HostTensor): Float32Array {
  return widenAll(t.dtype, t.data);
}

export function hostF32(shape: readonly number[], data: Float32Array): HostTensor {
  return { shape, dtype: "f32", data };
}

export function expectDtype(t: HostTensor, dtype: DType, op: string, what: string): void {
  if (t.dtype !== dtype) throw new OllmError("INTERNAL", `${op}: ${what} must be ${dtype}, got ${t.dtype}`);
}

export function expectSize(t: HostTensor, size: number, op: string, what: string): void {
  if (numel(t.shape) !== size)
    throw new OllmError("INTERNAL", `${op}: ${what} [${t.shape}] should hold ${size} values`);
}

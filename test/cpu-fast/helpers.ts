/** Random weights in every stored dtype, and the relative error the fast kernels are held to. */

import { bf16Bits as toBf16 } from "../../src/bench/random-checkpoint.js";
import { seededRandom as rng } from "../../src/bench/stats.js";

export { rng, toBf16 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 -> f16 bits (truncating; values here stay inside the f16 range). */
export function toF16(v: number): number {
  f32[0] = v;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    return sign | ((mant | 0x800000) >>> (14 - exp));
  }
  return sign | (exp << 10) | (mant >>> 13);
}

export type MatDType = "bf16" | "f16" | "f32";

/** Bytes of an [n, k] weight with values spread over several magnitudes (and f16 subnormals). */
export function randomWeight(dtype: MatDType, count: number, next: () => number): Uint8Array {
  const value = () => {
    const r = next();
    const scale = r < 0.05 ? 1e-6 : r < 0.1 ? 30 : 1;
    return (next() * 2 - 1) * scale;
  };
  if (dtype === "f32") {
    const a = new Float32Array(count);
    for (let i = 0; i < count; i++) a[i] = value();
    return new Uint8Array(a.buffer);
  }
  const a = new Uint16Array(count);
  for (let i = 0; i < count; i++) a[i] = dtype === "bf16" ? toBf16(value()) : toF16(value());
  return new Uint8Array(a.buffer);
}

export function randomActivations(count: number, next: () => number): Float32Array {
  const a = new Float32Array(count);
  for (let i = 0; i < count; i++) a[i] = (next() * 2 - 1) * (next() < 0.02 ? 100 : 1);
  return a;
}

/** max |a - b| / max |b| (the fixtures' measure), NaN-aware: NaN or ±Inf must match exactly. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const b = expected[i];
    if (!Number.isFinite(b)) {
      if (!Object.is(a, b) && !(Number.isNaN(a) && Number.isNaN(b))) return Number.POSITIVE_INFINITY;
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(a - b));
    maxRef = Math.max(maxRef, Math.abs(b));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

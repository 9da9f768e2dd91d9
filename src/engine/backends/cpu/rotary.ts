/**
 * Rotary embedding (rotate-half) on the CPU. The cos/sin table of a call's positions is kept: every layer
 * rotates q and k at the same positions with the same spec, so a decode step computes it once, not twice a
 * layer. Values are the reference's (reference.ts): angle = f32(invFreq · pos), cos/sin rounded to f32, times
 * attentionScaling, rounded to f32.
 */
import { OllmError } from "../../../errors.js";
import type { RopeOptions, RopeSpec } from "../../backend.js";
import { rowsOf } from "../../tensor.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";

interface Table {
  spec: RopeSpec;
  invFreq: Float32Array;
  half: number;
  positions: Int32Array;
  cos: Float32Array;
  sin: Float32Array;
}

let cached: Table | undefined;

function samePositions(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function table(spec: RopeSpec, half: number, positions: Int32Array): Table {
  const c = cached;
  if (
    c &&
    c.spec === spec &&
    c.invFreq === spec.invFreq &&
    c.half === half &&
    samePositions(c.positions, positions)
  )
    return c;
  const rows = positions.length;
  const cos = new Float32Array(rows * half);
  const sin = new Float32Array(rows * half);
  const inv = spec.invFreq;
  const scaling = spec.attentionScaling;
  for (let r = 0; r < rows; r++) {
    const pos = positions[r];
    for (let i = 0; i < half; i++) {
      // transformers computes the angle in f32; round the same way.
      const angle = Math.fround(inv[i] * pos);
      cos[r * half + i] = Math.fround(Math.cos(angle)) * scaling;
      sin[r * half + i] = Math.fround(Math.sin(angle)) * scaling;
    }
  }
  cached = { spec, invFreq: inv, half, positions: positions.slice(), cos, sin };
  return cached;
}

export function rope(x: HostTensor, positions: Int32Array, spec: RopeSpec, options: RopeOptions): HostTensor {
  const xs = f32Of(x);
  const [rows, width] = rowsOf(x);
  if (rows !== positions.length)
    throw new OllmError("INTERNAL", `rope: ${rows} rows, ${positions.length} positions`);
  const headDim = options.headDim;
  const half = (options.rotaryDim ?? headDim) / 2;
  if (half > spec.invFreq.length)
    throw new OllmError("INTERNAL", `rope: rotary width ${2 * half} over ${spec.invFreq.length} frequencies`);
  const { cos, sin } = table(spec, half, positions);
  // Columns past the rotary width of each head pass through (partial rotary).
  const whole = 2 * half === headDim && width % headDim === 0;
  const out = whole ? new Float32Array(rows * width) : xs.slice(0, rows * width);
  for (let r = 0; r < rows; r++) {
    const t = r * half;
    for (let h = r * width; h < (r + 1) * width; h += headDim) {
      for (let i = 0; i < half; i++) {
        const x1 = xs[h + i];
        const x2 = xs[h + i + half];
        const c = cos[t + i];
        const s = sin[t + i];
        out[h + i] = x1 * c - x2 * s;
        out[h + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return hostF32(x.shape, out);
}

/** Kernels of mixture-of-experts layers: expert views, [in, out] matmul, routing gather/scatter, gpt-oss GLU. */
import { OllmError } from "../../../errors.js";
import { numel, rowsOf } from "../../tensor.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";
import { widenInto } from "./widen.js";

/** Index `index` of the leading dimension, sharing t's data (no copy). */
export function subTensor(t: HostTensor, index: number): HostTensor {
  const [lead, ...rest] = t.shape;
  if (!(Number.isInteger(index) && index >= 0 && index < lead))
    throw new OllmError("INTERNAL", `subTensor: index ${index} outside [${t.shape}]`);
  const size = numel(rest);
  const shape = rest.length > 0 ? rest : [1];
  return { shape, dtype: t.dtype, data: t.data.subarray(index * size, (index + 1) * size) };
}

/** x [rows, in] @ w [in, out] (+ bias): one weight row (one input feature) widened at a time. */
export function matmul(x: HostTensor, w: HostTensor, bias?: HostTensor): HostTensor {
  const xs = f32Of(x);
  const [rows, inDim] = rowsOf(x);
  const outDim = w.shape[w.shape.length - 1];
  if (numel(w.shape) !== inDim * outDim)
    throw new OllmError("INTERNAL", `matmul: input width ${inDim} vs weight [${w.shape}]`);
  const acc = new Float64Array(rows * outDim);
  const row = new Float32Array(outDim);
  const rowBits = new Uint32Array(row.buffer);
  for (let i = 0; i < inDim; i++) {
    widenInto(w.dtype, w.data, i * outDim, outDim, row, rowBits);
    for (let r = 0; r < rows; r++) {
      const xv = xs[r * inDim + i];
      if (xv === 0) continue;
      const base = r * outDim;
      for (let o = 0; o < outDim; o++) acc[base + o] += xv * row[o];
    }
  }
  const out = new Float32Array(rows * outDim);
  const b = bias ? f32Of(bias) : undefined;
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outDim; o++) out[r * outDim + o] = Math.fround(acc[r * outDim + o]) + (b ? b[o] : 0);
  return hostF32([rows, outDim], out);
}

export function gatherRows(x: HostTensor, rows: Int32Array): HostTensor {
  const xs = f32Of(x);
  const [count, cols] = rowsOf(x);
  const out = new Float32Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!(r >= 0 && r < count)) throw new OllmError("INTERNAL", `gatherRows: row ${r} outside ${count} rows`);
    out.set(xs.subarray(r * cols, (r + 1) * cols), i * cols);
  }
  return hostF32([rows.length, cols], out);
}

/** dst[rows[i]] += weights[i] · src[i], in place (dst f32). */
export function scatterAddRows(
  dst: HostTensor,
  rows: Int32Array,
  src: HostTensor,
  weights: Float32Array,
): void {
  if (dst.dtype !== "f32") throw new OllmError("INTERNAL", "scatterAddRows: destination must be f32");
  const d = dst.data as Float32Array;
  const [count, cols] = rowsOf(dst);
  const [srcRows, srcCols] = rowsOf(src);
  if (srcCols !== cols || srcRows !== rows.length || weights.length !== rows.length)
    throw new OllmError(
      "INTERNAL",
      `scatterAddRows: [${src.shape}] into [${dst.shape}] with ${rows.length} rows`,
    );
  const s = f32Of(src);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!(r >= 0 && r < count))
      throw new OllmError("INTERNAL", `scatterAddRows: row ${r} outside ${count} rows`);
    const w = weights[i];
    for (let c = 0; c < cols; c++) d[r * cols + c] += Math.fround(s[i * cols + c] * w);
  }
}

/** gpt-oss GLU over interleaved [gate, up] columns: (clamp(up, ±limit) + 1) · g · σ(alpha · g), g = min(gate, limit). */
export function clampedSwiglu(gateUp: HostTensor, alpha: number, limit: number): HostTensor {
  const xs = f32Of(gateUp);
  const [rows, cols] = rowsOf(gateUp);
  if (cols % 2 !== 0) throw new OllmError("INTERNAL", `clampedSwiglu: odd width ${cols}`);
  const half = cols / 2;
  const f = Math.fround;
  const a = f(alpha);
  const out = new Float32Array(rows * half);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      const gate = Math.min(xs[r * cols + 2 * i], limit);
      const up = Math.min(Math.max(xs[r * cols + 2 * i + 1], -limit), limit);
      const glu = f(gate * f(1 / (1 + Math.exp(-f(gate * a)))));
      out[r * half + i] = f(up + 1) * glu;
    }
  }
  return hostF32([rows, half], out);
}

/** Column-wise kernels: splitting fused projections, concatenation, sigmoid gates, soft-capping. */
import { OllmError } from "../../../errors.js";
import { numel, rowsOf } from "../../tensor.js";
import { f32Of, type HostTensor, hostF32 } from "./host.js";

export function sliceColumns(x: HostTensor, start: number, width: number, group?: number): HostTensor {
  const xs = f32Of(x);
  const [rows, cols] = rowsOf(x);
  const g = group ?? cols;
  if (cols % g !== 0 || start < 0 || width < 0 || start + width > g)
    throw new OllmError(
      "INTERNAL",
      `sliceColumns: [${start}, ${start + width}) of groups of ${g} in width ${cols}`,
    );
  const groups = cols / g;
  const outCols = groups * width;
  const out = new Float32Array(rows * outCols);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < groups; j++) {
      const from = r * cols + j * g + start;
      out.set(xs.subarray(from, from + width), r * outCols + j * width);
    }
  return hostF32([rows, outCols], out);
}

export function concatColumns(parts: HostTensor[]): HostTensor {
  if (parts.length === 0) throw new OllmError("INTERNAL", "concatColumns: no parts");
  const rows = rowsOf(parts[0])[0];
  const widths = parts.map((p) => {
    const [r, c] = rowsOf(p);
    if (r !== rows) throw new OllmError("INTERNAL", `concatColumns: ${r} rows vs ${rows}`);
    return c;
  });
  const cols = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * cols);
  let offset = 0;
  parts.forEach((p, i) => {
    const xs = f32Of(p);
    const w = widths[i];
    for (let r = 0; r < rows; r++) out.set(xs.subarray(r * w, (r + 1) * w), r * cols + offset);
    offset += w;
  });
  return hostF32([rows, cols], out);
}

export function sigmoidGate(x: HostTensor, gate: HostTensor): HostTensor {
  const xs = f32Of(x);
  const gs = f32Of(gate);
  const [rows, cols] = rowsOf(x);
  const gateCols = numel(gate.shape) / rows;
  if (gateCols !== cols && gateCols !== 1)
    throw new OllmError("INTERNAL", `sigmoidGate: gate [${gate.shape}] does not fit [${x.shape}]`);
  const out = new Float32Array(xs.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const g = gs[gateCols === 1 ? r : r * cols + c];
      out[r * cols + c] = xs[r * cols + c] * Math.fround(1 / (1 + Math.exp(-g)));
    }
  return hostF32(x.shape, out);
}

export function softcap(x: HostTensor, cap: number): HostTensor {
  const xs = f32Of(x);
  const out = new Float32Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = Math.fround(Math.tanh(Math.fround(xs[i] / cap))) * cap;
  return hostF32(x.shape, out);
}

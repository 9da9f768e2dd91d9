import type { Backend, InputNorm, LinearFusion } from "./backend.js";
import type { Tensor } from "./tensor.js";

/** x, RMS-normed when a norm is given: the unfused form of `InputFusion`. */
export function normedInput(b: Backend, x: Tensor, norm: InputNorm | undefined): Tensor {
  return norm ? b.rmsNorm(x, norm.weight, norm.eps, norm.weightOffset) : x;
}

/** `op` over the normed input, plus the residual: the unfused form of `LinearFusion`, for any backend. */
export function unfusedLinear(
  b: Backend,
  x: Tensor,
  fusion: LinearFusion | undefined,
  op: (input: Tensor) => Tensor,
): Tensor {
  const y = op(normedInput(b, x, fusion?.norm));
  return fusion?.residual ? b.add(y, fusion.residual) : y;
}

import type { DType, Tensor } from "./tensor.js";

/** Rotary embedding tables of one rope variant: inverse frequencies and the output scaling. */
export interface RopeSpec {
  readonly invFreq: Float32Array;
  /** cos/sin are multiplied by this (YaRN's attention factor; 1 otherwise). */
  readonly attentionScaling: number;
}

export interface RopeOptions {
  /** Width of one head in the tensor. */
  headDim: number;
  /** Leading dimensions of each head that rotate (partial rotary); defaults to headDim. */
  rotaryDim?: number;
}

export interface AttentionOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Multiplier applied to q·k. */
  scale: number;
  /** Absolute position of each query row. Key row j holds absolute position j. */
  queryPositions: Int32Array;
  /** Number of valid key/value rows. */
  kvLength: number;
  /** Keys with `qPos - kPos >= window` are masked (sliding-window attention). */
  window?: number;
  /** Per-head learned sink logits that join the softmax but carry no value (gpt-oss). */
  sinks?: Tensor;
  /** tanh soft-capping of the scores: cap * tanh(s / cap). */
  softcap?: number;
}

/**
 * The compute seam. Ops return new tensors (or write into a destination) without returning numbers;
 * a backend may run them eagerly (CPU) or record them for one submission (WebGPU).
 * Row-major layouts: activations are [rows, cols]; linear weights are [out, in] as in safetensors.
 */
export interface Backend {
  readonly name: string;

  /** A tensor from raw little-endian bytes in `dtype` (weights keep their stored type). */
  upload(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor;
  fromFloat32(data: Float32Array, shape: number[]): Tensor;
  zeros(shape: number[]): Tensor;

  /** Rows of `table` picked by `ids`, times `scale`. */
  embedding(table: Tensor, ids: Int32Array, scale?: number): Tensor;
  /** x @ wᵀ (+ bias): x [rows, in], w [out, in] in any weight dtype. */
  linear(x: Tensor, w: Tensor, bias?: Tensor): Tensor;
  /**
   * RMS norm over every consecutive group of `weight.length` values (so a [rows, heads*dim] tensor
   * with a [dim] weight is normed per head). y = x / rms(x) * (weightOffset + w).
   */
  rmsNorm(x: Tensor, weight: Tensor, eps: number, weightOffset?: number): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  mul(a: Tensor, b: Tensor): Tensor;
  scale(a: Tensor, factor: number): Tensor;
  /** silu(gate) * up. */
  swiglu(gate: Tensor, up: Tensor): Tensor;
  /** gelu_tanh(gate) * up. */
  gegluTanh(gate: Tensor, up: Tensor): Tensor;
  /** Rotary embedding (rotate-half convention, as in transformers) applied to every head of x. */
  rope(x: Tensor, positions: Int32Array, spec: RopeSpec, options: RopeOptions): Tensor;
  /** Causal attention of q [rows, heads*dim] over k/v [>=kvLength, kvHeads*dim] with GQA. */
  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor;
  /** A copy of rows [start, start+count). */
  sliceRows(x: Tensor, start: number, count: number): Tensor;
  /** Copies src's rows into dst starting at dstRow (dst must have room). */
  writeRows(dst: Tensor, dstRow: number, src: Tensor): void;
  /** Waits for recorded work (no-op on eager backends). */
  sync(): Promise<void>;
}

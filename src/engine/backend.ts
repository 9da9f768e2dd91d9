import type { DType, Tensor } from "./tensor.js";

/**
 * Token ids: host integers, or a tensor on the backend whose rows each start with one id stored as a float
 * (e.g. `topKRows`' output, so a greedy token never leaves the device). Ids in a tensor are trusted: they
 * come from the model's own vocabulary-sized logits.
 */
export type TokenIds = Int32Array | Tensor;

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
  /** Absolute position of each query row. Key row j holds absolute position j + kvPositionOffset. */
  queryPositions: Int32Array;
  /** Number of valid key/value rows. */
  kvLength: number;
  /**
   * Absolute position of key row 0 (default 0). KV strategies that keep only a window (the ring buffer)
   * pass their rows with an offset; causal and window masks compare absolute positions.
   */
  kvPositionOffset?: number;
  /** Keys with `qPos - kPos >= window` are masked (sliding-window attention); ≥ 1 when given. */
  window?: number;
  /** Per-head learned sink logits that join the softmax but carry no value (gpt-oss). */
  sinks?: Tensor;
  /** tanh soft-capping of the scores: cap * tanh(s / cap); > 0 when given. */
  softcap?: number;
}

/**
 * The compute seam. Ops return new tensors (or write into a destination) without returning numbers;
 * a backend may run them eagerly (CPU) or record them for one submission (WebGPU).
 * Row-major layouts: activations are [rows, cols]; linear weights are [out, in] as in safetensors.
 */
export interface Backend {
  readonly name: string;
  /**
   * Ops are queued on a device and run after they are recorded (WebGPU): generation then records the next
   * decode step, fed by token ids kept on the device, while the device still runs the current one.
   */
  readonly queued?: boolean;

  /** A tensor from raw little-endian bytes in `dtype` (weights keep their stored type). */
  upload(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor;
  fromFloat32(data: Float32Array, shape: number[]): Tensor;
  zeros(shape: number[]): Tensor;

  /** Rows of `table` picked by `ids`, times `scale`. */
  embedding(table: Tensor, ids: TokenIds, scale?: number): Tensor;
  /**
   * x @ wᵀ (+ bias): x [rows, in], w [out, in] in any weight dtype. `fusion` folds an RMS norm of x and a
   * residual add into the op (see LinearFusion).
   */
  linear(x: Tensor, w: Tensor, bias?: Tensor, fusion?: LinearFusion): Tensor;
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
  /**
   * act(x @ gateᵀ + gateBias) * (x @ upᵀ + upBias): the gate/up half of a gated MLP as one op, so a backend
   * can read both weights in one pass and never materialise the two projections.
   */
  linearGated(
    x: Tensor,
    gate: Tensor,
    up: Tensor,
    activation: GatedActivation,
    gateBias?: Tensor,
    upBias?: Tensor,
    fusion?: InputFusion,
  ): Tensor;
  /** Several projections of one input (q/k/v): `linear(x, p.weight, p.bias)` for each part, in one op. */
  linearMany(x: Tensor, parts: readonly LinearPart[], fusion?: InputFusion): Tensor[];
  /** The residual add followed by RMS norm: sum = a + b, normed = rmsNorm(sum, weight, eps, weightOffset). */
  addRmsNorm(
    a: Tensor,
    b: Tensor,
    weight: Tensor,
    eps: number,
    weightOffset?: number,
  ): { sum: Tensor; normed: Tensor };
  /**
   * Sampling-side reduction of each row of x [rows, cols] so only a few numbers come back per token:
   * [rows, 2k + 1] holding the indices (as f32, exact below 2^24) of the k largest values in descending
   * order (ties: lower index first), then those k values, then log(Σ exp(x)) of the row. 1 ≤ k ≤ TOPK_MAX.
   */
  topKRows(x: Tensor, k: number): Tensor;
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
  /** A device backend's counters (WebGPU), for --stats. */
  deviceStats?(): DeviceStats;
  /** Times each submission with timestamp queries (a device backend created with `stats`), for --stats. */
  setTiming?(enabled: boolean): void;
  /**
   * Host memory the device copies from without a staging copy (mapped buffers: pinned memory), where the
   * backend keeps tensors on a device. Streamed layers are read into it and copied with `copyFromHost`.
   */
  hostBuffer?(byteLength: number): HostBuffer;
  /**
   * Records a copy of src's bytes [offset, offset + dst's byte size) into dst, in order with the ops: ops
   * recorded before it still see dst's old bytes. `offset` is a multiple of 4; src must be sealed.
   */
  copyFromHost?(dst: Tensor, src: HostBuffer, offset: number): void;

  // --- Mixture of experts, MXFP4, hybrid (linear-attention) models ---

  /**
   * Index `index` of t's leading dimension (one expert of a stacked [experts, …] weight): shape
   * t.shape[1:], t's dtype. A view where the backend can (no copy on CPU).
   */
  subTensor(t: Tensor, index: number): Tensor;
  /** x @ w (+ bias) for weights stored [in, out] (gpt-oss experts), in any weight dtype. */
  matmul(x: Tensor, w: Tensor, bias?: Tensor): Tensor;
  /**
   * x @ wᵀ (+ bias) with w [out, in] in MXFP4, decoded inside the kernel: `blocks` [out, in/32, 16] u8 hold
   * two FP4 (e2m1) values a byte, low nibble first; `scales` [out, in/32] u8 are E8M0 exponents (2^(s-127)),
   * one per block of 32 values.
   */
  linearMxfp4(x: Tensor, blocks: Tensor, scales: Tensor, bias?: Tensor): Tensor;
  /** The rows of x listed in `rows`, in that order (the tokens routed to one expert). */
  gatherRows(x: Tensor, rows: Int32Array): Tensor;
  /** dst[rows[i]] += weights[i] · src[i] for every row i of src (combining expert outputs; dst is f32). */
  scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void;
  /**
   * gpt-oss clamped SwiGLU on interleaved columns [gate0, up0, gate1, up1, …] → [rows, cols/2]:
   * (clamp(up, ±limit) + 1) · g · σ(alpha · g) with g = min(gate, limit).
   */
  clampedSwiglu(gateUp: Tensor, alpha: number, limit: number): Tensor;
  /** x · σ(gate); gate is [rows, cols] like x, or [rows, 1] broadcast over each row. */
  sigmoidGate(x: Tensor, gate: Tensor): Tensor;
  /** cap · tanh(x / cap) (logit soft-capping). */
  softcap(x: Tensor, cap: number): Tensor;
  /**
   * Columns [start, start + width) of every consecutive group of `group` columns of each row (group
   * defaults to the row width), concatenated: splits fused projections such as qwen3-next's per-head [q | gate].
   */
  sliceColumns(x: Tensor, start: number, width: number, group?: number): Tensor;
  /** The parts side by side: each row of the result is the parts' rows concatenated (equal row counts). */
  concatColumns(parts: Tensor[]): Tensor;
  /**
   * Depthwise causal conv1d over time followed by SiLU: x [rows, channels], weight [channels, 1, kernel].
   * `state` [kernel-1, channels] holds the inputs before x (zeros when undefined); the returned state holds
   * the last kernel-1 inputs, to continue with the next chunk or token.
   */
  causalConv1d(x: Tensor, weight: Tensor, state: Tensor | undefined): { y: Tensor; state: Tensor };
  /**
   * Gates of the gated delta rule, per row and value head: beta = σ(b), g = −exp(aLog) · softplus(a + dtBias)
   * (a, b [rows, heads]; aLog, dtBias [heads]).
   */
  deltaRuleGates(a: Tensor, b: Tensor, aLog: Tensor, dtBias: Tensor): { g: Tensor; beta: Tensor };
  /**
   * Gated delta rule (linear attention with a recurrent state per value head), q/k L2-normalised and q
   * scaled by kHeadDim^-0.5 inside: q, k [rows, kHeads*kHeadDim], v [rows, vHeads*vHeadDim], g (log decay)
   * and beta [rows, vHeads]; value head h reads key head floor(h / (vHeads / kHeads)). `state`
   * [vHeads, kHeadDim, vHeadDim] (zeros when undefined) is the state before the first row; the returned
   * one follows the last row. "chunked" (prefill) and "recurrent" (decode) compute the same function.
   */
  gatedDeltaRule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    beta: Tensor,
    state: Tensor | undefined,
    options: DeltaRuleOptions,
  ): { out: Tensor; state: Tensor };
}

/**
 * Host memory a device backend copies tensors from (see Backend.hostBuffer). It starts mapped (writable);
 * `seal` hands it to the device, `map` waits until the copies recorded from it have run.
 */
export interface HostBuffer {
  readonly byteLength: number;
  /** Writable views covering bytes [offset, offset + length) in order (only while mapped). */
  views(offset: number, length: number): Uint8Array[];
  /** Ends writing: the device may copy from it until `map()`. */
  seal(): void;
  /** Resolves when it is writable again. */
  map(): Promise<void>;
  dispose(): void;
}

/** An RMS norm of an op's input: rmsNorm(x, weight, eps, weightOffset) as in `Backend.rmsNorm`. */
export interface InputNorm {
  weight: Tensor;
  eps: number;
  weightOffset?: number;
}

/** What the input-side linear ops fold in: the input is RMS-normed first (the normed x is never stored). */
export interface InputFusion {
  norm?: InputNorm;
}

/**
 * What `Backend.linear` folds in around its product, so a decoder layer needs no separate norm and residual
 * ops (a GPU saves their dispatches): y = rmsNorm(x) @ wᵀ + bias + residual.
 */
export interface LinearFusion extends InputFusion {
  /** Added to the output (same shape). */
  residual?: Tensor;
}

/** One projection of `Backend.linearMany`. */
export interface LinearPart {
  weight: Tensor;
  bias?: Tensor;
}

/** Activations of a gated MLP: silu (SwiGLU) or tanh-approximated gelu (GeGLU). */
export type GatedActivation = "silu" | "gelu_tanh";

/** What a device backend has done so far. */
export interface DeviceStats {
  /** The adapter, as people read it. */
  adapter: string;
  dispatches: number;
  submits: number;
  /** GPU time of the timed submissions whose timestamps came back (undefined: none timed). */
  gpuMs?: number;
}

/** Largest k of `Backend.topKRows`. */
export const TOPK_MAX = 64;

export interface DeltaRuleOptions {
  numKeyHeads: number;
  numValueHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
  /** "chunked": the WY/chunk form (prefill); "recurrent": token by token (decode). */
  mode: "chunked" | "recurrent";
  /** Rows per chunk in "chunked" mode (64, as transformers and fla use). */
  chunkSize?: number;
}

/*
 * CPU kernels for oLLM, compiled to WebAssembly with 128-bit SIMD (see build.mjs).
 *
 * Every kernel works on one shared linear memory (the arena that also holds the weights) and on a slice
 * [u0, u1) of a job's output columns, so several threads can run the same job on disjoint slices.
 * Activations x [rows, k] f32 and outputs [rows, n] f32 are row-major. Weights w [n, k] (bf16, f16 or
 * f32) are row-major or tiled:
 *
 *   tiled: rows in tiles of 4. Tile t (rows 4t..4t+3) is the 4·k elements from 4t·k on: for every block of
 *   8 columns, the 8 elements of row 4t, then of 4t+1, 4t+2, 4t+3 (16 bytes per row for bf16/f16, 32 for
 *   f32); then the k % 8 trailing elements of row 4t, 4t+1, 4t+2, 4t+3. Rows past the last full tile
 *   (n % 4 of them) stay row-major after the tiles. A GEMV over a tile reads one sequential stream.
 *
 * No static data and no shadow stack: every instance in every thread shares the memory, and the
 * per-instance stack pointer would point every thread at the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

/* Activation rows per cache block in the GEMM: the weights of 4 outputs are reused over this many rows. */
#define ROW_BLOCK 64

enum { DT_BF16 = 0, DT_F16 = 1, DT_F32 = 2 };
/* How a kernel writes an output: store it, or combine it with the gate value already there (gated MLP). */
enum { EMIT_STORE = 0, EMIT_SILU = 1, EMIT_GELU_TANH = 2 };

/* One projection of a job (8 words; the layout fast-kernels.ts writes). */
typedef struct {
  uint32_t dtype; /* DT_* */
  uint32_t tiled; /* 1: the tiled layout above */
  uint32_t w;     /* weight [n, k] */
  uint32_t n;
  uint32_t out;   /* output [rows, n] */
  uint32_t bias;  /* [n] f32, or 0 */
  uint32_t start; /* first unit of this part in the job's unit space (a multiple of 4) */
  uint32_t reserved;
} Part;

/*
 * A job (16 words, then its parts). Plain: every part is its own projection, units are the parts' output
 * columns one after the other (each part padded to a multiple of 4). Gated: part 0 is the gate and part 1
 * the up projection of the same width; out (part 0's) = act(x·gateᵀ + b0) · (x·upᵀ + b1).
 */
typedef struct {
  uint32_t gated;
  uint32_t act; /* EMIT_SILU or EMIT_GELU_TANH when gated */
  uint32_t parts;
  uint32_t k;
  uint32_t rows;
  uint32_t xp;  /* x permuted by permute_even_odd (read by bf16 parts of the row kernels) */
  uint32_t x;   /* x in natural order (f16 and f32 parts of the row kernels) */
  uint32_t xpk; /* x packed by pack_job, or 0; when set, the panel GEMM runs every part (see below) */
  uint32_t scratch; /* panel GEMM: panel_scratch_bytes() per thread, thread i's at scratch + i·stride */
  uint32_t scratch_stride;
  uint32_t reserved[6];
  Part part[];
} Job;

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

static inline v128_t madd(v128_t acc, v128_t a, v128_t b) { return wasm_f32x4_add(acc, wasm_f32x4_mul(a, b)); }

static inline float bf16_scalar(uint16_t h) {
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}

/* f16 -> f32 (finite values; subnormals exact): magnitude bits << 13, rescaled by 2^112, sign or'ed in. */
static inline float f16_scalar(uint16_t h) {
  union { uint32_t u; float f; } v = {((uint32_t)h & 0x7fffu) << 13};
  v.f *= 0x1p112f;
  v.u |= ((uint32_t)h & 0x8000u) << 16;
  return v.f;
}

/* ------------------------------------------ activations --------------------------------------------- */

static inline float bits_to_float(uint32_t u) {
  union { uint32_t u; float f; } v = {u};
  return v.f;
}

/* e^x in f32 within ~2 ulp: x = n·ln2 + r, |r| ≤ ln2/2, a degree-7 polynomial for e^r, then 2^n. */
static inline float exp_f32(float x) {
  if (!(x < 88.72283f)) return x != x ? x : bits_to_float(0x7f800000u);
  if (x < -103.97208f) return 0.0f;
  const float n = __builtin_rintf(x * 1.44269504f);
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t e = (int32_t)n;
  /* 2^e in two steps so that e down to -150 (subnormal results) and up to 128 stay representable. */
  const int32_t e1 = e / 2;
  const int32_t e2 = e - e1;
  return p * bits_to_float((uint32_t)(e1 + 127) << 23) * bits_to_float((uint32_t)(e2 + 127) << 23);
}

static inline float silu(float g) { return g / (1.0f + exp_f32(-g)); }

static inline float gelu_tanh(float g) {
  const float y = 0.7978845608f * (g + 0.044715f * g * g * g);
  const float a = y < 0 ? -y : y;
  float t = 1.0f - 2.0f / (exp_f32(2.0f * a) + 1.0f);
  if (y < 0) t = -t;
  return 0.5f * g * (1.0f + t);
}

/* act(g) · u (out of line: it runs once per output, not per weight). */
__attribute__((noinline)) static float gated(float g, float u, uint32_t mode) {
  return (mode == EMIT_SILU ? silu(g) : gelu_tanh(g)) * u;
}

/* Writes output column o of one row (y points at that row's column o). */
static inline void emit(float* y, float v, const float* bias, uint32_t o, uint32_t mode) {
  if (bias) v += bias[o];
  *y = mode == EMIT_STORE ? v : gated(*y, v, mode);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Activation layout for bf16 weights: within every block of 8, the even elements then the odd ones,   */
/* so that a 16-byte load of 8 bf16 weights splits into two f32x4 vectors with one shift and one and.  */
/* Elements past the last full block of 8 stay in place.                                               */
/* ---------------------------------------------------------------------------------------------------- */
EXPORT(permute_even_odd) void permute_even_odd(const float* x, float* xp, uint32_t k, uint32_t rows) {
  const uint32_t k8 = k & ~7u;
  for (uint32_t r = 0; r < rows; r++) {
    const float* src = x + (size_t)r * k;
    float* dst = xp + (size_t)r * k;
    for (uint32_t i = 0; i < k8; i += 8) {
      v128_t a = wasm_v128_load(src + i);
      v128_t b = wasm_v128_load(src + i + 4);
      wasm_v128_store(dst + i, wasm_i32x4_shuffle(a, b, 0, 2, 4, 6));
      wasm_v128_store(dst + i + 4, wasm_i32x4_shuffle(a, b, 1, 3, 5, 7));
    }
    for (uint32_t i = k8; i < k; i++) dst[i] = src[i];
  }
}

/* ------------------------------------------- tiled layout ------------------------------------------- */

/* Copies one block of 8 elements (16 bytes of bf16/f16, 32 of f32). */
static inline void copy_block(uint8_t* dst, const uint8_t* src, uint32_t esize) {
  wasm_v128_store(dst, wasm_v128_load(src));
  if (esize == 4) wasm_v128_store(dst + 16, wasm_v128_load(src + 16));
}

static inline void copy_bytes(uint8_t* dst, const uint8_t* src, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) dst[i] = src[i];
}

/* Rewrites `tiles` tiles of 4 row-major rows [4, k] of esize-byte elements (2 or 4) at w into the tiled */
/* layout, through `scratch` (4·k·esize bytes).                                                          */
EXPORT(tile_rows) void tile_rows(uint8_t* w, uint8_t* scratch, uint32_t tiles, uint32_t k, uint32_t esize) {
  const uint32_t k8 = k & ~7u, kt = k - k8, row = k * esize, block = 8 * esize;
  for (uint32_t t = 0; t < tiles; t++) {
    uint8_t* tile = w + (size_t)t * 4 * row;
    __builtin_memcpy(scratch, tile, 4 * row);
    uint8_t* dst = tile;
    for (uint32_t i = 0; i < k8; i += 8)
      for (uint32_t j = 0; j < 4; j++, dst += block) copy_block(dst, scratch + j * row + i * esize, esize);
    for (uint32_t j = 0; j < 4; j++, dst += kt * esize) copy_bytes(dst, scratch + j * row + k8 * esize, kt * esize);
  }
}

/* The inverse of tile_rows. */
EXPORT(untile_rows) void untile_rows(uint8_t* w, uint8_t* scratch, uint32_t tiles, uint32_t k, uint32_t esize) {
  const uint32_t k8 = k & ~7u, kt = k - k8, row = k * esize, block = 8 * esize;
  for (uint32_t t = 0; t < tiles; t++) {
    uint8_t* tile = w + (size_t)t * 4 * row;
    __builtin_memcpy(scratch, tile, 4 * row);
    const uint8_t* src = scratch;
    for (uint32_t i = 0; i < k8; i += 8)
      for (uint32_t j = 0; j < 4; j++, src += block) copy_block(tile + j * row + i * esize, src, esize);
    for (uint32_t j = 0; j < 4; j++, src += kt * esize) copy_bytes(tile + j * row + k8 * esize, src, kt * esize);
  }
}

/* ------------------------------------------------ bf16 ---------------------------------------------- */

#define BF16_DOT(acc, v, xe, xo)                                                              \
  acc = wasm_f32x4_add(acc, wasm_f32x4_add(wasm_f32x4_mul(wasm_i32x4_shl(v, 16), xe),        \
                                           wasm_f32x4_mul(wasm_v128_and(v, hi), xo)))

/* Σ w[i]·x[i] over `count` trailing elements (w, x already offset). */
static inline float bf16_tail(const uint16_t* w, const float* x, uint32_t count) {
  float s = 0;
  for (uint32_t i = 0; i < count; i++) s += bf16_scalar(w[i]) * x[i];
  return s;
}

/* One activation row, row-major weights: 4 weight rows at a time share each load of x (xp permuted). */
static void gemv_bf16(const uint16_t* w, const float* xp, float* out, uint32_t k, uint32_t o0, uint32_t o1,
                      const float* bias, uint32_t mode) {
  const v128_t hi = wasm_i32x4_splat((int32_t)0xffff0000);
  const uint32_t k8 = k & ~7u, kt = k - k8;
  uint32_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    const uint16_t* w0 = w + (size_t)o * k;
    const uint16_t* w1 = w0 + k;
    const uint16_t* w2 = w1 + k;
    const uint16_t* w3 = w2 + k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t i = 0; i < k8; i += 8) {
      const v128_t xe = wasm_v128_load(xp + i), xo = wasm_v128_load(xp + i + 4);
      BF16_DOT(a0, wasm_v128_load(w0 + i), xe, xo);
      BF16_DOT(a1, wasm_v128_load(w1 + i), xe, xo);
      BF16_DOT(a2, wasm_v128_load(w2 + i), xe, xo);
      BF16_DOT(a3, wasm_v128_load(w3 + i), xe, xo);
    }
    emit(out + o, hsum(a0) + bf16_tail(w0 + k8, xp + k8, kt), bias, o, mode);
    emit(out + o + 1, hsum(a1) + bf16_tail(w1 + k8, xp + k8, kt), bias, o + 1, mode);
    emit(out + o + 2, hsum(a2) + bf16_tail(w2 + k8, xp + k8, kt), bias, o + 2, mode);
    emit(out + o + 3, hsum(a3) + bf16_tail(w3 + k8, xp + k8, kt), bias, o + 3, mode);
  }
  for (; o < o1; o++) {
    const uint16_t* w0 = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0);
    for (uint32_t i = 0; i < k8; i += 8) {
      BF16_DOT(a0, wasm_v128_load(w0 + i), wasm_v128_load(xp + i), wasm_v128_load(xp + i + 4));
    }
    emit(out + o, hsum(a0) + bf16_tail(w0 + k8, xp + k8, kt), bias, o, mode);
  }
}

/* One activation row, tiled weights (o0 a multiple of 4): one sequential stream per tile. */
static void gemv_bf16_tiled(const uint16_t* w, const float* xp, float* out, uint32_t k, uint32_t n, uint32_t o0,
                            uint32_t o1, const float* bias, uint32_t mode) {
  const v128_t hi = wasm_i32x4_splat((int32_t)0xffff0000);
  const uint32_t k8 = k & ~7u, kt = k - k8, n4 = n & ~3u;
  const uint32_t tiles_end = o1 < n4 ? o1 : n4;
  uint32_t o = o0;
  for (; o < tiles_end; o += 4) {
    const uint16_t* p = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t i = 0; i < k8; i += 8, p += 32) {
      const v128_t xe = wasm_v128_load(xp + i), xo = wasm_v128_load(xp + i + 4);
      BF16_DOT(a0, wasm_v128_load(p), xe, xo);
      BF16_DOT(a1, wasm_v128_load(p + 8), xe, xo);
      BF16_DOT(a2, wasm_v128_load(p + 16), xe, xo);
      BF16_DOT(a3, wasm_v128_load(p + 24), xe, xo);
    }
    emit(out + o, hsum(a0) + bf16_tail(p, xp + k8, kt), bias, o, mode);
    emit(out + o + 1, hsum(a1) + bf16_tail(p + kt, xp + k8, kt), bias, o + 1, mode);
    emit(out + o + 2, hsum(a2) + bf16_tail(p + 2 * kt, xp + k8, kt), bias, o + 2, mode);
    emit(out + o + 3, hsum(a3) + bf16_tail(p + 3 * kt, xp + k8, kt), bias, o + 3, mode);
  }
  if (o < o1) gemv_bf16(w, xp, out, k, o, o1, bias, mode);
}

/* 4 outputs x 2 activation rows from 4 weight rows (row-major: stride 8 per row and k apart; tiled: one */
/* pointer, rows 8 apart, 32 per step); each weight load serves both rows.                             */
#define BF16_GEMM_TILE(W0, W1, W2, W3, STEP, T0, T1, T2, T3)                                             \
  do {                                                                                                  \
    const float* x0 = xp + (size_t)r * k;                                                               \
    const float* x1 = x0 + k;                                                                           \
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;    \
    const uint16_t *q0 = W0, *q1 = W1, *q2 = W2, *q3 = W3;                                              \
    for (uint32_t i = 0; i < k8; i += 8, q0 += STEP, q1 += STEP, q2 += STEP, q3 += STEP) {             \
      const v128_t v0 = wasm_v128_load(q0), v1 = wasm_v128_load(q1);                                   \
      const v128_t v2 = wasm_v128_load(q2), v3 = wasm_v128_load(q3);                                   \
      v128_t xe = wasm_v128_load(x0 + i), xo = wasm_v128_load(x0 + i + 4);                              \
      BF16_DOT(a0, v0, xe, xo);                                                                         \
      BF16_DOT(a1, v1, xe, xo);                                                                         \
      BF16_DOT(a2, v2, xe, xo);                                                                         \
      BF16_DOT(a3, v3, xe, xo);                                                                         \
      xe = wasm_v128_load(x1 + i);                                                                      \
      xo = wasm_v128_load(x1 + i + 4);                                                                  \
      BF16_DOT(b0, v0, xe, xo);                                                                         \
      BF16_DOT(b1, v1, xe, xo);                                                                         \
      BF16_DOT(b2, v2, xe, xo);                                                                         \
      BF16_DOT(b3, v3, xe, xo);                                                                         \
    }                                                                                                   \
    float* y0 = out + (size_t)r * n;                                                                    \
    float* y1 = y0 + n;                                                                                 \
    emit(y0 + o, hsum(a0) + bf16_tail(T0, x0 + k8, kt), bias, o, mode);                                \
    emit(y0 + o + 1, hsum(a1) + bf16_tail(T1, x0 + k8, kt), bias, o + 1, mode);                        \
    emit(y0 + o + 2, hsum(a2) + bf16_tail(T2, x0 + k8, kt), bias, o + 2, mode);                        \
    emit(y0 + o + 3, hsum(a3) + bf16_tail(T3, x0 + k8, kt), bias, o + 3, mode);                        \
    emit(y1 + o, hsum(b0) + bf16_tail(T0, x1 + k8, kt), bias, o, mode);                                \
    emit(y1 + o + 1, hsum(b1) + bf16_tail(T1, x1 + k8, kt), bias, o + 1, mode);                        \
    emit(y1 + o + 2, hsum(b2) + bf16_tail(T2, x1 + k8, kt), bias, o + 2, mode);                        \
    emit(y1 + o + 3, hsum(b3) + bf16_tail(T3, x1 + k8, kt), bias, o + 3, mode);                        \
  } while (0)

/* Several activation rows (one cache block of them). */
static void gemm_bf16_block(const uint16_t* w, uint32_t tiled, const float* xp, float* out, uint32_t k,
                            uint32_t n, uint32_t rows, uint32_t o0, uint32_t o1, const float* bias,
                            uint32_t mode) {
  const v128_t hi = wasm_i32x4_splat((int32_t)0xffff0000);
  const uint32_t k8 = k & ~7u, kt = k - k8;
  const uint32_t quads_end = tiled ? (o1 < (n & ~3u) ? o1 : (n & ~3u)) : o0 + ((o1 - o0) & ~3u);
  uint32_t o = o0;
  for (; o < quads_end; o += 4) {
    const uint16_t* w0 = w + (size_t)o * k;
    uint32_t r = 0;
    if (tiled) {
      const uint16_t* t = w0 + 4 * k8;
      for (; r + 2 <= rows; r += 2) BF16_GEMM_TILE(w0, w0 + 8, w0 + 16, w0 + 24, 32, t, t + kt, t + 2 * kt, t + 3 * kt);
      if (r < rows) gemv_bf16_tiled(w, xp + (size_t)r * k, out + (size_t)r * n, k, n, o, o + 4, bias, mode);
    } else {
      const uint16_t *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
      for (; r + 2 <= rows; r += 2) BF16_GEMM_TILE(w0, w1, w2, w3, 8, w0 + k8, w1 + k8, w2 + k8, w3 + k8);
      if (r < rows) gemv_bf16(w, xp + (size_t)r * k, out + (size_t)r * n, k, o, o + 4, bias, mode);
    }
  }
  if (o < o1)
    for (uint32_t r = 0; r < rows; r++) gemv_bf16(w, xp + (size_t)r * k, out + (size_t)r * n, k, o, o1, bias, mode);
}

/* ------------------------------------------------ f16 ----------------------------------------------- */
/* 8 halves -> two f32x4 in natural order: the high 16 bits of each f32 are sign | (h & 0x7fff) >> 3    */
/* (an arithmetic shift by 3, then the 3 copies of the sign masked off), the low 16 bits are h << 13;    */
/* interleaved, then scaled by 2^112 (exact for normals and subnormals).                                */
/* Infinities and NaNs come out finite: the engine sends such tensors to the TypeScript path.          */

#define F16_WIDEN(v, lo, hi4)                                                                         \
  do {                                                                                                \
    const v128_t h16 = wasm_v128_and(wasm_i16x8_shr(v, 3), sign);                                     \
    const v128_t l16 = wasm_i16x8_shl(v, 13);                                                         \
    lo = wasm_f32x4_mul(wasm_i16x8_shuffle(l16, h16, 0, 8, 1, 9, 2, 10, 3, 11), scale);               \
    hi4 = wasm_f32x4_mul(wasm_i16x8_shuffle(l16, h16, 4, 12, 5, 13, 6, 14, 7, 15), scale);            \
  } while (0)

#define F16_DOT(acc, v, xl, xh)                                                               \
  do {                                                                                        \
    v128_t lo_, hi_;                                                                          \
    F16_WIDEN(v, lo_, hi_);                                                                   \
    acc = wasm_f32x4_add(acc, wasm_f32x4_add(wasm_f32x4_mul(lo_, xl), wasm_f32x4_mul(hi_, xh))); \
  } while (0)

static inline float f16_tail(const uint16_t* w, const float* x, uint32_t count) {
  float s = 0;
  for (uint32_t i = 0; i < count; i++) s += f16_scalar(w[i]) * x[i];
  return s;
}

static void gemv_f16(const uint16_t* w, const float* x, float* out, uint32_t k, uint32_t o0, uint32_t o1,
                     const float* bias, uint32_t mode) {
  const v128_t sign = wasm_i16x8_splat((int16_t)0x8fff); /* sign and the 12 low bits */
  const v128_t scale = wasm_f32x4_splat(0x1p112f);
  const uint32_t k8 = k & ~7u, kt = k - k8;
  uint32_t o = o0;
  for (; o + 2 <= o1; o += 2) {
    const uint16_t* w0 = w + (size_t)o * k;
    const uint16_t* w1 = w0 + k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0;
    for (uint32_t i = 0; i < k8; i += 8) {
      const v128_t xl = wasm_v128_load(x + i), xh = wasm_v128_load(x + i + 4);
      F16_DOT(a0, wasm_v128_load(w0 + i), xl, xh);
      F16_DOT(a1, wasm_v128_load(w1 + i), xl, xh);
    }
    emit(out + o, hsum(a0) + f16_tail(w0 + k8, x + k8, kt), bias, o, mode);
    emit(out + o + 1, hsum(a1) + f16_tail(w1 + k8, x + k8, kt), bias, o + 1, mode);
  }
  for (; o < o1; o++) {
    const uint16_t* w0 = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0);
    for (uint32_t i = 0; i < k8; i += 8) F16_DOT(a0, wasm_v128_load(w0 + i), wasm_v128_load(x + i), wasm_v128_load(x + i + 4));
    emit(out + o, hsum(a0) + f16_tail(w0 + k8, x + k8, kt), bias, o, mode);
  }
}

static void gemv_f16_tiled(const uint16_t* w, const float* x, float* out, uint32_t k, uint32_t n, uint32_t o0,
                           uint32_t o1, const float* bias, uint32_t mode) {
  const v128_t sign = wasm_i16x8_splat((int16_t)0x8fff); /* sign and the 12 low bits */
  const v128_t scale = wasm_f32x4_splat(0x1p112f);
  const uint32_t k8 = k & ~7u, kt = k - k8, n4 = n & ~3u;
  const uint32_t tiles_end = o1 < n4 ? o1 : n4;
  uint32_t o = o0;
  for (; o < tiles_end; o += 4) {
    const uint16_t* p = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t i = 0; i < k8; i += 8, p += 32) {
      const v128_t xl = wasm_v128_load(x + i), xh = wasm_v128_load(x + i + 4);
      F16_DOT(a0, wasm_v128_load(p), xl, xh);
      F16_DOT(a1, wasm_v128_load(p + 8), xl, xh);
      F16_DOT(a2, wasm_v128_load(p + 16), xl, xh);
      F16_DOT(a3, wasm_v128_load(p + 24), xl, xh);
    }
    emit(out + o, hsum(a0) + f16_tail(p, x + k8, kt), bias, o, mode);
    emit(out + o + 1, hsum(a1) + f16_tail(p + kt, x + k8, kt), bias, o + 1, mode);
    emit(out + o + 2, hsum(a2) + f16_tail(p + 2 * kt, x + k8, kt), bias, o + 2, mode);
    emit(out + o + 3, hsum(a3) + f16_tail(p + 3 * kt, x + k8, kt), bias, o + 3, mode);
  }
  if (o < o1) gemv_f16(w, x, out, k, o, o1, bias, mode);
}

/* 2 outputs x 2 activation rows (weight rows W0, W1 advancing STEP per block of 8). */
#define F16_GEMM_PAIR(W0, W1, STEP, T0, T1, O)                                                     \
  do {                                                                                           \
    const float* x0 = x + (size_t)r * k;                                                         \
    const float* x1 = x0 + k;                                                                    \
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, b0 = a0, b1 = a0;                                  \
    const uint16_t *q0 = W0, *q1 = W1;                                                           \
    for (uint32_t i = 0; i < k8; i += 8, q0 += STEP, q1 += STEP) {                               \
      v128_t l0, h0, l1, h1;                                                                     \
      F16_WIDEN(wasm_v128_load(q0), l0, h0);                                                     \
      F16_WIDEN(wasm_v128_load(q1), l1, h1);                                                     \
      v128_t xl = wasm_v128_load(x0 + i), xh = wasm_v128_load(x0 + i + 4);                       \
      a0 = wasm_f32x4_add(a0, wasm_f32x4_add(wasm_f32x4_mul(l0, xl), wasm_f32x4_mul(h0, xh)));   \
      a1 = wasm_f32x4_add(a1, wasm_f32x4_add(wasm_f32x4_mul(l1, xl), wasm_f32x4_mul(h1, xh)));   \
      xl = wasm_v128_load(x1 + i);                                                               \
      xh = wasm_v128_load(x1 + i + 4);                                                           \
      b0 = wasm_f32x4_add(b0, wasm_f32x4_add(wasm_f32x4_mul(l0, xl), wasm_f32x4_mul(h0, xh)));   \
      b1 = wasm_f32x4_add(b1, wasm_f32x4_add(wasm_f32x4_mul(l1, xl), wasm_f32x4_mul(h1, xh)));   \
    }                                                                                            \
    float* y0 = out + (size_t)r * n;                                                             \
    float* y1 = y0 + n;                                                                          \
    emit(y0 + (O), hsum(a0) + f16_tail(T0, x0 + k8, kt), bias, (O), mode);                      \
    emit(y0 + (O) + 1, hsum(a1) + f16_tail(T1, x0 + k8, kt), bias, (O) + 1, mode);              \
    emit(y1 + (O), hsum(b0) + f16_tail(T0, x1 + k8, kt), bias, (O), mode);                      \
    emit(y1 + (O) + 1, hsum(b1) + f16_tail(T1, x1 + k8, kt), bias, (O) + 1, mode);              \
  } while (0)

static void gemm_f16_block(const uint16_t* w, uint32_t tiled, const float* x, float* out, uint32_t k, uint32_t n,
                           uint32_t rows, uint32_t o0, uint32_t o1, const float* bias, uint32_t mode) {
  const v128_t sign = wasm_i16x8_splat((int16_t)0x8fff); /* sign and the 12 low bits */
  const v128_t scale = wasm_f32x4_splat(0x1p112f);
  const uint32_t k8 = k & ~7u, kt = k - k8;
  uint32_t o = o0;
  if (tiled) {
    const uint32_t n4 = n & ~3u;
    const uint32_t tiles_end = o1 < n4 ? o1 : n4;
    for (; o < tiles_end; o += 4) {
      const uint16_t* w0 = w + (size_t)o * k;
      const uint16_t* t = w0 + 4 * k8;
      uint32_t r = 0;
      for (; r + 2 <= rows; r += 2) {
        F16_GEMM_PAIR(w0, w0 + 8, 32, t, t + kt, o);
        F16_GEMM_PAIR(w0 + 16, w0 + 24, 32, t + 2 * kt, t + 3 * kt, o + 2);
      }
      if (r < rows) gemv_f16_tiled(w, x + (size_t)r * k, out + (size_t)r * n, k, n, o, o + 4, bias, mode);
    }
  } else {
    for (; o + 2 <= o1; o += 2) {
      const uint16_t* w0 = w + (size_t)o * k;
      const uint16_t* w1 = w0 + k;
      uint32_t r = 0;
      for (; r + 2 <= rows; r += 2) F16_GEMM_PAIR(w0, w1, 8, w0 + k8, w1 + k8, o);
      if (r < rows) gemv_f16(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o + 2, bias, mode);
    }
  }
  if (o < o1)
    for (uint32_t r = 0; r < rows; r++) gemv_f16(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o1, bias, mode);
}

/* ------------------------------------------------ f32 ----------------------------------------------- */

static inline float f32_tail(const float* w, const float* x, uint32_t count) {
  float s = 0;
  for (uint32_t i = 0; i < count; i++) s += w[i] * x[i];
  return s;
}

#define F32_DOT8(acc, w, xl, xh) \
  acc = wasm_f32x4_add(acc, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w), xl), wasm_f32x4_mul(wasm_v128_load((w) + 4), xh)))

static void gemv_f32(const float* w, const float* x, float* out, uint32_t k, uint32_t o0, uint32_t o1,
                     const float* bias, uint32_t mode) {
  const uint32_t k8 = k & ~7u, kt = k - k8;
  uint32_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    const float* w0 = w + (size_t)o * k;
    const float* w1 = w0 + k;
    const float* w2 = w1 + k;
    const float* w3 = w2 + k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t i = 0; i < k8; i += 8) {
      const v128_t xl = wasm_v128_load(x + i), xh = wasm_v128_load(x + i + 4);
      F32_DOT8(a0, w0 + i, xl, xh);
      F32_DOT8(a1, w1 + i, xl, xh);
      F32_DOT8(a2, w2 + i, xl, xh);
      F32_DOT8(a3, w3 + i, xl, xh);
    }
    emit(out + o, hsum(a0) + f32_tail(w0 + k8, x + k8, kt), bias, o, mode);
    emit(out + o + 1, hsum(a1) + f32_tail(w1 + k8, x + k8, kt), bias, o + 1, mode);
    emit(out + o + 2, hsum(a2) + f32_tail(w2 + k8, x + k8, kt), bias, o + 2, mode);
    emit(out + o + 3, hsum(a3) + f32_tail(w3 + k8, x + k8, kt), bias, o + 3, mode);
  }
  for (; o < o1; o++) {
    const float* w0 = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0);
    for (uint32_t i = 0; i < k8; i += 8) F32_DOT8(a0, w0 + i, wasm_v128_load(x + i), wasm_v128_load(x + i + 4));
    emit(out + o, hsum(a0) + f32_tail(w0 + k8, x + k8, kt), bias, o, mode);
  }
}

static void gemv_f32_tiled(const float* w, const float* x, float* out, uint32_t k, uint32_t n, uint32_t o0,
                           uint32_t o1, const float* bias, uint32_t mode) {
  const uint32_t k8 = k & ~7u, kt = k - k8, n4 = n & ~3u;
  const uint32_t tiles_end = o1 < n4 ? o1 : n4;
  uint32_t o = o0;
  for (; o < tiles_end; o += 4) {
    const float* p = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t i = 0; i < k8; i += 8, p += 32) {
      const v128_t xl = wasm_v128_load(x + i), xh = wasm_v128_load(x + i + 4);
      F32_DOT8(a0, p, xl, xh);
      F32_DOT8(a1, p + 8, xl, xh);
      F32_DOT8(a2, p + 16, xl, xh);
      F32_DOT8(a3, p + 24, xl, xh);
    }
    emit(out + o, hsum(a0) + f32_tail(p, x + k8, kt), bias, o, mode);
    emit(out + o + 1, hsum(a1) + f32_tail(p + kt, x + k8, kt), bias, o + 1, mode);
    emit(out + o + 2, hsum(a2) + f32_tail(p + 2 * kt, x + k8, kt), bias, o + 2, mode);
    emit(out + o + 3, hsum(a3) + f32_tail(p + 3 * kt, x + k8, kt), bias, o + 3, mode);
  }
  if (o < o1) gemv_f32(w, x, out, k, o, o1, bias, mode);
}

/* 4 outputs x 2 activation rows over blocks of 8 columns: row j's two vectors at Wj and Wj + 4. */
#define F32_GEMM_TILE(W0, W1, W2, W3, STEP, T0, T1, T2, T3)                                              \
  do {                                                                                                  \
    const float* x0 = x + (size_t)r * k;                                                                \
    const float* x1 = x0 + k;                                                                           \
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;    \
    const float *q0 = W0, *q1 = W1, *q2 = W2, *q3 = W3;                                                 \
    for (uint32_t i = 0; i < k8; i += 8, q0 += STEP, q1 += STEP, q2 += STEP, q3 += STEP) {             \
      for (uint32_t h = 0; h < 8; h += 4) {                                                             \
        const v128_t v0 = wasm_v128_load(q0 + h), v1 = wasm_v128_load(q1 + h);                         \
        const v128_t v2 = wasm_v128_load(q2 + h), v3 = wasm_v128_load(q3 + h);                         \
        const v128_t p = wasm_v128_load(x0 + i + h), q = wasm_v128_load(x1 + i + h);                   \
        a0 = madd(a0, v0, p);                                                                           \
        a1 = madd(a1, v1, p);                                                                           \
        a2 = madd(a2, v2, p);                                                                           \
        a3 = madd(a3, v3, p);                                                                           \
        b0 = madd(b0, v0, q);                                                                           \
        b1 = madd(b1, v1, q);                                                                           \
        b2 = madd(b2, v2, q);                                                                           \
        b3 = madd(b3, v3, q);                                                                           \
      }                                                                                                 \
    }                                                                                                   \
    float* y0 = out + (size_t)r * n;                                                                    \
    float* y1 = y0 + n;                                                                                 \
    emit(y0 + o, hsum(a0) + f32_tail(T0, x0 + k8, kt), bias, o, mode);                                 \
    emit(y0 + o + 1, hsum(a1) + f32_tail(T1, x0 + k8, kt), bias, o + 1, mode);                         \
    emit(y0 + o + 2, hsum(a2) + f32_tail(T2, x0 + k8, kt), bias, o + 2, mode);                         \
    emit(y0 + o + 3, hsum(a3) + f32_tail(T3, x0 + k8, kt), bias, o + 3, mode);                         \
    emit(y1 + o, hsum(b0) + f32_tail(T0, x1 + k8, kt), bias, o, mode);                                 \
    emit(y1 + o + 1, hsum(b1) + f32_tail(T1, x1 + k8, kt), bias, o + 1, mode);                         \
    emit(y1 + o + 2, hsum(b2) + f32_tail(T2, x1 + k8, kt), bias, o + 2, mode);                         \
    emit(y1 + o + 3, hsum(b3) + f32_tail(T3, x1 + k8, kt), bias, o + 3, mode);                         \
  } while (0)

static void gemm_f32_block(const float* w, uint32_t tiled, const float* x, float* out, uint32_t k, uint32_t n,
                           uint32_t rows, uint32_t o0, uint32_t o1, const float* bias, uint32_t mode) {
  const uint32_t k8 = k & ~7u, kt = k - k8;
  const uint32_t quads_end = tiled ? (o1 < (n & ~3u) ? o1 : (n & ~3u)) : o0 + ((o1 - o0) & ~3u);
  uint32_t o = o0;
  for (; o < quads_end; o += 4) {
    const float* w0 = w + (size_t)o * k;
    uint32_t r = 0;
    if (tiled) {
      const float* t = w0 + 4 * k8;
      for (; r + 2 <= rows; r += 2) F32_GEMM_TILE(w0, w0 + 8, w0 + 16, w0 + 24, 32, t, t + kt, t + 2 * kt, t + 3 * kt);
      if (r < rows) gemv_f32_tiled(w, x + (size_t)r * k, out + (size_t)r * n, k, n, o, o + 4, bias, mode);
    } else {
      const float *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
      for (; r + 2 <= rows; r += 2) F32_GEMM_TILE(w0, w1, w2, w3, 8, w0 + k8, w1 + k8, w2 + k8, w3 + k8);
      if (r < rows) gemv_f32(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o + 4, bias, mode);
    }
  }
  if (o < o1)
    for (uint32_t r = 0; r < rows; r++) gemv_f32(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o1, bias, mode);
}

/* ------------------------------------------- panel GEMM --------------------------------------------- */
/*                                                                                                      */
/* Many activation rows (prefill). The threads first pack x (pack_job): tiles of MR rows, per column    */
/* the MR rows' values side by side, zero rows past the end. Each thread then walks its outputs in      */
/* sub-chunks of NC, the rows in blocks of RB and k in blocks of KC. For every 8 outputs and k block it  */
/* widens the weights into a small f32 panel (per column the 8 weights side by side: 16 KiB, in L1) and */
/* runs the micro-kernel over every row tile of the block: MR × 8 outputs in 8 f32x4 accumulators, per  */
/* column two panel loads, MR splat loads of x, 2·MR mul and 2·MR add, nothing else. Each weight is     */
/* widened once per row block, each activation loaded once per 8 outputs; the row block's x over one k  */
/* block (RB · KC · 4 bytes) stays in L2 while the panels change. Partial sums over the k blocks go to   */
/* the output (for the up projection of a gated job, to a per-thread RB × NC scratch); the last k block  */
/* adds the bias and applies the gate.                                                                  */
/*                                                                                                      */
/* Each output accumulates its k products in order within a k block, the blocks' sums then in order.    */
/* Against the row kernels (4 lanes over k) that is a different rounding, within the same f32 bounds.   */

#define MR 4   /* activation rows per micro tile */
#define KC 512 /* k per panel: a multiple of 8 */
#define RB 128 /* activation rows per row block: a multiple of MR */
#define NC 64  /* outputs per sub-chunk: a multiple of 8 */
#define PANEL_FLOATS (8 * KC)

/* Stores the 4x4 transpose of rows a..d (row j of the result: element j of a, b, c, d) `stride` floats */
/* apart.                                                                                               */
static inline void store_transposed(float* dst, uint32_t stride, v128_t a, v128_t b, v128_t c, v128_t d) {
  const v128_t ab0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), ab1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
  const v128_t cd0 = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), cd1 = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);
  wasm_v128_store(dst, wasm_i32x4_shuffle(ab0, cd0, 0, 1, 4, 5));
  wasm_v128_store(dst + stride, wasm_i32x4_shuffle(ab0, cd0, 2, 3, 6, 7));
  wasm_v128_store(dst + 2 * stride, wasm_i32x4_shuffle(ab1, cd1, 0, 1, 4, 5));
  wasm_v128_store(dst + 3 * stride, wasm_i32x4_shuffle(ab1, cd1, 2, 3, 6, 7));
}

/* Bytes of x [rows, k] packed (pack_job). */
EXPORT(packed_rows_bytes) uint32_t packed_rows_bytes(uint32_t k, uint32_t rows) {
  return (rows + MR - 1) / MR * MR * k * 4;
}

/* Bytes of scratch each thread needs for a panel GEMM job (a multiple of 64). */
EXPORT(panel_scratch_bytes) uint32_t panel_scratch_bytes(void) { return (PANEL_FLOATS + 8 * MR + RB * NC) * 4; }

/* x [rows, k] -> tiles of MR rows: tile t holds (t·MR + r, c) at t·MR·k + c·MR + r (rows past the end */
/* 0). Packs tiles [t0, t1).                                                                             */
static void pack_tiles(const float* x, float* xpk, uint32_t k, uint32_t rows, uint32_t t0, uint32_t t1) {
  const uint32_t k4 = k & ~3u;
  for (uint32_t r0 = t0 * MR; r0 < rows && r0 < t1 * MR; r0 += MR) {
    float* dst = xpk + (size_t)r0 * k;
    const uint32_t count = rows - r0 < MR ? rows - r0 : MR;
    if (count == MR) {
      const float* a = x + (size_t)r0 * k;
      const float *b = a + k, *c = b + k, *d = c + k;
      uint32_t i = 0;
      for (; i < k4; i += 4, dst += 4 * MR)
        store_transposed(dst, MR, wasm_v128_load(a + i), wasm_v128_load(b + i), wasm_v128_load(c + i),
                         wasm_v128_load(d + i));
      for (; i < k; i++, dst += MR) {
        dst[0] = a[i];
        dst[1] = b[i];
        dst[2] = c[i];
        dst[3] = d[i];
      }
    } else {
      for (uint32_t i = 0; i < k; i++, dst += MR)
        for (uint32_t r = 0; r < MR; r++) dst[r] = r < count ? x[(size_t)(r0 + r) * k + i] : 0.0f;
    }
  }
}

/* Packs tiles [t0, t1) of a job's x into job->xpk (a thread's share of the packing). */
EXPORT(pack_job) void pack_job(const Job* job, uint32_t t0, uint32_t t1) {
  pack_tiles((const float*)(uintptr_t)job->x, (float*)(uintptr_t)job->xpk, job->k, job->rows, t0, t1);
}

/* Element (row, c) of a part's weight as f32 (rows of full tiles tiled when the part is). */
static inline float weight_at(const Part* p, uint32_t k, uint32_t row, uint32_t c) {
  size_t i;
  if (p->tiled && row < (p->n & ~3u)) {
    const uint32_t k8 = k & ~7u;
    const size_t base = (size_t)(row & ~3u) * k;
    if (c < k8) i = base + (size_t)(c & ~7u) * 4 + (row & 3) * 8 + (c & 7);
    else i = base + (size_t)k8 * 4 + (row & 3) * (k - k8) + (c - k8);
  } else {
    i = (size_t)row * k + c;
  }
  const void* w = (const void*)(uintptr_t)p->w;
  if (p->dtype == DT_BF16) return bf16_scalar(((const uint16_t*)w)[i]);
  if (p->dtype == DT_F16) return f16_scalar(((const uint16_t*)w)[i]);
  return ((const float*)w)[i];
}

/* Panel columns q·4 .. q·4+3 from 4 full rows (row j at r[j], STEP elements per block of 8; trailing */
/* elements at t[j]) over k columns [kc, kc + len). Per block of 8 columns: 16-bit weights are          */
/* transposed as halves first (two rounds of interleaves: per pair of columns the 4 rows' halves side   */
/* by side), then widened, 2 columns per vector; f32 weights go through two 4x4 transposes.             */
static inline __attribute__((always_inline)) void pack_quad(float* dst, const uint8_t* const* r, uint32_t step,
                                                            const uint8_t* const* t, uint32_t dt, uint32_t k,
                                                            uint32_t kc, uint32_t len) {
  const uint32_t es = dt == DT_F32 ? 4 : 2;
  const uint32_t k8 = k & ~7u, end = kc + len, vend = end < k8 ? end : k8;
  const v128_t z = wasm_i32x4_splat(0);
  const v128_t sign = wasm_i16x8_splat((int16_t)0x8fff);
  const v128_t scale = wasm_f32x4_splat(0x1p112f);
  size_t at = (size_t)(kc / 8) * step * es;
  uint32_t c = kc;
  for (; c < vend; c += 8, at += step * es, dst += 64) {
    if (dt == DT_F32) {
      const float *a = (const float*)(r[0] + at), *b = (const float*)(r[1] + at);
      const float *cc = (const float*)(r[2] + at), *d = (const float*)(r[3] + at);
      store_transposed(dst, 8, wasm_v128_load(a), wasm_v128_load(b), wasm_v128_load(cc), wasm_v128_load(d));
      store_transposed(dst + 32, 8, wasm_v128_load(a + 4), wasm_v128_load(b + 4), wasm_v128_load(cc + 4),
                       wasm_v128_load(d + 4));
      continue;
    }
    const v128_t a = wasm_v128_load(r[0] + at), b = wasm_v128_load(r[1] + at);
    const v128_t cc = wasm_v128_load(r[2] + at), d = wasm_v128_load(r[3] + at);
    const v128_t ab0 = wasm_i16x8_shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
    const v128_t ab1 = wasm_i16x8_shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
    const v128_t cd0 = wasm_i16x8_shuffle(cc, d, 0, 8, 1, 9, 2, 10, 3, 11);
    const v128_t cd1 = wasm_i16x8_shuffle(cc, d, 4, 12, 5, 13, 6, 14, 7, 15);
    /* q_i: columns 2i and 2i+1, each as the 4 rows' halves. */
    const v128_t q0 = wasm_i32x4_shuffle(ab0, cd0, 0, 4, 1, 5), q1 = wasm_i32x4_shuffle(ab0, cd0, 2, 6, 3, 7);
    const v128_t q2 = wasm_i32x4_shuffle(ab1, cd1, 0, 4, 1, 5), q3 = wasm_i32x4_shuffle(ab1, cd1, 2, 6, 3, 7);
    v128_t lo, hi;
#define PUT_PAIR(Q, I)                                                            \
  do {                                                                            \
    if (dt == DT_BF16) {                                                          \
      lo = wasm_i16x8_shuffle(z, Q, 0, 8, 1, 9, 2, 10, 3, 11);                   \
      hi = wasm_i16x8_shuffle(z, Q, 4, 12, 5, 13, 6, 14, 7, 15);                 \
    } else {                                                                      \
      F16_WIDEN(Q, lo, hi);                                                       \
    }                                                                             \
    wasm_v128_store(dst + 16 * (I), lo);                                          \
    wasm_v128_store(dst + 16 * (I) + 8, hi);                                      \
  } while (0)
    PUT_PAIR(q0, 0);
    PUT_PAIR(q1, 1);
    PUT_PAIR(q2, 2);
    PUT_PAIR(q3, 3);
#undef PUT_PAIR
  }
  for (; c < end; c++, dst += 8)
    for (uint32_t j = 0; j < 4; j++) {
      const uint8_t* q = t[j] + (size_t)(c - k8) * es;
      dst[j] = dt == DT_F32    ? *(const float*)q
               : dt == DT_BF16 ? bf16_scalar(*(const uint16_t*)q)
                               : f16_scalar(*(const uint16_t*)q);
    }
}

/* Widens outputs [o, o + count) (count ≤ 8, o a multiple of 4) of part p over k columns [kc, kc + len) */
/* into the panel: panel[kk·8 + j] = w[o + j][kc + kk], 0 for j ≥ count.                                 */
__attribute__((noinline)) static void pack_panel(float* panel, const Part* p, uint32_t k, uint32_t o,
                                                 uint32_t count, uint32_t kc, uint32_t len) {
  const uint32_t dt = p->dtype, es = dt == DT_F32 ? 4 : 2, k8 = k & ~7u, kt = k - k8, n4 = p->n & ~3u;
  const uint8_t* w = (const uint8_t*)(uintptr_t)p->w;
  for (uint32_t q = 0; q < 2; q++) {
    const uint32_t first = o + 4 * q;
    float* dst = panel + 4 * q;
    const uint32_t valid = count > 4 * q ? (count - 4 * q < 4 ? count - 4 * q : 4) : 0;
    if (valid == 4) {
      const uint8_t *r[4], *t[4];
      uint32_t step;
      if (p->tiled && first < n4) {
        const uint8_t* base = w + (size_t)first * k * es;
        for (uint32_t j = 0; j < 4; j++) {
          r[j] = base + j * 8 * es;
          t[j] = base + ((size_t)4 * k8 + j * kt) * es;
        }
        step = 32;
      } else {
        for (uint32_t j = 0; j < 4; j++) {
          r[j] = w + (size_t)(first + j) * k * es;
          t[j] = r[j] + (size_t)k8 * es;
        }
        step = 8;
      }
      if (dt == DT_BF16) pack_quad(dst, r, step, t, DT_BF16, k, kc, len);
      else if (dt == DT_F16) pack_quad(dst, r, step, t, DT_F16, k, kc, len);
      else pack_quad(dst, r, step, t, DT_F32, k, kc, len);
    } else {
      for (uint32_t c = 0; c < len; c++)
        for (uint32_t j = 0; j < 4; j++) dst[c * 8 + j] = j < valid ? weight_at(p, k, first + j, kc + c) : 0.0f;
    }
  }
}

/* Where a panel GEMM puts its sums: partial sums in acc (row stride acc_stride, column 0 = output     */
/* acc_col0), final values (plus bias) stored in out [rows, n] or, for the up projection of a gated job, */
/* combined with the gate value there.                                                                   */
typedef struct {
  float* out;
  uint32_t n;
  float* acc;
  uint32_t acc_stride;
  uint32_t acc_col0;
  uint32_t acc_row0;
  const float* bias;
  uint32_t mode;
} Sink;

/* One row's 4 sums for outputs [o, o + valid) of a k block (first / last k block flags). */
static inline __attribute__((always_inline)) void put4(const Sink* s, uint32_t row, uint32_t o, uint32_t valid,
                                                       v128_t v, uint32_t first, uint32_t last) {
  float* a = s->acc + (size_t)(row - s->acc_row0) * s->acc_stride + (o - s->acc_col0);
  if (valid == 4) {
    if (!first) v = wasm_f32x4_add(v, wasm_v128_load(a));
    if (!last) {
      wasm_v128_store(a, v);
      return;
    }
    if (s->bias) v = wasm_f32x4_add(v, wasm_v128_load(s->bias + o));
    float* y = s->out + (size_t)row * s->n + o;
    if (s->mode == EMIT_STORE) {
      wasm_v128_store(y, v);
    } else {
      y[0] = gated(y[0], wasm_f32x4_extract_lane(v, 0), s->mode);
      y[1] = gated(y[1], wasm_f32x4_extract_lane(v, 1), s->mode);
      y[2] = gated(y[2], wasm_f32x4_extract_lane(v, 2), s->mode);
      y[3] = gated(y[3], wasm_f32x4_extract_lane(v, 3), s->mode);
    }
    return;
  }
  for (uint32_t j = 0; j < valid; j++) {
    float x = j == 0   ? wasm_f32x4_extract_lane(v, 0)
              : j == 1 ? wasm_f32x4_extract_lane(v, 1)
                       : wasm_f32x4_extract_lane(v, 2);
    if (!first) x += a[j];
    if (!last) a[j] = x;
    else emit(s->out + (size_t)row * s->n + o + j, x, s->bias, o + j, s->mode);
  }
}

#define MICRO_STEP(R)                                 \
  do {                                                \
    const v128_t s_ = wasm_v128_load32_splat(xk + R); \
    a##R = madd(a##R, w0, s_);                        \
    b##R = madd(b##R, w1, s_);                        \
  } while (0)

/* The micro-kernel: MR rows of packed x from xk times the panel's 8 outputs over len k columns, the    */
/* sums stored to acc (row r's outputs 0-3 at acc + 8r, 4-7 at acc + 8r + 4). Out of line and small, so */
/* that V8 keeps its 8 accumulators, 2 weight vectors and the splats in registers (V8 allocates 15 on   */
/* x64; a 5-row tile spilled and ran at half speed).                                                    */
__attribute__((noinline)) static void micro(const float* pw, const float* xk, uint32_t len, float* acc) {
  v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
  v128_t b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  for (const float* end = pw + 8 * len; pw < end; pw += 8, xk += MR) {
    /* Opaque pointers: loop strength reduction would otherwise turn the constant offsets below (which  */
    /* V8 folds into the addressing mode) into separate adds.                                          */
    __asm__("" : "+r"(pw), "+r"(xk));
    const v128_t w0 = wasm_v128_load(pw), w1 = wasm_v128_load(pw + 4);
    MICRO_STEP(0);
    MICRO_STEP(1);
    MICRO_STEP(2);
    MICRO_STEP(3);
  }
  wasm_v128_store(acc, a0);
  wasm_v128_store(acc + 4, b0);
  wasm_v128_store(acc + 8, a1);
  wasm_v128_store(acc + 12, b1);
  wasm_v128_store(acc + 16, a2);
  wasm_v128_store(acc + 20, b2);
  wasm_v128_store(acc + 24, a3);
  wasm_v128_store(acc + 28, b3);
}

/* Rows [r0, r1) (r0 a multiple of MR) x outputs [o, o + count) over one k block from the panel. */
static inline __attribute__((always_inline)) void micro_tiles(const float* panel, const float* xpk, uint32_t k,
                                                              uint32_t kc, uint32_t len, uint32_t r0, uint32_t r1,
                                                              uint32_t o, uint32_t count, float* acc,
                                                              const Sink* s, uint32_t first, uint32_t last) {
  const uint32_t v0 = count < 4 ? count : 4, v1 = count > 4 ? count - 4 : 0;
  for (uint32_t r = r0; r < r1; r += MR) {
    micro(panel, xpk + (size_t)r * k + (size_t)kc * MR, len, acc);
    const uint32_t rows = r1 - r < MR ? r1 - r : MR;
    for (uint32_t i = 0; i < rows; i++) {
      put4(s, r + i, o, v0, wasm_v128_load(acc + 8 * i), first, last);
      if (v1) put4(s, r + i, o + 4, v1, wasm_v128_load(acc + 8 * i + 4), first, last);
    }
  }
}

/* Outputs [o0, o1) of part p for rows [r0, r1) (r0 a multiple of MR), into sink s. */
static inline __attribute__((always_inline)) void panel_gemm(const Part* p, const float* xpk, uint32_t k,
                                                             uint32_t r0, uint32_t r1, uint32_t o0, uint32_t o1,
                                                             float* panel, const Sink* s) {
  for (uint32_t kc = 0; kc < k; kc += KC) {
    const uint32_t len = k - kc < KC ? k - kc : KC;
    const uint32_t first = kc == 0, last = kc + len == k;
    for (uint32_t o = o0; o < o1; o += 8) {
      const uint32_t count = o1 - o < 8 ? o1 - o : 8;
      pack_panel(panel, p, k, o, count, kc, len);
      micro_tiles(panel, xpk, k, kc, len, r0, r1, o, count, panel + PANEL_FLOATS, s, first, last);
    }
  }
}

/* Units [u0, u1) of a job whose x is packed (job->xpk), on thread `thread`'s scratch. Out of line, as  */
/* pack_panel and micro: V8 first runs new code in its baseline tier and swaps in optimized code per     */
/* function, at the function's next call, so small hot functions leave the baseline tier early.          */
__attribute__((noinline)) static void run_panel_job(const Job* job, uint32_t u0, uint32_t u1, uint32_t thread) {
  const uint32_t rows = job->rows, k = job->k;
  /* Row blocks of at most RB rows, as even as whole tiles allow (130 rows: 68 + 62, not 128 + 2). */
  const uint32_t blocks = (rows + RB - 1) / RB, rb = ((rows + blocks - 1) / blocks + MR - 1) / MR * MR;
  const float* xpk = (const float*)(uintptr_t)job->xpk;
  float* panel = (float*)(uintptr_t)(job->scratch + thread * job->scratch_stride);
  float* up_acc = panel + PANEL_FLOATS + 8 * MR;
  if (job->gated) {
    const Part* gate = &job->part[0];
    const Part* up = &job->part[1];
    const uint32_t o1 = u1 < gate->n ? u1 : gate->n;
    float* out = (float*)(uintptr_t)gate->out;
    for (uint32_t c0 = u0; c0 < o1; c0 += NC) {
      const uint32_t c1 = o1 - c0 < NC ? o1 : c0 + NC;
      for (uint32_t r0 = 0; r0 < rows; r0 += rb) {
        const uint32_t r1 = rows - r0 < rb ? rows : r0 + rb;
        const Sink g = {out, gate->n, out, gate->n, 0, 0, gate->bias ? (const float*)(uintptr_t)gate->bias : 0,
                        EMIT_STORE};
        panel_gemm(gate, xpk, k, r0, r1, c0, c1, panel, &g);
        const Sink u = {out, gate->n, up_acc, NC, c0, r0, up->bias ? (const float*)(uintptr_t)up->bias : 0,
                        job->act};
        panel_gemm(up, xpk, k, r0, r1, c0, c1, panel, &u);
      }
    }
    return;
  }
  for (uint32_t i = 0; i < job->parts; i++) {
    const Part* p = &job->part[i];
    const uint32_t end = p->start + ((p->n + 3) & ~3u);
    if (u1 <= p->start || u0 >= end) continue;
    const uint32_t o0 = u0 > p->start ? u0 - p->start : 0;
    const uint32_t o1 = (u1 < end ? u1 : end) - p->start;
    const uint32_t e1 = o1 < p->n ? o1 : p->n;
    float* out = (float*)(uintptr_t)p->out;
    const Sink s = {out, p->n, out, p->n, 0, 0, p->bias ? (const float*)(uintptr_t)p->bias : 0, EMIT_STORE};
    for (uint32_t c0 = o0; c0 < e1; c0 += NC) {
      const uint32_t c1 = e1 - c0 < NC ? e1 : c0 + NC;
      for (uint32_t r0 = 0; r0 < rows; r0 += rb)
        panel_gemm(p, xpk, k, r0, rows - r0 < rb ? rows : r0 + rb, c0, c1, panel, &s);
    }
  }
}

/* ------------------------------------------------ jobs ---------------------------------------------- */

/* Output columns [o0, o1) of one part for `rows` rows of x from row r0, written (or combined) by mode. */
static void project(const Job* job, const Part* p, uint32_t r0, uint32_t rows, uint32_t o0, uint32_t o1,
                    float* out, uint32_t mode) {
  const uint32_t k = job->k, n = p->n;
  const float* bias = p->bias ? (const float*)(uintptr_t)p->bias : 0;
  const void* w = (const void*)(uintptr_t)p->w;
  const float* x = (const float*)(uintptr_t)(p->dtype == DT_BF16 ? job->xp : job->x) + (size_t)r0 * k;
  float* y = out + (size_t)r0 * n;
  if (rows == 1) {
    if (p->dtype == DT_BF16)
      p->tiled ? gemv_bf16_tiled(w, x, y, k, n, o0, o1, bias, mode) : gemv_bf16(w, x, y, k, o0, o1, bias, mode);
    else if (p->dtype == DT_F16)
      p->tiled ? gemv_f16_tiled(w, x, y, k, n, o0, o1, bias, mode) : gemv_f16(w, x, y, k, o0, o1, bias, mode);
    else
      p->tiled ? gemv_f32_tiled(w, x, y, k, n, o0, o1, bias, mode) : gemv_f32(w, x, y, k, o0, o1, bias, mode);
    return;
  }
  if (p->dtype == DT_BF16) gemm_bf16_block(w, p->tiled, x, y, k, n, rows, o0, o1, bias, mode);
  else if (p->dtype == DT_F16) gemm_f16_block(w, p->tiled, x, y, k, n, rows, o0, o1, bias, mode);
  else gemm_f32_block(w, p->tiled, x, y, k, n, rows, o0, o1, bias, mode);
}

/* Units [u0, u1) of a job (u0 and u1 multiples of 4, or the end of the unit space), on thread `thread` */
/* (0 the calling thread; it picks the panel GEMM's scratch).                                            */
EXPORT(run_job) void run_job(const Job* job, uint32_t u0, uint32_t u1, uint32_t thread) {
  if (job->xpk) {
    run_panel_job(job, u0, u1, thread);
    return;
  }
  const uint32_t rows = job->rows;
  if (job->gated) {
    const Part* gate = &job->part[0];
    const Part* up = &job->part[1];
    const uint32_t o1 = u1 < gate->n ? u1 : gate->n;
    if (u0 >= o1) return;
    float* out = (float*)(uintptr_t)gate->out;
    for (uint32_t r = 0; r < rows; r += ROW_BLOCK) {
      const uint32_t count = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
      project(job, gate, r, count, u0, o1, out, EMIT_STORE);
      project(job, up, r, count, u0, o1, out, job->act);
    }
    return;
  }
  for (uint32_t i = 0; i < job->parts; i++) {
    const Part* p = &job->part[i];
    const uint32_t end = p->start + ((p->n + 3) & ~3u);
    if (u1 <= p->start || u0 >= end) continue;
    const uint32_t o0 = u0 > p->start ? u0 - p->start : 0;
    const uint32_t o1 = (u1 < end ? u1 : end) - p->start;
    const uint32_t c1 = o1 < p->n ? o1 : p->n;
    if (o0 >= c1) continue;
    float* out = (float*)(uintptr_t)p->out;
    for (uint32_t r = 0; r < rows; r += ROW_BLOCK) {
      const uint32_t count = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
      project(job, p, r, count, o0, c1, out, EMIT_STORE);
    }
  }
}

/* ------------------------------------------- bandwidth ---------------------------------------------- */

/* Reads the 64-byte lines [o0, o1) from p with as little compute as possible and returns a checksum so  */
/* the loads stay: the streaming-read bandwidth that bounds a GEMV.                                      */
EXPORT(stream_read) uint32_t stream_read(const uint8_t* p, uint32_t o0, uint32_t o1) {
  v128_t a0 = wasm_i32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (const uint8_t *q = p + (size_t)o0 * 64, *end = p + (size_t)o1 * 64; q < end; q += 64) {
    a0 = wasm_v128_xor(a0, wasm_v128_load(q));
    a1 = wasm_v128_xor(a1, wasm_v128_load(q + 16));
    a2 = wasm_v128_xor(a2, wasm_v128_load(q + 32));
    a3 = wasm_v128_xor(a3, wasm_v128_load(q + 48));
  }
  a0 = wasm_v128_xor(wasm_v128_xor(a0, a1), wasm_v128_xor(a2, a3));
  return (uint32_t)wasm_i32x4_extract_lane(a0, 0);
}

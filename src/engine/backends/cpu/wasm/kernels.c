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
 * A job (8 words, then its parts). Plain: every part is its own projection, units are the parts' output
 * columns one after the other (each part padded to a multiple of 4). Gated: part 0 is the gate and part 1
 * the up projection of the same width; out (part 0's) = act(x·gateᵀ + b0) · (x·upᵀ + b1).
 */
typedef struct {
  uint32_t gated;
  uint32_t act; /* EMIT_SILU or EMIT_GELU_TANH when gated */
  uint32_t parts;
  uint32_t k;
  uint32_t rows;
  uint32_t xp; /* x permuted by permute_even_odd (read by bf16 parts) */
  uint32_t x;  /* x in natural order (f16 and f32 parts) */
  uint32_t reserved;
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

/* Units [u0, u1) of a job (u0 and u1 multiples of 4, or the end of the unit space). */
EXPORT(run_job) void run_job(const Job* job, uint32_t u0, uint32_t u1) {
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

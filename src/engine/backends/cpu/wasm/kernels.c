/*
 * CPU kernels for oLLM, compiled to WebAssembly with 128-bit SIMD (see build.sh).
 *
 * Every kernel works on one shared linear memory (the arena that also holds the weights) and on a slice
 * [o0, o1) of the output columns, so several threads can run the same call on disjoint slices.
 * Layouts are row-major: activations x [rows, k] f32, weights w [n, k] (bf16, f16 or f32), out [rows, n].
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

/* ------------------------------------------------ bf16 ---------------------------------------------- */

#define BF16_DOT(acc, v, xe, xo)                                                              \
  acc = wasm_f32x4_add(acc, wasm_f32x4_add(wasm_f32x4_mul(wasm_i32x4_shl(v, 16), xe),        \
                                           wasm_f32x4_mul(wasm_v128_and(v, hi), xo)))

static inline float bf16_tail(const uint16_t* w, const float* x, uint32_t k8, uint32_t k) {
  float s = 0;
  for (uint32_t i = k8; i < k; i++) s += bf16_scalar(w[i]) * x[i];
  return s;
}

/* One activation row: 4 weight rows at a time share each load of x. xp is permuted (permute_even_odd). */
static void gemv_bf16(const uint16_t* w, const float* xp, float* out, uint32_t k, uint32_t o0, uint32_t o1) {
  const v128_t hi = wasm_i32x4_splat((int32_t)0xffff0000);
  const uint32_t k8 = k & ~7u;
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
    out[o] = hsum(a0) + bf16_tail(w0, xp, k8, k);
    out[o + 1] = hsum(a1) + bf16_tail(w1, xp, k8, k);
    out[o + 2] = hsum(a2) + bf16_tail(w2, xp, k8, k);
    out[o + 3] = hsum(a3) + bf16_tail(w3, xp, k8, k);
  }
  for (; o < o1; o++) {
    const uint16_t* w0 = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0);
    for (uint32_t i = 0; i < k8; i += 8) {
      BF16_DOT(a0, wasm_v128_load(w0 + i), wasm_v128_load(xp + i), wasm_v128_load(xp + i + 4));
    }
    out[o] = hsum(a0) + bf16_tail(w0, xp, k8, k);
  }
}

/* Several activation rows: 4 outputs x 2 rows per tile; each weight load serves both rows. */
static void gemm_bf16_block(const uint16_t* w, const float* xp, float* out, uint32_t k, uint32_t n,
                            uint32_t rows, uint32_t o0, uint32_t o1) {
  const v128_t hi = wasm_i32x4_splat((int32_t)0xffff0000);
  const uint32_t k8 = k & ~7u;
  uint32_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    const uint16_t* w0 = w + (size_t)o * k;
    const uint16_t* w1 = w0 + k;
    const uint16_t* w2 = w1 + k;
    const uint16_t* w3 = w2 + k;
    uint32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const float* x0 = xp + (size_t)r * k;
      const float* x1 = x0 + k;
      v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (uint32_t i = 0; i < k8; i += 8) {
        const v128_t v0 = wasm_v128_load(w0 + i), v1 = wasm_v128_load(w1 + i);
        const v128_t v2 = wasm_v128_load(w2 + i), v3 = wasm_v128_load(w3 + i);
        v128_t xe = wasm_v128_load(x0 + i), xo = wasm_v128_load(x0 + i + 4);
        BF16_DOT(a0, v0, xe, xo);
        BF16_DOT(a1, v1, xe, xo);
        BF16_DOT(a2, v2, xe, xo);
        BF16_DOT(a3, v3, xe, xo);
        xe = wasm_v128_load(x1 + i);
        xo = wasm_v128_load(x1 + i + 4);
        BF16_DOT(b0, v0, xe, xo);
        BF16_DOT(b1, v1, xe, xo);
        BF16_DOT(b2, v2, xe, xo);
        BF16_DOT(b3, v3, xe, xo);
      }
      float* y0 = out + (size_t)r * n + o;
      float* y1 = y0 + n;
      y0[0] = hsum(a0) + bf16_tail(w0, x0, k8, k);
      y0[1] = hsum(a1) + bf16_tail(w1, x0, k8, k);
      y0[2] = hsum(a2) + bf16_tail(w2, x0, k8, k);
      y0[3] = hsum(a3) + bf16_tail(w3, x0, k8, k);
      y1[0] = hsum(b0) + bf16_tail(w0, x1, k8, k);
      y1[1] = hsum(b1) + bf16_tail(w1, x1, k8, k);
      y1[2] = hsum(b2) + bf16_tail(w2, x1, k8, k);
      y1[3] = hsum(b3) + bf16_tail(w3, x1, k8, k);
    }
    if (r < rows) gemv_bf16(w, xp + (size_t)r * k, out + (size_t)r * n, k, o, o + 4);
  }
  if (o < o1)
    for (uint32_t r = 0; r < rows; r++) gemv_bf16(w, xp + (size_t)r * k, out + (size_t)r * n, k, o, o1);
}

/* out[r, o] = sum_i x[r, i] * w[o, i] for o in [o0, o1); xp holds x permuted by permute_even_odd. */
EXPORT(matmul_bf16) void matmul_bf16(const uint16_t* w, const float* xp, float* out, uint32_t k, uint32_t n, uint32_t rows,
                        uint32_t o0, uint32_t o1) {
  if (rows == 1) {
    gemv_bf16(w, xp, out, k, o0, o1);
    return;
  }
  for (uint32_t r = 0; r < rows; r += ROW_BLOCK) {
    const uint32_t count = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
    gemm_bf16_block(w, xp + (size_t)r * k, out + (size_t)r * n, k, n, count, o0, o1);
  }
}

/* ------------------------------------------------ f16 ----------------------------------------------- */
/* 8 halves -> two f32x4 in natural order: the high 16 bits of each f32 are sign | (h & 0x7fff) >> 3,   */
/* the low 16 bits are h << 13; interleaved, then scaled by 2^112 (exact for normals and subnormals).   */
/* Infinities and NaNs come out finite: the engine sends such tensors to the TypeScript path.          */

#define F16_WIDEN(v, lo, hi4)                                                                         \
  do {                                                                                                \
    const v128_t h16 = wasm_v128_or(wasm_u16x8_shr(wasm_i16x8_shl(v, 1), 4), wasm_v128_and(v, sign)); \
    const v128_t l16 = wasm_i16x8_shl(v, 13);                                                         \
    lo = wasm_f32x4_mul(wasm_i16x8_shuffle(l16, h16, 0, 8, 1, 9, 2, 10, 3, 11), scale);               \
    hi4 = wasm_f32x4_mul(wasm_i16x8_shuffle(l16, h16, 4, 12, 5, 13, 6, 14, 7, 15), scale);            \
  } while (0)

static inline float f16_tail(const uint16_t* w, const float* x, uint32_t k8, uint32_t k) {
  float s = 0;
  for (uint32_t i = k8; i < k; i++) s += f16_scalar(w[i]) * x[i];
  return s;
}

static void gemv_f16(const uint16_t* w, const float* x, float* out, uint32_t k, uint32_t o0, uint32_t o1) {
  const v128_t sign = wasm_i16x8_splat((int16_t)0x8000);
  const v128_t scale = wasm_f32x4_splat(0x1p112f);
  const uint32_t k8 = k & ~7u;
  uint32_t o = o0;
  for (; o + 2 <= o1; o += 2) {
    const uint16_t* w0 = w + (size_t)o * k;
    const uint16_t* w1 = w0 + k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0;
    for (uint32_t i = 0; i < k8; i += 8) {
      const v128_t xl = wasm_v128_load(x + i), xh = wasm_v128_load(x + i + 4);
      v128_t lo, hi4;
      F16_WIDEN(wasm_v128_load(w0 + i), lo, hi4);
      a0 = wasm_f32x4_add(a0, wasm_f32x4_add(wasm_f32x4_mul(lo, xl), wasm_f32x4_mul(hi4, xh)));
      F16_WIDEN(wasm_v128_load(w1 + i), lo, hi4);
      a1 = wasm_f32x4_add(a1, wasm_f32x4_add(wasm_f32x4_mul(lo, xl), wasm_f32x4_mul(hi4, xh)));
    }
    out[o] = hsum(a0) + f16_tail(w0, x, k8, k);
    out[o + 1] = hsum(a1) + f16_tail(w1, x, k8, k);
  }
  for (; o < o1; o++) {
    const uint16_t* w0 = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0);
    for (uint32_t i = 0; i < k8; i += 8) {
      v128_t lo, hi4;
      F16_WIDEN(wasm_v128_load(w0 + i), lo, hi4);
      a0 = wasm_f32x4_add(a0, wasm_f32x4_add(wasm_f32x4_mul(lo, wasm_v128_load(x + i)),
                                             wasm_f32x4_mul(hi4, wasm_v128_load(x + i + 4))));
    }
    out[o] = hsum(a0) + f16_tail(w0, x, k8, k);
  }
}

static void gemm_f16_block(const uint16_t* w, const float* x, float* out, uint32_t k, uint32_t n, uint32_t rows,
                           uint32_t o0, uint32_t o1) {
  const v128_t sign = wasm_i16x8_splat((int16_t)0x8000);
  const v128_t scale = wasm_f32x4_splat(0x1p112f);
  const uint32_t k8 = k & ~7u;
  uint32_t o = o0;
  for (; o + 2 <= o1; o += 2) {
    const uint16_t* w0 = w + (size_t)o * k;
    const uint16_t* w1 = w0 + k;
    uint32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const float* x0 = x + (size_t)r * k;
      const float* x1 = x0 + k;
      v128_t a0 = wasm_f32x4_splat(0), a1 = a0, b0 = a0, b1 = a0;
      for (uint32_t i = 0; i < k8; i += 8) {
        v128_t l0, h0, l1, h1;
        F16_WIDEN(wasm_v128_load(w0 + i), l0, h0);
        F16_WIDEN(wasm_v128_load(w1 + i), l1, h1);
        v128_t xl = wasm_v128_load(x0 + i), xh = wasm_v128_load(x0 + i + 4);
        a0 = wasm_f32x4_add(a0, wasm_f32x4_add(wasm_f32x4_mul(l0, xl), wasm_f32x4_mul(h0, xh)));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_add(wasm_f32x4_mul(l1, xl), wasm_f32x4_mul(h1, xh)));
        xl = wasm_v128_load(x1 + i);
        xh = wasm_v128_load(x1 + i + 4);
        b0 = wasm_f32x4_add(b0, wasm_f32x4_add(wasm_f32x4_mul(l0, xl), wasm_f32x4_mul(h0, xh)));
        b1 = wasm_f32x4_add(b1, wasm_f32x4_add(wasm_f32x4_mul(l1, xl), wasm_f32x4_mul(h1, xh)));
      }
      float* y0 = out + (size_t)r * n + o;
      float* y1 = y0 + n;
      y0[0] = hsum(a0) + f16_tail(w0, x0, k8, k);
      y0[1] = hsum(a1) + f16_tail(w1, x0, k8, k);
      y1[0] = hsum(b0) + f16_tail(w0, x1, k8, k);
      y1[1] = hsum(b1) + f16_tail(w1, x1, k8, k);
    }
    if (r < rows) gemv_f16(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o + 2);
  }
  if (o < o1)
    for (uint32_t r = 0; r < rows; r++) gemv_f16(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o1);
}

/* Same contract as matmul_bf16, with x in natural order. */
EXPORT(matmul_f16) void matmul_f16(const uint16_t* w, const float* x, float* out, uint32_t k, uint32_t n, uint32_t rows,
                       uint32_t o0, uint32_t o1) {
  if (rows == 1) {
    gemv_f16(w, x, out, k, o0, o1);
    return;
  }
  for (uint32_t r = 0; r < rows; r += ROW_BLOCK) {
    const uint32_t count = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
    gemm_f16_block(w, x + (size_t)r * k, out + (size_t)r * n, k, n, count, o0, o1);
  }
}

/* ------------------------------------------------ f32 ----------------------------------------------- */

static inline float f32_tail(const float* w, const float* x, uint32_t k4, uint32_t k) {
  float s = 0;
  for (uint32_t i = k4; i < k; i++) s += w[i] * x[i];
  return s;
}

static void gemv_f32(const float* w, const float* x, float* out, uint32_t k, uint32_t o0, uint32_t o1) {
  const uint32_t k8 = k & ~7u;
  uint32_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    const float* w0 = w + (size_t)o * k;
    const float* w1 = w0 + k;
    const float* w2 = w1 + k;
    const float* w3 = w2 + k;
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t i = 0; i < k8; i += 8) {
      const v128_t xl = wasm_v128_load(x + i), xh = wasm_v128_load(x + i + 4);
      a0 = wasm_f32x4_add(a0, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w0 + i), xl),
                                             wasm_f32x4_mul(wasm_v128_load(w0 + i + 4), xh)));
      a1 = wasm_f32x4_add(a1, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w1 + i), xl),
                                             wasm_f32x4_mul(wasm_v128_load(w1 + i + 4), xh)));
      a2 = wasm_f32x4_add(a2, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w2 + i), xl),
                                             wasm_f32x4_mul(wasm_v128_load(w2 + i + 4), xh)));
      a3 = wasm_f32x4_add(a3, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w3 + i), xl),
                                             wasm_f32x4_mul(wasm_v128_load(w3 + i + 4), xh)));
    }
    out[o] = hsum(a0) + f32_tail(w0, x, k8, k);
    out[o + 1] = hsum(a1) + f32_tail(w1, x, k8, k);
    out[o + 2] = hsum(a2) + f32_tail(w2, x, k8, k);
    out[o + 3] = hsum(a3) + f32_tail(w3, x, k8, k);
  }
  for (; o < o1; o++) {
    const float* w0 = w + (size_t)o * k;
    v128_t a0 = wasm_f32x4_splat(0);
    for (uint32_t i = 0; i < k8; i += 8) {
      a0 = wasm_f32x4_add(a0, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w0 + i), wasm_v128_load(x + i)),
                                             wasm_f32x4_mul(wasm_v128_load(w0 + i + 4), wasm_v128_load(x + i + 4))));
    }
    out[o] = hsum(a0) + f32_tail(w0, x, k8, k);
  }
}

static void gemm_f32_block(const float* w, const float* x, float* out, uint32_t k, uint32_t n, uint32_t rows,
                           uint32_t o0, uint32_t o1) {
  const uint32_t k4 = k & ~3u;
  uint32_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    const float* w0 = w + (size_t)o * k;
    const float* w1 = w0 + k;
    const float* w2 = w1 + k;
    const float* w3 = w2 + k;
    uint32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const float* x0 = x + (size_t)r * k;
      const float* x1 = x0 + k;
      v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (uint32_t i = 0; i < k4; i += 4) {
        const v128_t v0 = wasm_v128_load(w0 + i), v1 = wasm_v128_load(w1 + i);
        const v128_t v2 = wasm_v128_load(w2 + i), v3 = wasm_v128_load(w3 + i);
        const v128_t p = wasm_v128_load(x0 + i), q = wasm_v128_load(x1 + i);
        a0 = madd(a0, v0, p);
        a1 = madd(a1, v1, p);
        a2 = madd(a2, v2, p);
        a3 = madd(a3, v3, p);
        b0 = madd(b0, v0, q);
        b1 = madd(b1, v1, q);
        b2 = madd(b2, v2, q);
        b3 = madd(b3, v3, q);
      }
      float* y0 = out + (size_t)r * n + o;
      float* y1 = y0 + n;
      y0[0] = hsum(a0) + f32_tail(w0, x0, k4, k);
      y0[1] = hsum(a1) + f32_tail(w1, x0, k4, k);
      y0[2] = hsum(a2) + f32_tail(w2, x0, k4, k);
      y0[3] = hsum(a3) + f32_tail(w3, x0, k4, k);
      y1[0] = hsum(b0) + f32_tail(w0, x1, k4, k);
      y1[1] = hsum(b1) + f32_tail(w1, x1, k4, k);
      y1[2] = hsum(b2) + f32_tail(w2, x1, k4, k);
      y1[3] = hsum(b3) + f32_tail(w3, x1, k4, k);
    }
    if (r < rows) gemv_f32(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o + 4);
  }
  if (o < o1)
    for (uint32_t r = 0; r < rows; r++) gemv_f32(w, x + (size_t)r * k, out + (size_t)r * n, k, o, o1);
}

EXPORT(matmul_f32) void matmul_f32(const float* w, const float* x, float* out, uint32_t k, uint32_t n, uint32_t rows,
                       uint32_t o0, uint32_t o1) {
  if (rows == 1) {
    gemv_f32(w, x, out, k, o0, o1);
    return;
  }
  for (uint32_t r = 0; r < rows; r += ROW_BLOCK) {
    const uint32_t count = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
    gemm_f32_block(w, x + (size_t)r * k, out + (size_t)r * n, k, n, count, o0, o1);
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

// gemv_avx512bf16.cc — AVX512_BF16 rows of the decode GEMV for bf16 weights
// (the bf16 dot path, see gemv_kernels.h). Compiled with -mavx512bf16.
// The weights are not widened: 32 bf16 per zmm load go straight into
// vdpbf16ps against the activations, which the driver rounded to bf16 once
// per call (round_bf16). Two weight rows at a time; each of the M x 2 dot
// products keeps two accumulators (k mod 64 in [0,32) and [32,64)), lanes
// reduced in a fixed order, so a result does not depend on M or the thread.
// The k tail (K mod 64) uses masked loads (pads are never read).
#include <immintrin.h>

#include <cstdint>

#include "gemv_kernels.h"

namespace grip {
namespace cpu {
namespace gemv_detail {
namespace {

inline __mmask32 mask32_n(int64_t n) {  // first n (clamped to 0..32) lanes
  return n >= 32 ? (__mmask32)0xffffffffu : n <= 0 ? (__mmask32)0 : (__mmask32)((1u << n) - 1);
}
inline __mmask16 mask_n(int64_t n) {
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

inline __m512 dot(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

// x [M, K] f32 -> xb [M, ldxb] bf16, round to nearest even (vcvtne2ps2bf16), zeros past K.
void round_bf16(int64_t M, int64_t K, const float* x, int64_t ldx, uint16_t* xb, int64_t ldxb) {
  for (int64_t m = 0; m < M; ++m) {
    const float* s = x + m * ldx;
    uint16_t* d = xb + m * ldxb;
    for (int64_t k = 0; k < ldxb; k += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(mask_n(K - k), s + k);
      const __m512 hi = _mm512_maskz_loadu_ps(mask_n(K - k - 16), s + k + 16);
      _mm512_storeu_si512(d + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// R weight rows (n, n+1, ..) against MM activation rows.
template <int MM, int R>
__attribute__((always_inline)) inline void block(int64_t K, const uint16_t* xb, int64_t ldxb, const uint16_t* w,
                                                 int64_t ldw, int64_t n, float* y, int64_t ldy, const float* bias) {
  __m512 acc[MM][R][2];
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) acc[m][r][0] = acc[m][r][1] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    __m512i w0[R], w1[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
      w0[r] = _mm512_loadu_si512(w + (n + r) * ldw + k);
      w1[r] = _mm512_loadu_si512(w + (n + r) * ldw + k + 32);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MM; ++m) {
      const __m512i x0 = _mm512_loadu_si512(xb + m * ldxb + k), x1 = _mm512_loadu_si512(xb + m * ldxb + k + 32);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) {
        acc[m][r][0] = dot(acc[m][r][0], w0[r], x0);
        acc[m][r][1] = dot(acc[m][r][1], w1[r], x1);
      }
    }
  }
  // Tail: up to 63 values, as one full or masked 32 into accumulator 0 and the rest masked into 1.
  for (int half = 0; k < K; ++half, k += 32) {
    const __mmask32 mask = mask32_n(K - k);
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
      const __m512i wv = _mm512_maskz_loadu_epi16(mask, w + (n + r) * ldw + k);
#pragma GCC unroll 4
      for (int m = 0; m < MM; ++m) {
        const __m512i xv = _mm512_maskz_loadu_epi16(mask, xb + m * ldxb + k);
        acc[m][r][half] = dot(acc[m][r][half], wv, xv);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
      const float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][r][0], acc[m][r][1]));
      y[m * ldy + n + r] = bias ? s + bias[n + r] : s;
    }
}

template <int MM>
void rows_t(int64_t K, const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t ldw, int64_t n0, int64_t n1,
            float* y, int64_t ldy, const float* bias) {
  int64_t n = n0;
  for (; n + 2 <= n1; n += 2) block<MM, 2>(K, xb, ldxb, w, ldw, n, y, ldy, bias);
  if (n < n1) block<MM, 1>(K, xb, ldxb, w, ldw, n, y, ldy, bias);
}

void rows(int64_t M, int64_t K, const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t ldw, int64_t n0,
          int64_t n1, float* y, int64_t ldy, const float* bias) {
  switch (M) {
    case 1: rows_t<1>(K, xb, ldxb, w, ldw, n0, n1, y, ldy, bias); break;
    case 2: rows_t<2>(K, xb, ldxb, w, ldw, n0, n1, y, ldy, bias); break;
    case 3: rows_t<3>(K, xb, ldxb, w, ldw, n0, n1, y, ldy, bias); break;
    default: rows_t<4>(K, xb, ldxb, w, ldw, n0, n1, y, ldy, bias); break;
  }
}

}  // namespace

RoundBf16Fn round_bf16_avx512_bf16() { return &round_bf16; }
RowsBf16Fn rows_avx512_bf16() { return &rows; }

}  // namespace gemv_detail
}  // namespace cpu
}  // namespace grip

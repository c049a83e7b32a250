// gemv_avx512.cc — AVX-512 rows of the decode GEMV (see gemv_kernels.h).
// 8, 4 or 2 weight rows at a time (for 1, 2 or 3-4 activation rows), 16
// lanes along k: each of the M x R dot products keeps two accumulators (k
// mod 32 in [0,16) and [16,32)), so 16 independent FMA chains hide the FMA
// latency while the weights stream from memory once. f16 weights widen with vcvtph2ps; bf16 weights take
// split_block (a shift and a mask against an even/odd split of x).
// The k tail (K mod 16) uses masked loads; lane sums are reduced in a
// fixed order, so a result never depends on which thread computed it.
#include <immintrin.h>

#include <cstdint>

#include "gemv_kernels.h"

namespace grip {
namespace cpu {
namespace gemv_detail {
namespace {

template <int DT>
__attribute__((always_inline)) inline __m512 load_w(const void* w, int64_t i, __mmask16 mask) {
  if constexpr (DT == 0) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(w) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(w) + i);
    if constexpr (DT == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <int DT>
__attribute__((always_inline)) inline __m512 load_w(const void* w, int64_t i) {
  if constexpr (DT == 0) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    if constexpr (DT == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// y[m, n + r] = the sum of acc[m][r]'s two accumulators (+ bias), in one fixed order.
template <int MM, int R>
__attribute__((always_inline)) inline void store(const __m512 (&acc)[MM][R][2], int64_t n, float* y, int64_t ldy,
                                                 const float* bias) {
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][r][0], acc[m][r][1]));
      y[m * ldy + n + r] = bias ? s + bias[n + r] : s;
    }
}

// R weight rows (n, n+1, ..) against MM activation rows.
template <int DT, int MM, int R>
__attribute__((always_inline)) inline void block(int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw,
                                                 int64_t n, float* y, int64_t ldy, const float* bias) {
  __m512 acc[MM][R][2];
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[m][r][0] = acc[m][r][1] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512 w0[R], w1[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      w0[r] = load_w<DT>(w, (n + r) * ldw + k);
      w1[r] = load_w<DT>(w, (n + r) * ldw + k + 16);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MM; ++m) {
      const __m512 x0 = _mm512_loadu_ps(x + m * ldx + k), x1 = _mm512_loadu_ps(x + m * ldx + k + 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        acc[m][r][0] = _mm512_fmadd_ps(w0[r], x0, acc[m][r][0]);
        acc[m][r][1] = _mm512_fmadd_ps(w1[r], x1, acc[m][r][1]);
      }
    }
  }
  // Tail: up to 31 values, as one full or masked 16 into accumulator 0 and the rest masked into 1.
  for (int half = 0; k < K; ++half, k += 16) {
    const int64_t left = K - k;
    const __mmask16 mask = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 wv = load_w<DT>(w, (n + r) * ldw + k, mask);
#pragma GCC unroll 4
      for (int m = 0; m < MM; ++m) {
        const __m512 xv = _mm512_maskz_loadu_ps(mask, x + m * ldx + k);
        acc[m][r][half] = _mm512_fmadd_ps(wv, xv, acc[m][r][half]);
      }
    }
  }
  store(acc, n, y, ldy, bias);
}

template <int DT, int MM>
void rows_t(int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t n0, int64_t n1, float* y,
            int64_t ldy, const float* bias) {
  // More weight rows in flight for fewer activation rows (16 accumulators at most): f32 at M = 1, 8 rows
  // against 2 read 1.25-1.33x faster (8192 x 4096, one Zen 4 core, cold weights). Same bits: each
  // output's order does not depend on R.
  constexpr int R = MM == 1 ? 8 : MM == 2 ? 4 : 2;
  int64_t n = n0;
  for (; n + R <= n1; n += R) block<DT, MM, R>(K, x, ldx, w, ldw, n, y, ldy, bias);
  for (; n + 2 <= n1; n += 2) block<DT, MM, 2>(K, x, ldx, w, ldw, n, y, ldy, bias);
  if (n < n1) block<DT, MM, 1>(K, x, ldx, w, ldw, n, y, ldy, bias);
}

template <int DT>
void rows_dt(int64_t M, int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t n0, int64_t n1,
             float* y, int64_t ldy, const float* bias) {
  switch (M) {
    case 1: rows_t<DT, 1>(K, x, ldx, w, ldw, n0, n1, y, ldy, bias); break;
    case 2: rows_t<DT, 2>(K, x, ldx, w, ldw, n0, n1, y, ldy, bias); break;
    case 3: rows_t<DT, 3>(K, x, ldx, w, ldw, n0, n1, y, ldy, bias); break;
    default: rows_t<DT, 4>(K, x, ldx, w, ldw, n0, n1, y, ldy, bias); break;
  }
}

void rows(int64_t M, int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw, int dtype, int64_t n0,
          int64_t n1, float* y, int64_t ldy, const float* bias) {
  if (dtype == 0) rows_dt<0>(M, K, x, ldx, w, ldw, n0, n1, y, ldy, bias);
  else if (dtype == 1) rows_dt<1>(M, K, x, ldx, w, ldw, n0, n1, y, ldy, bias);
  else rows_dt<2>(M, K, x, ldx, w, ldw, n0, n1, y, ldy, bias);
}

// bf16 weights against the even/odd split x (RowsSplitFn): R weight rows x
// MM activation rows, two accumulators each (even k, odd k); the k tail is a
// masked load of the weights (xs is zero-padded). 8 rows at M = 1: 1.4-1.8x
// block<2, 1, 2>'s weight rate at 11008 x 4096, one Zen 4 core, cold weights.
template <int MM, int R>
__attribute__((always_inline)) inline void split_block(int64_t K, const float* xs, int64_t ldxs, const uint16_t* w,
                                                       int64_t ldw, int64_t n, float* y, int64_t ldy,
                                                       const float* bias) {
  const __m512i odd = _mm512_set1_epi32((int)0xffff0000u);
  __m512 acc[MM][R][2];
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[m][r][0] = acc[m][r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    const int64_t left = K - k;
    const __mmask32 mask = left >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << left) - 1u);
    __m512i wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_epi16(mask, w + (n + r) * ldw + k);
#pragma GCC unroll 4
    for (int m = 0; m < MM; ++m) {
      const __m512 xe = _mm512_load_ps(xs + m * ldxs + k), xo = _mm512_load_ps(xs + m * ldxs + k + 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        acc[m][r][0] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(wv[r], 16)), xe, acc[m][r][0]);
        acc[m][r][1] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(wv[r], odd)), xo, acc[m][r][1]);
      }
    }
  }
  store(acc, n, y, ldy, bias);
}

// 8, 4 or 2 weight rows at a time (16 accumulators at most), then one.
template <int MM>
void split_rows_t(int64_t K, const float* xs, int64_t ldxs, const uint16_t* w, int64_t ldw, int64_t n0, int64_t n1,
                  float* y, int64_t ldy, const float* bias) {
  constexpr int R = MM == 1 ? 8 : MM == 2 ? 4 : 2;
  int64_t n = n0;
  for (; n + R <= n1; n += R) split_block<MM, R>(K, xs, ldxs, w, ldw, n, y, ldy, bias);
  for (; n < n1; ++n) split_block<MM, 1>(K, xs, ldxs, w, ldw, n, y, ldy, bias);
}

void split_rows(int64_t M, int64_t K, const float* xs, int64_t ldxs, const uint16_t* w, int64_t ldw, int64_t n0,
                int64_t n1, float* y, int64_t ldy, const float* bias) {
  switch (M) {
    case 1: split_rows_t<1>(K, xs, ldxs, w, ldw, n0, n1, y, ldy, bias); break;
    case 2: split_rows_t<2>(K, xs, ldxs, w, ldw, n0, n1, y, ldy, bias); break;
    case 3: split_rows_t<3>(K, xs, ldxs, w, ldw, n0, n1, y, ldy, bias); break;
    default: split_rows_t<4>(K, xs, ldxs, w, ldw, n0, n1, y, ldy, bias); break;
  }
}

}  // namespace

RowsFn rows_avx512() { return &rows; }
RowsSplitFn rows_bf16_split_avx512() { return &split_rows; }

}  // namespace gemv_detail
}  // namespace cpu
}  // namespace grip

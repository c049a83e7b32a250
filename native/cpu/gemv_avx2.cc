// gemv_avx2.cc — AVX2/FMA rows of the decode GEMV (see gemv_kernels.h):
// the AVX-512 kernel's shape at 8 lanes (four weight rows at a time at
// M = 1, two otherwise: same bits, the order per output does not depend on
// it; 4 rows: 18.4 -> 20.6 GB/s f32, 15.4 -> 19.0 bf16 at 11008 x 4096 on
// one Zen 3 core, cold weights; two
// accumulators per dot product, k step 16); the k tail (K mod 16) runs in
// scalar code and joins the lane sum last, in a fixed order. f16 widens
// with vcvtph2ps (F16C), bf16 with a shift.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemv_kernels.h"

namespace grip {
namespace cpu {
namespace gemv_detail {
namespace {

template <int DT>
__attribute__((always_inline)) inline __m256 load_w(const void* w, int64_t i) {
  if constexpr (DT == 0) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    if constexpr (DT == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <int DT>
__attribute__((always_inline)) inline float load_w1(const void* w, int64_t i) {
  if constexpr (DT == 0) {
    return static_cast<const float*>(w)[i];
  } else {
    const uint16_t h = static_cast<const uint16_t*>(w)[i];
    if constexpr (DT == 1) return _cvtsh_ss(h);
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
}

__attribute__((always_inline)) inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

template <int DT, int MM, int R>
__attribute__((always_inline)) inline void block(int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw,
                                                 int64_t n, float* y, int64_t ldy, const float* bias) {
  __m256 acc[MM][R][2];
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[m][r][0] = acc[m][r][1] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m256 w0[R], w1[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      w0[r] = load_w<DT>(w, (n + r) * ldw + k);
      w1[r] = load_w<DT>(w, (n + r) * ldw + k + 8);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MM; ++m) {
      const __m256 x0 = _mm256_loadu_ps(x + m * ldx + k), x1 = _mm256_loadu_ps(x + m * ldx + k + 8);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        acc[m][r][0] = _mm256_fmadd_ps(w0[r], x0, acc[m][r][0]);
        acc[m][r][1] = _mm256_fmadd_ps(w1[r], x1, acc[m][r][1]);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      float s = hsum(_mm256_add_ps(acc[m][r][0], acc[m][r][1]));
      float tail = 0.f;
      for (int64_t j = k; j < K; ++j) tail += x[m * ldx + j] * load_w1<DT>(w, (n + r) * ldw + j);
      s += tail;
      y[m * ldy + n + r] = bias ? s + bias[n + r] : s;
    }
}

template <int DT, int MM>
void rows_t(int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t n0, int64_t n1, float* y,
            int64_t ldy, const float* bias) {
  int64_t n = n0;
  if constexpr (MM == 1)
    for (; n + 4 <= n1; n += 4) block<DT, MM, 4>(K, x, ldx, w, ldw, n, y, ldy, bias);
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

}  // namespace

RowsFn rows_avx2() { return &rows; }

}  // namespace gemv_detail
}  // namespace cpu
}  // namespace grip

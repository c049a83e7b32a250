// q8_0_impl.h — the q8_0 row kernels (see q8_0.h for the arithmetic they
// must reproduce bit for bit), one body for three ISAs, picked by
// GRIP_Q8_ISA before inclusion: 1 AVX2 (vpmaddubsw + vpmaddwd), 2 AVX-VNNI,
// 3 AVX512_VNNI+VL (vpdpbusd on ymm). One block of 32 int8 is one ymm.
// vpdpbusd / vpmaddubsw multiply unsigned by signed bytes, so each product
// w*x is taken as |w| * (x with w's sign) (vpsignb): exact, since the
// activations lie in [-127, 127] and |w| <= 128 fits a u8 (and vpmaddubsw's
// pair sums stay below 2 * 128 * 127 < 32767, no saturation). AVX512_VNNI
// also has the prefill tile over a panel of row pairs (panel_block).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "q8_0_kernels.h"

namespace grip {
namespace cpu {
namespace q8_0_detail {
namespace {

// Lane l (of 8) = sum of the 4 products of bytes 4l..4l+3.
__attribute__((always_inline)) inline __m256i dot4(__m256i abs_w, __m256i signed_x) {
#if GRIP_Q8_ISA == 3
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), abs_w, signed_x);
#elif GRIP_Q8_ISA == 2
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), abs_w, signed_x);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_w, signed_x), _mm256_set1_epi16(1));
#endif
}

// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), the order the scalar kernel follows.
__attribute__((always_inline)) inline float reduce8(__m256 a) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// R weight rows (n, n+1, ..) against MM activation rows; weights(r, b, wv,
// dw) loads weight row r's block b (32 int8) and its scale (broadcast).
template <int MM, int R, class Weights>
__attribute__((always_inline)) inline void block_of(int64_t K, const int8_t* xq, const float* xd, Weights weights,
                                                    int64_t n, float* y, int64_t ldy, const float* bias) {
  const int64_t nb = K / 32;
  __m256 acc[MM][R];
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i wv[R], abs_w[R];
    __m256 dw[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      weights(r, b, wv[r], dw[r]);
      abs_w[r] = _mm256_sign_epi8(wv[r], wv[r]);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MM; ++m) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + m * K + b * 32));
      const __m256 dx = _mm256_set1_ps(xd[m * nb + b]);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256i sums = dot4(abs_w[r], _mm256_sign_epi8(xv, wv[r]));
        acc[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(dw[r], dx), acc[m][r]);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MM; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float s = reduce8(acc[m][r]);
      y[m * ldy + n + r] = bias ? s + bias[n + r] : s;
    }
}

// Weight rows n, n+1, .. read from the q8_0 rows themselves.
template <int MM, int R>
__attribute__((always_inline)) inline void block(int64_t K, const int8_t* xq, const float* xd, const uint8_t* w,
                                                 int64_t n, float* y, int64_t ldy, const float* bias) {
  const int64_t row_bytes = K / 32 * 34;
  auto weights = [&](int r, int64_t b, __m256i& wv, __m256& dw) __attribute__((always_inline)) {
    const uint8_t* blk = w + (n + r) * row_bytes + b * 34;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    dw = _mm256_set1_ps(_cvtsh_ss(h));
    wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  };
  block_of<MM, R>(K, xq, xd, weights, n, y, ldy, bias);
}

#if GRIP_Q8_ISA == 3
// Decode (one activation row): each zmm holds the same block of two weight
// rows (halves in the row kernels' lane order: same bits), 8 rows at a time;
// the weights taken as u8 (w ^ 0x80 = w + 128) against the one row's
// -128 sum x start, shared by every row. 1.5x block<1, 4>'s weight rate at
// 11040 x 4096 on one Zen 4 core (18.1 against 12.0 GB/s, cold weights).
template <int P>
__attribute__((always_inline)) inline void decode_block(int64_t K, const int8_t* xq, const float* xd, const uint8_t* w,
                                                        int64_t n, float* y, const float* bias) {
  const int64_t nb = K / 32, row_bytes = nb * 34;
  const __m512i high = _mm512_set1_epi8((char)0x80);
  __m512 acc[P];
#pragma GCC unroll 8
  for (int q = 0; q < P; ++q) acc[q] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i xv = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32)));
    const __m512i start =
        _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), high, xv));
    const __m512 dx = _mm512_set1_ps(xd[b]);
#pragma GCC unroll 8
    for (int q = 0; q < P; ++q) {
      const uint8_t* b0 = w + (n + 2 * q) * row_bytes + b * 34;
      const uint8_t* b1 = b0 + row_bytes;
      uint16_t h0, h1;
      std::memcpy(&h0, b0, 2);
      std::memcpy(&h1, b1, 2);
      const __m512 dw = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16((short)h1), _mm_set1_epi16((short)h0)));
      const __m512i wv =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2))),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + 2)), 1);
      const __m512i sums = _mm512_dpbusd_epi32(start, _mm512_xor_si512(wv, high), xv);
      acc[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw, dx), acc[q]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < P; ++q) {
    const float lo = reduce8(_mm512_castps512_ps256(acc[q])), hi = reduce8(_mm512_extractf32x8_ps(acc[q], 1));
    y[n + 2 * q] = bias ? lo + bias[n + 2 * q] : lo;
    y[n + 2 * q + 1] = bias ? hi + bias[n + 2 * q + 1] : hi;
  }
}
#endif

template <int MM>
void rows_t(int64_t K, const int8_t* xq, const float* xd, const uint8_t* w, int64_t n0, int64_t n1, float* y,
            int64_t ldy, const float* bias) {
  int64_t n = n0;
#if GRIP_Q8_ISA == 3
  if constexpr (MM == 1)
    for (; n + 8 <= n1; n += 8) decode_block<4>(K, xq, xd, w, n, y, bias);
  // 32 ymm registers: 4 weight rows at a time for decode's 1-2 rows (more independent chains per x load;
  // 2.8x faster than 2 rows at M = 1, 4096 x 4096, one thread; no gain measured for 4 rows x 4).
  if constexpr (MM <= 2)
    for (; n + 4 <= n1; n += 4) block<MM, 4>(K, xq, xd, w, n, y, ldy, bias);
#endif
  for (; n + 2 <= n1; n += 2) block<MM, 2>(K, xq, xd, w, n, y, ldy, bias);
  if (n < n1) block<MM, 1>(K, xq, xd, w, n, y, ldy, bias);
}

void rows(int64_t M, int64_t K, const int8_t* xq, const float* xd, const uint8_t* w, int64_t n0, int64_t n1,
          float* y, int64_t ldy, const float* bias) {
  switch (M) {
    case 1: rows_t<1>(K, xq, xd, w, n0, n1, y, ldy, bias); break;
    case 2: rows_t<2>(K, xq, xd, w, n0, n1, y, ldy, bias); break;
    case 3: rows_t<3>(K, xq, xd, w, n0, n1, y, ldy, bias); break;
    default: rows_t<4>(K, xq, xd, w, n0, n1, y, ldy, bias); break;
  }
}

#if GRIP_Q8_ISA == 3
// The prefill tile: MP row pairs (zmm halves, see PanelFn) x R weight rows. The
// weights are taken unsigned (w ^ 0x80 = w + 128), so one vpdpbusd per pair
// needs no sign fix-up: sum (w + 128) x - 128 sum x = sum w x, exact in int32,
// with -128 sum x (per lane) computed once per pair and block as the
// accumulator's start. 2.3-2.9x the row kernels' rate at 64 x 1024 x 4096 on
// one Zen 4 core (245 against 85-107 GFLOP/s; docs/llamacpp.md).
template <int MP, int R>
__attribute__((always_inline)) inline void panel_block(int64_t rows, int64_t K, const int8_t* xp, const float* dp,
                                                       const uint8_t* w, int64_t n, float* y, int64_t ldy,
                                                       const float* bias) {
  const int64_t nb = K / 32, row_bytes = nb * 34;
  const __m512i high = _mm512_set1_epi8((char)0x80);
  const __m512i pair_scales = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512 acc[MP][R];
#pragma GCC unroll 4
  for (int m = 0; m < MP; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i wu[R];
    __m512 dw[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + (n + r) * row_bytes + b * 34;
      uint16_t h;
      std::memcpy(&h, blk, 2);
      dw[r] = _mm512_set1_ps(_cvtsh_ss(h));
      wu[r] = _mm512_xor_si512(_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2))),
                               high);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MP; ++m) {
      const __m512i xv = _mm512_loadu_si512(xp + (m * nb + b) * 64);
      const __m512i start =
          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), high, xv));
      double two;
      std::memcpy(&two, dp + (m * nb + b) * 2, 8);
      const __m512 dx = _mm512_permutexvar_ps(pair_scales, _mm512_castps128_ps512(_mm_castpd_ps(_mm_set_sd(two))));
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i sums = _mm512_dpbusd_epi32(start, wu[r], xv);
        acc[m][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw[r], dx), acc[m][r]);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MP; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float lo = reduce8(_mm512_castps512_ps256(acc[m][r]));
      y[(2 * m) * ldy + n + r] = bias ? lo + bias[n + r] : lo;
      if (2 * m + 1 < rows) {
        const float hi = reduce8(_mm512_extractf32x8_ps(acc[m][r], 1));
        y[(2 * m + 1) * ldy + n + r] = bias ? hi + bias[n + r] : hi;
      }
    }
}

template <int MP>
void panel_t(int64_t M, int64_t K, const int8_t* xp, const float* dp, const uint8_t* w, int64_t n0, int64_t n1,
             float* y, int64_t ldy, const float* bias) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) panel_block<MP, 4>(M, K, xp, dp, w, n, y, ldy, bias);
  for (; n < n1; ++n) panel_block<MP, 1>(M, K, xp, dp, w, n, y, ldy, bias);
}

void panel(int64_t M, int64_t K, const int8_t* xp, const float* dp, const uint8_t* w, int64_t n0, int64_t n1,
           float* y, int64_t ldy, const float* bias) {
  switch ((M + 1) / 2) {
    case 1: panel_t<1>(M, K, xp, dp, w, n0, n1, y, ldy, bias); break;
    case 2: panel_t<2>(M, K, xp, dp, w, n0, n1, y, ldy, bias); break;
    case 3: panel_t<3>(M, K, xp, dp, w, n0, n1, y, ldy, bias); break;
    default: panel_t<4>(M, K, xp, dp, w, n0, n1, y, ldy, bias); break;
  }
}
#endif

#if GRIP_Q8_ISA == 1
// The AVX2 prefill tile (TileFn): MM activation rows x R weight rows of a
// repacked chunk, the row kernels' arithmetic and lane order (same bits).
// 4 weight rows and aligned blocks with f32 scales: 1.15-1.2x block<4, 2>'s
// rate at 64 x 1024 x 4096 on one Zen 3 core (77 against 66 GFLOP/s).
template <int MM, int R>
__attribute__((always_inline)) inline void tile_block(int64_t K, const int8_t* xq, const float* xd, const int8_t* wq,
                                                      const float* wd, int64_t r0, int64_t n, float* y, int64_t ldy,
                                                      const float* bias) {
  const int64_t nb = K / 32;
  auto weights = [&](int r, int64_t b, __m256i& wv, __m256& dw) __attribute__((always_inline)) {
    dw = _mm256_broadcast_ss(wd + (r0 + r) * nb + b);
    wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(wq + ((r0 + r) * nb + b) * 32));
  };
  block_of<MM, R>(K, xq, xd, weights, n + r0, y, ldy, bias);
}

template <int MM>
void tile_t(int64_t K, const int8_t* xq, const float* xd, const int8_t* wq, const float* wd, int64_t rows, int64_t n,
            float* y, int64_t ldy, const float* bias) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) tile_block<MM, 4>(K, xq, xd, wq, wd, r, n, y, ldy, bias);
  for (; r < rows; ++r) tile_block<MM, 1>(K, xq, xd, wq, wd, r, n, y, ldy, bias);
}

void tile(int64_t M, int64_t K, const int8_t* xq, const float* xd, const int8_t* wq, const float* wd, int64_t rows,
          int64_t n, float* y, int64_t ldy, const float* bias) {
  switch (M) {
    case 1: tile_t<1>(K, xq, xd, wq, wd, rows, n, y, ldy, bias); break;
    case 2: tile_t<2>(K, xq, xd, wq, wd, rows, n, y, ldy, bias); break;
    case 3: tile_t<3>(K, xq, xd, wq, wd, rows, n, y, ldy, bias); break;
    default: tile_t<4>(K, xq, xd, wq, wd, rows, n, y, ldy, bias); break;
  }
}
#endif

}  // namespace
}  // namespace q8_0_detail
}  // namespace cpu
}  // namespace grip

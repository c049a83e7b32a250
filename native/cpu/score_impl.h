// score_impl.h — the per-row kernels of score_tokens / score_tokens_backward,
// written as plain loops over fixed-width lane arrays so that the compiler
// vectorises them for the ISA of the file that includes this header
// (score.cc: baseline SSE2, score_avx2.cc, score_avx512.cc). Include it after
// defining GRIP_SCORE_ISA (the namespace name of that variant).
#ifndef GRIP_SCORE_ISA
#error "define GRIP_SCORE_ISA before including score_impl.h"
#endif
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/portable.h"
#include "grip/grip.h"
#include "score_kernels.h"
#include "vmath.h"
#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

namespace grip {
namespace cpu {
namespace GRIP_SCORE_ISA {

using vmath::erf_fast;

// Widens row `row` (D elements) of x to f32.
static inline void load_row(const void* x, grip_dtype dtype, int64_t row, int64_t D, float* dst) {
  if (dtype == GRIP_F32) {
    std::memcpy(dst, static_cast<const float*>(x) + row * D, (size_t)D * 4);
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(x) + row * D;
  if (dtype == GRIP_BF16) {
    for (int64_t d = 0; d < D; ++d) {
      const uint32_t bits = (uint32_t)src[d] << 16;
      std::memcpy(dst + d, &bits, 4);
    }
    return;
  }
  int64_t d = 0;
#if defined(__AVX512F__)
  for (; d + 16 <= D; d += 16)
    _mm512_storeu_ps(dst + d, _mm512_maskz_cvtph_ps((__mmask16)0xFFFF, _mm256_loadu_si256((const __m256i*)(src + d))));
#elif defined(__F16C__)
  for (; d + 8 <= D; d += 8)
    _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + d))));
#endif
  for (; d < D; ++d) dst[d] = f16_to_f32(src[d]);
}

// LayerNorm of the f32 row src into h (src == h allowed): mean and biased
// variance in double (two passes, four vector accumulators each), then
// h = (x - mean) * rstd * w + b. Returns dot(h, v) (v may be null) and the
// row's mean / rstd.
#if defined(__AVX512F__)
static inline __m512d lo_pd(__m512 a) { return _mm512_cvtps_pd(_mm512_castps512_ps256(a)); }
static inline __m512d hi_pd(__m512 a) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}
#endif

static inline float layernorm_row(const float* src, float* h, int64_t D, const float* w,
                                  const float* b, const float* v, float eps, float* mean_out,
                                  float* rstd_out, const float* next = nullptr) {
#if defined(__AVX512F__)
  if (D % 32 == 0) {
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t d = 0; d < D; d += 32) {
      const __m512 a = _mm512_loadu_ps(src + d), c = _mm512_loadu_ps(src + d + 16);
      s0 = _mm512_add_pd(s0, lo_pd(a));
      s1 = _mm512_add_pd(s1, hi_pd(a));
      s2 = _mm512_add_pd(s2, lo_pd(c));
      s3 = _mm512_add_pd(s3, hi_pd(c));
    }
    const double mean =
        _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3))) / (double)D;
    const __m512d mv = _mm512_set1_pd(mean);
    s0 = _mm512_setzero_pd(); s1 = s0; s2 = s0; s3 = s0;
    for (int64_t d = 0; d < D; d += 32) {
      const __m512 a = _mm512_loadu_ps(src + d), c = _mm512_loadu_ps(src + d + 16);
      __m512d t0 = _mm512_sub_pd(lo_pd(a), mv), t1 = _mm512_sub_pd(hi_pd(a), mv);
      __m512d t2 = _mm512_sub_pd(lo_pd(c), mv), t3 = _mm512_sub_pd(hi_pd(c), mv);
      s0 = _mm512_fmadd_pd(t0, t0, s0);
      s1 = _mm512_fmadd_pd(t1, t1, s1);
      s2 = _mm512_fmadd_pd(t2, t2, s2);
      s3 = _mm512_fmadd_pd(t3, t3, s3);
    }
    const double sq =
        _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
    const float meanf = (float)mean;
    const float rstd = (float)(1.0 / std::sqrt(sq / (double)D + (double)eps));
    *mean_out = meanf;
    *rstd_out = rstd;
    const __m512 mf = _mm512_set1_ps(meanf), rf = _mm512_set1_ps(rstd);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (int64_t d = 0; d < D; d += 32) {
      if (next) {  // pull the next row towards L1 while this one computes
        _mm_prefetch((const char*)(next + d), _MM_HINT_T0);
        _mm_prefetch((const char*)(next + d + 16), _MM_HINT_T0);
      }
      const __m512 t0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(src + d), mf), rf),
                                        _mm512_loadu_ps(w + d), _mm512_loadu_ps(b + d));
      const __m512 t1 =
          _mm512_fmadd_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(src + d + 16), mf), rf),
                          _mm512_loadu_ps(w + d + 16), _mm512_loadu_ps(b + d + 16));
      _mm512_storeu_ps(h + d, t0);
      _mm512_storeu_ps(h + d + 16, t1);
      if (v) {
        a0 = _mm512_fmadd_ps(t0, _mm512_loadu_ps(v + d), a0);
        a1 = _mm512_fmadd_ps(t1, _mm512_loadu_ps(v + d + 16), a1);
      }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  }
#endif
  constexpr int L = 32;
  double s[L] = {0};
  int64_t d = 0;
  for (; d + L <= D; d += L)
    for (int l = 0; l < L; ++l) s[l] += (double)src[d + l];
  double sum = 0;
  for (; d < D; ++d) sum += (double)src[d];
  for (int l = 0; l < L; ++l) sum += s[l];
  const double mean = sum / (double)D;
  double q[L] = {0};
  d = 0;
  for (; d + L <= D; d += L)
    for (int l = 0; l < L; ++l) {
      const double t = (double)src[d + l] - mean;
      q[l] += t * t;
    }
  double sq = 0;
  for (; d < D; ++d) {
    const double t = (double)src[d] - mean;
    sq += t * t;
  }
  for (int l = 0; l < L; ++l) sq += q[l];
  const float meanf = (float)mean;
  const float rstd = (float)(1.0 / std::sqrt(sq / (double)D + (double)eps));
  *mean_out = meanf;
  *rstd_out = rstd;
  constexpr int F = 32;
  float acc[F] = {0};
  d = 0;
  if (v) {
    for (; d + F <= D; d += F)
      for (int l = 0; l < F; ++l) {
        const float t = (src[d + l] - meanf) * rstd * w[d + l] + b[d + l];
        h[d + l] = t;
        acc[l] += t * v[d + l];
      }
  } else {
    for (; d + F <= D; d += F)
      for (int l = 0; l < F; ++l) h[d + l] = (src[d + l] - meanf) * rstd * w[d + l] + b[d + l];
  }
  float tail = 0.f;
  for (; d < D; ++d) {
    const float t = (src[d] - meanf) * rstd * w[d] + b[d];
    h[d] = t;
    if (v) tail += t * v[d];
  }
  float dot = 0.f;
  for (int l = 0; l < F; ++l) dot += acc[l];
  return dot + tail;
}

// sum_j GELU(z_j + b1_j) * a_j over H.
static inline float gelu_dot(const float* z, const float* b1, const float* a, int64_t H) {
  constexpr int F = 16;
  float acc[F] = {0};
  int64_t j = 0;
  for (; j + F <= H; j += F)
    for (int l = 0; l < F; ++l) {
      const float zz = z[j + l] + b1[j + l];
      const float u = 0.5f * zz * (1.f + erf_fast(zz * 0.70710678118654752f));
      acc[l] += u * a[j + l];
    }
  float tail = 0.f;
  for (; j < H; ++j) {
    const float zz = z[j] + b1[j];
    tail += 0.5f * zz * (1.f + erf_fast(zz * 0.70710678118654752f)) * a[j];
  }
  float s = 0.f;
  for (int l = 0; l < F; ++l) s += acc[l];
  return s + tail;
}

void ln_rows(const ScoreRowCtx& k, int64_t row0, int64_t r0, int64_t r1, float* h,
                           float* qdot, float* mean, float* rstd) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t row = row0 + r, b = row / k.N;
    float* hr = h + r * k.D;
    const float* src = hr;
    const float* next = nullptr;
    if (k.dtype == GRIP_F32) {
      src = static_cast<const float*>(k.x) + row * k.D;
      if (r + 1 < r1) next = src + k.D;
    } else
      load_row(k.x, k.dtype, row, k.D, hr);
    float m, s;
    const float q = layernorm_row(src, hr, k.D, k.ln_w, k.ln_b, k.v ? k.v + b * k.D : nullptr,
                                  1e-5f, &m, &s, next);
    if (qdot) qdot[r] = q;
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = s;
  }
}

void epilogue_rows(const ScoreRowCtx& k, int64_t row0, int64_t r0, int64_t r1,
                                 const float* z, const float* qdot, float* scores) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t row = row0 + r, b = row / k.N;
    scores[row] = gelu_dot(z + r * k.H, k.b1, k.a + b * k.H, k.H) + k.c[b] + qdot[r];
  }
}

}  // namespace GRIP_SCORE_ISA
}  // namespace cpu
}  // namespace grip

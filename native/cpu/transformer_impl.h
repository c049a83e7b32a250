// transformer_impl.h — the transformer ops' row and elementwise kernels,
// written as plain loops over fixed-width lane arrays so that the compiler
// vectorises them for the ISA of the file that includes this header
// (transformer.cc: baseline SSE2, transformer_avx2.cc, transformer_avx512.cc).
// Include it after defining GRIP_TRANSFORMER_ISA (that variant's namespace).
// Sums run in L float lanes, in a fixed order: results do not depend on the
// thread count.
#ifndef GRIP_TRANSFORMER_ISA
#error "define GRIP_TRANSFORMER_ISA before including transformer_impl.h"
#endif
#include <cmath>
#include <cstdint>

#include "transformer_kernels.h"
#include "vmath.h"

namespace grip {
namespace cpu {
namespace GRIP_TRANSFORMER_ISA {
namespace {

constexpr int L = 16;  // lanes: one zmm, two ymm, four xmm

inline float lane_sum(const float* acc) {
  float s = 0.f;
  for (int l = 0; l < L; ++l) s += acc[l];
  return s;
}

inline float row_sum(const float* x, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += x[i + l];
  float tail = 0.f;
  for (; i < n; ++i) tail += x[i];
  return lane_sum(acc) + tail;
}

inline float row_max(const float* x, int64_t n) {
  float acc[L];
  for (int l = 0; l < L; ++l) acc[l] = -INFINITY;
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  float m = -INFINITY;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int l = 0; l < L; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

// y[i] = exp(x[i] - m); returns the sum (x == y allowed).
inline float exp_shift_sum(const float* x, int64_t n, float m, float* y) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) {
      const float e = vmath::exp_fast(x[i + l] - m);
      y[i + l] = e;
      acc[l] += e;
    }
  float tail = 0.f;
  for (; i < n; ++i) {
    const float e = vmath::exp_fast(x[i] - m);
    y[i] = e;
    tail += e;
  }
  return lane_sum(acc) + tail;
}

}  // namespace

void layer_norm_rows(const NormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.D;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * D;
    float* out = a.out + r * D;
    const float mean = row_sum(x, D) / (float)D;
    float acc[L] = {0};
    int64_t d = 0;
    for (; d + L <= D; d += L)
      for (int l = 0; l < L; ++l) {
        const float t = x[d + l] - mean;
        acc[l] += t * t;
      }
    float tail = 0.f;
    for (; d < D; ++d) tail += (x[d] - mean) * (x[d] - mean);
    const float rstd = 1.f / std::sqrt((lane_sum(acc) + tail) / (float)D + a.eps);
    for (d = 0; d + L <= D; d += L)
      for (int l = 0; l < L; ++l) out[d + l] = (x[d + l] - mean) * rstd * a.weight[d + l] + a.bias[d + l];
    for (; d < D; ++d) out[d] = (x[d] - mean) * rstd * a.weight[d] + a.bias[d];
  }
}

void rms_norm_rows(const NormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.D;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * D;
    float* out = a.out + r * D;
    float acc[L] = {0};
    int64_t d = 0;
    for (; d + L <= D; d += L)
      for (int l = 0; l < L; ++l) acc[l] += x[d + l] * x[d + l];
    float tail = 0.f;
    for (; d < D; ++d) tail += x[d] * x[d];
    const float rstd = 1.f / std::sqrt((lane_sum(acc) + tail) / (float)D + a.eps);
    for (d = 0; d + L <= D; d += L)
      for (int l = 0; l < L; ++l) out[d + l] = x[d + l] * rstd * a.weight[d + l];
    for (; d < D; ++d) out[d] = x[d] * rstd * a.weight[d];
  }
}

namespace {
inline float gelu_erf(float x) { return 0.5f * x * (1.f + vmath::erf_fast(x * 0.70710678118654752f)); }
inline float gelu_tanh(float x) {
  return 0.5f * x * (1.f + vmath::tanh_fast(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
inline float gelu_quick(float x) { return x * vmath::sigmoid_fast(1.702f * x); }

template <float (*F)(float)>
inline void map_range(const float* x, int64_t i0, int64_t i1, float* out) {
  int64_t i = i0;
  for (; i + L <= i1; i += L) {
    float t[L];
    for (int l = 0; l < L; ++l) t[l] = F(x[i + l]);
    for (int l = 0; l < L; ++l) out[i + l] = t[l];
  }
  for (; i < i1; ++i) out[i] = F(x[i]);
}
}  // namespace

void gelu_range(const GeluArgs& a, int64_t i0, int64_t i1) {
  if (a.kind == GRIP_GELU_ERF) map_range<gelu_erf>(a.x, i0, i1, a.out);
  else if (a.kind == GRIP_GELU_TANH) map_range<gelu_tanh>(a.x, i0, i1, a.out);
  else map_range<gelu_quick>(a.x, i0, i1, a.out);
}

void silu_mul_range(const SiluMulArgs& a, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + L <= i1; i += L) {
    float t[L];
    for (int l = 0; l < L; ++l) {
      const float g = a.gate[i + l];
      t[l] = g * vmath::sigmoid_fast(g) * a.up[i + l];
    }
    for (int l = 0; l < L; ++l) a.out[i + l] = t[l];
  }
  for (; i < i1; ++i) a.out[i] = a.gate[i] * vmath::sigmoid_fast(a.gate[i]) * a.up[i];
}

void softmax_rows(const SoftmaxArgs& a, int64_t r0, int64_t r1) {
  const int64_t N = a.N;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * N;
    float* out = a.out + r * N;
    const float m = row_max(x, N);
    if (a.log) {
      // log-softmax: x - m - log(sum exp(x - m)), without overwriting x early.
      float acc[L] = {0};
      int64_t i = 0;
      for (; i + L <= N; i += L)
        for (int l = 0; l < L; ++l) acc[l] += vmath::exp_fast(x[i + l] - m);
      float tail = 0.f;
      for (; i < N; ++i) tail += vmath::exp_fast(x[i] - m);
      const float shift = m + std::log(lane_sum(acc) + tail);
      for (i = 0; i < N; ++i) out[i] = x[i] - shift;
    } else {
      const float inv = 1.f / exp_shift_sum(x, N, m, out);
      for (int64_t i = 0; i < N; ++i) out[i] *= inv;
    }
  }
}

float dot(const float* x, const float* y, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += x[i + l] * y[i + l];
  float tail = 0.f;
  for (; i < n; ++i) tail += x[i] * y[i];
  return lane_sum(acc) + tail;
}

void axpy(float alpha, const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

float softmax_block(float* s, int64_t n, int64_t valid, float* m, float* l) {
  const float m_old = *m;
  const float m_blk = row_max(s, valid);
  const float m_new = m_blk > m_old ? m_blk : m_old;
  const float sum = exp_shift_sum(s, valid, m_new, s);
  for (int64_t j = valid; j < n; ++j) s[j] = 0.f;
  const float corr = m_old == -INFINITY ? 0.f : vmath::exp_fast(m_old - m_new);
  *m = m_new;
  *l = *l * corr + sum;
  return corr;
}

void softmax_cols(float* st, int64_t ld, int64_t rows, int64_t kb, int64_t M,
                  const int32_t* valid, float* m, float* l, float* corr, float* sum) {
  float* m_new = corr;  // corr holds the new maxima until the end
  for (int64_t r = 0; r < M; ++r) {
    m_new[r] = m[r];
    sum[r] = 0.f;
  }
  for (int64_t j = 0; j < rows; ++j) {
    const float* s = st + j * ld;
    const int32_t key = (int32_t)j;
    for (int64_t r = 0; r < M; ++r) {
      const float x = valid[r] > key ? s[r] : -INFINITY;
      m_new[r] = x > m_new[r] ? x : m_new[r];
    }
  }
  for (int64_t j = 0; j < rows; ++j) {
    float* s = st + j * ld;
    const int32_t key = (int32_t)j;
    for (int64_t r = 0; r < M; ++r) {
      // x - m_new is +inf only where no key is attended yet (masked below).
      const float e = vmath::exp_fast(s[r] - m_new[r]);
      const float p = valid[r] > key ? e : 0.f;
      s[r] = p;
      sum[r] += p;
    }
  }
  for (int64_t j = rows; j < kb; ++j)
    for (int64_t r = 0; r < M; ++r) st[j * ld + r] = 0.f;
  for (int64_t r = 0; r < M; ++r) {
    const float c = m[r] == -INFINITY ? 0.f : vmath::exp_fast(m[r] - m_new[r]);
    m[r] = m_new[r];
    l[r] = l[r] * c + sum[r];
    corr[r] = c;
  }
}

}  // namespace GRIP_TRANSFORMER_ISA
}  // namespace cpu
}  // namespace grip

// gemm_avx2.cc — AVX2/FMA packing and 6x16 micro-kernel for grip::cpu::gemm.
// Compiled with -mavx2 -mfma -mf16c; reached when cpu_features().avx2_fma
// (and AVX-512 is absent or capped). 12 ymm accumulators, two B vectors per
// k, A broadcast from memory. Row edges: one instantiation per row count;
// column edges: maskload/maskstore. Intrinsics and raw pointers only.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "gemm_kernels.h"

namespace grip {
namespace cpu {
namespace gemm_detail {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

inline __m256i lane_mask(int64_t n) {  // first n (0..8) lanes set
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <int R>
__attribute__((always_inline)) inline void ukernel(int64_t kc, const float* __restrict a,
                                                   const float* __restrict b, float* c, int64_t ldc,
                                                   float alpha, float beta, const float* bias,
                                                   int64_t nr) {
  __m256 acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
    a += MR;
    b += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
  if (nr == NR) {
    const __m256 bv0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bv1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      float* ci = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc0[i]), r1 = _mm256_mul_ps(va, acc1[i]);
      if (bias) {  // the Linear bias joins the store
        r0 = _mm256_add_ps(r0, bv0);
        r1 = _mm256_add_ps(r1, bv1);
      }
      if (beta != 0.f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
      }
      _mm256_storeu_ps(ci, r0);
      _mm256_storeu_ps(ci + 8, r1);
    }
  } else {
    const __m256i m0 = lane_mask(nr < 8 ? nr : 8);
    const __m256i m1 = lane_mask(nr > 8 ? nr - 8 : 0);
    const __m256 bv0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
    const __m256 bv1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      float* ci = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc0[i]), r1 = _mm256_mul_ps(va, acc1[i]);
      if (bias) {
        r0 = _mm256_add_ps(r0, bv0);
        r1 = _mm256_add_ps(r1, bv1);
      }
      if (beta != 0.f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m0), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, m1), r1);
      }
      _mm256_maskstore_ps(ci, m0, r0);
      _mm256_maskstore_ps(ci + 8, m1, r1);
    }
  }
}

template <int R>
__attribute__((noinline)) void ukernel_n(int64_t kc, const float* a, const float* b, float* c,
                                         int64_t ldc, float alpha, float beta, const float* bias,
                                         int64_t nr) {
  ukernel<R>(kc, a, b, c, ldc, alpha, beta, bias, nr);
}

using UK = void (*)(int64_t, const float*, const float*, float*, int64_t, float, float,
                    const float*, int64_t);
constexpr UK kTable[MR] = {&ukernel_n<1>, &ukernel_n<2>, &ukernel_n<3>,
                           &ukernel_n<4>, &ukernel_n<5>, &ukernel_n<6>};

void macro(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, float* C,
           int64_t ldc, float alpha, float beta, const float* bias) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = nc - jr < NR ? nc - jr : NR;
    const float* b = Bp + jr * kc;
    const float* bj = bias ? bias + jr : nullptr;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const float* a = Ap + ir * kc;
      float* c = C + ir * ldc + jr;
      if (mc - ir >= MR)
        ukernel<MR>(kc, a, b, c, ldc, alpha, beta, bj, nr);
      else
        kTable[mc - ir - 1](kc, a, b, c, ldc, alpha, beta, bj, nr);
    }
  }
}

void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc, float* Ap) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t r = mc - ir < MR ? mc - ir : MR;
    float* dst = Ap + ir * kc;
    if (trans) {
      const float* src = A + p0 * lda + i0 + ir;
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * lda;
        for (int64_t i = 0; i < r; ++i) dst[k * MR + i] = s[i];
        for (int64_t i = r; i < MR; ++i) dst[k * MR + i] = 0.f;
      }
    } else {
      const float* src = A + (i0 + ir) * lda + p0;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        alignas(32) float t[MR][8];
        for (int64_t i = 0; i < r; ++i) _mm256_store_ps(t[i], _mm256_loadu_ps(src + i * lda + k));
        for (int64_t i = r; i < MR; ++i) _mm256_store_ps(t[i], _mm256_setzero_ps());
        for (int kk = 0; kk < 8; ++kk)
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) dst[(k + kk) * MR + i] = t[i][kk];
      }
      for (; k < kc; ++k) {
        for (int64_t i = 0; i < r; ++i) dst[k * MR + i] = src[i * lda + k];
        for (int64_t i = r; i < MR; ++i) dst[k * MR + i] = 0.f;
      }
    }
  }
}

inline __m256 load8(int dtype, const char* p) {
  if (dtype == 0) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (dtype == 1) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float load1(int dtype, const char* p) {
  if (dtype == 0) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == 1 ? _cvtsh_ss(h) : bf16_bits_to_f32(h);
}

// In-register 8x8 transpose: r[i] lane j -> r[j] lane i.
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void pack_b(bool trans, const void* B, int dtype, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc, float* Bp) {
  const int64_t esz = dtype == 0 ? 4 : 2;
  const char* base = static_cast<const char*>(B);
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = nc - jr < NR ? nc - jr : NR;
    float* dst = Bp + jr * kc;
    if (!trans) {
      const char* src = base + (p0 * ldb + j0 + jr) * esz;
      const int64_t rs = ldb * esz;
      if (nr == NR) {
        for (int64_t k = 0; k < kc; ++k) {
          _mm256_store_ps(dst + k * NR, load8(dtype, src + k * rs));
          _mm256_store_ps(dst + k * NR + 8, load8(dtype, src + k * rs + 8 * esz));
        }
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t j = 0; j < NR; ++j)
            dst[k * NR + j] = j < nr ? load1(dtype, src + k * rs + j * esz) : 0.f;
      }
    } else {  // B is [N, K]: 8 rows x 8 k at a time, transposed in registers
      for (int half = 0; half < 2; ++half) {
        const int64_t jb = jr + 8 * half;
        const int64_t rows = nr - 8 * half < 8 ? (nr - 8 * half > 0 ? nr - 8 * half : 0) : 8;
        const char* src = base + ((j0 + jb) * ldb + p0) * esz;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
          __m256 r[8];
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i)
            r[i] = i < rows ? load8(dtype, src + (i * ldb + k) * esz) : _mm256_setzero_ps();
          transpose8(r);
#pragma GCC unroll 8
          for (int kk = 0; kk < 8; ++kk) _mm256_store_ps(dst + (k + kk) * NR + 8 * half, r[kk]);
        }
        for (; k < kc; ++k)
          for (int64_t i = 0; i < 8; ++i)
            dst[k * NR + 8 * half + i] = i < rows ? load1(dtype, src + (i * ldb + k) * esz) : 0.f;
      }
    }
  }
}

const Kernel kKernel = {"avx2", MR, NR, 256, 144, 4096, &pack_a, &pack_b, &macro};

}  // namespace

const Kernel* kernel_avx2() { return &kKernel; }

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace grip

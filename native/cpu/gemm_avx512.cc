// gemm_avx512.cc — AVX-512 packing and micro-kernel for grip::cpu::gemm.
// Compiled with -mavx512f/bw/dq/vl (see CMakeLists.txt); only reached when
// cpu_features().avx512. Register tile 14 x 32: 28 zmm accumulators, two
// B vectors per k, one broadcast of A per row (31 of 32 registers).
// Row edges use an instantiation per row count; column edges use masks.
// Blocking: KC 256 (a 14x256 A panel is 14 KiB and a 256x32 B panel 32 KiB:
// the B panel stays in L1 while the MC x KC A block, 336 x 256 = 336 KiB,
// stays in L2 — fits Zen 4's 32 KiB L1D / 1 MiB L2 and Intel's 48 KiB /
// 2 MiB); NC 4096 (the KC x NC packed B block, 4 MiB, lives in L3).
// Packing B converts f16 (vcvtph2ps) / bf16 (shift) to f32; transposed B is
// packed 16x16 at a time through an in-register transpose.
// Only intrinsics and raw pointers here, and shared code only with internal
// linkage (gemm_store_avx512.h): nothing the linker could pick for the
// baseline objects.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positive on _mm512_undefined_*
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "gemm_kernels.h"
#include "gemm_store_avx512.h"

#ifndef GRIP_GEMM512_MR
#define GRIP_GEMM512_MR 14
#endif
#ifndef GRIP_GEMM512_KC
#define GRIP_GEMM512_KC 256
#endif
#ifndef GRIP_GEMM512_MC
#define GRIP_GEMM512_MC 336
#endif
#ifndef GRIP_GEMM512_NC
#define GRIP_GEMM512_NC 4096
#endif

namespace grip {
namespace cpu {
namespace gemm_detail {
namespace {

constexpr int MR = GRIP_GEMM512_MR;
constexpr int NR = 32;

// ---- micro-kernel -------------------------------------------------------------
template <int R>
__attribute__((always_inline)) inline void ukernel(int64_t kc, const float* __restrict a,
                                                   const float* __restrict b, float* c, int64_t ldc,
                                                   float alpha, float beta, const float* bias,
                                                   __mmask16 m0, __mmask16 m1) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
#ifndef GRIP_NO_CPF
  // C's tile is needed only at the end; start fetching it now.
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + 16), _MM_HINT_T0);
  }
#endif
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
    a += MR;
    b += NR;
  }
  store_tile<R>(acc0, acc1, c, ldc, alpha, beta, bias, m0, m1);
}

template <int R>
__attribute__((noinline)) void ukernel_n(int64_t kc, const float* a, const float* b, float* c,
                                         int64_t ldc, float alpha, float beta, const float* bias,
                                         __mmask16 m0, __mmask16 m1) {
  ukernel<R>(kc, a, b, c, ldc, alpha, beta, bias, m0, m1);
}

using UK = void (*)(int64_t, const float*, const float*, float*, int64_t, float, float,
                    const float*, __mmask16, __mmask16);

template <int... Rs>
struct Table {
  static constexpr UK fns[sizeof...(Rs)] = {&ukernel_n<Rs + 1>...};
};
template <int... Rs>
constexpr UK Table<Rs...>::fns[sizeof...(Rs)];

template <int... Is>
constexpr const UK* make_table(std::integer_sequence<int, Is...>) {
  return Table<Is...>::fns;
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, float* C,
           int64_t ldc, float alpha, float beta, const float* bias) {
  static constexpr const UK* kTable = make_table(std::make_integer_sequence<int, MR>());
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = nc - jr < NR ? nc - jr : NR;
    __mmask16 m0, m1;
    tile_masks(nr, &m0, &m1);
    const float* b = Bp + jr * kc;
    const float* bj = bias ? bias + jr : nullptr;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const float* a = Ap + ir * kc;
      float* c = C + ir * ldc + jr;
      if (mc - ir >= MR)
        ukernel<MR>(kc, a, b, c, ldc, alpha, beta, bj, m0, m1);
      else
        kTable[mc - ir - 1](kc, a, b, c, ldc, alpha, beta, bj, m0, m1);
    }
  }
}

// ---- packing --------------------------------------------------------------------
void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc, float* Ap) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t r = mc - ir < MR ? mc - ir : MR;
    float* dst = Ap + ir * kc;
    if (trans) {  // A is [K, M]: row p0+k holds op(A)[:, p0+k]
      const __mmask16 mk = (__mmask16)((1u << r) - 1);
      const __mmask16 ms = (__mmask16)((1u << MR) - 1);
      const float* src = A + p0 * lda + i0 + ir;
      for (int64_t k = 0; k < kc; ++k)
        _mm512_mask_storeu_ps(dst + k * MR, ms, _mm512_maskz_loadu_ps(mk, src + k * lda));
    } else {
      const float* src = A + (i0 + ir) * lda + p0;
      int64_t k = 0;
      // 16 k at a time: gather each k's column of r rows through a transpose
      // in memory (rows contiguous in k).
      for (; k + 16 <= kc; k += 16) {
        alignas(64) float t[MR][16];
        for (int64_t i = 0; i < r; ++i) _mm512_store_ps(t[i], _mm512_loadu_ps(src + i * lda + k));
        for (int64_t i = r; i < MR; ++i) _mm512_store_ps(t[i], _mm512_setzero_ps());
        for (int kk = 0; kk < 16; ++kk)
#pragma GCC unroll 16
          for (int i = 0; i < MR; ++i) dst[(k + kk) * MR + i] = t[i][kk];
      }
      for (; k < kc; ++k) {
        for (int64_t i = 0; i < r; ++i) dst[k * MR + i] = src[i * lda + k];
        for (int64_t i = r; i < MR; ++i) dst[k * MR + i] = 0.f;
      }
    }
  }
}

template <int DT>
inline __m512 load16(const char* p, __mmask16 m) {
  if (DT == 0) return _mm512_maskz_loadu_ps(m, p);
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if (DT == 1) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline __mmask16 mask_n(int64_t n) {  // first n (clamped to 0..16) lanes
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

// In-register 16x16 transpose: r[i] lane j -> r[j] lane i.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
    t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
    r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
  }
}

template <int DT>
void pack_b_t(bool trans, const void* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
              int64_t nc, float* Bp) {
  constexpr int64_t esz = DT == 0 ? 4 : 2;
  const char* base = static_cast<const char*>(B);
  if (!trans) {  // B is [K, N]: rows of op(B) are contiguous
    const int64_t rs = ldb * esz;
    constexpr int64_t KB = 8;  // rows per sweep across the panels
    for (int64_t k0 = 0; k0 < kc; k0 += KB) {
      const int64_t k1 = k0 + KB < kc ? k0 + KB : kc;
      for (int64_t jr = 0; jr < nc; jr += NR) {
        const int64_t nr = nc - jr;
        const __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);
        float* dst = Bp + jr * kc;
        const char* src = base + (p0 * ldb + j0 + jr) * esz;
        for (int64_t k = k0; k < k1; ++k) {
          const char* s = src + k * rs;
          _mm512_store_ps(dst + k * NR, load16<DT>(s, m0));
          _mm512_store_ps(dst + k * NR + 16, load16<DT>(s + 16 * esz, m1));
        }
      }
    }
    return;
  }
  // B is [N, K]: column j of op(B) is row j of B. 16 rows x 16 k at a time,
  // transposed in registers.
  for (int64_t jr = 0; jr < nc; jr += NR) {
    float* dst = Bp + jr * kc;
    for (int half = 0; half < 2; ++half) {
      const int64_t jb = jr + 16 * half;
      const int64_t rows = nc - jb < 16 ? (nc - jb > 0 ? nc - jb : 0) : 16;
      const char* src = base + ((j0 + jb) * ldb + p0) * esz;
      for (int64_t k = 0; k < kc; k += 16) {
        const __mmask16 mk = mask_n(kc - k);
        __m512 r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i)
          r[i] = i < rows ? load16<DT>(src + (i * ldb + k) * esz, mk) : _mm512_setzero_ps();
        transpose16(r);
        const int64_t kn = kc - k < 16 ? kc - k : 16;
        for (int64_t kk = 0; kk < kn; ++kk) _mm512_store_ps(dst + (k + kk) * NR + 16 * half, r[kk]);
      }
    }
  }
}

void pack_b(bool trans, const void* B, int dtype, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc, float* Bp) {
  if (dtype == 0) pack_b_t<0>(trans, B, ldb, p0, kc, j0, nc, Bp);
  else if (dtype == 1) pack_b_t<1>(trans, B, ldb, p0, kc, j0, nc, Bp);
  else pack_b_t<2>(trans, B, ldb, p0, kc, j0, nc, Bp);
}

const Kernel kKernel = {"avx512", MR, NR, GRIP_GEMM512_KC, GRIP_GEMM512_MC, GRIP_GEMM512_NC,
                        &pack_a, &pack_b, &macro};

}  // namespace

const Kernel* kernel_avx512() { return &kKernel; }

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace grip

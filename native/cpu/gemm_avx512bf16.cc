// gemm_avx512bf16.cc — AVX512_BF16 packing and micro-kernel for grip::cpu::gemm
// with bf16 B (weights). The only file compiled with -mavx512bf16 (see
// CMakeLists.txt); reached when cpu_features().avx512_bf16 and the bf16 dot
// path is on (GRIP_BF16_DOT=1, see gemm_kernels.h).
// vdpbf16ps: per f32 lane, acc += a[2i]*b[2i] + a[2i+1]*b[2i+1] on bf16
// pairs, products exact in f32, accumulated in f32. So B is packed as bf16
// pairs along k (no widening: half the bytes of the f32 panels) and A is
// rounded to bf16 (round to nearest even, vcvtne2ps2bf16) while packing:
// that rounding (unit 2^-9 relative per activation) is this path's only
// extra error over the f32 path (see docs/llamacpp.md, "bf16 dot path").
// Packed layouts, with the driver's offsets (panel r starts at float offset
// r*kc as in the f32 kernels; a panel uses ceil(kc/2) of its kc rows):
//   A panel: pair p = k (2p, 2p+1) of row i at u32 p*MR + i (low half 2p);
//   B panel: pair p of column j at u32 p*NR + j; odd kc pads k = kc with 0.
// Register tile 14 x 32 as in gemm_avx512.cc (28 accumulators). Blocking
// KC 2048, MC 168, NC 2048: a B panel (2048 x 32 bf16, 128 KiB) and the A
// block (168 x 2048, 672 KiB) live in L2, the packed B block (8 MiB) in L3.
// Measured against KC 256/512/1024/4096 (tools/bf16_dot_bench.cc, M = 611,
// Vicuna shapes): 512 ran 1.9x the widening path, 1024 2.1x, 2048 2.2x;
// fewer K blocks mean fewer passes over C and fewer pack/compute barriers.
// Only intrinsics, raw pointers and internal-linkage helpers here, as in gemm_avx512.cc.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positive on _mm512_undefined_*
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "gemm_kernels.h"
#include "gemm_store_avx512.h"

#ifndef GRIP_GEMMBF16_KC
#define GRIP_GEMMBF16_KC 2048
#endif
#ifndef GRIP_GEMMBF16_MC
#define GRIP_GEMMBF16_MC 168
#endif
#ifndef GRIP_GEMMBF16_NC
#define GRIP_GEMMBF16_NC 2048
#endif

namespace grip {
namespace cpu {
namespace gemm_detail {
namespace {

constexpr int MR = 14;
constexpr int NR = 32;

inline __m512 dot(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

// ---- micro-kernel: kp pairs --------------------------------------------------------
template <int R>
__attribute__((always_inline)) inline void ukernel(int64_t kp, const uint32_t* __restrict a,
                                                   const uint32_t* __restrict b, float* c, int64_t ldc,
                                                   float alpha, float beta, const float* bias,
                                                   __mmask16 m0, __mmask16 m1) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + 16), _MM_HINT_T0);
  }
  for (int64_t p = 0; p < kp; ++p) {
    const __m512i b0 = _mm512_load_si512(b);
    const __m512i b1 = _mm512_load_si512(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512i ai = _mm512_set1_epi32((int)a[i]);
      acc0[i] = dot(acc0[i], ai, b0);
      acc1[i] = dot(acc1[i], ai, b1);
    }
    a += MR;
    b += NR;
  }
  store_tile<R>(acc0, acc1, c, ldc, alpha, beta, bias, m0, m1);
}

template <int R>
__attribute__((noinline)) void ukernel_n(int64_t kp, const uint32_t* a, const uint32_t* b, float* c,
                                         int64_t ldc, float alpha, float beta, const float* bias,
                                         __mmask16 m0, __mmask16 m1) {
  ukernel<R>(kp, a, b, c, ldc, alpha, beta, bias, m0, m1);
}

using UK = void (*)(int64_t, const uint32_t*, const uint32_t*, float*, int64_t, float, float,
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
  const int64_t kp = (kc + 1) / 2;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = nc - jr < NR ? nc - jr : NR;
    __mmask16 m0, m1;
    tile_masks(nr, &m0, &m1);
    const uint32_t* b = reinterpret_cast<const uint32_t*>(Bp + jr * kc);
    const float* bj = bias ? bias + jr : nullptr;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const uint32_t* a = reinterpret_cast<const uint32_t*>(Ap + ir * kc);
      float* c = C + ir * ldc + jr;
      if (mc - ir >= MR)
        ukernel<MR>(kp, a, b, c, ldc, alpha, beta, bj, m0, m1);
      else
        kTable[mc - ir - 1](kp, a, b, c, ldc, alpha, beta, bj, m0, m1);
    }
  }
}

// ---- packing --------------------------------------------------------------------
inline __mmask16 mask_n(int64_t n) {  // first n (clamped to 0..16) lanes
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
inline __mmask32 mask32_n(int64_t n) {  // first n (clamped to 0..32) lanes
  return n >= 32 ? (__mmask32)0xffffffffu : n <= 0 ? (__mmask32)0 : (__mmask32)((1u << n) - 1);
}

// 32 f32 (lo: k 0..15, hi: k 16..31) -> 16 bf16 pairs in k order, rounded to nearest even.
inline __m512i round_pairs(__m512 lo, __m512 hi) {
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc, float* Ap) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t r = mc - ir < MR ? mc - ir : MR;
    uint32_t* dst = reinterpret_cast<uint32_t*>(Ap + ir * kc);
    if (trans) {  // A is [K, M]: row p0+k holds op(A)[:, p0+k]
      const __mmask16 mk = mask_n(r), ms = mask_n(MR);
      // Word 2i <- row 2p lane i, word 2i+1 <- row 2p+1 lane i.
      alignas(64) uint16_t idx[32];
      for (int i = 0; i < 16; ++i) {
        idx[2 * i] = (uint16_t)i;
        idx[2 * i + 1] = (uint16_t)(16 + i);
      }
      const __m512i vidx = _mm512_load_si512(idx);
      const float* src = A + p0 * lda + i0 + ir;
      for (int64_t p = 0; p < kp; ++p) {
        const __m512 x0 = _mm512_maskz_loadu_ps(mk, src + 2 * p * lda);
        const __m512 x1 = 2 * p + 1 < kc ? _mm512_maskz_loadu_ps(mk, src + (2 * p + 1) * lda)
                                         : _mm512_setzero_ps();
        const __m512i w = _mm512_permutexvar_epi16(vidx, round_pairs(x0, x1));
        _mm512_mask_storeu_epi32(dst + p * MR, ms, w);
      }
    } else {  // rows contiguous in k: 32 k of each row, rounded, then a transpose in memory
      const float* src = A + (i0 + ir) * lda + p0;
      for (int64_t k = 0; k < kc; k += 32) {
        const __mmask16 mlo = mask_n(kc - k), mhi = mask_n(kc - k - 16);
        alignas(64) uint32_t t[MR][16];
        for (int64_t i = 0; i < r; ++i) {
          const float* s = src + i * lda + k;
          _mm512_store_si512(t[i], round_pairs(_mm512_maskz_loadu_ps(mlo, s),
                                               _mm512_maskz_loadu_ps(mhi, s + 16)));
        }
        for (int64_t i = r; i < MR; ++i) _mm512_store_si512(t[i], _mm512_setzero_si512());
        const int64_t pn = kp - k / 2 < 16 ? kp - k / 2 : 16;
        uint32_t* d = dst + (k / 2) * MR;
        for (int64_t pp = 0; pp < pn; ++pp)
#pragma GCC unroll 16
          for (int i = 0; i < MR; ++i) d[pp * MR + i] = t[i][pp];
      }
    }
  }
}

// In-register 16x16 transpose of 32-bit lanes: r[i] lane j -> r[j] lane i.
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

// B bf16 only (the driver picks this kernel for bf16 B alone).
void pack_b(bool trans, const void* B, int dtype, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc, float* Bp) {
  const uint16_t* base = static_cast<const uint16_t*>(B);
  const int64_t kp = (kc + 1) / 2;
  if (!trans) {  // B is [K, N]: rows 2p and 2p+1 of the block, 32 columns each, interleaved
    alignas(64) uint16_t lo_idx[32], hi_idx[32];
    for (int j = 0; j < 16; ++j) {
      lo_idx[2 * j] = (uint16_t)j;
      lo_idx[2 * j + 1] = (uint16_t)(32 + j);
      hi_idx[2 * j] = (uint16_t)(16 + j);
      hi_idx[2 * j + 1] = (uint16_t)(48 + j);
    }
    const __m512i vlo = _mm512_load_si512(lo_idx), vhi = _mm512_load_si512(hi_idx);
    constexpr int64_t PB = 4;  // pairs per sweep across the panels
    for (int64_t q0 = 0; q0 < kp; q0 += PB) {
      const int64_t q1 = q0 + PB < kp ? q0 + PB : kp;
      for (int64_t jr = 0; jr < nc; jr += NR) {
        const __mmask32 m = mask32_n(nc - jr);
        uint32_t* dst = reinterpret_cast<uint32_t*>(Bp + jr * kc);
        const uint16_t* src = base + p0 * ldb + j0 + jr;
        for (int64_t p = q0; p < q1; ++p) {
          const __m512i r0 = _mm512_maskz_loadu_epi16(m, src + 2 * p * ldb);
          const __m512i r1 = 2 * p + 1 < kc ? _mm512_maskz_loadu_epi16(m, src + (2 * p + 1) * ldb)
                                            : _mm512_setzero_si512();
          _mm512_store_si512(dst + p * NR, _mm512_permutex2var_epi16(r0, vlo, r1));
          _mm512_store_si512(dst + p * NR + 16, _mm512_permutex2var_epi16(r0, vhi, r1));
        }
      }
    }
    return;
  }
  // B is [N, K]: row j of B holds column j of op(B), and its consecutive
  // bf16 pairs are already what a lane wants; 16 rows x 16 pairs at a time,
  // transposed in registers as 32-bit lanes.
  for (int64_t jr = 0; jr < nc; jr += NR) {
    uint32_t* dst = reinterpret_cast<uint32_t*>(Bp + jr * kc);
    for (int half = 0; half < 2; ++half) {
      const int64_t jb = jr + 16 * half;
      const int64_t rows = nc - jb < 16 ? (nc - jb > 0 ? nc - jb : 0) : 16;
      const uint16_t* src = base + (j0 + jb) * ldb + p0;
      for (int64_t k = 0; k < kc; k += 32) {
        const __mmask32 mk = mask32_n(kc - k);
        __m512 r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i)
          r[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mk, src + i * ldb + k))
                          : _mm512_setzero_ps();
        transpose16(r);
        const int64_t pn = kp - k / 2 < 16 ? kp - k / 2 : 16;
        for (int64_t pp = 0; pp < pn; ++pp)
          _mm512_store_si512(dst + (k / 2 + pp) * NR + 16 * half, _mm512_castps_si512(r[pp]));
      }
    }
  }
}

const Kernel kKernel = {"avx512_bf16", MR, NR, GRIP_GEMMBF16_KC, GRIP_GEMMBF16_MC, GRIP_GEMMBF16_NC,
                        &pack_a, &pack_b, &macro};

}  // namespace

const Kernel* kernel_avx512_bf16() { return &kKernel; }

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace grip

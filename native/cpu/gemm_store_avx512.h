// gemm_store_avx512.h — the store of a 14 x 32 register tile, shared by the
// AVX-512 micro-kernels (gemm_avx512.cc, gemm_avx512bf16.cc): C = alpha*acc
// + beta*C (+ bias, which joins the store), columns past the tile's edge
// masked. Include only from files built with AVX-512 flags. Everything here
// has internal linkage (an unnamed namespace), so each file keeps its own
// copy compiled with its own flags and the linker never merges them.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace grip {
namespace cpu {
namespace gemm_detail {
namespace {

// The masks of a tile's two 16-column halves for nr valid columns (nr <= 32).
inline void tile_masks(int64_t nr, __mmask16* m0, __mmask16* m1) {
  *m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
  *m1 = nr >= 32 ? (__mmask16)0xffff : (nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1));
}

template <int R>
__attribute__((always_inline)) inline void store_tile(const __m512 (&acc0)[R], const __m512 (&acc1)[R], float* c,
                                                      int64_t ldc, float alpha, float beta, const float* bias,
                                                      __mmask16 m0, __mmask16 m1) {
  const __m512 va = _mm512_set1_ps(alpha);
  if (bias) {
    const __m512 bv0 = _mm512_maskz_loadu_ps(m0, bias), bv1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      __m512 r0 = _mm512_fmadd_ps(va, acc0[i], bv0), r1 = _mm512_fmadd_ps(va, acc1[i], bv1);
      if (beta != 0.f) {
        r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c + i * ldc), r0);
        r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + i * ldc + 16), r1);
      }
      _mm512_mask_storeu_ps(c + i * ldc, m0, r0);
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, r1);
    }
  } else if (beta == 0.f) {
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_mul_ps(va, acc0[i]));
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_mul_ps(va, acc1[i]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 c0 = _mm512_maskz_loadu_ps(m0, c + i * ldc);
      const __m512 c1 = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
      _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_fmadd_ps(vb, c0, _mm512_mul_ps(va, acc0[i])));
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_fmadd_ps(vb, c1, _mm512_mul_ps(va, acc1[i])));
    }
  }
}

}  // namespace
}  // namespace gemm_detail
}  // namespace cpu
}  // namespace grip

// topk_avx512.cc — AVX-512 row kernels of topk (see topk_kernels.h).
#include <immintrin.h>

#include <algorithm>

#include "../core/portable.h"
#include "topk_kernels.h"

namespace grip {
namespace cpu {
namespace avx512 {

static inline __m512i order_key16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(_mm512_add_ps(x, _mm512_setzero_ps()));  // -0 -> +0
  const __m512i sign = _mm512_srai_epi32(bits, 31);                                   // 0 or -1
  // negative: ~bits; positive: bits | 0x80000000
  return _mm512_xor_si512(bits, _mm512_or_si512(sign, _mm512_set1_epi32((int)0x80000000u)));
}

void topk_keys(const float* s, int64_t N, uint32_t* keys, uint32_t* mn, uint32_t* mx) {
  __m512i vmn = _mm512_set1_epi32(-1), vmx = _mm512_setzero_si512();
  int64_t n = 0;
  for (; n + 16 <= N; n += 16) {
    const __m512i k = order_key16(_mm512_loadu_ps(s + n));
    _mm512_storeu_si512(keys + n, k);
    vmn = _mm512_min_epu32(vmn, k);
    vmx = _mm512_max_epu32(vmx, k);
  }
  if (n < N) {
    const __mmask16 m = (__mmask16)((1u << (N - n)) - 1);
    const __m512i k = order_key16(_mm512_maskz_loadu_ps(m, s + n));
    _mm512_mask_storeu_epi32(keys + n, m, k);
    vmn = _mm512_mask_min_epu32(vmn, m, vmn, k);
    vmx = _mm512_mask_max_epu32(vmx, m, vmx, k);
  }
  *mn = _mm512_reduce_min_epu32(vmn);
  *mx = _mm512_reduce_max_epu32(vmx);
}

int64_t topk_write(const float* s, const uint32_t* keys, int64_t N, uint32_t t, int64_t take_eq,
                   int64_t k, int32_t* idx, float* val) {
  const __m512i vt = _mm512_set1_epi32((int)t);
  __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i sixteen = _mm512_set1_epi32(16);
  int64_t pos = 0;
  for (int64_t n = 0; n < N && pos < k; n += 16) {
    const __mmask16 valid = N - n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - n)) - 1);
    const __m512i key = _mm512_maskz_loadu_epi32(valid, keys + n);
    const __mmask16 gt = _mm512_mask_cmpgt_epu32_mask(valid, key, vt);
    uint32_t eq = _mm512_mask_cmpeq_epu32_mask(valid, key, vt);
    const int neq = __builtin_popcount(eq);
    if (neq > take_eq) {  // keep only the first take_eq of them (rare)
      uint32_t keep_eq = 0;
      for (int64_t c = 0; c < take_eq; ++c) {
        keep_eq |= eq & (0u - eq);
        eq &= eq - 1;
      }
      eq = keep_eq;
      take_eq = 0;
    } else {
      take_eq -= neq;
    }
    const __mmask16 keep = (__mmask16)(gt | eq);
    _mm512_mask_compressstoreu_epi32(idx + pos, keep, iota);
    _mm512_mask_compressstoreu_ps(val + pos, keep, _mm512_maskz_loadu_ps(valid, s + n));
    pos += __builtin_popcount(keep);
    iota = _mm512_add_epi32(iota, sixteen);
  }
  return pos;
}

int64_t count_nan(const float* s, int64_t N) {
  int64_t c = 0, n = 0;
  for (; n + 16 <= N; n += 16) {
    const __m512 x = _mm512_loadu_ps(s + n);
    c += __builtin_popcount(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q));
  }
  for (; n < N; ++n) c += s[n] != s[n];
  return c;
}

}  // namespace avx512
}  // namespace cpu
}  // namespace grip

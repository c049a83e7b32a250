// topk_kernels.h — AVX-512 row kernels of topk (topk_avx512.cc); topk.cc
// uses them when grip::cpu_features().avx512, else its portable loops.
#pragma once
#include <cstdint>

namespace grip {
namespace cpu {
namespace avx512 {
// keys[n] = float_order_key(s[n] + 0.f); min / max of the keys.
void topk_keys(const float* s, int64_t N, uint32_t* keys, uint32_t* mn, uint32_t* mx);
// Writes, in position order, the indices (and scores) of keys > t and of the
// first take_eq keys == t, stopping after k of them. Returns the count written.
int64_t topk_write(const float* s, const uint32_t* keys, int64_t N, uint32_t t, int64_t take_eq,
                   int64_t k, int32_t* idx, float* val);
// Number of NaNs in s[0..N).
int64_t count_nan(const float* s, int64_t N);
}  // namespace avx512
}  // namespace cpu
}  // namespace grip
